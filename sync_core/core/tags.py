"""The hidden tags that tell galsync's contacts and folders from everybody else's.

This module is the only place that knows galsync's extended properties. Every contact galsync creates carries
a single-value extended property naming (profile, source key); every managed folder carries one naming the
profile. They are invisible on phones and in Outlook, survive edits on devices, and are how galsync keeps
I1 (never touch what it did not create) and I2 (recovery finds a contact whose create landed before a crash).

Id format (docs/graph-facts.md): "String {GUID} Name <name>", one fixed GUID forever. Graph matches the Name part
case-sensitively; the GUID is compared here ignoring case in case Graph echoes it in another case.

Value format, versioned: "v1;<profile>;<source key>" for contacts and "v1;<profile>" for folders. '%', ';'
and control characters inside a part are written as %XX, so any source key round-trips. Parsing is strict: a
value that is not exactly what `contact_tag_value` would write gives None ("not ours"). Graph compares values
case-insensitively in $filter, so a filter on the value may match more than one contact: always parse and
compare exactly after reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .profile import PROFILE_NAME_RE

GALSYNC_GUID = "22b3ad71-ee59-41a8-ba39-7a7fb693ffca"
CONTACT_TAG_NAME = "galsyncSource"
FOLDER_TAG_NAME = "galsyncFolder"
CONTACT_TAG_ID = f"String {{{GALSYNC_GUID}}} Name {CONTACT_TAG_NAME}"
FOLDER_TAG_ID = f"String {{{GALSYNC_GUID}}} Name {FOLDER_TAG_NAME}"

# $expand values that read the tags back (api/singlevaluelegacyextendedproperty-get.md).
CONTACT_TAG_EXPAND = f"singleValueExtendedProperties($filter=id eq '{CONTACT_TAG_ID}')"
FOLDER_TAG_EXPAND = f"singleValueExtendedProperties($filter=id eq '{FOLDER_TAG_ID}')"

_VERSION = "v1"
_ESCAPED = re.compile(r"[%;\x00-\x1f\x7f]")
_ESCAPE_SEQ = re.compile(r"%([0-9A-F]{2})")
_ID_RE = re.compile(r"String \{([0-9A-Fa-f-]{36})\} Name (.+)")


@dataclass(frozen=True)
class ContactTag:
    profile: str
    source_key: str


def contact_tag_value(profile: str, source_key: str) -> str:
    """The value stored on a managed contact for `source_key` of `profile`."""
    profile_part = _profile_part(profile)
    if not source_key:
        raise ValueError("a contact tag needs a non-empty source key")
    return f"{_VERSION};{profile_part};{_escape(source_key)}"


@lru_cache(maxsize=64)
def _profile_part(profile: str) -> str:
    """A profile name checked and escaped, once per profile (a fill tags every contact with it)."""
    _check_profile(profile)
    return _escape(profile)


def folder_tag_value(profile: str) -> str:
    """The value stored on the managed folder of `profile`."""
    _check_profile(profile)
    return f"{_VERSION};{_escape(profile)}"


def parse_contact_tag(value: object) -> ContactTag | None:
    """The (profile, source key) a contact tag value names, or None for anything galsync did not write."""
    if not isinstance(value, str):
        return None
    parts = value.split(";")
    if len(parts) != 3 or parts[0] != _VERSION:
        return None
    profile, source_key = _unescape(parts[1]), _unescape(parts[2])
    if profile is None or source_key is None or not source_key or not _valid_profile(profile):
        return None
    return ContactTag(profile, source_key)


def parse_folder_tag(value: object) -> str | None:
    """The profile a folder tag value names, or None for anything galsync did not write."""
    if not isinstance(value, str):
        return None
    parts = value.split(";")
    if len(parts) != 2 or parts[0] != _VERSION:
        return None
    profile = _unescape(parts[1])
    return profile if profile is not None and _valid_profile(profile) else None


def contact_tag_properties(profile: str, source_key: str) -> list[dict[str, str]]:
    """The `singleValueExtendedProperties` list to send with a contact create (or PATCH)."""
    return [{"id": CONTACT_TAG_ID, "value": contact_tag_value(profile, source_key)}]


def folder_tag_properties(profile: str) -> list[dict[str, str]]:
    """The `singleValueExtendedProperties` list to send with a folder create (or PATCH)."""
    return [{"id": FOLDER_TAG_ID, "value": folder_tag_value(profile)}]


def contact_tag_raw(item: Mapping[str, Any]) -> str | None:
    """The raw value of galsync's contact tag on a contact read with CONTACT_TAG_EXPAND, if present."""
    return _raw(item, CONTACT_TAG_NAME)


def read_contact_tag(item: Mapping[str, Any]) -> ContactTag | None:
    """The parsed contact tag of a contact read with CONTACT_TAG_EXPAND; None if untagged or not ours."""
    return parse_contact_tag(contact_tag_raw(item))


def read_folder_tag(item: Mapping[str, Any]) -> str | None:
    """The profile named by a folder read with FOLDER_TAG_EXPAND; None if untagged or not ours."""
    return parse_folder_tag(_raw(item, FOLDER_TAG_NAME))


def _raw(item: Mapping[str, Any], name: str) -> str | None:
    props = item.get("singleValueExtendedProperties")
    if not isinstance(props, Sequence):
        return None
    for prop in props:
        if isinstance(prop, Mapping) and _is_our_id(prop.get("id"), name):
            value = prop.get("value")
            return value if isinstance(value, str) else None
    return None


def _is_our_id(prop_id: object, name: str) -> bool:
    if not isinstance(prop_id, str):
        return False
    m = _ID_RE.fullmatch(prop_id)
    return m is not None and m.group(1).lower() == GALSYNC_GUID and m.group(2) == name


def _escape(part: str) -> str:
    if _ESCAPED.search(part) is None:
        return part
    return _ESCAPED.sub(lambda m: f"%{ord(m.group()):02X}", part)


def _unescape(part: str) -> str | None:
    """Inverse of _escape; None unless `part` is exactly what _escape writes (canonical form only)."""
    out = _ESCAPE_SEQ.sub(lambda m: chr(int(m.group(1), 16)), part)
    return out if _escape(out) == part else None


def _valid_profile(profile: str) -> bool:
    return PROFILE_NAME_RE.fullmatch(profile) is not None


def _check_profile(profile: str) -> None:
    if not _valid_profile(profile):
        raise ValueError(f"not a valid profile name for a tag: {profile!r}")
