"""Mapping: directory objects become valid Graph contact payloads, normalised so equal data maps equal."""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.core.fields import FieldPolicy
from sync_core.core.fingerprint import fingerprint
from sync_core.core.mapping import (
    ManagerRef,
    folder_contact_select,
    manager_ref,
    map_folder_contact,
    map_org_contact,
    map_user,
    normalise_contact,
    org_contact_select,
    user_select,
)
from sync_core.core.profile import Profile, UserFilter, field_policies
from tests.emulator.schema import OPENAPI_DIR, validate

PROFILE = Profile(name="Company directory")
NEVER: FieldPolicy = "never"

USER: dict[str, Any] = {
    "id": "0b7a6c4e-1111-4c2b-9a55-3c3f3a9d2b10",
    "displayName": "Zoë O'Brien",
    "givenName": "Zoë",
    "surname": "O'Brien",
    "mail": "zoe.obrien@northwind.example",
    "businessPhones": ["+33 4 72 00 00 01"],
    "mobilePhone": "+33 6 12 34 56 78",
    "companyName": "Northwind Logistics",
    "department": "Transport",
    "jobTitle": "Driver",
    "officeLocation": "Lyon depot",
    "streetAddress": "1 rue du Dépôt",
    "city": "Lyon",
    "state": None,
    "postalCode": "69007",
    "country": "France",
    "accountEnabled": True,
    "userType": "Member",
    "assignedLicenses": [{"skuId": "x"}],
    "preferredLanguage": "fr-FR",
}


def contact_properties() -> set[str]:
    doc = yaml.safe_load((OPENAPI_DIR / "PersonalContacts.yml").read_text(encoding="utf-8"))
    schema = doc["components"]["schemas"]["microsoft.graph.contact"]
    return {name for part in schema["allOf"] for name in part.get("properties", {})}


def test_user_maps_to_a_schema_valid_contact() -> None:
    payload = map_user(USER, "Ana Costa", PROFILE)
    assert payload == {
        "givenName": "Zoë",
        "surname": "O'Brien",
        "displayName": "Zoë O'Brien",
        "emailAddresses": [{"name": "Zoë O'Brien", "address": "zoe.obrien@northwind.example"}],
        "businessPhones": ["+33 4 72 00 00 01"],
        "mobilePhone": "+33 6 12 34 56 78",
        "companyName": "Northwind Logistics",
        "department": "Transport",
        "jobTitle": "Driver",
        "officeLocation": "Lyon depot",
        "businessAddress": {"street": "1 rue du Dépôt", "city": "Lyon", "postalCode": "69007",
                            "countryOrRegion": "France"},
        "manager": "Ana Costa",
    }
    validate(payload, "PersonalContacts.yml", "microsoft.graph.contact")
    assert set(payload) <= contact_properties()


def test_never_fields_are_left_out() -> None:
    profile = dataclasses.replace(
        PROFILE, fields=field_policies(manager="never", businessAddress="never", mobilePhone="if_empty"))
    payload = map_user(USER, "Ana Costa", profile)
    assert "manager" not in payload and "businessAddress" not in payload
    assert payload["mobilePhone"] == "+33 6 12 34 56 78"


def test_whitespace_empties_and_unicode_forms_normalise_to_the_same_payload() -> None:
    messy = dict(USER)
    messy.update({
        "displayName": "  " + unicodedata.normalize("NFD", "Zoë O'Brien") + " ",
        "givenName": unicodedata.normalize("NFD", "Zoë"),
        "businessPhones": ["+33 4 72 00 00 01", " +33 4 72 00 00 01 ", ""],
        "state": "   ",
        "jobTitle": "Driver\n",
    })
    assert map_user(messy, " Ana Costa ", PROFILE) == map_user(USER, "Ana Costa", PROFILE)


def test_changes_outside_the_mapping_keep_the_fingerprint() -> None:
    before = fingerprint(map_user(USER, "Ana Costa", PROFILE))
    changed = dict(USER, preferredLanguage="en-GB", assignedLicenses=[{"skuId": "y"}], state="")
    assert fingerprint(map_user(changed, "Ana Costa", PROFILE)) == before
    no_manager = dataclasses.replace(PROFILE, fields=field_policies(manager="never"))
    assert fingerprint(map_user(USER, "Ana", no_manager)) == fingerprint(map_user(USER, "Bo", no_manager))
    assert fingerprint(map_user(dict(USER, jobTitle="Dispatcher"), "Ana Costa", PROFILE)) != before


def test_missing_display_name_falls_back_to_names_then_email() -> None:
    assert map_user({"givenName": "Ana", "surname": "Costa"}, None, PROFILE)["displayName"] == "Ana Costa"
    assert map_user({"mail": "ops@nw.example"}, None, PROFILE)["displayName"] == "ops@nw.example"
    assert "displayName" not in map_user({"mobilePhone": "+1"}, None, PROFILE)


def test_org_contact_maps_phones_by_type_and_first_address() -> None:
    org = {
        "id": "c1", "displayName": "Acme Tyres", "mail": "orders@acme.example", "companyName": "Acme",
        "phones": [
            {"type": "business", "number": "+44 20 7946 0000"},
            {"type": "mobile", "number": ""},
            {"type": "mobile", "number": "+44 7700 900000"},
            {"type": "businessFax", "number": "+44 20 7946 0001"},
            {"type": "business", "number": "+44 20 7946 0002"},
        ],
        "addresses": [
            {"street": "2 Dock Rd", "city": "London", "postalCode": "E1", "countryOrRegion": "UK",
             "officeLocation": "Unit 4"},
            {"city": "Leeds"},
        ],
    }
    payload = map_org_contact(org, PROFILE)
    assert payload["businessPhones"] == ["+44 20 7946 0000", "+44 20 7946 0002"]
    assert payload["mobilePhone"] == "+44 7700 900000"
    assert payload["officeLocation"] == "Unit 4"
    assert payload["businessAddress"] == {"street": "2 Dock Rd", "city": "London", "postalCode": "E1",
                                          "countryOrRegion": "UK"}
    assert payload["emailAddresses"] == [{"name": "Acme Tyres", "address": "orders@acme.example"}]
    validate(payload, "PersonalContacts.yml", "microsoft.graph.contact")


def test_folder_contact_keeps_owned_fields_and_drops_ids_and_metadata() -> None:
    contact = {
        "@odata.etag": 'W/"x"', "id": "AAMkAG=", "changeKey": "EQAAAB", "parentFolderId": "AAMkF=",
        "createdDateTime": "2024-01-01T00:00:00Z", "lastModifiedDateTime": "2024-01-02T00:00:00Z",
        "categories": ["VIP"], "personalNotes": "door code 1234", "homePhones": ["+1 555"],
        "displayName": "Depot Lyon", "businessPhones": ["+33 4 72 00 00 00"],
        "emailAddresses": [{"name": "", "address": "lyon@northwind.example"},
                           {"name": "dup", "address": "LYON@northwind.example"}],
        "businessAddress": {"street": "", "city": "Lyon", "state": None},
        "singleValueExtendedProperties": [{"id": "String {x} Name y", "value": "z"}],
    }
    assert map_folder_contact(contact, PROFILE) == {
        "displayName": "Depot Lyon",
        "businessPhones": ["+33 4 72 00 00 00"],
        "emailAddresses": [{"name": "lyon@northwind.example", "address": "lyon@northwind.example"}],
        "businessAddress": {"city": "Lyon"},
    }


def test_contact_read_back_normalises_to_the_payload_written() -> None:
    payload = map_user(USER, "Ana Costa", PROFILE)
    as_graph_returns_it = dict(
        payload, id="AAMk=", changeKey="x", homePhones=[], nickName=None, middleName="",
        businessAddress=dict(payload["businessAddress"], state=""),
    )
    assert normalise_contact(as_graph_returns_it) == payload


def test_select_lists_hold_only_what_mapping_and_filters_need() -> None:
    select = user_select(PROFILE)
    assert select[:2] == ("id", "displayName")
    for prop in ("accountEnabled", "userType", "assignedLicenses", "showInAddressList", "mail", "manager",
                 "streetAddress", "country", "mobilePhone"):
        assert prop in select
    assert len(select) == len(set(select))
    lean = dataclasses.replace(
        PROFILE,
        users=UserFilter(enabled_only=False, members_only=False, licensed_only=False,
                         in_address_list_only=False, require_phone_or_email=False),
        fields=field_policies(**{f: NEVER for f in ("givenName", "surname", "emailAddresses",
                                                      "businessPhones", "mobilePhone", "companyName",
                                                      "department", "officeLocation", "businessAddress",
                                                      "manager")}),
    )
    assert user_select(lean) == ("id", "displayName", "jobTitle")
    assert "manager" not in org_contact_select(PROFILE)
    assert {"phones", "addresses", "mail"} <= set(org_contact_select(PROFILE))
    assert folder_contact_select(lean) == ("id", "displayName", "jobTitle")


def test_manager_ref_reads_delta_and_expand_shapes() -> None:
    assert manager_ref({"id": "u"}) == ManagerRef(False)
    assert manager_ref({"manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1"}]}) == \
        ManagerRef(True, "m1")
    assert manager_ref({"manager@delta": [{"id": "m1", "@removed": {"reason": "deleted"}}]}) == \
        ManagerRef(True, None)
    assert manager_ref({"manager": {"id": "m2", "displayName": "Ana"}}) == ManagerRef(True, "m2")
    assert manager_ref({"manager": None}) == ManagerRef(True, None)


text_or_blank = st.one_of(st.none(), st.text(alphabet=" \tabcé\u0301", max_size=6))


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(st.fixed_dictionaries({
    "displayName": text_or_blank, "givenName": text_or_blank, "mail": text_or_blank,
    "businessPhones": st.lists(text_or_blank.filter(lambda v: v is not None), max_size=3),
    "city": text_or_blank, "jobTitle": text_or_blank,
}))
def test_mapping_is_idempotent_through_a_folder_round_trip(user: dict[str, Any]) -> None:
    payload = map_user(user, None, PROFILE)
    assert map_folder_contact(payload, PROFILE) == payload
    assert all(value not in (None, "", [], {}) for value in payload.values())
