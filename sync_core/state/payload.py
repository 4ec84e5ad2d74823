"""JSON text for stored values (contact payloads, run counts, documents), within Table Storage's limits.

A Table string property holds at most 64 KiB of UTF-16, i.e. 32,768 code units. Every store enforces that
limit, so a value that fits on the command line's SQLite also fits in Azure, and a value that does not
fails with an error naming it instead of a bare HTTP 400 halfway through a batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sync_core.state.base import StateError, StateValueError, ValueTooLargeError

MAX_STRING_UNITS = 32 * 1024


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def check_string(what: str, text: str) -> str:
    """Return `text` if a Table string property can hold it, else raise ValueTooLargeError naming `what`."""
    if len(text) <= MAX_STRING_UNITS // 2:  # a code point is at most 2 UTF-16 units: fits without counting
        return text
    units = utf16_units(text)
    if units > MAX_STRING_UNITS:
        raise ValueTooLargeError(
            f"{what} is {units} UTF-16 code units long; Table Storage holds at most {MAX_STRING_UNITS}"
        )
    return text


def to_json(what: str, data: Mapping[str, Any]) -> str:
    """Compact JSON of `data`; StateValueError if it is not JSON data, ValueTooLargeError if it is too big."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StateValueError(f"{what} is not JSON data: {error}") from None
    return check_string(what, text)


def from_json(what: str, text: str) -> dict[str, Any]:
    """Parse stored JSON; StateError naming `what` if the stored text is damaged."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise StateError(f"stored {what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise StateError(f"stored {what} is not a JSON object")
    return data
