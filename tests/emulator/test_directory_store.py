"""The directory store's Python API (what scenarios, the control surface and the mailbox store call)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from graph_emulator.changes import Change
from graph_emulator.directory import USER_PROPERTIES, USER_RELATIONSHIPS, jpeg_size
from graph_emulator.protocol import GraphError
from graph_emulator.scenarios import make_jpeg
from graph_emulator.tenant import Tenant
from tests.emulator.schema import OPENAPI_DIR


@pytest.fixture
def tenant() -> Tenant:
    return Tenant(domain="northwind.example")


@pytest.fixture
def changes(tenant: Tenant) -> list[Change]:
    seen: list[Change] = []
    tenant.changes.add_listener(seen.append)
    return seen


def _directory_changes(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.resource, c.change_type) for c in changes if c.resource in ("users", "contacts", "groups")]


def test_user_property_lists_match_the_openapi_user_schema() -> None:
    doc = yaml.safe_load((OPENAPI_DIR / "user-schema.yml").read_text(encoding="utf-8"))
    schemas: dict[str, Any] = doc["components"]["schemas"]
    declared = {"id"}
    for name in ("microsoft.graph.user", "microsoft.graph.directoryObject"):
        for part in schemas[name].get("allOf", [schemas[name]]):
            declared |= set(part.get("properties", {}))
    assert declared == USER_PROPERTIES | USER_RELATIONSHIPS
    assert not USER_PROPERTIES & USER_RELATIONSHIPS


def test_add_user_fills_in_what_a_new_microsoft_365_user_gets(tenant: Tenant) -> None:
    user = tenant.directory.add_user(displayName="Siobhán O'Brien", mobilePhone="+44 7700 900001")
    assert user["userPrincipalName"] == "siobhan.o.brien@northwind.example"
    assert user["mail"] == user["userPrincipalName"]
    assert user["accountEnabled"] is True and user["userType"] == "Member"
    assert user["businessPhones"] == [] and user["assignedLicenses"][0]["skuId"]
    assert tenant.directory.has_mailbox(user["id"])
    # Same display name again: the UPN stays unique.
    second = tenant.directory.add_user(displayName="Siobhán O'Brien")
    assert second["userPrincipalName"] == "siobhan.o.brien2@northwind.example"


def test_non_latin_name_without_nickname_still_gets_a_valid_upn(tenant: Tenant) -> None:
    user = tenant.directory.add_user(displayName="李伟")
    local, _, domain = user["userPrincipalName"].partition("@")
    assert domain == "northwind.example" and local.isascii() and local


def test_mailbox_needs_mail_and_a_license_or_shared_mailbox(tenant: Tenant) -> None:
    d = tenant.directory
    unlicensed = d.add_user(displayName="No Licence", assignedLicenses=[], mail=None)
    guest = d.add_user(displayName="Guest", userType="Guest", mail="g@partner.example", assignedLicenses=[])
    shared = d.add_user(displayName="Trucks North", shared_mailbox=True)
    assert unlicensed["mail"] is None and not d.has_mailbox(unlicensed["id"])
    assert not d.has_mailbox(guest["id"])
    assert shared["accountEnabled"] is False and shared["assignedLicenses"] == []
    assert d.has_mailbox(shared["id"])
    assert tenant.mailboxes.purpose(shared["id"]) == "shared"


def test_resolve_user_by_id_or_upn_and_graphs_404_for_unknown(tenant: Tenant) -> None:
    user = tenant.directory.add_user(displayName="Ann Lee")
    assert tenant.directory.resolve_user(user["userPrincipalName"].upper()) == user["id"]
    assert tenant.directory.resolve_user(user["id"]) == user["id"]
    with pytest.raises(GraphError) as err:
        tenant.directory.resolve_user("nobody@northwind.example")
    assert err.value.status == 404 and err.value.code == "Request_ResourceNotFound"
    assert "nobody@northwind.example" in err.value.message


@pytest.mark.parametrize(
    "props, named",
    [
        ({"favouriteColour": "blue"}, "favouriteColour"),
        ({"businessPhones": "+44 20 7946 0000"}, "businessPhones"),
        ({"accountEnabled": "yes"}, "accountEnabled"),
        ({"jobTitle": 42}, "jobTitle"),
    ],
)
def test_bad_properties_are_refused_naming_the_property_and_nothing_is_created(
    tenant: Tenant, changes: list[Change], props: dict[str, Any], named: str
) -> None:
    with pytest.raises(GraphError) as err:
        tenant.directory.add_user(displayName="X", **props)
    assert err.value.status == 400 and named in err.value.message
    assert tenant.directory.users() == [] and changes == []


def test_each_mutation_emits_the_truth_once(tenant: Tenant, changes: list[Change]) -> None:
    d = tenant.directory
    boss = d.add_user(displayName="Boss")
    user = d.add_user(displayName="Driver One")
    d.update_user(user["id"], jobTitle="Driver")
    d.update_user(user["id"], jobTitle="Driver")  # no real change: nothing emitted
    d.set_manager(user["id"], boss["id"])
    d.set_photo(user["id"], make_jpeg(240, 240))  # photos are not tracked as user changes
    contact = d.add_org_contact(displayName="Fuel Direct", mail="a@fuel.example")
    d.update_org_contact(contact["id"], jobTitle="Accounts")
    group = d.add_group("Drivers", [user["id"]])
    d.remove_member(group["id"], user["id"])
    d.delete_user(user["id"])
    d.restore_user(user["id"])
    d.delete_user(user["id"], hard=True)
    d.delete_org_contact(contact["id"])
    assert _directory_changes(changes) == [
        ("users", "created"),
        ("users", "created"),
        ("users", "updated"),  # jobTitle
        ("users", "updated"),  # manager
        ("contacts", "created"),
        ("contacts", "updated"),
        ("groups", "created"),
        ("groups", "updated"),  # member removed
        ("users", "updated"),  # soft delete: Graph reports it as updated
        ("users", "updated"),  # restore
        ("users", "deleted"),  # permanent
        ("contacts", "deleted"),
    ]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_soft_delete_restore_and_hard_delete(tenant: Tenant) -> None:
    d = tenant.directory
    user = d.add_user(displayName="Temp Worker")
    group = d.add_group("Crew", [user["id"]])
    d.delete_user(user["id"])
    assert d.get_user(user["id"]) is None and d.members(group["id"]) == []
    with pytest.raises(GraphError):
        d.delete_user(user["id"])  # already soft-deleted: only a permanent delete is left
    restored = d.restore_user(user["id"])
    assert restored["userPrincipalName"] == user["userPrincipalName"]
    assert d.members(group["id"]) == [user["id"]]  # memberships come back with the user
    d.delete_user(user["id"], hard=True)
    with pytest.raises(GraphError):
        d.restore_user(user["id"])


def test_upn_must_stay_unique(tenant: Tenant) -> None:
    d = tenant.directory
    d.add_user(displayName="A", userPrincipalName="a@northwind.example")
    b = d.add_user(displayName="B", userPrincipalName="b@northwind.example")
    with pytest.raises(GraphError):
        d.add_user(displayName="A2", userPrincipalName="A@northwind.example")
    with pytest.raises(GraphError):
        d.update_user(b["id"], userPrincipalName="a@northwind.example")
    d.update_user(b["id"], userPrincipalName="b.new@northwind.example")
    assert d.resolve_user("b.new@northwind.example") == b["id"]
    with pytest.raises(GraphError):
        d.resolve_user("b@northwind.example")


def test_transitive_members_resolve_nested_groups_once_each(tenant: Tenant) -> None:
    d = tenant.directory
    a, b, c = (d.add_user(displayName=n)["id"] for n in ("A", "B", "C"))
    north = d.add_group("Drivers North", [a, b])
    drivers = d.add_group("Drivers", [north["id"], b, c])
    everyone = d.add_group("All Staff", [drivers["id"], a])
    d.add_member(north["id"], everyone["id"])  # a cycle must not loop
    assert set(d.transitive_members(everyone["id"])) == {drivers["id"], north["id"], a, b, c}
    assert len(d.transitive_members(everyone["id"])) == 5
    with pytest.raises(GraphError) as err:
        d.add_member(drivers["id"], c)
    assert err.value.status == 400  # already a member
    with pytest.raises(GraphError) as err:
        d.add_member(drivers["id"], "00000000-0000-4000-8000-000000000000")
    assert err.value.status == 404


def test_manager_follows_the_manager_and_clears_on_permanent_delete(tenant: Tenant) -> None:
    d = tenant.directory
    boss = d.add_user(displayName="Boss")
    worker = d.add_user(displayName="Worker", manager_id=boss["id"])
    assert d.manager_of(worker["id"]) == boss["id"]
    with pytest.raises(GraphError):
        d.set_manager(worker["id"], worker["id"])
    d.delete_user(boss["id"], hard=True)
    assert d.manager_of(worker["id"]) is None


def test_photo_etag_changes_only_when_the_bytes_change(tenant: Tenant) -> None:
    d = tenant.directory
    user = d.add_user(displayName="Face")
    first = d.set_photo(user["id"], make_jpeg(360, 360, shade=90))
    again = d.set_photo(user["id"], make_jpeg(360, 360, shade=90))
    other = d.set_photo(user["id"], make_jpeg(360, 360, shade=91))
    assert first is not None and again is not None and other is not None
    assert first.etag == again.etag != other.etag
    assert (other.width, other.height) == (360, 360)
    assert other.sizes() == ["48x48", "64x64", "96x96", "120x120", "240x240", "360x360"]
    assert d.set_photo(user["id"], None) is None and d.photo(user["id"]) is None
    with pytest.raises(GraphError) as err:
        d.set_photo(user["id"], b"GIF89a not a jpeg")
    assert err.value.status == 400


def test_generated_jpeg_is_a_real_baseline_jpeg() -> None:
    data = make_jpeg(504, 504, shade=30, comment="x")
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    assert jpeg_size(data) == (504, 504)
    assert b"\xff\xc0" in data  # baseline start-of-frame
    with pytest.raises(ValueError):
        jpeg_size(b"\x89PNG\r\n")
