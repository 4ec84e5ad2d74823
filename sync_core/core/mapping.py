"""Mapping: a directory user, an organizational contact or a shared-folder contact becomes a contact payload.

The payload is the Graph contact JSON galsync wants in every target folder (the fields of fields.py).
Everything goes through `normalise_contact`, so equal source data always gives an equal payload, and so does
the same contact read back from a folder (drift compares the two): strings are stripped and NFC-normalised,
empty strings, lists and addresses are dropped, phone numbers and email addresses are de-duplicated, and an
email address always carries a name. Fields whose policy is "never" are left out of the payload.

The `*_select` functions give the `$select` list for each source's delta query: only what the mapping and the
filters need. The mapping and filters need every selected property of an item, so read delta without
`Prefer: return=minimal` (which omits unchanged properties).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .attributes import USER_ATTRIBUTES
from .custom_fields import apply_custom, attribute_properties, placeholders
from .fields import ADDRESS_KEYS, CONTACT_FIELDS, EXTRA_FIELDS
from .notes import NOTES, our_part
from .profile import Profile, Source

# User properties each contact field is mapped from.
_USER_PROPERTIES: dict[str, tuple[str, ...]] = {
    "givenName": ("givenName",),
    "surname": ("surname",),
    "displayName": ("displayName",),
    "emailAddresses": ("mail",),
    "businessPhones": ("businessPhones",),
    "mobilePhone": ("mobilePhone",),
    "companyName": ("companyName",),
    "department": ("department",),
    "jobTitle": ("jobTitle",),
    "officeLocation": ("officeLocation",),
    "businessAddress": ("streetAddress", "city", "state", "postalCode", "country"),
    "manager": ("manager",),
    **dict.fromkeys(EXTRA_FIELDS, ()),  # filled by a map, static value or template (their own $select)
}

# orgContact properties (Identity.OrganizationContacts.yml). The manager of an org contact is not selectable
# in /contacts/delta per api/orgcontact-delta.md, so it is never selected; pass its name if you look it up.
_ORG_CONTACT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "givenName": ("givenName",),
    "surname": ("surname",),
    "displayName": ("displayName",),
    "emailAddresses": ("mail",),
    "businessPhones": ("phones",),
    "mobilePhone": ("phones",),
    "companyName": ("companyName",),
    "department": ("department",),
    "jobTitle": ("jobTitle",),
    "officeLocation": ("addresses",),
    "businessAddress": ("addresses",),
    "manager": (),
    **dict.fromkeys(EXTRA_FIELDS, ()),
}


def user_select(profile: Profile) -> tuple[str, ...]:
    """`$select` for /users/delta: id, displayName, what the user filter needs, and the mapped fields."""
    wanted = ["id", "displayName"]
    f = profile.users
    if f.enabled_only:
        wanted.append("accountEnabled")
    if f.members_only:
        wanted.append("userType")
    if f.licensed_only:
        wanted.append("assignedLicenses")
    if f.in_address_list_only:
        wanted.append("showInAddressList")
    if f.require_phone_or_email:
        wanted += ["mail", "businessPhones", "mobilePhone"]
    if profile.exclude:
        wanted += ["userPrincipalName", "mail"]
    wanted += [USER_ATTRIBUTES[c.attribute] for c in f.where]  # only the attributes in use
    wanted += attribute_properties(tuple(attribute for _, attribute in profile.map))
    for _, template in profile.templates:
        wanted += attribute_properties(tuple(placeholders(template)))
    for name in profile.mapped_fields:
        wanted += _USER_PROPERTIES[name]
    return tuple(dict.fromkeys(wanted))


def org_contact_select(profile: Profile) -> tuple[str, ...]:
    """`$select` for /contacts/delta (organizational contacts)."""
    wanted = ["id", "displayName"]
    if profile.users.require_phone_or_email or profile.exclude:
        wanted += ["mail", "phones"]
    for name in profile.mapped_fields:
        wanted += _ORG_CONTACT_PROPERTIES[name]
    return tuple(dict.fromkeys(wanted))


def folder_contact_select(profile: Profile) -> tuple[str, ...]:
    """`$select` for a shared folder's contact delta: the contact fields galsync copies."""
    wanted = ["id", "displayName"]
    if profile.users.require_phone_or_email or profile.exclude:
        wanted += ["emailAddresses", "businessPhones", "mobilePhone"]
    wanted += profile.mapped_fields
    return tuple(dict.fromkeys(wanted))


# --- normalising --------------------------------------------------------------------------------------------


def clean_text(value: Any) -> str | None:
    """A stripped, NFC-normalised string, or None for anything empty or not a string."""
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFC", value).strip()
    return text or None


def _clean_texts(values: Any) -> list[str]:
    if not isinstance(values, list | tuple):
        return []
    out: list[str] = []
    for value in values:
        text = clean_text(value)
        if text is not None and text not in out:
            out.append(text)
    return out


def _clean_emails(values: Any) -> list[dict[str, str]]:
    if not isinstance(values, list | tuple):
        return []
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for value in values:
        if not isinstance(value, Mapping):
            continue
        address = clean_text(value.get("address"))
        if address is None or address.casefold() in seen:
            continue
        seen.add(address.casefold())
        out.append({"name": clean_text(value.get("name")) or address, "address": address})
    return out


def _clean_address(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    out = {key: text for key in ADDRESS_KEYS if (text := clean_text(value.get(key))) is not None}
    return out or None


def normalise_contact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The galsync-owned fields of a contact (from any source, or read back from Graph) in canonical form.

    Only CONTACT_FIELDS are kept; ids, metadata and other contact properties are dropped; empty values are
    left out, so "absent", null, "" and [] all mean the same thing.
    """
    out: dict[str, Any] = {}
    for name in CONTACT_FIELDS:
        if name not in fields:
            continue
        raw = fields[name]
        value: Any
        if name == "emailAddresses":
            value = _clean_emails(raw)
        elif name == "businessPhones":
            value = _clean_texts(raw)
        elif name == "businessAddress":
            value = _clean_address(raw)
        else:
            value = clean_text(raw)
        if value:
            out[name] = value
    return out


def observed_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A contact read from a target folder, as galsync compares it with a payload: normalised, and of its
    notes only galsync's part (notes.py)."""
    out = normalise_contact(fields)
    ours = our_part(fields.get(NOTES))
    if ours is None:
        out.pop(NOTES, None)
    else:
        out[NOTES] = ours
    return out


def _finish(fields: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    """Normalise, give the contact a display name if it has none, and drop fields the profile never writes."""
    payload = normalise_contact(fields)
    if "displayName" not in payload:
        name = " ".join(p for p in (payload.get("givenName"), payload.get("surname")) if p)
        emails = payload.get("emailAddresses") or []
        fallback = name or (emails[0]["address"] if emails else None) or payload.get("companyName")
        if fallback:
            payload["displayName"] = fallback
    mapped = set(profile.mapped_fields)
    return {name: value for name, value in payload.items() if name in mapped}


# --- sources ------------------------------------------------------------------------------------------------


def map_user(user: Mapping[str, Any], manager_name: str | None, profile: Profile) -> dict[str, Any]:
    """The contact payload for a directory user (Graph user JSON with the properties of `user_select`).

    `manager_name` is the manager's display name, resolved by the caller (delta only gives the manager's id,
    see `manager_ref`).
    """
    display_name = clean_text(user.get("displayName"))
    mail = clean_text(user.get("mail"))
    fields = {
        "givenName": user.get("givenName"),
        "surname": user.get("surname"),
        "displayName": display_name,
        "emailAddresses": [{"name": display_name or mail, "address": mail}] if mail else [],
        "businessPhones": user.get("businessPhones"),
        "mobilePhone": user.get("mobilePhone"),
        "companyName": user.get("companyName"),
        "department": user.get("department"),
        "jobTitle": user.get("jobTitle"),
        "officeLocation": user.get("officeLocation"),
        "businessAddress": {
            "street": user.get("streetAddress"),
            "city": user.get("city"),
            "state": user.get("state"),
            "postalCode": user.get("postalCode"),
            "countryOrRegion": user.get("country"),
        },
        "manager": manager_name,
    }
    apply_custom(fields, dict(profile.map), profile.static_of(profile.source_of("users")), dict(profile.templates),
                 user)
    return _finish(fields, profile)


def map_org_contact(contact: Mapping[str, Any], profile: Profile, manager_name: str | None = None,
                    ) -> dict[str, Any]:
    """The contact payload for an organizational contact (orgContact JSON).

    Phones: every "business" number goes to businessPhones, the first "mobile" one to mobilePhone (other
    types are not mapped). The first address gives businessAddress and officeLocation.
    """
    display_name = clean_text(contact.get("displayName"))
    mail = clean_text(contact.get("mail"))
    phones = [p for p in contact.get("phones") or [] if isinstance(p, Mapping)]
    business = [p.get("number") for p in phones if p.get("type") == "business"]
    mobile = [p.get("number") for p in phones if p.get("type") == "mobile" and clean_text(p.get("number"))]
    addresses = [a for a in contact.get("addresses") or [] if isinstance(a, Mapping)]
    first = addresses[0] if addresses else {}
    fields = {
        "givenName": contact.get("givenName"),
        "surname": contact.get("surname"),
        "displayName": display_name,
        "emailAddresses": [{"name": display_name or mail, "address": mail}] if mail else [],
        "businessPhones": business,
        "mobilePhone": mobile[0] if mobile else None,
        "companyName": contact.get("companyName"),
        "department": contact.get("department"),
        "jobTitle": contact.get("jobTitle"),
        "officeLocation": first.get("officeLocation"),
        "businessAddress": {key: first.get(key) for key in ADDRESS_KEYS},
        "manager": manager_name,
    }
    apply_custom(fields, {}, profile.static_of(profile.source_of("org_contacts")), dict(profile.templates), None)
    return _finish(fields, profile)


def map_folder_contact(contact: Mapping[str, Any], profile: Profile, source: Source | None = None,
                       ) -> dict[str, Any]:
    """The contact payload for a contact read from a shared mailbox's folder (`source`): its galsync-owned
    fields only, with the admin's static values and templates.

    Ids, change keys, dates, categories, personal notes, home data and extended properties stay behind.
    """
    fields = {name: contact[name] for name in CONTACT_FIELDS if name in contact and name != "personalNotes"}
    apply_custom(fields, {}, profile.static_of(source), dict(profile.templates), None)
    return _finish(fields, profile)


# --- manager ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManagerRef:
    """What a user item says about its manager. `stated` False: the item says nothing (keep what you had)."""

    stated: bool
    manager_id: str | None = None


def manager_ref(user: Mapping[str, Any]) -> ManagerRef:
    """The manager named by a user item.

    Delta gives `manager@delta` (a list; an entry with `@removed` takes the manager away); a GET with
    `$expand=manager` gives a `manager` object.
    """
    if "manager@delta" in user:
        entries: Iterable[Any] = user.get("manager@delta") or []
        current = [e for e in entries if isinstance(e, Mapping) and "@removed" not in e and e.get("id")]
        return ManagerRef(True, str(current[-1]["id"]) if current else None)
    if "manager" in user:
        manager = user.get("manager")
        found = isinstance(manager, Mapping) and manager.get("id")
        return ManagerRef(True, str(manager["id"]) if found and isinstance(manager, Mapping) else None)
    return ManagerRef(False)
