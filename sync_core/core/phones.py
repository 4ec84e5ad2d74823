"""Dialable numbers: phone numbers written in international format, so caller ID on phones matches them.

A directory often holds numbers as people type them ("06 12 34 56 78"); a phone shows the caller's number in
international form (+33 6 12 34 56 78) and matches it with a contact only when the contact's number dials the
same from anywhere. With `[profile.phones] dialable = true` every number galsync writes goes through Google's
libphonenumber (the `phonenumbers` module of the `phonenumberslite` package): a number valid for its region
(the profile's `region` when it has no country code) is written in international format. A number it cannot
parse, or that is not a valid number (and carries no country code of its own), is kept exactly as it was and
counted, so the run report can say how many numbers an admin may want to fix at the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

# Contact fields that hold phone numbers (a string, or a list of strings).
PHONE_FIELDS: tuple[str, ...] = ("businessPhones", "mobilePhone")
REGIONS: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)


@dataclass(frozen=True)
class Phones:
    """[profile.phones]: whether numbers are made dialable, and the region of numbers without a country code."""

    dialable: bool = False
    region: str | None = None  # ISO 3166-1 alpha-2, e.g. "FR"


def dialable(number: str, region: str | None) -> str | None:
    """`number` in international format, or None when it cannot be made dialable (keep it as it is)."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    own_country_code = number.lstrip().startswith("+")
    if phonenumbers.is_valid_number(parsed) or (own_country_code and phonenumbers.is_possible_number(parsed)):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return None


def dial_payload(payload: Mapping[str, Any], phones: Phones) -> tuple[dict[str, Any], int]:
    """The payload with its numbers made dialable, and how many numbers had to be kept as they were."""
    out = dict(payload)
    if not phones.dialable:
        return out, 0
    kept = 0
    for name in PHONE_FIELDS:
        value = out.get(name)
        numbers = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        written: list[str] = []
        for number in numbers:
            made = dialable(number, phones.region)
            if made is None:
                kept += 1
            text = made or number
            if text not in written:
                written.append(text)
        if written:
            out[name] = written if isinstance(value, list) else written[0]
    return out, kept
