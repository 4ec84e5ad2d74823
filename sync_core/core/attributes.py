"""The directory user attributes a profile can filter on, and where each lives in Graph's user JSON.

[profile.users.where] names these attributes (docs/config.md); the delta `$select` gets the Graph property of
each attribute in use, and nothing more (mapping.user_select).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXTENSION_PROPERTY = "onPremisesExtensionAttributes"

# Attribute name in the configuration -> the user property that holds it (user.md, v1.0).
USER_ATTRIBUTES: dict[str, str] = {
    **{name: name for name in ("department", "companyName", "officeLocation", "city", "state", "country",
                               "jobTitle", "employeeType", "usageLocation")},
    **{f"extensionAttribute{n}": EXTENSION_PROPERTY for n in range(1, 16)},
}
OPERATORS: tuple[str, ...] = ("equals", "in", "starts_with", "not")


def attribute_value(user: Mapping[str, Any], attribute: str) -> str | None:
    """The user's value of a filter attribute, stripped; None when it is empty or absent."""
    prop = USER_ATTRIBUTES[attribute]
    value = user.get(prop)
    if prop == EXTENSION_PROPERTY:
        value = value.get(attribute) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()
