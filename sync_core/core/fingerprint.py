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

_nfc = unicodedata.normalize


def canonical(value: Any) -> bytes:
    """The canonical UTF-8 JSON of `value` that `fingerprint` hashes."""
    try:
        normal = _normal(value)
    except _Refused as refused:
        raise refused.error() from None
    return json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def fingerprint(payload: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical form of a contact payload."""
    return hashlib.sha256(canonical(payload)).hexdigest()


class _Refused(Exception):
    """A value the canonical form refuses; the path to it is collected on the way out (free when all is well)."""

    def __init__(self, kind: type[Exception], message: str) -> None:
        super().__init__(message)
        self.kind, self.message, self.path = kind, message, [""]

    def inside(self, step: str) -> _Refused:
        self.path.append(step)
        return self

    def error(self) -> Exception:
        return self.kind(self.message.format(path="$" + "".join(reversed(self.path))))


def _normal(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return _nfc("NFC", value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Refused(TypeError, f"fingerprint: keys must be strings, got {type(key).__name__} at {{path}}")
            nkey = _nfc("NFC", key)
            if nkey in out:
                raise _Refused(ValueError, "fingerprint: two keys at {path} are the same after NFC normalisation")
            try:
                out[nkey] = _normal(item)
            except _Refused as refused:
                raise refused.inside(f".{key}") from None
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        items = []
        for i, item in enumerate(value):
            try:
                items.append(_normal(item))
            except _Refused as refused:
                raise refused.inside(f"[{i}]") from None
        return items
    if isinstance(value, str):  # a str subclass
        return _nfc("NFC", value)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        raise _Refused(TypeError, "fingerprint: floats are not allowed in a contact payload (at {path})")
    raise _Refused(TypeError, f"fingerprint: cannot hash a {kind.__name__} (at {{path}})")
