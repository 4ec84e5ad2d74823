"""Filters and source changes: who counts, why not, and which source wins when a person is in several."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sync_core.core.filters import (
    folder_contact_exclusion,
    org_contact_exclusion,
    target_mailboxes,
    user_exclusion,
    user_included,
)
from sync_core.core.profile import Profile, Source, Targets, UserFilter
from sync_core.core.records import SourceRecord
from sync_core.core.sources import (
    DesiredContact,
    Gone,
    Mapped,
    merge_sources,
    read_folder_contact,
    read_org_contact,
    read_user,
    source_key_prefix,
)
from sync_core.core.tags import contact_tag_properties

PROFILE = Profile(name="Company directory")
DRIVERS = dataclasses.replace(
    PROFILE, users=UserFilter(in_groups=("Drivers", "c0ffee00-0000-4000-8000-000000000001"),
                              not_in_groups=("Leavers",)),
)

ALICE: dict[str, Any] = {
    "id": "u-alice", "displayName": "Alice Martin", "mail": "alice@northwind.example", "accountEnabled": True,
    "userType": "Member", "assignedLicenses": [{"skuId": "e3"}], "mobilePhone": "+33 6 00 00 00 01",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"@removed": {"reason": "deleted"}}, "deleted"),
        ({"@removed": {"reason": "changed"}}, "deleted (changed)"),
        ({"accountEnabled": False}, "disabled"),
        ({"userType": "Guest"}, "guest"),
        ({"assignedLicenses": []}, "unlicensed"),
        ({"showInAddressList": False}, "hidden from the address list"),
        ({"mail": None, "mobilePhone": " ", "businessPhones": []}, "no phone or email"),
    ],
)
def test_each_user_filter_gives_its_reason(change: dict[str, Any], reason: str) -> None:
    user = dict(ALICE, **change)
    assert user_exclusion(user, PROFILE) == reason
    assert not user_included(user, PROFILE)
    assert read_user(user, PROFILE) == Gone("user:u-alice", reason)


def test_filters_can_be_switched_off() -> None:
    lenient = dataclasses.replace(PROFILE, users=UserFilter(
        enabled_only=False, members_only=False, licensed_only=False, in_address_list_only=False,
        require_phone_or_email=False))
    shared_mailbox = {"id": "u-trucks", "displayName": "Trucks North", "accountEnabled": False,
                      "assignedLicenses": [], "userType": "Guest", "showInAddressList": False}
    assert user_included(shared_mailbox, lenient)
    assert not user_included(shared_mailbox, PROFILE)


def test_absent_show_in_address_list_counts_as_shown() -> None:
    assert "showInAddressList" not in ALICE
    assert user_included(ALICE, PROFILE)


def test_group_filters_use_resolved_membership() -> None:
    members = {"Drivers": {"u-alice"}, "c0ffee00-0000-4000-8000-000000000001": set(), "Leavers": set()}
    assert user_included(ALICE, DRIVERS, members)
    assert user_exclusion(dict(ALICE, id="u-bob"), DRIVERS, members) == \
        'in none of the groups "Drivers", "c0ffee00-0000-4000-8000-000000000001"'
    leaving = dict(members, Leavers={"u-alice"})
    assert user_exclusion(ALICE, DRIVERS, leaving) == 'in excluded group "Leavers"'
    assert DRIVERS.group_refs == ("Drivers", "c0ffee00-0000-4000-8000-000000000001", "Leavers")


def test_unresolved_group_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match='members of group "Drivers" were not resolved'):
        user_included(ALICE, DRIVERS, {})


def test_included_user_maps_with_fingerprint() -> None:
    change = read_user(ALICE, PROFILE, manager_name="Ana Costa")
    assert isinstance(change, Mapped)
    assert change.source_key == "user:u-alice"
    assert change.payload["manager"] == "Ana Costa"
    assert change.fingerprint == read_user(dict(ALICE, displayName=" Alice Martin "), PROFILE,
                                           manager_name="Ana Costa").fingerprint  # type: ignore[union-attr]


def test_org_and_folder_contacts() -> None:
    org = {"id": "oc1", "displayName": "Acme", "phones": [{"type": "business", "number": "+1 555 0100"}]}
    assert isinstance(read_org_contact(org, PROFILE), Mapped)
    assert org_contact_exclusion({"id": "oc2", "displayName": "Nobody", "phones": []}, PROFILE) == \
        "no phone or email"
    assert read_org_contact({"id": "oc3", "@removed": {"reason": "deleted"}}, PROFILE) == \
        Gone("orgcontact:oc3", "deleted")

    contact = {"id": "AAMk=", "displayName": "Depot", "businessPhones": ["+33 4"]}
    change = read_folder_contact(contact, PROFILE, mailbox_id="mbx-1")
    assert isinstance(change, Mapped) and change.source_key == "folder:mbx-1:AAMk="
    ours = dict(contact, singleValueExtendedProperties=contact_tag_properties("Other", "user:1"))
    assert folder_contact_exclusion(ours, PROFILE) == "written by galsync"
    nameless = {"id": "AAMl=", "businessPhones": ["+33 4"]}
    assert read_folder_contact(nameless, PROFILE, "mbx-1") == Gone("folder:mbx-1:AAMl=", "no name to show")


def test_item_without_id_is_refused() -> None:
    with pytest.raises(ValueError, match="without an id"):
        read_user({"displayName": "x"}, PROFILE)


def record(key: str, email: str | None, name: str) -> SourceRecord:
    payload: dict[str, Any] = {"displayName": name}
    if email:
        payload["emailAddresses"] = [{"name": name, "address": email}]
    return SourceRecord(key, f"fp-{key}", payload)


def test_merge_keeps_the_first_listed_source_per_email() -> None:
    folder = Source("folder", "suppliers@northwind.example", "Suppliers")
    precedence = [source_key_prefix(Source("users")), source_key_prefix(Source("org_contacts")),
                  source_key_prefix(folder, "mbx-1")]
    records = [
        record("folder:mbx-1:AAA=", "ACME@acme.example", "Acme (folder)"),
        record("orgcontact:oc1", "acme@acme.example", "Acme (org)"),
        record("user:u1", "alice@northwind.example", "Alice"),
        record("orgcontact:oc2", "alice@NORTHWIND.example", "Alice (org)"),
        record("folder:mbx-1:BBB=", None, "No email 1"),
        record("folder:mbx-1:CCC=", None, "No email 1"),
    ]
    merged = merge_sources(records, precedence)
    assert list(merged) == ["folder:mbx-1:BBB=", "folder:mbx-1:CCC=", "orgcontact:oc1", "user:u1"]
    assert merged["user:u1"] == DesiredContact(records[2].payload, "fp-user:u1", None)
    assert merge_sources(reversed(records), precedence) == merged
    with pytest.raises(ValueError, match="mailbox's user id"):
        source_key_prefix(folder)


def test_target_mailboxes_are_group_members_plus_explicit_minus_excluded() -> None:
    profile = dataclasses.replace(PROFILE, targets=Targets(
        groups=("All Staff",), mailboxes=("trucks.north@nw.example", "gone@nw.example"),
        exclude=("ceo@nw.example",)))
    ids = {"trucks.north@nw.example": "u-trucks", "ceo@nw.example": "u-ceo"}
    members = {"All Staff": {"u-alice", "u-ceo"}}
    assert target_mailboxes(profile, members, ids) == {"u-alice", "u-trucks"}
    with pytest.raises(ValueError, match='group "All Staff" were not resolved'):
        target_mailboxes(profile, {}, ids)
