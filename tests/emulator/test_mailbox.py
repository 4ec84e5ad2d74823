"""Outlook contact folders, contacts, extended properties, delta, photos and userPurpose over real HTTPS.

Every test talks to a real emulator (`graph_empty`) through `requests` with a bearer token; responses are
validated against Microsoft's OpenAPI schemas (PersonalContacts.yml) where a schema exists.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from graph_emulator import GraphEmulator
from tests.emulator.schema import validate

TAG = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name GalsyncManaged"
OTHER = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SomethingElse"
CONTACTS = "PersonalContacts.yml"


def jpeg(width: int, height: int, padding: int = 0) -> bytes:
    """The smallest byte string our JPEG reader accepts: SOI, a baseline SOF0 frame header, EOI."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\x00" * padding + b"\xff\xd9"


@dataclass
class Box:
    """One user's mailbox reached over HTTPS."""

    g: GraphEmulator
    http: requests.Session
    user: dict[str, Any]

    @property
    def url(self) -> str:
        return f"{self.g.base_url}/users/{self.user['id']}"

    def folder(self, name: str = "galsync", **extra: Any) -> dict[str, Any]:
        r = self.http.post(f"{self.url}/contactFolders", json={"displayName": name, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def create(self, folder_id: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"{self.url}/contactFolders/{folder_id}/contacts", json=body)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture
def box(graph_empty: GraphEmulator) -> Iterator[Box]:
    user = graph_empty.tenant.directory.add_user(displayName="Driver One", mailNickname="driver1")
    with graph_empty.session() as http:
        yield Box(graph_empty, http, user)


def error_code(r: requests.Response) -> str:
    body = r.json()
    assert set(body["error"]["innerError"]) >= {"date", "request-id"}
    return str(body["error"]["code"])


# --- contact folders ------------------------------------------------------------------------------


def test_folder_is_created_under_the_default_contacts_folder_and_listed(box: Box) -> None:
    folder = box.folder("galsync")
    validate(folder, CONTACTS, "microsoft.graph.contactFolder")
    default = box.g.tenant.mailboxes.default_folder(box.user["id"])
    assert folder["parentFolderId"] == default["id"]
    # The default folder is a real folder: its contacts endpoint works by id.
    assert box.http.get(f"{box.url}/contactFolders/{default['id']}/contacts").status_code == 200

    listed = box.http.get(f"{box.url}/contactFolders").json()
    validate(listed, CONTACTS, "microsoft.graph.contactFolderCollectionResponse")
    assert [f["id"] for f in listed["value"]] == [folder["id"]]


def test_same_named_sibling_folder_is_a_conflict(box: Box) -> None:
    box.folder("galsync")
    r = box.http.post(f"{box.url}/contactFolders", json={"displayName": "GALSYNC"})
    assert r.status_code == 409
    assert error_code(r) == "ErrorFolderExists"
    assert len(box.g.tenant.mailboxes.folders(box.user["id"])) == 1


def test_folder_filter_by_display_name_and_refusal_of_other_filters(box: Box) -> None:
    box.folder("galsync")
    box.folder("Family")
    r = box.http.get(f"{box.url}/contactFolders", params={"$filter": "displayName eq 'galsync'"})
    assert [f["displayName"] for f in r.json()["value"]] == ["galsync"]
    r = box.http.get(f"{box.url}/contactFolders", params={"$filter": "startswith(displayName,'g')"})
    assert r.status_code == 400


def test_child_folders_and_their_contacts(box: Box) -> None:
    parent = box.folder("galsync")
    r = box.http.post(f"{box.url}/contactFolders/{parent['id']}/childFolders", json={"displayName": "Depot"})
    assert r.status_code == 201
    child = r.json()
    assert child["parentFolderId"] == parent["id"]
    base = f"{box.url}/contactFolders/{parent['id']}/childFolders/{child['id']}/contacts"
    assert box.http.post(base, json={"displayName": "Depot desk"}).status_code == 201
    assert [c["displayName"] for c in box.http.get(base).json()["value"]] == ["Depot desk"]
    kids = box.http.get(f"{box.url}/contactFolders/{parent['id']}/childFolders").json()["value"]
    assert [k["id"] for k in kids] == [child["id"]]


def test_folder_extended_property_is_read_back_with_expand(box: Box) -> None:
    folder = box.folder("galsync", singleValueExtendedProperties=[{"id": TAG, "value": "profile-1"}])
    assert "singleValueExtendedProperties" not in folder
    expand = f"singleValueExtendedProperties($filter=id eq '{TAG}')"
    r = box.http.get(f"{box.url}/contactFolders/{folder['id']}", params={"$expand": expand})
    assert r.json()["singleValueExtendedProperties"] == [{"id": TAG, "value": "profile-1"}]
    listed = box.http.get(f"{box.url}/contactFolders", params={"$expand": expand}).json()["value"]
    assert listed[0]["singleValueExtendedProperties"][0]["value"] == "profile-1"


def test_deleting_a_folder_removes_its_contacts(box: Box) -> None:
    folder = box.folder()
    box.create(folder["id"], {"displayName": "A"})
    assert box.http.delete(f"{box.url}/contactFolders/{folder['id']}").status_code == 204
    r = box.http.get(f"{box.url}/contactFolders/{folder['id']}")
    assert r.status_code == 404 and error_code(r) == "ErrorItemNotFound"
    default = box.g.tenant.mailboxes.default_folder(box.user["id"])["id"]
    r = box.http.delete(f"{box.url}/contactFolders/{default}")
    assert r.status_code == 403 and error_code(r) == "ErrorDeleteDistinguishedFolder"


# --- contacts -------------------------------------------------------------------------------------


def test_contact_create_get_patch_delete_with_a_new_change_key_each_time(box: Box) -> None:
    folder = box.folder()
    body = {
        "givenName": "Ann",
        "surname": "O'Brien",
        "displayName": "Ann O'Brien",
        "mobilePhone": "+33 6 12 34 56 78",
        "businessPhones": ["+33 1 23 45 67 89"],
        "emailAddresses": [{"name": "Ann", "address": "ann@example.com"}],
        "businessAddress": {"city": "Lyon", "countryOrRegion": "France"},
        "birthday": "1980-04-01T00:00:00Z",
    }
    created = box.create(folder["id"], body)
    validate(created, CONTACTS, "microsoft.graph.contact")
    assert created["parentFolderId"] == folder["id"]
    assert {k: created[k] for k in body} == body
    assert created["@odata.etag"] == f'W/"{created["changeKey"]}"'
    url = f"{box.url}/contactFolders/{folder['id']}/contacts/{created['id']}"

    got = box.http.get(url).json()
    assert got["changeKey"] == created["changeKey"] and got["mobilePhone"] == body["mobilePhone"]

    keys = {created["changeKey"]}
    for _ in range(2):  # the same value twice: every PATCH is a change with a new changeKey
        r = box.http.patch(url, json={"displayName": "Ann O'Brien", "jobTitle": "Driver"})
        assert r.status_code == 200
        patched = r.json()
        validate(patched, CONTACTS, "microsoft.graph.contact")
        keys.add(patched["changeKey"])
        assert patched["jobTitle"] == "Driver"
        assert patched["mobilePhone"] == body["mobilePhone"]  # untouched properties stay
        assert patched["lastModifiedDateTime"] >= created["lastModifiedDateTime"]
    assert len(keys) == 3

    assert box.http.delete(url).status_code == 204
    r = box.http.get(url)
    assert r.status_code == 404 and error_code(r) == "ErrorItemNotFound"
    route = "/users/{user}/contactFolders/{folder}/contacts/{contact}"
    assert box.g.log.count(method="PATCH", route=route) == 2
    assert box.g.log.count(method="DELETE", route=route, status=204) == 1


def test_display_name_is_regenerated_unless_it_is_resent(box: Box) -> None:
    folder = box.folder()
    created = box.create(folder["id"], {"givenName": "Ann", "surname": "Lee", "displayName": "Annie (depot)"})
    url = f"{box.url}/contacts/{created['id']}"
    assert box.http.patch(url, json={"surname": "Smith"}).json()["displayName"] == "Ann Smith"
    kept = box.http.patch(url, json={"surname": "Brown", "displayName": "Annie (depot)"}).json()
    assert kept["displayName"] == "Annie (depot)"


def test_unknown_folder_contact_property_and_wrong_types_are_refused(box: Box) -> None:
    folder = box.folder()
    r = box.http.post(f"{box.url}/contactFolders/AAMkNoSuchFolder=/contacts", json={"displayName": "X"})
    assert r.status_code == 404 and error_code(r) == "ErrorItemNotFound"
    r = box.http.get(f"{box.url}/contactFolders/{folder['id']}/contacts/AAMkNoSuchContact=")
    assert r.status_code == 404 and error_code(r) == "ErrorItemNotFound"
    base = f"{box.url}/contactFolders/{folder['id']}/contacts"
    for bad in (
        {"displayName": "X", "favouriteColour": "red"},
        {"displayName": 5},
        {"businessPhones": "+1 555"},
        {"emailAddresses": [{"address": "a@b.c", "kind": "work"}]},
        {"birthday": "not a date"},
        {"id": "AAMkMine="},
    ):
        r = box.http.post(base, json=bad)
        assert r.status_code == 400, bad
    assert box.g.tenant.mailboxes.contacts(box.user["id"], folder["id"]) == []


def test_extended_property_is_hidden_unless_expanded(box: Box) -> None:
    folder = box.folder()
    created = box.create(
        folder["id"], {"displayName": "Ann", "singleValueExtendedProperties": [{"id": TAG, "value": "p1:u1"}]}
    )
    assert "singleValueExtendedProperties" not in created  # the response does not echo it
    url = f"{box.url}/contactFolders/{folder['id']}/contacts/{created['id']}"
    assert "singleValueExtendedProperties" not in box.http.get(url).json()

    expand = f"singleValueExtendedProperties($filter=id eq '{TAG}')"
    got = box.http.get(url, params={"$expand": expand}).json()
    validate(got, CONTACTS, "microsoft.graph.contact")
    assert got["singleValueExtendedProperties"] == [{"id": TAG, "value": "p1:u1"}]
    # The GUID and type compare case-insensitively; the name does not.
    upper = TAG.replace("66f5a359-4659-4830-9070-00047ec6ac6e", "66F5A359-4659-4830-9070-00047EC6AC6E")
    got = box.http.get(
        url, params={"$expand": f"singleValueExtendedProperties($filter=id eq '{upper}')"}
    ).json()
    assert got["singleValueExtendedProperties"][0]["value"] == "p1:u1"
    other = box.http.get(url, params={"$expand": f"singleValueExtendedProperties($filter=id eq '{OTHER}')"})
    assert "singleValueExtendedProperties" not in other.json()

    # PATCH sets it too, and leaves the rest of the contact alone.
    box.http.patch(url, json={"singleValueExtendedProperties": [{"id": TAG, "value": "p1:u2"}]})
    assert box.http.get(url, params={"$expand": expand}).json()["singleValueExtendedProperties"][0][
        "value"
    ] == ("p1:u2")
    # The test view of the store shows the tag on the contact.
    stored = box.g.tenant.mailboxes.contacts(box.user["id"], folder["id"])
    assert stored[0]["singleValueExtendedProperties"] == [{"id": TAG, "value": "p1:u2"}]


@pytest.mark.parametrize(
    "prop_id",
    [
        "String Name X",
        "String {not-a-guid} Name X",
        "Text {66f5a359-4659-4830-9070-00047ec6ac6e} Name X",
        "String {66f5a359-4659-4830-9070-00047ec6ac6e} Label X",
        "String 0xZZ",
    ],
)
def test_malformed_extended_property_id_is_refused(box: Box, prop_id: str) -> None:
    folder = box.folder()
    r = box.http.post(
        f"{box.url}/contactFolders/{folder['id']}/contacts",
        json={"displayName": "Ann", "singleValueExtendedProperties": [{"id": prop_id, "value": "x"}]},
    )
    assert r.status_code == 400 and error_code(r) == "ErrorInvalidProperty"


def test_well_formed_extended_property_ids_in_every_documented_format(box: Box) -> None:
    folder = box.folder()
    ids = [TAG, "Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 0x8012", "String 0x4001001E"]
    body = {"displayName": "Ann", "singleValueExtendedProperties": [{"id": i, "value": "7"} for i in ids]}
    assert box.http.post(f"{box.url}/contactFolders/{folder['id']}/contacts", json=body).status_code == 201


def test_list_pages_with_top_and_select(box: Box) -> None:
    folder = box.folder()
    for i in range(25):
        box.create(folder["id"], {"displayName": f"Contact {i:02d}", "mobilePhone": f"+1 555 01{i:02d}"})
    url: str | None = f"{box.url}/contactFolders/{folder['id']}/contacts?$top=10&$select=displayName"
    names: list[str] = []
    pages = 0
    while url:
        page = box.http.get(url).json()
        validate(page, CONTACTS, "microsoft.graph.contactCollectionResponse")
        pages += 1
        for item in page["value"]:
            assert set(item) == {"@odata.etag", "id", "displayName"}
            names.append(item["displayName"])
        url = page.get("@odata.nextLink")
    assert pages == 3
    assert names == [f"Contact {i:02d}" for i in range(25)]
    # The default page size is 10, as for Outlook collections.
    assert len(box.http.get(f"{box.url}/contactFolders/{folder['id']}/contacts").json()["value"]) == 10
    r = box.http.get(
        f"{box.url}/contactFolders/{folder['id']}/contacts", params={"$select": "favouriteColour"}
    )
    assert r.status_code == 400


def test_contact_filters_follow_the_docs(box: Box) -> None:
    folder = box.folder()
    box.create(
        folder["id"],
        {
            "displayName": "Ann",
            "emailAddresses": [{"address": "ann@example.com"}],
            "singleValueExtendedProperties": [{"id": TAG, "value": "x"}],
        },
    )
    box.create(
        folder["id"],
        {
            "displayName": "Bob",
            "singleValueExtendedProperties": [
                {"id": "Integer {66f5a359-4659-4830-9070-00047ec6ac6e} Name Rank", "value": "12"}
            ],
        },
    )
    base = f"{box.url}/contactFolders/{folder['id']}/contacts"
    by_mail = box.http.get(base, params={"$filter": "emailAddresses/any(a:a/address eq 'ANN@example.com')"})
    assert [c["displayName"] for c in by_mail.json()["value"]] == ["Ann"]
    numeric = (
        "singleValueExtendedProperties/any(ep: ep/id eq 'Integer {66f5a359-4659-4830-9070-00047ec6ac6e} "
        "Name Rank' and cast(ep/value, Edm.Int32) ge 10)"
    )
    assert [c["displayName"] for c in box.http.get(base, params={"$filter": numeric}).json()["value"]] == [
        "Bob"
    ]
    # String-valued extended property filters are documented for messages and events only.
    string_eq = f"singleValueExtendedProperties/any(ep: ep/id eq '{TAG}' and ep/value eq 'x')"
    r = box.http.get(base, params={"$filter": string_eq})
    assert r.status_code == 400 and error_code(r) == "ErrorInvalidUrlQueryFilter"
    assert box.http.get(base, params={"$filter": "displayName eq 'Ann'"}).status_code == 400


def test_default_folder_contacts_and_immutable_id_preference(box: Box) -> None:
    r = box.http.post(
        f"{box.url}/contacts", json={"displayName": "Maman"}, headers={"Prefer": 'IdType="ImmutableId"'}
    )
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == 'IdType="ImmutableId"'
    default = box.g.tenant.mailboxes.default_folder(box.user["id"])
    assert r.json()["parentFolderId"] == default["id"]
    assert [c["displayName"] for c in box.http.get(f"{box.url}/contacts").json()["value"]] == ["Maman"]


def test_default_folder_is_addressed_as_v1_documents_it(box: Box) -> None:
    """Writes through /users/{id}/contacts; delta only with the folder's real id (the parentFolderId of its
    contacts); a well-known name or /contacts/delta is refused, as v1.0 documents neither."""
    own = box.http.post(f"{box.url}/contacts", json={"displayName": "Maman"}).json()
    ours = box.http.post(f"{box.url}/contacts", json={
        "displayName": "Ann Driver", "singleValueExtendedProperties": [{"id": TAG, "value": "v1;P;user:1"}]}).json()
    assert box.http.patch(f"{box.url}/contacts/{ours['id']}", json={"displayName": "Ann D."}).status_code == 200
    expand = {"$expand": f"singleValueExtendedProperties($filter=id eq '{TAG}')"}
    read = box.http.get(f"{box.url}/contacts/{ours['id']}", params=expand).json()
    assert read["singleValueExtendedProperties"] == [{"id": TAG, "value": "v1;P;user:1"}]
    default_id = own["parentFolderId"]
    r = box.http.get(f"{box.url}/contactFolders/{default_id}/contacts/delta")
    assert r.status_code == 200
    assert sorted(c["displayName"] for c in r.json()["value"]) == ["Ann D.", "Maman"]
    for path in ("contacts/delta", "contactFolders/contacts", "contactFolders/contacts/contacts/delta"):
        r = box.http.get(f"{box.url}/{path}")
        assert r.status_code == 400, path
    assert box.http.delete(f"{box.url}/contacts/{ours['id']}").status_code == 204
    assert [c["displayName"] for c in box.http.get(f"{box.url}/contacts").json()["value"]] == ["Maman"]


def test_batch_of_contact_writes_creates_each_contact(box: Box) -> None:
    folder = box.folder()
    path = f"/users/{box.user['id']}/contactFolders/{folder['id']}/contacts"
    requests_ = [
        {
            "id": str(i),
            "method": "POST",
            "url": path,
            "headers": {"Content-Type": "application/json"},
            "body": {"displayName": f"Driver {i}"},
        }
        for i in range(3)
    ]
    r = box.http.post(f"{box.g.base_url}/$batch", json={"requests": requests_})
    assert r.status_code == 200
    assert sorted(resp["status"] for resp in r.json()["responses"]) == [201, 201, 201]
    stored = box.g.tenant.mailboxes.contacts(box.user["id"], folder["id"])
    assert sorted(c["displayName"] for c in stored) == ["Driver 0", "Driver 1", "Driver 2"]


# --- a person on a phone --------------------------------------------------------------------------


def test_phone_actions_have_the_effects_of_graph_calls(box: Box) -> None:
    boxes, uid = box.g.tenant.mailboxes, box.user["userPrincipalName"]
    maman = boxes.phone_create_contact(uid, {"displayName": "Maman", "mobilePhone": "+33 6 00 00 00 01"})
    seen = box.http.get(f"{box.url}/contacts").json()["value"]
    assert [(c["id"], c["displayName"]) for c in seen] == [(maman["id"], "Maman")]
    edited = boxes.phone_update_contact(uid, maman["id"], {"mobilePhone": "+33 6 00 00 00 02"})
    assert edited["changeKey"] != maman["changeKey"]
    boxes.phone_delete_contact(uid, maman["id"])
    assert box.http.get(f"{box.url}/contacts/{maman['id']}").status_code == 404


# --- delta ----------------------------------------------------------------------------------------


def walk(box: Box, url: str, page_size: int | None = None) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, requests made)."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    items: list[dict[str, Any]] = []
    calls = 0
    while True:
        r = box.http.get(url, headers=headers)
        assert r.status_code == 200, r.text
        calls += 1
        page = r.json()
        items.extend(page["value"])
        if "@odata.deltaLink" in page:
            return items, page["@odata.deltaLink"], calls
        url = page["@odata.nextLink"]


def test_delta_first_round_then_only_changes_and_deletes(box: Box) -> None:
    folder = box.folder()
    made = [box.create(folder["id"], {"displayName": f"C{i}"}) for i in range(5)]
    start = f"{box.url}/contactFolders/{folder['id']}/contacts/delta?$select=displayName,mobilePhone"
    items, delta_link, calls = walk(box, start, page_size=2)
    assert calls == 3  # 5 contacts, 2 per page
    assert sorted(i["id"] for i in items) == sorted(c["id"] for c in made)
    for item in items:
        validate(item, CONTACTS, "microsoft.graph.contact")
        assert set(item) == {"@odata.type", "@odata.etag", "id", "displayName", "mobilePhone"}

    items, delta_link, calls = walk(box, delta_link)
    assert (items, calls) == ([], 1)

    url = f"{box.url}/contactFolders/{folder['id']}/contacts"
    box.http.patch(f"{url}/{made[0]['id']}", json={"displayName": "C0", "mobilePhone": "+1"})
    box.http.delete(f"{url}/{made[1]['id']}")
    added = box.create(folder["id"], {"displayName": "C5"})
    items, delta_link, _ = walk(box, delta_link)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {made[0]["id"], made[1]["id"], added["id"]}
    assert by_id[made[0]["id"]]["mobilePhone"] == "+1"
    assert by_id[made[1]["id"]]["@removed"] == {"reason": "deleted"}
    assert set(by_id[added["id"]]) == {"@odata.type", "@odata.etag", "id", "displayName", "mobilePhone"}
    # Changes in another folder never show up here.
    other = box.folder("Family")
    box.create(other["id"], {"displayName": "Elsewhere"})
    assert walk(box, delta_link)[0] == []


def test_delta_refuses_expand_and_expired_or_forged_tokens(box: Box) -> None:
    folder = box.folder()
    box.create(folder["id"], {"displayName": "A"})
    base = f"{box.url}/contactFolders/{folder['id']}/contacts/delta"
    r = box.http.get(base, params={"$expand": f"singleValueExtendedProperties($filter=id eq '{TAG}')"})
    assert r.status_code == 400
    _, delta_link, _ = walk(box, base)

    forged = delta_link[:-4] + ("AAAA" if not delta_link.endswith("AAAA") else "BBBB")
    r = box.http.get(forged)
    assert r.status_code == 400 and error_code(r) == "ErrorInvalidSyncStateData"

    box.g.tenant.expire_delta_tokens()
    r = box.http.get(delta_link)
    assert r.status_code == 410 and error_code(r) == "syncStateNotFound"
    # A fresh round works again.
    assert len(walk(box, base)[0]) == 1


def test_delta_replays_unchanged_items_when_the_tenant_asks(box: Box) -> None:
    folder = box.folder()
    made = [box.create(folder["id"], {"displayName": f"C{i}"}) for i in range(4)]
    _, delta_link, _ = walk(box, f"{box.url}/contactFolders/{folder['id']}/contacts/delta")
    box.g.tenant.delta_replay_rate = 1.0
    items, _, _ = walk(box, delta_link)
    assert sorted(i["id"] for i in items) == sorted(c["id"] for c in made)  # nothing changed, all replayed


# --- photos ---------------------------------------------------------------------------------------


def test_contact_photo_upload_read_and_limits(box: Box) -> None:
    folder = box.folder()
    contact = box.create(folder["id"], {"displayName": "Ann"})
    url = f"{box.url}/contactFolders/{folder['id']}/contacts/{contact['id']}"
    r = box.http.get(f"{url}/photo")
    assert r.status_code == 404 and error_code(r) == "ErrorItemNotFound"

    picture = jpeg(240, 240, padding=100)
    r = box.http.put(f"{url}/photo/$value", data=picture, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200
    meta = box.http.get(f"{url}/photo").json()
    validate(meta, CONTACTS, "microsoft.graph.profilePhoto")
    assert (meta["width"], meta["height"]) == (240, 240)
    got = box.http.get(f"{url}/photo/$value")
    assert got.content == picture and got.headers["Content-Type"] == "image/jpeg"
    assert box.http.get(url).json()["changeKey"] != contact["changeKey"]  # the contact changed
    assert box.g.tenant.mailboxes.uploaded_bytes(box.user["id"]) == len(picture)

    r = box.http.put(
        f"{url}/photo/$value",
        data=jpeg(64, 64, padding=4 * 1024 * 1024),
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 413
    r = box.http.put(f"{url}/photo/$value", data=b"GIF89a", headers={"Content-Type": "image/gif"})
    assert r.status_code == 415
    assert box.http.delete(f"{url}/photo/$value").status_code == 405  # contact photos cannot be deleted


# --- mailbox type and mailbox-less users ----------------------------------------------------------


def test_user_purpose_and_users_without_a_mailbox(box: Box) -> None:
    directory = box.g.tenant.directory
    shared = directory.add_user(displayName="Trucks North", mailNickname="trucks.north", shared_mailbox=True)
    nobody = directory.add_user(
        displayName="No Mailbox", mailNickname="nomail", assignedLicenses=[], mail=None
    )
    base = box.g.base_url
    r = box.http.get(f"{box.url}/mailboxSettings/userPurpose")
    assert r.json()["value"] == "user"
    assert r.json()["@odata.context"].endswith("/mailboxSettings/userPurpose")
    assert (
        box.http.get(f"{base}/users/{shared['userPrincipalName']}/mailboxSettings/userPurpose").json()[
            "value"
        ]
        == "shared"
    )
    for path in ("mailboxSettings/userPurpose", "contactFolders", "contacts"):
        r = box.http.get(f"{base}/users/{nobody['id']}/{path}")
        assert r.status_code == 404 and error_code(r) == "MailboxNotEnabledForRESTAPI"
    r = box.http.get(f"{base}/users/nobody@contoso.example/contactFolders")
    assert r.status_code == 404
