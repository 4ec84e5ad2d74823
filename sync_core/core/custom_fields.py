"""Values an admin chooses for contact fields: mapped user attributes, static values and templates.

Applied after a source's own mapping (mapping.py), in this order, each replacing what came before:
1. [profile.map]: a contact field takes a directory user's attribute (users only), e.g. officeLocation from
   extensionAttribute5, or nickName from employeeId;
2. static values, the profile's ([profile.static]) then the source's (`static = {...}` on [[profile.source]]),
   e.g. companyName = "Northwind" on org contacts;
3. [profile.templates]: displayName, fileAs, nickName or personalNotes from other fields and attributes,
   e.g. "{surname}, {givenName}". A placeholder with no value is left out, and so are the separators it leaves
   at either end; a template whose placeholders are all empty gives no value.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from .attributes import USER_ATTRIBUTES, attribute_value
from .fields import CONTACT_FIELDS, STRING_FIELDS

# User attributes a map or a template may read: the filter attributes and these string properties (user.md).
PLAIN_USER_ATTRIBUTES: tuple[str, ...] = (
    "employeeId", "givenName", "surname", "displayName", "mail", "userPrincipalName", "mobilePhone",
    "streetAddress", "postalCode", "faxNumber", "preferredLanguage",
)
MAPPABLE_ATTRIBUTES: tuple[str, ...] = (*USER_ATTRIBUTES, *PLAIN_USER_ATTRIBUTES)
# Contact fields a map or a static value may fill: galsync's string fields (manager is resolved from its id).
SETTABLE_FIELDS: tuple[str, ...] = tuple(f for f in CONTACT_FIELDS if f in STRING_FIELDS and f != "manager")
TEMPLATE_FIELDS: tuple[str, ...] = ("displayName", "fileAs", "nickName", "personalNotes")
# What a template may name: contact fields (after the map and static values), then user attributes.
PLACEHOLDERS: tuple[str, ...] = tuple(dict.fromkeys((*SETTABLE_FIELDS, *MAPPABLE_ATTRIBUTES)))

_SEPARATORS = " \t,;:-/|()"
_FORMATTER = string.Formatter()


def user_attribute(user: Mapping[str, Any], name: str) -> str | None:
    """A user's value of a mappable attribute, stripped; None when empty."""
    if name in USER_ATTRIBUTES:
        return attribute_value(user, name)
    value = user.get(name)
    return value.strip() or None if isinstance(value, str) else None


def attribute_properties(names: Mapping[str, str] | tuple[str, ...]) -> list[str]:
    """The Graph user properties to `$select` for these attribute names (others are ignored)."""
    props = []
    for name in names:
        if name in USER_ATTRIBUTES:
            props.append(USER_ATTRIBUTES[name])
        elif name in PLAIN_USER_ATTRIBUTES:
            props.append(name)
    return props


def placeholders(template: str) -> list[str]:
    """The names a template uses; ValueError for a malformed one ("{" without "}", a format spec)."""
    names = []
    for _literal, name, spec, conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) or spec or conversion:
            raise ValueError(f"{{{name}}} is not a placeholder: write {{fieldName}}, with no format")
        names.append(name)
    return names


def render(template: str, value: Callable[[str], str | None]) -> str | None:
    """The template with each placeholder's value; None when every placeholder is empty."""
    out: list[str] = []
    filled = False
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            text = value(name)
            if text:
                filled = True
                out.append(text)
    if not filled:
        return None
    text = "".join(out).strip(_SEPARATORS)
    return re.sub(r"[ \t]{2,}", " ", text) or None


def apply_custom(fields: dict[str, Any], profile_map: Mapping[str, str], static: Mapping[str, str],
                 templates: Mapping[str, str], user: Mapping[str, Any] | None) -> dict[str, Any]:
    """`fields` (a source's mapped contact fields) with the admin's map, static values and templates applied;
    `user` is the directory user for a users source (the map and attribute placeholders read it), else None."""
    if user is not None:
        for field, attribute in profile_map.items():
            fields[field] = user_attribute(user, attribute)
    fields.update(static)
    if templates:
        def value(name: str) -> str | None:
            own = fields.get(name)
            if isinstance(own, str) and own.strip():
                return own.strip()
            return user_attribute(user, name) if user is not None and name in MAPPABLE_ATTRIBUTES else None
        rendered = {field: render(template, value) for field, template in templates.items()}
        fields.update(rendered)
    return fields
