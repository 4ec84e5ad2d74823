"""Tags: values round-trip for any source key, and anything galsync did not write parses as None."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.core import tags
from sync_core.core.tags import (
    CONTACT_TAG_EXPAND,
    CONTACT_TAG_ID,
    FOLDER_TAG_ID,
    ContactTag,
    contact_tag_properties,
    contact_tag_value,
    folder_tag_properties,
    parse_contact_tag,
    parse_folder_tag,
    read_contact_tag,
    read_folder_tag,
)

profile_names = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9 _-]{0,38}[A-Za-z0-9_-]", fullmatch=True)
source_keys = st.text(min_size=1, max_size=200)  # any unicode, including ';', '%' and control characters


def test_ids_follow_the_documented_named_property_format() -> None:
    assert CONTACT_TAG_ID == "String {22b3ad71-ee59-41a8-ba39-7a7fb693ffca} Name galsyncSource"
    assert FOLDER_TAG_ID == "String {22b3ad71-ee59-41a8-ba39-7a7fb693ffca} Name galsyncFolder"
    assert f"singleValueExtendedProperties($filter=id eq '{CONTACT_TAG_ID}')" == CONTACT_TAG_EXPAND


def test_value_format_is_versioned_and_escapes_separators() -> None:
    assert contact_tag_value("Dispatch", "user:6f1c") == "v1;Dispatch;user:6f1c"
    assert contact_tag_value("Dispatch", "folder:a;b%c") == "v1;Dispatch;folder:a%3Bb%25c"


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(profile_names, source_keys)
def test_contact_tags_round_trip(profile: str, source_key: str) -> None:
    value = contact_tag_value(profile, source_key)
    assert parse_contact_tag(value) == ContactTag(profile, source_key)
    item = {"singleValueExtendedProperties": contact_tag_properties(profile, source_key)}
    assert read_contact_tag(item) == ContactTag(profile, source_key)
    assert parse_folder_tag(value) is None


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(profile_names)
def test_folder_tags_round_trip(profile: str) -> None:
    item = {"singleValueExtendedProperties": folder_tag_properties(profile)}
    assert read_folder_tag(item) == profile
    assert read_contact_tag(item) is None


@pytest.mark.parametrize(
    "value",
    [
        None, 42, "", "Maman", "v1", "v1;Dispatch", "v2;Dispatch;user:1", "v1;Dispatch;",
        "v1;Dis/patch;user:1", "v1;Dispatch;user:1;extra", "V1;Dispatch;user:1",
        "v1;Dispatch;user%3b1",  # lower-case escape: not what galsync writes
        "v1;Dispatch;user%41",  # needless escape of 'A'
        "v1;Dispatch;user%",  # dangling escape
    ],
)
def test_values_galsync_did_not_write_are_not_ours(value: object) -> None:
    assert parse_contact_tag(value) is None


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(st.text(max_size=60))
def test_parse_never_raises_and_only_accepts_canonical_values(value: str) -> None:
    tag = parse_contact_tag(value)
    if tag is not None:
        assert contact_tag_value(tag.profile, tag.source_key) == value


def test_reading_the_tag_back_from_graph_json() -> None:
    upper_guid = CONTACT_TAG_ID.replace(tags.GALSYNC_GUID, tags.GALSYNC_GUID.upper())
    item = {
        "id": "AAMk...",
        "singleValueExtendedProperties": [
            {"id": "String {00020329-0000-0000-c000-000000000046} Name other", "value": "v1;Dispatch;user:1"},
            {"id": upper_guid, "value": "v1;Dispatch;user:1"},
        ],
    }
    assert read_contact_tag(item) == ContactTag("Dispatch", "user:1")
    wrong_case_name = {"singleValueExtendedProperties": [
        {"id": CONTACT_TAG_ID.replace("galsyncSource", "GALSYNCSOURCE"), "value": "v1;Dispatch;user:1"}]}
    assert read_contact_tag(wrong_case_name) is None
    assert read_contact_tag({"id": "x"}) is None
    assert read_contact_tag({"singleValueExtendedProperties": None}) is None


def test_invalid_inputs_are_refused_when_writing() -> None:
    with pytest.raises(ValueError, match="profile name"):
        contact_tag_value("a;b", "user:1")
    with pytest.raises(ValueError, match="source key"):
        contact_tag_value("Dispatch", "")
