"""The values galsync remembers between runs; the state stores persist exactly these.

They are plain frozen data so the pure core (planner, drift) can take them as input and the state
stores (SQLite, Table Storage) can round-trip them without knowing what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceRecord:
    """The last mapped contact of one source object (a user, an org contact, a shared-folder contact).

    `payload` is the contact galsync wants on every target (Graph contact JSON); keeping it lets the planner
    send only the fields that changed, and lets a new target be filled without re-reading the directory.
    """

    source_key: str  # "user:<id>", "orgcontact:<id>" or "folder:<mailbox id>:<contact id>"
    fingerprint: str
    payload: Mapping[str, Any]
    photo_etag: str | None = None


@dataclass(frozen=True)
class TargetRecord:
    """What galsync last wrote for one source into one target mailbox's managed folder."""

    mailbox: str  # user id of the target mailbox
    source_key: str
    contact_id: str | None  # None while a create is in flight (recorded before the write, see executor)
    fingerprint: str  # fingerprint of the payload last written ("" while a create is in flight)
    change_key: str | None  # changeKey Graph returned for our last write; differs => edited outside galsync
    written_at: str  # ISO 8601 UTC of the last write
    photo_etag: str | None = None
    # True once the contact was deleted on a device and the profile's policy is to respect that: the planner
    # neither recreates nor updates it until the source goes away (or the policy changes to "recreate").
    deleted_on_device: bool = False


# What `Target.folder_id` holds for a profile with place = "default_folder": galsync writes through
# /users/{id}/contacts there (user-post-contacts.md), and looks the folder's real id up only where Graph needs it
# (contact delta). No Graph folder id looks like it, so the place of a stored target is known without a request.
DEFAULT_CONTACTS_FOLDER = "@default-contacts"


def folder_place(folder_id: str | None) -> str | None:
    """The profile place ("own_folder", "default_folder") a stored `Target.folder_id` is in; None if unknown."""
    if not folder_id:
        return None
    return "default_folder" if folder_id == DEFAULT_CONTACTS_FOLDER else "own_folder"


@dataclass(frozen=True)
class Target:
    """A target mailbox of a profile, with its managed folder and what kind of mailbox it is."""

    mailbox: str  # user id
    address: str = ""  # UPN or mail, for people reading reports
    folder_id: str | None = None  # the managed folder, or DEFAULT_CONTACTS_FOLDER; None until known
    purpose: str | None = None  # Graph's mailboxSettings/userPurpose: user, shared, room, ...
    active: bool = True  # False once the mailbox left the profile's targets (its contacts handled per policy)


@dataclass(frozen=True)
class Run:
    """One run of a use case, kept for `galsync status` and the doctor."""

    run_id: str
    profile: str
    kind: str  # "sync", "push", "reconcile", "subscriptions"
    started_at: str
    finished_at: str | None
    outcome: str  # "ok", "failed", "partial"
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
