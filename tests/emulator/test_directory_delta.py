"""Directory delta over real HTTPS: /users/delta, /contacts/delta, /groups/delta (delta-query-overview.md).

Counts are exact: a page holds `Directory.delta_page_size` (20) items and a nextLink is given only when
another item follows, so a walk of N changed objects costs ceil(N / 20) requests.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from graph_emulator import GraphEmulator
from graph_emulator.scenarios import make_jpeg
from tests.emulator.schema import validate

Page = dict[str, Any]


def walk(s: requests.Session, url: str, minimal: bool = False) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, requests made)."""
    headers = {"Prefer": "return=minimal"} if minimal else {}
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        r = s.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items += body["value"]
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            url = body["@odata.nextLink"]
            continue
        return items, body["@odata.deltaLink"], pages


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


@pytest.fixture
def people(graph_empty: GraphEmulator) -> list[dict[str, Any]]:
    d = graph_empty.tenant.directory
    return [
        d.add_user(displayName=f"Driver {i:02d}", jobTitle="Driver", mobilePhone=f"+44 7700 900{i:03d}")
        for i in range(5)
    ]


# --- rounds ------------------------------------------------------------------------------------------------


def test_first_round_returns_everyone_then_only_changes(
    graph_empty: GraphEmulator, people: list[Page]
) -> None:
    s = graph_empty.session()
    items, delta_link, _ = walk(s, graph_empty.base_url + "/users/delta")
    assert sorted(i["id"] for i in items) == sorted(p["id"] for p in people)
    assert "$deltatoken=" in delta_link and delta_link.startswith(graph_empty.base_url + "/users/delta?")
    for item in items:
        validate(item, "user-schema.yml", "microsoft.graph.user")
    again, delta_link, pages = walk(s, delta_link)
    assert again == [] and pages == 1
    graph_empty.tenant.directory.update_user(people[2]["id"], jobTitle="Senior Driver")
    changed, delta_link, _ = walk(s, delta_link)
    assert [c["id"] for c in changed] == [people[2]["id"]]
    assert changed[0]["jobTitle"] == "Senior Driver" and changed[0]["displayName"] == "Driver 02"
    assert walk(s, delta_link)[0] == []


@pytest.mark.parametrize("users, expected_requests", [(45, 3), (40, 2), (20, 1), (0, 1)])
def test_a_walk_takes_exactly_ceil_n_over_20_requests(
    graph_empty: GraphEmulator, users: int, expected_requests: int
) -> None:
    for i in range(users):
        graph_empty.tenant.directory.add_user(displayName=f"User {i:02d}")
    items, _, pages = walk(graph_empty.session(), graph_empty.base_url + "/users/delta")
    assert len(items) == users and len({i["id"] for i in items}) == users
    assert pages == expected_requests
    assert graph_empty.log.count(method="GET", route="/users/delta") == expected_requests


def test_select_decides_which_changes_make_a_user_appear(
    graph_empty: GraphEmulator, people: list[Page]
) -> None:
    s = graph_empty.session()
    d = graph_empty.tenant.directory
    items, link, _ = walk(s, graph_empty.base_url + "/users/delta?$select=displayName,mobilePhone")
    assert all(set(i) == {"id", "displayName", "mobilePhone"} for i in items)
    assert parse_qs(urlsplit(link).query).keys() == {"$deltatoken"}  # the query lives in the token
    d.update_user(people[0]["id"], department="Transport", jobTitle="Lead Driver")  # not selected
    d.set_photo(people[1]["id"], make_jpeg(240, 240))  # photos are never tracked
    items, link, _ = walk(s, link)
    assert items == []
    d.update_user(people[0]["id"], mobilePhone="+44 7700 900999")
    items, link, _ = walk(s, link)
    assert items == [{"displayName": "Driver 00", "mobilePhone": "+44 7700 900999", "id": people[0]["id"]}]


def test_without_select_any_property_change_counts(graph_empty: GraphEmulator, people: list[Page]) -> None:
    s = graph_empty.session()
    _, link, _ = walk(s, graph_empty.base_url + "/users/delta")
    graph_empty.tenant.directory.update_user(people[3]["id"], department="Transport")
    items, _, _ = walk(s, link)
    assert [i["id"] for i in items] == [people[3]["id"]]
    assert "department" not in items[0]  # not a default property: tracked, but not returned


def test_return_minimal_sends_only_what_changed(graph_empty: GraphEmulator, people: list[Page]) -> None:
    s = graph_empty.session()
    d = graph_empty.tenant.directory
    url = graph_empty.base_url + "/users/delta?$select=displayName,jobTitle,mobilePhone"
    _, link, _ = walk(s, url, minimal=True)
    d.update_user(people[1]["id"], jobTitle="Trainer")
    d.update_user(people[2]["id"], mobilePhone=None)  # set to null: included, as null
    minimal, _, _ = walk(s, link, minimal=True)
    assert by_id(minimal) == {
        people[1]["id"]: {"id": people[1]["id"], "jobTitle": "Trainer"},
        people[2]["id"]: {"id": people[2]["id"], "mobilePhone": None},
    }
    full, _, _ = walk(s, link)  # the same token without the header: every selected property
    assert by_id(full)[people[1]["id"]] == {
        "id": people[1]["id"],
        "displayName": "Driver 01",
        "jobTitle": "Trainer",
        "mobilePhone": people[1]["mobilePhone"],
    }


def test_removed_reasons_for_soft_and_hard_delete_and_restore(
    graph_empty: GraphEmulator, people: list[Page]
) -> None:
    s = graph_empty.session()
    d = graph_empty.tenant.directory
    _, link, _ = walk(s, graph_empty.base_url + "/users/delta?$select=displayName")
    d.delete_user(people[0]["id"])
    d.delete_user(people[1]["id"], hard=True)
    items, link, _ = walk(s, link)
    assert by_id(items) == {
        people[0]["id"]: {"id": people[0]["id"], "@removed": {"reason": "changed"}},
        people[1]["id"]: {"id": people[1]["id"], "@removed": {"reason": "deleted"}},
    }
    d.restore_user(people[0]["id"])
    items, link, _ = walk(s, link, minimal=True)
    assert items == [{"displayName": "Driver 00", "id": people[0]["id"]}]  # whole again, no annotation
    d.delete_user(people[0]["id"])
    d.delete_user(people[0]["id"], hard=True)  # emptied from deleted items
    items, _, _ = walk(s, link)
    assert items == [{"id": people[0]["id"], "@removed": {"reason": "deleted"}}]
    # A new initial round does not mention objects deleted before it.
    fresh, _, _ = walk(s, graph_empty.base_url + "/users/delta")
    assert {i["id"] for i in fresh} == {p["id"] for p in people[2:]}


def test_a_change_during_paging_is_not_lost(graph_empty: GraphEmulator) -> None:
    d = graph_empty.tenant.directory
    users = [d.add_user(displayName=f"User {i:02d}") for i in range(30)]
    s = graph_empty.session()
    first = s.get(graph_empty.base_url + "/users/delta?$select=displayName").json()
    assert len(first["value"]) == 20
    d.update_user(users[0]["id"], displayName="Renamed during the round")  # already sent on page 1
    d.update_user(users[25]["id"], displayName="Renamed before it was sent")
    rest, link, _ = walk(s, first["@odata.nextLink"])
    seen = by_id(first["value"]) | by_id(rest)
    assert seen[users[0]["id"]]["displayName"] == "Renamed during the round"
    assert seen[users[25]["id"]]["displayName"] == "Renamed before it was sent"
    assert len(seen) == 30
    assert walk(s, link)[0] == []  # both changes were delivered in the round that saw them


# --- tokens ------------------------------------------------------------------------------------------------


def test_expired_token_is_410_with_a_restart_location(graph_empty: GraphEmulator, people: list[Page]) -> None:
    s = graph_empty.session()
    _, link, _ = walk(s, graph_empty.base_url + "/users/delta?$select=displayName,jobTitle")
    graph_empty.tenant.expire_delta_tokens()
    r = s.get(link)
    assert r.status_code == 410
    error = r.json()["error"]
    assert error["code"] == "syncStateNotFound" and error["innerError"]["request-id"]
    location = r.headers["Location"]
    assert location.startswith(graph_empty.base_url + "/users/delta?") and location.endswith("$deltatoken=")
    assert "$select=displayName,jobTitle" in location
    # The Location URL is a new initial round with the original query.
    items, _, _ = walk(s, location)
    assert len(items) == len(people) and all(set(i) == {"id", "displayName", "jobTitle"} for i in items)


def test_expired_skiptoken_mid_round_is_410_too(graph_empty: GraphEmulator) -> None:
    for i in range(25):
        graph_empty.tenant.directory.add_user(displayName=f"User {i:02d}")
    s = graph_empty.session()
    page = s.get(graph_empty.base_url + "/users/delta").json()
    graph_empty.tenant.expire_delta_tokens()
    assert s.get(page["@odata.nextLink"]).status_code == 410


def test_token_we_did_not_issue_is_400(graph_empty: GraphEmulator, people: list[Page]) -> None:
    s = graph_empty.session()
    _, link, _ = walk(s, graph_empty.base_url + "/users/delta")
    token = parse_qs(urlsplit(link).query)["$deltatoken"][0]
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    r = s.get(graph_empty.base_url + "/users/delta", params={"$deltatoken": forged})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"
    # A users token is not a contacts token.
    r = s.get(graph_empty.base_url + "/contacts/delta", params={"$deltatoken": token})
    assert r.status_code == 400


def test_deltatoken_latest_skips_the_initial_state(graph_empty: GraphEmulator, people: list[Page]) -> None:
    s = graph_empty.session()
    r = s.get(graph_empty.base_url + "/users/delta", params={"$deltaToken": "latest"})
    assert r.status_code == 200 and r.json()["value"] == []
    graph_empty.tenant.directory.update_user(people[4]["id"], jobTitle="Dispatcher")
    items, _, _ = walk(s, r.json()["@odata.deltaLink"])
    assert [i["id"] for i in items] == [people[4]["id"]]


def test_filter_by_ids_tracks_only_those_users(graph_empty: GraphEmulator, people: list[Page]) -> None:
    s = graph_empty.session()
    d = graph_empty.tenant.directory
    wanted = f"id eq '{people[0]['id']}' or id eq '{people[3]['id']}'"
    items, link, _ = walk(s, graph_empty.base_url + f"/users/delta?$filter={wanted}")
    assert {i["id"] for i in items} == {people[0]["id"], people[3]["id"]}
    d.update_user(people[1]["id"], jobTitle="x")
    d.update_user(people[3]["id"], jobTitle="y")
    assert [i["id"] for i in walk(s, link)[0]] == [people[3]["id"]]
    too_many = " or ".join(f"id eq '{i:08d}-0000-4000-8000-000000000000'" for i in range(51))
    assert s.get(graph_empty.base_url + "/users/delta", params={"$filter": too_many}).status_code == 400
    bad = s.get(graph_empty.base_url + "/users/delta", params={"$filter": "displayName eq 'x'"})
    assert bad.status_code == 400


@pytest.mark.parametrize("option", ["$top=5", "$orderby=displayName", "$expand=manager"])
def test_options_directory_delta_does_not_support_are_refused(
    graph_empty: GraphEmulator, option: str
) -> None:
    r = graph_empty.session().get(graph_empty.base_url + "/users/delta?" + option)
    assert r.status_code == 400


def test_bad_select_on_delta_is_400(graph_empty: GraphEmulator) -> None:
    r = graph_empty.session().get(graph_empty.base_url + "/users/delta?$select=displayName,nickName")
    assert r.status_code == 400 and "nickName" in r.json()["error"]["message"]


# --- relationships -----------------------------------------------------------------------------------------


def test_manager_changes_come_as_manager_delta_only_when_selected(
    graph_empty: GraphEmulator, people: list[Page]
) -> None:
    s = graph_empty.session()
    d = graph_empty.tenant.directory
    boss = people[0]["id"]
    d.set_manager(people[1]["id"], boss)
    items, link, _ = walk(s, graph_empty.base_url + "/users/delta?$select=displayName,manager")
    first = by_id(items)
    assert first[people[1]["id"]]["manager@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": boss}]
    assert "manager@delta" not in first[boss]
    _, plain_link, _ = walk(s, graph_empty.base_url + "/users/delta?$select=displayName")
    d.set_manager(people[1]["id"], None)
    items, link, _ = walk(s, link)
    assert items == [
        {
            "displayName": "Driver 01",
            "id": people[1]["id"],
            "manager@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": boss, "@removed": {"reason": "deleted"}}
            ],
        }
    ]
    assert walk(s, plain_link)[0] == []  # manager not selected: the change does not show


def test_group_delta_reports_membership_changes_in_members_delta(graph_empty: GraphEmulator) -> None:
    d = graph_empty.tenant.directory
    a, b, c = (d.add_user(displayName=n)["id"] for n in ("A", "B", "C"))
    drivers = d.add_group("Drivers", [a, b])
    empty = d.add_group("Nobody")
    s = graph_empty.session()
    items, link, _ = walk(s, graph_empty.base_url + "/groups/delta?$select=displayName,members")
    first = by_id(items)
    assert first[drivers["id"]]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": a},
        {"@odata.type": "#microsoft.graph.user", "id": b},
    ]
    assert "members@delta" not in first[empty["id"]]  # no members: no annotation
    d.add_member(drivers["id"], c)
    d.remove_member(drivers["id"], a)
    items, link, _ = walk(s, link, minimal=True)
    assert items == [
        {
            "id": drivers["id"],
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": c},
                {"@odata.type": "#microsoft.graph.user", "id": a, "@removed": {"reason": "deleted"}},
            ],
        }
    ]
    d.delete_user(b)  # a deleted user leaves the group
    items, _, _ = walk(s, link)
    assert items[0]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": b, "@removed": {"reason": "deleted"}}
    ]
    assert items[0]["displayName"] == "Drivers"


def test_group_delta_without_select_includes_members(graph: GraphEmulator) -> None:
    scenario: dict[str, Any] = graph.scenario  # type: ignore[assignment]
    items, _, _ = walk(graph.session(), graph.base_url + "/groups/delta")
    groups = by_id(items)
    north = groups[scenario["drivers_north_group_id"]]
    assert len(north["members@delta"]) == 25 and north["displayName"] == "Drivers North"
    drivers_members = groups[scenario["drivers_group_id"]]["members@delta"]
    assert {
        "@odata.type": "#microsoft.graph.group",
        "id": scenario["drivers_north_group_id"],
    } in drivers_members


# --- organizational contacts -------------------------------------------------------------------------------


def test_org_contact_delta_rounds(graph: GraphEmulator) -> None:
    scenario: dict[str, Any] = graph.scenario  # type: ignore[assignment]
    s = graph.session()
    d = graph.tenant.directory
    items, link, _ = walk(s, graph.base_url + "/contacts/delta")
    assert {i["id"] for i in items} == set(scenario["org_contact_ids"])
    for item in items:
        validate(item, "Identity.OrganizationContacts.yml", "microsoft.graph.orgContact")
    first, second = scenario["org_contact_ids"][:2]
    d.update_org_contact(first, jobTitle="Head of Accounts")
    d.delete_org_contact(second)
    new = d.add_org_contact(displayName="New Supplier", mail="hello@new.example")
    items, _, _ = walk(s, link, minimal=True)
    assert by_id(items) == {
        first: {"id": first, "jobTitle": "Head of Accounts"},
        second: {"id": second, "@removed": {"reason": "deleted"}},
        new["id"]: {k: v for k, v in new.items()},
    }


# --- replays and conformance -------------------------------------------------------------------------------


def test_replays_resend_items_of_the_previous_page(graph_empty: GraphEmulator) -> None:
    for i in range(45):
        graph_empty.tenant.directory.add_user(displayName=f"User {i:02d}")
    graph_empty.tenant.delta_replay_rate = 1.0
    items, link, pages = walk(
        graph_empty.session(), graph_empty.base_url + "/users/delta?$select=displayName"
    )
    ids = [i["id"] for i in items]
    assert pages == 3 and len(set(ids)) == 45
    assert len(ids) == 45 + 20 + 20  # pages 2 and 3 each replay the page before
    replayed = walk(graph_empty.session(), link)[0]
    assert len(replayed) == 5  # the next round replays the last page of this one
    graph_empty.tenant.delta_replay_rate = 0.0
    assert walk(graph_empty.session(), link)[0] == []


def test_logistics_user_delta_items_validate_against_the_schema(graph: GraphEmulator) -> None:
    props = "displayName,givenName,surname,mail,mobilePhone,businessPhones,jobTitle,department,companyName,"
    props += (
        "officeLocation,streetAddress,city,postalCode,state,country,accountEnabled,userType,assignedLicenses"
    )
    items, _, pages = walk(graph.session(), graph.base_url + f"/users/delta?$select={props},manager")
    assert len(items) == len(graph.tenant.directory.users()) and pages == -(-len(items) // 20)
    for item in items:
        validate(item, "user-schema.yml", "microsoft.graph.user")


@pytest.mark.parametrize("resource", ["users", "contacts", "groups"])
def test_the_namespace_qualified_delta_answers_as_the_short_name(graph: GraphEmulator, resource: str) -> None:
    s = graph.session()
    short, _, _ = walk(s, f"{graph.base_url}/{resource}/delta")
    qualified, delta_link, _ = walk(s, f"{graph.base_url}/{resource}/microsoft.graph.delta()")
    assert short and sorted(i["id"] for i in qualified) == sorted(i["id"] for i in short)
    assert f"/{resource}/delta?$deltatoken=" in delta_link
