"""Fingerprints of mapped contacts: equal contacts give equal fingerprints, in any process, on any Python.

The fingerprint decides whether a source change costs Graph writes (I4), so it hashes a canonical form:
keys sorted, compact JSON, strings NFC-normalised (a name typed with a combining accent equals the precomposed
one), tuples treated as lists, SHA-256 (never `hash()`, which is salted per process). Floats are refused:
contact payloads carry none, and their text form is the one place where "equal" could silently disagree.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from typing import Any


def canonical(value: Any) -> bytes:
    """The canonical UTF-8 JSON of `value` that `fingerprint` hashes."""
    return json.dumps(
        _normal(value, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    ).encode("utf-8")


def fingerprint(payload: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical form of a contact payload."""
    return hashlib.sha256(canonical(payload)).hexdigest()


def _normal(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"fingerprint: keys must be strings, got {type(key).__name__} at {path}")
            nkey = unicodedata.normalize("NFC", key)
            if nkey in out:
                raise ValueError(f"fingerprint: two keys at {path} are the same after NFC normalisation")
            out[nkey] = _normal(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_normal(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float):
        raise TypeError(f"fingerprint: floats are not allowed in a contact payload (at {path})")
    raise TypeError(f"fingerprint: cannot hash a {type(value).__name__} (at {path})")
