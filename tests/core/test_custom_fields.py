"""Field mapping, static values, templates, notes galsync shares with their owner, and the overwrite policy."""

from __future__ import annotations

import pytest

from sync_core.core.actions import Create, Record, Update
from sync_core.core.drift import ObservedContact, restore
from sync_core.core.fingerprint import fingerprint
from sync_core.core.mapping import user_select
from sync_core.core.notes import MARK, merged_notes, our_part
from sync_core.core.plan import plan_target
from sync_core.core.profile import ConfigError, parse_config
from sync_core.core.records import SourceRecord, TargetRecord
from sync_core.core.sources import DesiredContact, Mapped, read_org_contact, read_user

CONFIG = """
[[profile]]
name = "Company"
[[profile.source]]
type = "users"
[[profile.source]]
type = "org_contacts"
static = { companyName = "Supplier" }
[profile.targets]
groups = ["All Staff"]
[profile.map]
officeLocation = "extensionAttribute5"
nickName = "employeeId"
[profile.static]
companyName = "Northwind"
[profile.templates]
displayName = "{surname}, {givenName}"
fileAs = "{surname} {givenName}"
personalNotes = "Employee ID: {employeeId}"
"""
USER = {"id": "u1", "displayName": "Ana Costa", "givenName": "Ana", "surname": "Costa", "mail": "ana@contoso.example",
        "assignedLicenses": [{"skuId": "x"}], "officeLocation": "Lyon", "employeeId": "E-042",
        "companyName": "Contoso", "onPremisesExtensionAttributes": {"extensionAttribute5": "Depot 5"}}


def test_map_static_and_templates_shape_each_contact() -> None:
    profile = parse_config(CONFIG).profile("Company")
    user = read_user(USER, profile)
    assert isinstance(user, Mapped)
    assert {k: user.payload.get(k) for k in ("displayName", "fileAs", "nickName", "officeLocation", "companyName",
                                             "personalNotes")} == {
        "displayName": "Costa, Ana", "fileAs": "Costa Ana", "nickName": "E-042", "officeLocation": "Depot 5",
        "companyName": "Northwind", "personalNotes": "Employee ID: E-042"}
    org = read_org_contact({"id": "o1", "displayName": "Acme", "givenName": "Bo", "mail": "bo@acme.example"}, profile)
    assert isinstance(org, Mapped)
    assert org.payload["companyName"] == "Supplier"  # the source's static value over the profile's
    assert org.payload["displayName"] == "Bo"  # no surname: its separator goes with it
    assert "personalNotes" not in org.payload  # every placeholder empty: no note
    assert {"employeeId", "onPremisesExtensionAttributes"} <= set(user_select(profile))
    plain = parse_config(CONFIG.split("[profile.map]")[0]).profile("Company")
    assert "employeeId" not in user_select(plain) and "fileAs" not in plain.mapped_fields


@pytest.mark.parametrize(("snippet", "expected"), [
    ('[profile.map]\nofficeLocation = "extensionAtribute5"\n', 'did you mean "extensionAttribute5"?'),
    ('[profile.map]\noffice = "department"\n', 'map.office: unknown key'),
    ('[profile.templates]\nfileAs = "{surnme}, {givenName}"\n', 'unknown placeholder {surnme}'),
    ('[profile.templates]\nfileAs = "{surname"\n', "templates.fileAs: not a template"),
    ('[profile.templates]\nfileAs = "Staff"\n', "templates.fileAs: names no field"),
    ('[profile.templates]\njobTitle = "{department}"\n', "templates.jobTitle: unknown key"),
    ('[profile.static]\ncompanyName = ""\n', "static.companyName: expected a non-empty string"),
    ('[profile.fields]\nmobilePhone = "overwrites"\n', 'expected "always", "overwrite", "if_empty" or "never"'),
])
def test_config_validate_names_each_mistake(snippet: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.split("[profile.map]")[0] + snippet)
    (problem,) = info.value.problems
    assert expected in problem
    if "surnme" in expected:
        assert 'did you mean "{surname}"?' in problem


def test_notes_keep_the_owners_text_above_galsyncs_marker() -> None:
    assert merged_notes(None, "Employee ID: E-042") == f"{MARK}\nEmployee ID: E-042"
    mine = f"Gate code 1234\n\n{MARK}\nEmployee ID: E-041"
    assert merged_notes(mine, "Employee ID: E-042") == f"Gate code 1234\n\n{MARK}\nEmployee ID: E-042"
    assert merged_notes(mine, None) == "Gate code 1234"
    assert merged_notes("Gate code 1234", "ID") == f"Gate code 1234\n\n{MARK}\nID"
    assert our_part(mine) == "Employee ID: E-041" and our_part("Gate code 1234") is None


def test_a_template_change_writes_only_galsyncs_part_and_reconcile_ignores_the_owners() -> None:
    profile = parse_config(CONFIG).profile("Company")
    old = {"displayName": "Costa, Ana", "personalNotes": "Employee ID: E-041"}
    new = {"displayName": "Costa, Ana", "personalNotes": "Employee ID: E-042"}
    record = TargetRecord("m1", "user:u1", "c1", fingerprint(old), "ck", "2026-01-01T00:00:00Z")
    [update] = plan_target("m1", {"user:u1": DesiredContact(new, fingerprint(new))},
                           {"user:u1": SourceRecord("user:u1", fingerprint(old), old)}, {"user:u1": record}, profile)
    assert isinstance(update, Update) and update.changes == {"personalNotes": "Employee ID: E-042",
                                                            "displayName": "Costa, Ana"}
    [create] = plan_target("m2", {"user:u1": DesiredContact(new, fingerprint(new))}, {}, {}, profile)
    assert isinstance(create, Create) and create.body["personalNotes"] == f"{MARK}\nEmployee ID: E-042"

    want = DesiredContact(new, fingerprint(new))
    theirs = ObservedContact("c1", "ck2", None, {"displayName": "Costa, Ana",
                                                  "personalNotes": f"Gate 12\n\n{MARK}\nEmployee ID: E-042"})
    assert isinstance(restore("user:u1", theirs, want, profile), Record)
    edited = ObservedContact("c1", "ck2", None, {"displayName": "Costa, Ana", "personalNotes": "Gate 12"})
    repair = restore("user:u1", edited, want, profile)
    assert isinstance(repair, Update) and repair.changes["personalNotes"] == "Employee ID: E-042"


def test_overwrite_writes_a_value_but_an_empty_source_leaves_the_contacts_own() -> None:
    profile = parse_config(CONFIG.split("[profile.map]")[0] + '[profile.fields]\njobTitle = "overwrite"\n'
                           ).profile("Company")
    old = {"displayName": "Ana", "jobTitle": "Driver"}
    new = {"displayName": "Ana"}
    record = TargetRecord("m1", "user:u1", "c1", fingerprint(old), "ck", "2026-01-01T00:00:00Z")
    previous = {"user:u1": SourceRecord("user:u1", fingerprint(old), old)}
    [action] = plan_target("m1", {"user:u1": DesiredContact(new, fingerprint(new))}, previous, {"user:u1": record},
                           profile)
    assert not isinstance(action, Update)  # nothing sent: the phone keeps "Driver"
    newer = {"displayName": "Ana", "jobTitle": "Dispatcher"}
    [update] = plan_target("m1", {"user:u1": DesiredContact(newer, fingerprint(newer))}, previous,
                           {"user:u1": record}, profile)
    assert isinstance(update, Update) and update.changes == {"jobTitle": "Dispatcher", "displayName": "Ana"}
    kept = ObservedContact("c1", "ck2", None, {"displayName": "Ana", "jobTitle": "Chief"})
    assert isinstance(restore("user:u1", kept, DesiredContact(new, fingerprint(new)), profile), Record)
