"""Which source objects count for a profile: pure checks on what delta returned.

Each `*_exclusion` returns why an object does not count (a short reason for logs, `galsync explain` and the
removal path) or None when it counts. A deleted, disabled or no-longer-matching user therefore takes one path:
not None means "remove it from every target" (sources.read_user turns it into `Gone`).

Group membership is resolved by the caller (transitively, through Graph) and passed in as `group_members`:
config group ref (an id or a display name, exactly as written in the profile) -> ids of its members.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

from .attributes import attribute_value
from .mapping import clean_text
from .profile import Condition, Profile
from .tags import contact_tag_raw

GroupMembers = Mapping[str, Collection[str]]


def removed_reason(item: Mapping[str, Any]) -> str | None:
    """"deleted" (or "deleted (changed)" for a soft delete) for a delta `@removed` item, else None."""
    removed = item.get("@removed")
    if removed is None:
        return None
    reason = removed.get("reason") if isinstance(removed, Mapping) else None
    return "deleted" if reason in (None, "deleted") else f"deleted ({reason})"


def user_exclusion(user: Mapping[str, Any], profile: Profile, group_members: GroupMembers | None = None,
                   ) -> str | None:
    """Why a user (Graph user JSON with the properties of mapping.user_select) does not count, or None.

    Absent `accountEnabled`, `userType` and `showInAddressList` count as enabled, member and shown: Graph
    returns the first two whenever they are selected, and leaves `showInAddressList` out of delta responses.
    """
    if (gone := removed_reason(user)) is not None:
        return gone
    f = profile.users
    if f.enabled_only and user.get("accountEnabled") is False:
        return "disabled"
    if f.members_only and isinstance(user.get("userType"), str) and user["userType"].lower() == "guest":
        return "guest"
    if f.licensed_only and not user.get("assignedLicenses"):
        return "unlicensed"
    if f.in_address_list_only and user.get("showInAddressList") is False:
        return "hidden from the address list"
    if f.require_phone_or_email and not _has_phone_or_email(
        user.get("mail"), user.get("businessPhones"), user.get("mobilePhone")
    ):
        return "no phone or email"
    if named_in_exclude(profile, user.get("id"), user.get("userPrincipalName"), user.get("mail")):
        return "excluded by name"
    for condition in f.where:
        if not condition_holds(condition, attribute_value(user, condition.attribute)):
            return f"filtered out by {condition.attribute} ({condition.operator})"
    user_id = user.get("id")
    if f.in_groups and not any(user_id in _members(profile, group_members, ref) for ref in f.in_groups):
        return "in none of the groups " + ", ".join(f'"{ref}"' for ref in f.in_groups)
    for ref in f.not_in_groups:
        if user_id in _members(profile, group_members, ref):
            return f'in excluded group "{ref}"'
    return None


def user_included(
    user: Mapping[str, Any], profile: Profile, group_members: GroupMembers | None = None,
) -> bool:
    """True if the user counts for the profile (see `user_exclusion` for why not)."""
    return user_exclusion(user, profile, group_members) is None


def org_contact_exclusion(contact: Mapping[str, Any], profile: Profile) -> str | None:
    """Why an organizational contact does not count, or None. Only `require_phone_or_email` applies."""
    if (gone := removed_reason(contact)) is not None:
        return gone
    if named_in_exclude(profile, contact.get("id"), contact.get("mail")):
        return "excluded by name"
    phones = [p.get("number") for p in contact.get("phones") or [] if isinstance(p, Mapping)]
    if profile.users.require_phone_or_email and not _has_phone_or_email(contact.get("mail"), phones, None):
        return "no phone or email"
    return None


def folder_contact_exclusion(contact: Mapping[str, Any], profile: Profile) -> str | None:
    """Why a contact of a shared source folder does not count, or None.

    A contact carrying galsync's tag never counts: it is one galsync wrote, and copying it again would loop.
    (Read the folder with tags.CONTACT_TAG_EXPAND so the tag is visible.)
    """
    if (gone := removed_reason(contact)) is not None:
        return gone
    if contact_tag_raw(contact) is not None:
        return "written by galsync"
    emails = [e.get("address") for e in contact.get("emailAddresses") or [] if isinstance(e, Mapping)]
    if named_in_exclude(profile, *emails):
        return "excluded by name"
    if profile.users.require_phone_or_email and not _has_phone_or_email(
        emails, contact.get("businessPhones"), contact.get("mobilePhone")
    ):
        return "no phone or email"
    return None


def condition_holds(condition: Condition, value: str | None) -> bool:
    """Whether a user's attribute `value` (None: empty) meets one [profile.users.where] condition."""
    if value is None:
        return condition.operator == "not"
    text = value.casefold()
    wanted = [v.strip().casefold() for v in condition.values]
    if condition.operator == "starts_with":
        return any(text.startswith(w) for w in wanted)
    if condition.operator == "not":
        return text not in wanted
    return text in wanted  # equals, in


def named_in_exclude(profile: Profile, *refs: Any) -> bool:
    """Whether any of a source object's ids or addresses is in the profile's `exclude` (ignoring case)."""
    if not profile.exclude:
        return False
    excluded = _excluded(profile.exclude)
    return any(isinstance(ref, str) and ref.strip().casefold() in excluded for ref in refs)


@functools.lru_cache(maxsize=32)
def _excluded(refs: tuple[str, ...]) -> frozenset[str]:
    return frozenset(ref.casefold() for ref in refs)


def _has_phone_or_email(*values: Any) -> bool:
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        if any(clean_text(item) for item in items):
            return True
    return False


def _members(profile: Profile, group_members: GroupMembers | None, ref: str) -> Collection[str]:
    if group_members is None or ref not in group_members:
        raise ValueError(
            f'profile "{profile.name}": the members of group "{ref}" were not resolved; '
            "pass them in group_members (see Profile.group_refs)"
        )
    return group_members[ref]


def target_mailboxes(profile: Profile, group_members: GroupMembers, mailbox_ids: Mapping[str, str]) -> set[str]:
    """The user ids of the profile's target mailboxes: group members plus explicit mailboxes, minus exclusions.

    `group_members` maps each of `profile.targets.groups` to its transitive member ids (the caller keeps only
    members that have a mailbox); `mailbox_ids` maps each address or id in `targets.mailboxes` and
    `targets.exclude` to a user id (a ref missing from it names no mailbox that exists, and is left out).
    """
    targets: set[str] = set()
    for ref in profile.targets.groups:
        targets.update(_members(profile, group_members, ref))
    targets.update(mailbox_ids[ref] for ref in profile.targets.mailboxes if ref in mailbox_ids)
    targets.difference_update(mailbox_ids[ref] for ref in profile.targets.exclude if ref in mailbox_ids)
    return targets
