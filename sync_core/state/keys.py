"""Keys: checked the same way in every store, and made safe for Table Storage's PartitionKey and RowKey.

Graph ids are long and may hold `-`, `_`, `=`, and source keys join several of them; profile names and
document keys come from admins. Table Storage forbids `/ \\ # ?` and control characters in keys and caps
them at 1 KiB of UTF-16 (512 code units). So Table keys are escaped reversibly: each unsafe character
becomes `~XX` per UTF-8 byte. `~` escapes itself, `|` joins the parts of a composite key, and `%` is
escaped too because percent signs in entity URLs are a known source of trouble in the Table service.
A key still over 512 code units after escaping is replaced by a digest (`~~` + SHA-256), a form escaping
never produces; stores keep the escaped original in a property, so every key reads back exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

from sync_core.state.base import StateError, StateValueError

MAX_KEY_CHARS = 2048  # far above any Graph id or source key; keeps the escaped copy under a property's limit
TABLE_KEY_MAX_UNITS = 512  # 1 KiB of UTF-16
SEPARATOR = "|"
DIGEST_MARK = "~~"

_UNSAFE = re.compile(r"[/\\#?%~|\x00-\x1f\x7f-\x9f]")
_ESCAPED_RUN = re.compile(r"(?:~[0-9A-F]{2})+")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check(what: str, value: object) -> str:
    """Return `value` if it can be a key, else raise StateValueError naming `what` and the problem."""
    if not isinstance(value, str):
        raise StateValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise StateValueError(f"{what} is empty")
    if len(value) > MAX_KEY_CHARS:
        raise StateValueError(f"{what} is {len(value)} characters long; at most {MAX_KEY_CHARS} are allowed")
    if not value.isascii() and _LONE_SURROGATE.search(value):
        raise StateValueError(f"{what} is not valid Unicode (it holds a lone surrogate)")
    return value


def check_each(what: str, values: Iterable[str]) -> Iterator[str]:
    """`check` every value of a collection of keys; a single string is refused (it is not a collection)."""
    if isinstance(values, str | bytes):
        raise StateValueError(f"{what}s must be a collection of keys, not the single string {values[:80]!r}")
    return (check(what, v) for v in values)


def escape(value: str) -> str:
    """Replace every character Table keys forbid (and the escape and separator characters) by `~XX`."""
    return _UNSAFE.sub(lambda m: "".join(f"~{b:02X}" for b in m.group().encode("utf-8")), value)


def unescape(text: str) -> str:
    """Invert `escape`; raise StateError if `text` was not produced by it (the stored data is damaged)."""
    try:
        decoded = _ESCAPED_RUN.sub(lambda m: bytes.fromhex(m.group().replace("~", "")).decode("utf-8"), text)
    except UnicodeDecodeError:
        raise StateError(f"stored key {text[:80]!r} has an invalid escape") from None
    if _UNSAFE.search(_ESCAPED_RUN.sub("", text)):
        raise StateError(f"stored key {text[:80]!r} holds an unescaped character")
    return decoded


def table_key(*parts: str, max_units: int = TABLE_KEY_MAX_UNITS) -> str:
    """A PartitionKey or RowKey for `parts` (each already `check`ed): escaped and joined, or a digest if long.

    `max_units` is lower when the caller puts something in front of the key (the run history's time order).
    """
    joined = SEPARATOR.join(escape(p) for p in parts)
    if len(joined.encode("utf-16-le")) // 2 <= max_units:
        return joined
    return DIGEST_MARK + hashlib.sha256(joined.encode("utf-8")).hexdigest()
