"""Dialable numbers: international format through libphonenumber, or kept as they were and counted."""

from __future__ import annotations

import pytest

from sync_core.core.phones import Phones, dial_payload, dialable
from sync_core.core.profile import ConfigError, parse_config

from .test_profile import MINIMAL


@pytest.mark.parametrize(("number", "region", "expected"), [
    ("06 12 34 56 78", "FR", "+33 6 12 34 56 78"),          # a French mobile as people type it
    ("+33612345678", None, "+33 6 12 34 56 78"),            # its own country code: no region needed
    ("(425) 555-0100", "US", "+1 425-555-0100"),
    ("+44 7700 900001", "FR", "+44 7700 900001"),           # Ofcom's drama range: kept in its own format
    ("ask reception", "FR", None),                          # not a number
    ("555-0100", "US", None),                               # no area code: not dialable from elsewhere
    ("06 12 34 56 78", None, None),                         # a national number and no region to read it in
])
def test_numbers_become_international_or_are_left_alone(number: str, region: str | None, expected: str | None
                                                        ) -> None:
    assert dialable(number, region) == expected


def test_a_payload_keeps_what_it_cannot_dial_counts_it_and_drops_duplicates() -> None:
    payload = {"displayName": "Ana", "mobilePhone": "06 12 34 56 78",
               "businessPhones": ["+33 6 12 34 56 78", "06 12 34 56 78", "reception"]}
    out, kept = dial_payload(payload, Phones(True, "FR"))
    assert out == {"displayName": "Ana", "mobilePhone": "+33 6 12 34 56 78",
                   "businessPhones": ["+33 6 12 34 56 78", "reception"]}
    assert kept == 1
    assert dial_payload(payload, Phones()) == (payload, 0)  # off by default


def test_config_validate_checks_the_region_with_a_did_you_mean() -> None:
    ok = parse_config(MINIMAL + '[profile.phones]\ndialable = true\nregion = "fr"\n').profiles[0]
    assert ok.phones == Phones(True, "FR")
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + '[profile.phones]\ndialable = "yes"\nregion = "FRA"\nformat = "e164"\n')
    problems = sorted(info.value.problems)
    assert len(problems) == 3
    assert any('phones.dialable: expected true or false, got "yes"' in p for p in problems)
    assert any('phones.region: expected a region code such as "FR"' in p and 'did you mean "FR"?' in p
               for p in problems)
    assert any("phones.format: unknown key" in p for p in problems)
