"""The contact fields galsync owns, and how each one is written, compared and cleared.

Everything that needs to know "which fields" (config validation, mapping, the planner's diff, drift repair)
reads this module, so adding a field is one edit here plus its mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

# always: written on create and every change, cleared when the source is empty; overwrite: the same, but an
# empty source leaves the contact's value; if_empty: written where the contact's field is blank; never.
FieldPolicy = Literal["always", "overwrite", "if_empty", "never"]
FIELD_POLICIES: tuple[str, ...] = ("always", "overwrite", "if_empty", "never")

# Contact properties no source fills by itself: written only where a map, static value or template gives them a
# value (their policy is "never" unless one does, or the admin sets one). personalNotes: galsync owns only its
# part of the notes (notes.py).
EXTRA_FIELDS: tuple[str, ...] = ("fileAs", "nickName", "profession", "personalNotes")

# Graph contact properties galsync manages, in the order they appear in docs and reports.
CONTACT_FIELDS: tuple[str, ...] = (
    "givenName",
    "surname",
    "displayName",
    "emailAddresses",
    "businessPhones",
    "mobilePhone",
    "companyName",
    "department",
    "jobTitle",
    "officeLocation",
    "businessAddress",
    "manager",
    *EXTRA_FIELDS,
)

STRING_FIELDS: frozenset[str] = frozenset(
    {"givenName", "surname", "displayName", "mobilePhone", "companyName", "department", "jobTitle",
     "officeLocation", "manager", *EXTRA_FIELDS}
)
LIST_FIELDS: frozenset[str] = frozenset({"emailAddresses", "businessPhones"})
ADDRESS_FIELDS: frozenset[str] = frozenset({"businessAddress"})

# microsoft.graph.physicalAddress, in schema order.
ADDRESS_KEYS: tuple[str, ...] = ("street", "city", "state", "postalCode", "countryOrRegion")


def clear_value(field: str) -> Any:
    """What a PATCH sends to empty `field` on a contact.

    Strings are nullable in the contact schema, so null; collections become an empty list. An address is
    sent as an object whose five keys are null, not as `null`: Graph answers a null complex address with an
    internal error (msgraph-sdk-dotnet issue 2368), while every key of physicalAddress is nullable.
    """
    if field in LIST_FIELDS:
        return []
    if field in ADDRESS_FIELDS:
        return dict.fromkeys(ADDRESS_KEYS)
    return None


def write_value(field: str, value: Any) -> Any:
    """The value a PATCH sends for `field` set to the (normalised, possibly absent) `value`.

    An address is always sent whole with all five keys, so a removed street is cleared whether Graph merges
    or replaces the complex value.
    """
    if value is None:
        return clear_value(field)
    if field in ADDRESS_FIELDS and isinstance(value, Mapping):
        return {key: value.get(key) for key in ADDRESS_KEYS}
    return value
