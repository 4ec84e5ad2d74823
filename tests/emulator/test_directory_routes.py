"""Directory routes over real HTTPS: users, org contacts, groups, managers and user photos.

Responses are validated against Microsoft's OpenAPI schemas (tests/emulator/schema.py) and errors against
Graph's envelope (docs/graph-facts.md, "Errors").
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from graph_emulator import GraphEmulator
from graph_emulator.directory import USER_DEFAULT_PROPERTIES, USER_PROPERTIES, USER_SINGLE_ONLY
from graph_emulator.scenarios import make_jpeg
from tests.emulator.schema import validate


def _error(r: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert error["message"] and error["innerError"]["request-id"] and error["innerError"]["date"]
    return error


def _add_users(g: GraphEmulator, n: int, **props: Any) -> list[dict[str, Any]]:
    return [g.tenant.directory.add_user(displayName=f"Person {i:02d}", **props) for i in range(n)]


# --- users -------------------------------------------------------------------------------------------------


def test_list_users_gives_the_default_properties_with_nulls_for_unset(graph_empty: GraphEmulator) -> None:
    _add_users(graph_empty, 2, mobilePhone="+44 7700 900123")
    r = graph_empty.session().get(graph_empty.base_url + "/users")
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.context"] == graph_empty.base_url + "/$metadata#users"
    assert "@odata.nextLink" not in body
    assert len(body["value"]) == 2
    for user in body["value"]:
        assert set(user) == set(USER_DEFAULT_PROPERTIES)
        assert user["givenName"] is None and user["businessPhones"] == []
        validate(user, "user-schema.yml", "microsoft.graph.user")


def test_select_returns_exactly_the_selected_properties_matched_case_insensitively(
    graph_empty: GraphEmulator,
) -> None:
    _add_users(graph_empty, 1, department="Transport")
    r = graph_empty.session().get(graph_empty.base_url + "/users", params={"$select": "id,DEPARTMENT,city"})
    assert r.status_code == 200
    assert r.json()["value"][0].keys() == {"id", "department", "city"}
    assert r.json()["value"][0]["department"] == "Transport" and r.json()["value"][0]["city"] is None


def test_unknown_select_property_is_graphs_400(graph_empty: GraphEmulator) -> None:
    r = graph_empty.session().get(graph_empty.base_url + "/users", params={"$select": "displayName,shoeSize"})
    error = _error(r, 400, "Request_BadRequest")
    assert "shoeSize" in error["message"] and "microsoft.graph.user" in error["message"]


def test_single_user_only_properties_are_501_on_the_collection(graph_empty: GraphEmulator) -> None:
    user = _add_users(graph_empty, 1)[0]
    s = graph_empty.session()
    _error(s.get(graph_empty.base_url + "/users", params={"$select": "skills"}), 501, "NotImplemented")
    r = s.get(f"{graph_empty.base_url}/users/{user['id']}", params={"$select": "skills,aboutMe"})
    assert r.status_code == 200 and r.json()["skills"] == [] and r.json()["aboutMe"] is None


@pytest.mark.parametrize("top", ["0", "1000", "ten"])
def test_top_outside_1_to_999_is_refused(graph_empty: GraphEmulator, top: str) -> None:
    r = graph_empty.session().get(graph_empty.base_url + "/users", params={"$top": top})
    _error(r, 400, "Request_BadRequest")


def test_paging_follows_next_links_keeping_the_query(graph_empty: GraphEmulator) -> None:
    users = _add_users(graph_empty, 5)
    s = graph_empty.session()
    url: str | None = graph_empty.base_url + "/users?$top=2&$select=displayName"
    seen: list[str] = []
    while url:
        body = s.get(url).json()
        assert all(item.keys() == {"displayName"} for item in body["value"])
        seen += [item["displayName"] for item in body["value"]]
        url = body.get("@odata.nextLink")
    assert seen == [u["displayName"] for u in users]
    assert graph_empty.log.count(method="GET", route="/users", status=200) == 3


def test_get_user_by_id_or_upn_and_404_as_graph_words_it(graph_empty: GraphEmulator) -> None:
    user = _add_users(graph_empty, 1)[0]
    s = graph_empty.session()
    by_upn = s.get(f"{graph_empty.base_url}/users/{user['userPrincipalName']}")
    by_id = s.get(f"{graph_empty.base_url}/users/{user['id']}")
    assert by_upn.status_code == by_id.status_code == 200
    assert by_upn.json()["id"] == by_id.json()["id"] == user["id"]
    assert by_id.json()["@odata.context"].endswith("$metadata#users/$entity")
    error = _error(
        s.get(f"{graph_empty.base_url}/users/ghost@contoso.example"), 404, "Request_ResourceNotFound"
    )
    assert "ghost@contoso.example" in error["message"]
    graph_empty.tenant.directory.delete_user(user["id"])
    _error(s.get(f"{graph_empty.base_url}/users/{user['id']}"), 404, "Request_ResourceNotFound")


def test_every_user_property_validates_against_the_schema(graph: GraphEmulator) -> None:
    names = sorted(USER_PROPERTIES - USER_SINGLE_ONLY - {"print", "mailboxSettings"})
    r = graph.session().get(graph.base_url + "/users", params={"$select": ",".join(names), "$top": "999"})
    assert r.status_code == 200
    users = r.json()["value"]
    assert len(users) == len(graph.tenant.directory.users())
    for user in users:
        validate(user, "user-schema.yml", "microsoft.graph.user")


# --- managers ----------------------------------------------------------------------------------------------


def test_manager_is_returned_expanded_and_404_when_there_is_none(graph_empty: GraphEmulator) -> None:
    d = graph_empty.tenant.directory
    boss = d.add_user(displayName="Boss", jobTitle="Depot Manager")
    worker = d.add_user(displayName="Worker", manager_id=boss["id"])
    s = graph_empty.session()
    r = s.get(f"{graph_empty.base_url}/users/{worker['id']}/manager")
    assert r.status_code == 200
    assert r.json()["@odata.type"] == "#microsoft.graph.user" and r.json()["id"] == boss["id"]
    validate(r.json(), "user-schema.yml", "microsoft.graph.user")
    expanded = s.get(
        f"{graph_empty.base_url}/users/{worker['id']}", params={"$expand": "manager($select=id,jobTitle)"}
    ).json()
    assert expanded["manager"] == {
        "@odata.type": "#microsoft.graph.user",
        "id": boss["id"],
        "jobTitle": "Depot Manager",
    }
    error = _error(
        s.get(f"{graph_empty.base_url}/users/{boss['id']}/manager"), 404, "Request_ResourceNotFound"
    )
    assert "manager" in error["message"]


# --- organizational contacts -------------------------------------------------------------------------------


def test_org_contacts_list_and_get_validate_against_the_schema(graph: GraphEmulator) -> None:
    s = graph.session()
    body = s.get(graph.base_url + "/contacts").json()
    assert len(body["value"]) == len(graph.scenario["org_contact_ids"])  # type: ignore[index]
    for contact in body["value"]:
        validate(contact, "Identity.OrganizationContacts.yml", "microsoft.graph.orgContact")
    one = s.get(f"{graph.base_url}/contacts/{body['value'][0]['id']}")
    assert one.status_code == 200 and one.json()["displayName"] == body["value"][0]["displayName"]
    _error(
        s.get(f"{graph.base_url}/contacts/00000000-0000-4000-8000-000000000000"),
        404,
        "Request_ResourceNotFound",
    )


# --- groups ------------------------------------------------------------------------------------------------


def test_transitive_members_list_nested_groups_and_users_once(graph: GraphEmulator) -> None:
    scenario: dict[str, Any] = graph.scenario  # type: ignore[assignment]
    s = graph.session()
    url: str | None = f"{graph.base_url}/groups/{scenario['all_staff_group_id']}/transitiveMembers"
    members: list[dict[str, Any]] = []
    while url:
        body = s.get(url).json()
        members += body["value"]
        url = body.get("@odata.nextLink")
    ids = [m["id"] for m in members]
    assert len(ids) == len(set(ids))
    users = [m for m in members if m["@odata.type"] == "#microsoft.graph.user"]
    groups = {m["id"] for m in members if m["@odata.type"] == "#microsoft.graph.group"}
    assert groups == {scenario["drivers_group_id"], scenario["drivers_north_group_id"]}
    assert {u["id"] for u in users} == set(scenario["office_staff"]) | set(scenario["drivers"])
    for user in users[:10]:
        validate(user, "user-schema.yml", "microsoft.graph.user")
    assert graph.log.count(route="/groups/{group}/transitiveMembers") == 2  # 122 members, 100 a page


def test_direct_members_keep_the_nested_group_as_one_member(graph: GraphEmulator) -> None:
    scenario: dict[str, Any] = graph.scenario  # type: ignore[assignment]
    body = (
        graph.session()
        .get(f"{graph.base_url}/groups/{scenario['drivers_group_id']}/members", params={"$top": "999"})
        .json()
    )
    types = [m["@odata.type"] for m in body["value"]]
    assert types.count("#microsoft.graph.group") == 1 and types.count("#microsoft.graph.user") == 75
    group = graph.session().get(f"{graph.base_url}/groups/{scenario['drivers_group_id']}").json()
    assert group["displayName"] == "Drivers" and group["securityEnabled"] is True


# --- user photos -------------------------------------------------------------------------------------------


def test_photo_metadata_bytes_and_sizes(graph_empty: GraphEmulator) -> None:
    user = _add_users(graph_empty, 1)[0]
    jpeg = make_jpeg(360, 360, shade=100)
    graph_empty.tenant.directory.set_photo(user["id"], jpeg)
    s = graph_empty.session()
    base = f"{graph_empty.base_url}/users/{user['id']}"
    meta = s.get(base + "/photo").json()
    assert (meta["id"], meta["width"], meta["height"]) == ("360x360", 360, 360)
    assert meta["@odata.mediaContentType"] == "image/jpeg" and meta["@odata.mediaEtag"].startswith('"')
    value = s.get(base + "/photo/$value")
    assert value.status_code == 200 and value.content == jpeg
    assert value.headers["Content-Type"].startswith("image/jpeg")
    small = s.get(base + "/photos/48x48/$value")
    assert small.status_code == 200 and small.content == jpeg
    assert s.get(base + "/photos/240x240").json()["width"] == 240
    sizes = [p["id"] for p in s.get(base + "/photos").json()["value"]]
    assert sizes == ["48x48", "64x64", "96x96", "120x120", "240x240", "360x360"]
    _error(s.get(base + "/photos/648x648/$value"), 404, "ImageNotFound")  # larger than the upload
    _error(s.get(base + "/photos/100x100"), 404, "ImageNotFound")  # not a documented size


def test_no_photo_is_404_image_not_found(graph_empty: GraphEmulator) -> None:
    user = _add_users(graph_empty, 1)[0]
    s = graph_empty.session()
    _error(s.get(f"{graph_empty.base_url}/users/{user['id']}/photo"), 404, "ImageNotFound")
    _error(s.get(f"{graph_empty.base_url}/users/{user['id']}/photo/$value"), 404, "ImageNotFound")


def test_photo_etag_changes_only_when_the_photo_changes(graph_empty: GraphEmulator) -> None:
    user = _add_users(graph_empty, 1)[0]
    d = graph_empty.tenant.directory
    s = graph_empty.session()
    url = f"{graph_empty.base_url}/users/{user['id']}/photo"
    d.set_photo(user["id"], make_jpeg(240, 240, shade=10))
    first = s.get(url).json()["@odata.mediaEtag"]
    d.update_user(user["id"], jobTitle="Driver", mobilePhone="+44 7700 900555")
    d.set_photo(user["id"], make_jpeg(240, 240, shade=10))  # the same picture again
    assert s.get(url).json()["@odata.mediaEtag"] == first
    d.set_photo(user["id"], make_jpeg(240, 240, shade=11))
    assert s.get(url).json()["@odata.mediaEtag"] != first


# --- roles -------------------------------------------------------------------------------------------------


def test_each_route_needs_one_of_its_documented_roles(graph: GraphEmulator) -> None:
    scenario: dict[str, Any] = graph.scenario  # type: ignore[assignment]
    contacts_only = graph.register_app(roles={"OrgContact.Read.All"})
    photos_only = graph.register_app(roles={"ProfilePhoto.Read.All"})
    s = graph.session(contacts_only.client_id)
    assert s.get(graph.base_url + "/contacts").status_code == 200
    _error(s.get(graph.base_url + "/users"), 403, "Authorization_RequestDenied")
    _error(s.get(graph.base_url + "/users/delta"), 403, "Authorization_RequestDenied")
    _error(
        s.get(f"{graph.base_url}/groups/{scenario['drivers_group_id']}/members"),
        403,
        "Authorization_RequestDenied",
    )
    p = graph.session(photos_only.client_id)
    someone = scenario["office_staff"][0]
    assert p.get(f"{graph.base_url}/users/{someone}/photo").status_code in (200, 404)
    _error(p.get(f"{graph.base_url}/users/{someone}"), 403, "Authorization_RequestDenied")
