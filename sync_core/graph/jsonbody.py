"""JSON bodies of Graph requests and answers: orjson, with the standard library behind it.

A fill of 50,000 contacts sends and reads about 100 MB of `$batch` JSON, and Graph answers each create with
the whole contact (no Prefer header or `$select` is documented to shorten a contact create's answer, so
there is no less to decode). With the standard library, encoding and decoding those bodies was about a
sixth of galsync's CPU; orjson does both several times faster.

orjson is stricter than the standard library in a few corners (a lone surrogate in a string, integers
beyond 64 bits in a body, NaN/Infinity literals in an answer, keys that are not strings): there the
standard library does the work, so those bodies read and write as they did before. Two differences are
kept, both about numbers Graph and galsync never send: orjson writes NaN and Infinity as null instead of
refusing them, and reads an integer beyond 64 bits in an answer as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode(body: Any) -> bytes:
    """Compact UTF-8 JSON; TypeError or ValueError when `body` is not JSON data."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(data: bytes | str) -> Any:
    """The JSON value of `data` (UTF-8, or UTF-16/32 as the standard library detects); ValueError if invalid."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
