"""Attribute filters and named exclusions: which users and contacts count, what delta must select, and what
config validation says about a mistyped attribute or operator."""

from __future__ import annotations

import pytest

from sync_core.core.filters import org_contact_exclusion, user_exclusion
from sync_core.core.mapping import org_contact_select, user_select
from sync_core.core.profile import ConfigError, parse_config

from .test_profile import MINIMAL

USER = {"id": "0b6c1f6e-5c4b-4d1e-9f0e-2a1b3c4d5e6f", "displayName": "Ana", "mail": "ana@contoso.example",
        "userPrincipalName": "ana@contoso.example", "assignedLicenses": [{"skuId": "x"}], "department": "Transport",
        "country": "France", "jobTitle": "Driver (HGV)",
        "onPremisesExtensionAttributes": {"extensionAttribute3": "NOSYNC", "extensionAttribute1": None}}


def profile_with(where: str = "", extra: str = ""):  # type: ignore[no-untyped-def]
    text = MINIMAL.replace("[[profile.source]]", f"{extra}\n[[profile.source]]", 1)
    if where:
        text += f"[profile.users.where]\n{where}\n"
    return parse_config(text).profiles[0]


@pytest.mark.parametrize(("where", "why"), [
    ('department = { equals = "transport" }', None),                      # case is ignored
    ('department = { in = ["Dispatch", "Transport"] }', None),
    ('jobTitle = { starts_with = ["Driver", "Mechanic"] }', None),
    ('country = { not = "Spain" }', None),
    ('city = { not = ["Lyon"] }', None),                                     # empty: none of them
    ('city = { equals = "Lyon" }', "filtered out by city (equals)"),       # empty: matches nothing else
    ('extensionAttribute3 = { not = "nosync" }', "filtered out by extensionAttribute3 (not)"),
    ('department = { in = ["Transport"], not = "Transport" }', "filtered out by department (not)"),
])
def test_each_operator_on_user_attributes(where: str, why: str | None) -> None:
    assert user_exclusion(USER, profile_with(where)) == why


def test_named_people_are_excluded_by_id_or_address() -> None:
    by_address = profile_with(extra='exclude = ["ANA@contoso.example"]')
    assert user_exclusion(USER, by_address) == "excluded by name"
    by_id = profile_with(extra=f'exclude = ["{USER["id"]}"]')
    assert user_exclusion(USER, by_id) == "excluded by name"
    supplier = {"id": "o1", "displayName": "Acme", "mail": "ana@contoso.example"}
    assert org_contact_exclusion(supplier, by_address) == "excluded by name"
    assert user_exclusion(USER, profile_with()) is None


def test_only_the_attributes_in_use_are_selected() -> None:
    plain = set(user_select(profile_with()))
    filtered = set(user_select(profile_with('department = { in = ["Transport"] }\n'
                                            'extensionAttribute3 = { not = "NOSYNC" }')))
    assert filtered - plain == {"onPremisesExtensionAttributes"}  # department is mapped anyway
    assert "usageLocation" not in filtered and "employeeType" not in filtered
    assert "usageLocation" in user_select(profile_with('usageLocation = { equals = "FR" }'))
    assert "userPrincipalName" in user_select(profile_with(extra='exclude = ["ana@contoso.example"]'))
    assert "mail" in org_contact_select(profile_with(extra='exclude = ["ana@contoso.example"]'))


def test_config_validate_suggests_the_attribute_or_operator_meant() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + '[profile.users.where]\ndepartmnet = { in = ["Transport"] }\n'
                     'country = { startswith = "Fr" }\njobTitle = "Driver"\ncity = { in = [] }\n')
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert any("users.where.departmnet: unknown key" in p and 'did you mean "department"?' in p for p in problems)
    assert any("users.where.country.startswith: unknown key" in p and 'did you mean "starts_with"?' in p
               for p in problems)
    assert any("users.where.jobTitle: expected { operator = value }" in p for p in problems)
    assert any("users.where.city.in: expected a non-empty string or a list of them" in p for p in problems)
    with pytest.raises(ConfigError) as bad_ref:
        parse_config(MINIMAL.replace("[[profile.source]]", 'exclude = ["Ana"]\n[[profile.source]]', 1))
    assert "exclude[0]: expected a user or organizational contact id (GUID), or an address" in bad_ref.value.problems[0]
