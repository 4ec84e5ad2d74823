"""From delta items to source changes, and from source records to the contacts every target should hold.

`read_user`, `read_org_contact` and `read_folder_contact` turn one delta item into either `Mapped` (the
contact payload and its fingerprint: store it as a SourceRecord) or `Gone` (the object was deleted, disabled,
or no longer matches the filters: drop its SourceRecord, and the planner removes it from every target).

`merge_sources` decides what a target holds when one person is in several sources (say a user and an
organizational contact with the same email address): the source listed first in the profile wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .categories import with_categories
from .filters import GroupMembers, folder_contact_exclusion, org_contact_exclusion, user_exclusion
from .fingerprint import fingerprint
from .mapping import map_folder_contact, map_org_contact, map_user
from .phones import dial_payload
from .profile import Profile, Source
from .records import SourceRecord


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


def org_contact_key(contact_id: str) -> str:
    return f"orgcontact:{contact_id}"


def folder_contact_key(mailbox_id: str, contact_id: str) -> str:
    return f"folder:{mailbox_id}:{contact_id}"


def source_key_prefix(source: Source, mailbox_id: str | None = None) -> str:
    """The prefix of the source keys a source produces; a folder source needs its mailbox's user id."""
    if source.kind == "users":
        return "user:"
    if source.kind == "org_contacts":
        return "orgcontact:"
    if not mailbox_id:
        raise ValueError(f"source {source.name}: the mailbox's user id is needed for its key prefix")
    return f"folder:{mailbox_id}:"


class DesiredContact(NamedTuple):
    """A contact every target of the profile should hold: the planner's and drift's input."""

    payload: Mapping[str, Any]
    fingerprint: str
    photo_etag: str | None = None


@dataclass(frozen=True)
class Mapped:
    source_key: str
    payload: dict[str, Any]
    fingerprint: str
    undialable: int = 0  # phone numbers [profile.phones] could not make dialable, kept as they were


@dataclass(frozen=True)
class Gone:
    source_key: str
    reason: str  # e.g. "deleted", "disabled", "no phone or email": for logs and `explain`, never contact data


SourceChange = Mapped | Gone


def read_user(item: Mapping[str, Any], profile: Profile, group_members: GroupMembers | None = None,
              manager_name: str | None = None) -> SourceChange:
    """One /users/delta item as a source change (filters.user_exclusion says why a user is Gone)."""
    key = user_key(_id(item))
    reason = user_exclusion(item, profile, group_members)
    if reason is not None:
        return Gone(key, reason)
    return _mapped(key, map_user(item, manager_name, profile), profile, profile.source_of("users"))


def read_org_contact(item: Mapping[str, Any], profile: Profile, manager_name: str | None = None,
                     ) -> SourceChange:
    """One /contacts/delta item (organizational contact) as a source change."""
    key = org_contact_key(_id(item))
    reason = org_contact_exclusion(item, profile)
    if reason is not None:
        return Gone(key, reason)
    return _mapped(key, map_org_contact(item, profile, manager_name), profile, profile.source_of("org_contacts"))


def read_folder_contact(item: Mapping[str, Any], profile: Profile, mailbox_id: str, source: Source | None = None,
                        ) -> SourceChange:
    """One contact delta item of a shared source folder (`source`, in the mailbox with user id `mailbox_id`)."""
    key = folder_contact_key(mailbox_id, _id(item))
    reason = folder_contact_exclusion(item, profile)
    if reason is not None:
        return Gone(key, reason)
    return _mapped(key, map_folder_contact(item, profile, source), profile, source)


def _id(item: Mapping[str, Any]) -> str:
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ValueError("a delta item without an id cannot be mapped")
    return item_id


def _mapped(key: str, payload: dict[str, Any], profile: Profile, source: Source | None) -> SourceChange:
    """The finished payload: numbers made dialable (if the profile asks), then galsync's categories."""
    if "displayName" not in payload:
        return Gone(key, "no name to show")
    payload, undialable = dial_payload(payload, profile.phones)
    payload = with_categories(payload, profile.categories_of(source))
    return Mapped(key, payload, fingerprint(payload), undialable)


def merge_sources(records: Iterable[SourceRecord], precedence: Sequence[str]) -> dict[str, DesiredContact]:
    """The contacts a target should hold, one per person.

    `precedence` lists source key prefixes in the profile's source order (see `source_key_prefix`). Two
    records are the same person when their first email addresses are equal ignoring case; the one whose
    prefix comes first wins (then the smaller source key, so the result never depends on input order).
    Records without an email address are never merged.
    """
    winners: dict[str, tuple[tuple[int, str], SourceRecord]] = {}
    out: dict[str, DesiredContact] = {}
    for record in records:
        identity = _identity(record.payload)
        if identity is None:
            out[record.source_key] = _desired(record)
            continue
        rank = (_rank(record.source_key, precedence), record.source_key)
        best = winners.get(identity)
        if best is None or rank < best[0]:
            winners[identity] = (rank, record)
    for _, record in winners.values():
        out[record.source_key] = _desired(record)
    return dict(sorted(out.items()))


def _identity(payload: Mapping[str, Any]) -> str | None:
    emails = payload.get("emailAddresses") or []
    if emails and isinstance(emails[0], Mapping) and isinstance(emails[0].get("address"), str):
        return str(emails[0]["address"]).casefold()
    return None


def _rank(source_key: str, precedence: Sequence[str]) -> int:
    for i, prefix in enumerate(precedence):
        if source_key.startswith(prefix):
            return i
    return len(precedence)


def _desired(record: SourceRecord) -> DesiredContact:
    return DesiredContact(record.payload, record.fingerprint, record.photo_etag)
