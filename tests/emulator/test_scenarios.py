"""Scenarios: the Northwind Logistics tenant from the story, and the synthetic one for benchmarks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from graph_emulator import scenarios
from graph_emulator.directory import jpeg_size
from graph_emulator.tenant import Tenant


@pytest.fixture(scope="module")
def logistics() -> tuple[Tenant, dict[str, Any]]:
    tenant = Tenant(seed=7)
    return tenant, scenarios.load(tenant, "logistics", seed=7)


def _users(tenant: Tenant, ids: list[str]) -> list[dict[str, Any]]:
    found = [tenant.directory.get_user(i) for i in ids]
    assert all(u is not None for u in found)
    return [u for u in found if u is not None]


def test_drivers_are_in_four_depots_with_mobiles_and_depot_addresses(logistics: tuple[Tenant, Any]) -> None:
    tenant, ids = logistics
    drivers = _users(tenant, ids["drivers"])
    assert len(drivers) == 100
    assert all(u["jobTitle"] == "Driver" and u["department"] == "Transport" for u in drivers)
    assert all(u["mobilePhone"].startswith("+44 7700 900") for u in drivers)
    assert Counter(u["officeLocation"] for u in drivers) == {f"Depot {d}": 25 for d in scenarios.DEPOTS}
    for depot, depot_ids in ids["drivers_by_depot"].items():
        for user in _users(tenant, depot_ids):
            assert user["city"] == scenarios.DEPOTS[depot]["city"]
            assert tenant.directory.manager_of(user["id"]) == ids["managers"][depot]
    phones = [u["mobilePhone"] for u in tenant.directory.users() if u.get("mobilePhone")]
    assert len(phones) == len(set(phones))


def test_office_staff_have_departments_managers_and_some_no_mobile(logistics: tuple[Tenant, Any]) -> None:
    tenant, ids = logistics
    staff = _users(tenant, ids["office_staff"])
    assert len(staff) == 20
    assert len({u["department"] for u in staff}) >= 5
    assert sum(1 for u in staff if not u.get("mobilePhone")) >= 3
    with_manager = [u for u in staff if tenant.directory.manager_of(u["id"])]
    assert len(with_manager) == 19 and tenant.directory.manager_of(ids["ceo_id"]) is None


def test_special_users_disabled_guest_unlicensed(logistics: tuple[Tenant, Any]) -> None:
    tenant, ids = logistics
    d = tenant.directory
    disabled = d.get_user(ids["disabled_user_id"])
    guest = d.get_user(ids["guest_user_id"])
    unlicensed = d.get_user(ids["unlicensed_user_id"])
    assert disabled and disabled["accountEnabled"] is False
    assert guest and guest["userType"] == "Guest" and "#EXT#" in guest["userPrincipalName"]
    assert not d.has_mailbox(ids["guest_user_id"])
    assert (
        unlicensed and unlicensed["assignedLicenses"] == [] and not d.has_mailbox(ids["unlicensed_user_id"])
    )


def test_four_shared_mailboxes_each_the_address_book_of_25_driver_phones(
    logistics: tuple[Tenant, Any],
) -> None:
    tenant, ids = logistics
    shared = ids["shared_mailboxes"]
    assert sorted(shared) == ["Trucks East", "Trucks North", "Trucks South", "Trucks West"]
    all_phones: list[str] = []
    for name, info in shared.items():
        user = tenant.directory.get_user(info["id"])
        assert user and user["displayName"] == name and user["accountEnabled"] is False
        assert user["assignedLicenses"] == [] and user["mail"] == info["mail"]
        assert user["userPrincipalName"] == f"trucks.{info['depot'].lower()}@northwind.example"  # as the config
        assert tenant.directory.has_mailbox(info["id"])
        assert tenant.mailboxes.purpose(info["id"]) == "shared"
        assert len(info["phones"]) == 25 and info["phones"] == ids["drivers_by_depot"][info["depot"]]
        all_phones += info["phones"]
    assert sorted(all_phones) == sorted(ids["drivers"])


def test_groups_drivers_nested_and_all_staff(logistics: tuple[Tenant, Any]) -> None:
    tenant, ids = logistics
    d = tenant.directory
    drivers = d.transitive_members(ids["drivers_group_id"])
    assert set(drivers) == set(ids["drivers"]) | {ids["drivers_north_group_id"]}
    assert ids["drivers_north_group_id"] in d.members(ids["drivers_group_id"])
    everyone = d.transitive_members(ids["all_staff_group_id"])
    assert set(ids["office_staff"]) | set(ids["drivers"]) <= set(everyone)


def test_names_include_accents_apostrophes_hyphens_and_other_scripts(logistics: tuple[Tenant, Any]) -> None:
    tenant, _ = logistics
    names = [u["displayName"] for u in tenant.directory.users()]
    assert any("'" in n for n in names) and any("-" in n for n in names)
    assert any(any(ch in n for ch in "áéíóúñëöüå") for n in names)
    assert any(any("\u0400" <= ch <= "\u04ff" for ch in n) for n in names)  # Cyrillic
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)  # CJK
    upns = [u["userPrincipalName"] for u in tenant.directory.users()]
    assert len(upns) == len(set(upns))


def test_some_users_have_real_jpeg_photos_of_240_or_more(logistics: tuple[Tenant, Any]) -> None:
    tenant, _ = logistics
    photos = [p for u in tenant.directory.users() if (p := tenant.directory.photo(u["id"])) is not None]
    assert 10 <= len(photos) < len(tenant.directory.users())
    for photo in photos:
        width, height = jpeg_size(photo.jpeg)
        assert width == height >= 240 and photo.largest()[0] == f"{width}x{height}"


def test_suppliers_are_org_contacts(logistics: tuple[Tenant, Any]) -> None:
    tenant, ids = logistics
    contacts = tenant.directory.org_contacts()
    assert [c["id"] for c in contacts] == ids["org_contact_ids"] and len(contacts) == 5
    assert all(c["mail"] and c["phones"][0]["type"] == "business" for c in contacts)


def test_same_seed_same_tenant_other_seed_other_tenant() -> None:
    def snapshot(seed: int) -> list[tuple[str, str, str | None]]:
        tenant = Tenant(seed=seed)
        scenarios.load(tenant, "logistics", seed=seed)
        return [(u["id"], u["displayName"], u.get("mobilePhone")) for u in tenant.directory.users()]

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


def test_synthetic_gives_n_mailbox_users_and_m_targets() -> None:
    tenant = Tenant()
    result = scenarios.load(tenant, "synthetic", users=300, targets=25, seed=1)
    d = tenant.directory
    assert len(result["user_ids"]) == 300 and len(d.users()) == 300
    assert all(d.has_mailbox(u) for u in result["user_ids"][:50])
    assert sorted(d.members(result["targets_group_id"])) == sorted(result["target_ids"])
    assert len(set(result["target_ids"])) == 25 and set(result["target_ids"]) <= set(result["user_ids"])


@pytest.mark.parametrize(
    "name, params",
    [
        ("nope", {}),
        ("logistics", {"users": 5}),
        ("synthetic", {"users": 0}),
        ("synthetic", {"users": 5, "targets": 6}),
        ("synthetic", {"people": 5}),
    ],
)
def test_bad_scenario_requests_are_refused_clearly(name: str, params: dict[str, Any]) -> None:
    tenant = Tenant()
    with pytest.raises(ValueError) as err:
        scenarios.load(tenant, name, **params)
    assert str(err.value)
    assert tenant.directory.users() == []
