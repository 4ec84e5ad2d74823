"""`galsync explain --mailbox M --contact NAME`: where did this contact come from?

It reads the mailbox's managed folders (found by galsync's folder tag) and its default Contacts folder, with
galsync's contact tag expanded, and tells each contact's story: managed (which profile, which source
object, when galsync last wrote it, whether a phone changed it since) or foreign (created and modified
when, never written by galsync, and in a shared mailbox: probably saved on one of the phones that use it).
A contact galsync recorded as its own is managed even when a phone stripped its tag (docs/architecture.md,
"Managed contacts").

The admin asked for the contact by name, so names and numbers are in the result for the terminal; they are
never logged (I7).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sync_core.core.records import TargetRecord
from sync_core.core.tags import (
    CONTACT_TAG_EXPAND,
    FOLDER_TAG_EXPAND,
    ContactTag,
    read_contact_tag,
    read_folder_tag,
)
from sync_core.graph import Forbidden, GraphError, NotFound
from sync_core.state import docs

from .runtime import Runtime
from .status import when_text

log = logging.getLogger("galsync.explain")

_CONTACT_SELECT = ",".join((
    "displayName", "givenName", "surname", "companyName", "createdDateTime", "lastModifiedDateTime", "changeKey",
    "mobilePhone", "businessPhones", "homePhones", "emailAddresses", "parentFolderId",
))
PAGE = 1000
MAX_SIMILAR = 10


class ExplainError(LookupError):
    """The mailbox to explain cannot be found or read; the message says which and why."""


class BadQuestion(ExplainError):
    """No user or mailbox by that name or id, or no contact name: a mistake in the question (bad usage),
    not a failure of galsync."""


@dataclass(frozen=True)
class Folder:
    folder_id: str
    name: str
    profile: str | None  # the profile whose managed folder this is; None for the default Contacts folder

    def to_json(self) -> dict[str, Any]:
        return {"id": self.folder_id, "name": self.name, "managed_by_profile": self.profile}


@dataclass(frozen=True)
class ContactStory:
    contact_id: str
    display_name: str
    folder: Folder
    origin: str  # "managed" | "foreign" | "other-profile"
    created: str | None
    last_modified: str | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    profile: str | None = None  # managed: the profile that wrote it (other-profile: the profile its tag names)
    source_key: str | None = None
    source_name: str | None = None
    written_at: str | None = None
    changed_on_device: bool = False
    seen_by_reconcile: str | None = None  # checked_at of the reconcile that listed it as foreign
    story: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.contact_id, "displayName": self.display_name, "folder": self.folder.to_json(),
            "origin": self.origin, "createdDateTime": self.created, "lastModifiedDateTime": self.last_modified,
            "phones": list(self.phones), "emails": list(self.emails), "profile": self.profile,
            "source_key": self.source_key, "source_name": self.source_name, "written_by_galsync_at": self.written_at,
            "changed_on_device": self.changed_on_device, "seen_by_reconcile": self.seen_by_reconcile,
            "story": list(self.story),
        }


@dataclass(frozen=True)
class OwnerCount:
    """How many of the owner's own contacts share the default Contacts folder with a profile's (place =
    "default_folder"), as that profile's last reconcile counted them: a number, the contacts are not listed."""

    profile: str
    count: int
    checked_at: str

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "count": self.count, "checked_at": self.checked_at or None}

    def sentence(self) -> str:
        contacts = f"{self.count:,} contact" + ("s" if self.count != 1 else "")
        return (f"The default Contacts folder holds {contacts} of the mailbox owner's own beside galsync's (counted "
                f'by the nightly reconcile of profile "{self.profile}" at {when_text(self.checked_at)}); galsync '
                "leaves them alone.")


@dataclass(frozen=True)
class Explanation:
    mailbox_id: str
    address: str
    mailbox_name: str | None
    purpose: str | None
    contact_name: str
    folders: tuple[Folder, ...]
    contacts: tuple[ContactStory, ...]
    similar: tuple[str, ...]  # other display names that contain the name, when none matches exactly
    owner_contacts: tuple[OwnerCount, ...] = ()  # per profile that writes into the default Contacts folder

    @property
    def shared(self) -> bool:
        return (self.purpose or "").lower() == "shared"

    def to_json(self) -> dict[str, Any]:
        return {
            "mailbox": {"id": self.mailbox_id, "address": self.address, "displayName": self.mailbox_name,
                        "purpose": self.purpose, "shared": self.shared},
            "contact": self.contact_name, "searched_folders": [f.to_json() for f in self.folders],
            "found": len(self.contacts), "contacts": [c.to_json() for c in self.contacts],
            "similar": list(self.similar), "owner_contacts": [o.to_json() for o in self.owner_contacts],
        }


def explain(rt: Runtime, mailbox: str, contact_name: str) -> Explanation:
    """Find contacts called `contact_name` in `mailbox` (id or address) and tell each one's story."""
    wanted = contact_name.strip().casefold()
    if not wanted:
        raise BadQuestion("--contact is empty; give the contact's display name as the phone shows it")
    client = rt.client
    try:
        user = client.get(f"/users/{mailbox}", params={"$select": "id,displayName,mail,userPrincipalName"})
    except NotFound:
        raise BadQuestion(f'no user or mailbox "{mailbox}" in the directory; give its address or object id') \
            from None
    mailbox_id = str(user["id"]).lower()
    address = str(user.get("mail") or user.get("userPrincipalName") or mailbox)
    purpose = _purpose(rt, mailbox_id)
    folders = _folders(rt, mailbox_id)
    foreign_seen, owners = _foreign_seen(rt, mailbox_id)
    recorded = _recorded_contacts(rt, mailbox_id)

    matches: list[ContactStory] = []
    similar: list[str] = []
    for folder in folders:
        for item in _contacts(rt, mailbox_id, folder):
            name = str(item.get("displayName") or "")
            if name.strip().casefold() == wanted:
                matches.append(_story(rt, mailbox_id, purpose, folder, item, foreign_seen, recorded, owners))
            elif wanted in name.casefold() and name not in similar and len(similar) < MAX_SIMILAR:
                similar.append(name)
    log.info("explain: mailbox %s, %d folder(s) read, %d match(es)", mailbox_id, len(folders), len(matches))
    return Explanation(mailbox_id, address, _text(user.get("displayName")), purpose, contact_name.strip(),
                       tuple(folders), tuple(matches), tuple(similar) if not matches else (), owners)


def _purpose(rt: Runtime, mailbox_id: str) -> str | None:
    for profile in rt.config:
        known = rt.store.get_targets(profile.name).get(mailbox_id)
        if known is not None and known.purpose:
            return known.purpose
    try:
        value = rt.client.get(f"/users/{mailbox_id}/mailboxSettings/userPurpose").get("value")
    except GraphError:
        return None
    return value if isinstance(value, str) else None


def _folders(rt: Runtime, mailbox_id: str) -> list[Folder]:
    """galsync's managed folders in the mailbox (by tag), then the default Contacts folder."""
    out: list[Folder] = []
    try:
        for folder in rt.client.iter_pages(f"/users/{mailbox_id}/contactFolders",
                                           params={"$expand": FOLDER_TAG_EXPAND, "$top": "100"}):
            profile = read_folder_tag(folder)
            if profile is not None:
                out.append(Folder(str(folder["id"]), str(folder.get("displayName") or ""), profile))
    except Forbidden as e:
        raise ExplainError(f"galsync may not read the contacts of {mailbox_id}: {e}") from None
    except NotFound:
        raise ExplainError(f"{mailbox_id} has no mailbox galsync can read (no licence, or not in Exchange "
                           "Online)") from None
    out.append(Folder("", "Contacts", None))
    return out


def _contacts(rt: Runtime, mailbox_id: str, folder: Folder) -> Iterator[dict[str, Any]]:
    path = f"/users/{mailbox_id}/contactFolders/{folder.folder_id}/contacts" if folder.folder_id \
        else f"/users/{mailbox_id}/contacts"
    return rt.client.iter_pages(path, params={"$select": _CONTACT_SELECT, "$expand": CONTACT_TAG_EXPAND,
                                              "$top": str(PAGE)})


def _foreign_seen(rt: Runtime, mailbox_id: str) -> tuple[dict[str, str], tuple[OwnerCount, ...]]:
    """Contact id -> when a reconcile listed it as foreign in this mailbox; and the owner's own contacts each
    default-folder profile's reconcile counted there."""
    seen: dict[str, str] = {}
    owners: list[OwnerCount] = []
    for key, foreign in docs.read_all(rt.store, docs.Foreign):
        if docs.foreign_mailbox(key).lower() != mailbox_id:
            continue
        for contact in foreign.contacts:
            if contact["id"]:
                seen[contact["id"]] = foreign.checked_at
        if foreign.owner_contacts is not None:
            owners.append(OwnerCount(docs.foreign_profile(key), foreign.owner_contacts, foreign.checked_at))
    return seen, tuple(sorted(owners, key=lambda o: o.profile))


def _recorded_contacts(rt: Runtime, mailbox_id: str) -> dict[str, ContactTag]:
    """Contact id -> the profile and source galsync recorded it for, in this mailbox."""
    out: dict[str, ContactTag] = {}
    for profile in rt.config:
        for key, record in rt.store.get_target_records(profile.name, mailbox_id).items():
            if record.contact_id:
                out[record.contact_id] = ContactTag(profile.name, key)
    return out


def _story(rt: Runtime, mailbox_id: str, purpose: str | None, folder: Folder, item: Mapping[str, Any],
           foreign_seen: Mapping[str, str], recorded: Mapping[str, ContactTag],
           owners: tuple[OwnerCount, ...]) -> ContactStory:
    created, modified = _text(item.get("createdDateTime")), _text(item.get("lastModifiedDateTime"))
    base = ContactStory(str(item["id"]), str(item.get("displayName") or ""), folder, "foreign", created, modified,
                        _phones(item), _emails(item))
    tag = read_contact_tag(item)
    own = recorded.get(base.contact_id)
    stripped = own is not None and tag != own  # galsync's by its record, whatever became of its tag
    tag = own if own is not None else tag
    where = f'the folder "{folder.name}"' + (f' (galsync\'s folder for profile "{folder.profile}")'
                                              if folder.profile else " (the mailbox's default contacts folder)")
    if tag is not None and tag.profile in rt.config.names:
        record = rt.store.get_target_records(tag.profile, mailbox_id).get(tag.source_key)
        source = rt.store.get_source_records(tag.profile, [tag.source_key]).get(tag.source_key)
        source_name = _text(source.payload.get("displayName")) if source is not None else None
        changed = record is not None and record.change_key is not None and record.change_key != item.get("changeKey")
        return replace(base, origin="managed", profile=tag.profile, source_key=tag.source_key,
                       source_name=source_name, written_at=record.written_at if record else None,
                       changed_on_device=changed or stripped,
                       story=_managed_story(tag.profile, tag.source_key, source_name, record, changed, where)
                       + ((STRIPPED_TAG_LINE,) if stripped else ()))
    seen = foreign_seen.get(base.contact_id)
    other = tag.profile if tag is not None else None
    return replace(base, origin="other-profile" if other is not None else "foreign", profile=other,
                   seen_by_reconcile=seen or None,
                   story=_foreign_story(rt, purpose, folder, created, modified, where, seen, other)
                   + (_counted_line(owners) if folder.profile is None and tag is None else ()))


STRIPPED_TAG_LINE = ("Its hidden galsync tag is gone (a phone saved back its own copy of it); it is galsync's all the "
                     "same, by galsync's record of it, and the nightly reconcile puts the tag back.")


def _managed_story(profile: str, source_key: str, source_name: str | None, record: TargetRecord | None,
                   changed: bool, where: str) -> tuple[str, ...]:
    kind, _, object_id = source_key.partition(":")
    what = {"user": "the directory user", "orgcontact": "the organizational contact",
            "folder": "the shared-folder contact"}.get(kind, "the source object")
    lines = [f'galsync created it, for profile "{profile}", from {what} {source_name or ""} ({object_id}).'
             .replace("  ", " "),
             f"It lives in {where}."]
    if record is not None:
        lines.append(f"galsync last wrote it at {when_text(record.written_at)}.")
        if changed:
            lines.append("It was changed outside galsync since then (on a phone or in Outlook); the nightly "
                         "reconcile puts galsync's fields back as the profile's field policies say.")
    else:
        lines.append("galsync has no record of writing it to this mailbox (a write whose answer was lost): the "
                     "next reconcile adopts it or removes it.")
    return tuple(lines)


def _foreign_story(rt: Runtime, purpose: str | None, folder: Folder, created: str | None, modified: str | None,
                   where: str, seen: str | None, other_profile: str | None) -> tuple[str, ...]:
    lines = [f"galsync did not write it: it has no galsync tag. It was created at {when_text(created)} and last "
             f"modified at {when_text(modified)}, in {where}."]
    if other_profile is not None:
        lines[0] = (f'It carries galsync\'s tag for profile "{other_profile}", which this configuration does not '
                    f"have (renamed or removed?), so galsync now treats it as foreign. Created at "
                    f"{when_text(created)}, last modified at {when_text(modified)}, in {where}.")
    if (purpose or "").lower() == "shared":
        lines.append("This is a shared mailbox: every phone signed in to it shares its one address book, so it was "
                     "probably saved on one of those phones (for example from the call log) and now shows on all "
                     "of them.")
    if folder.profile is not None:
        policy = rt.config.profile(folder.profile).policies.foreign_contacts if folder.profile in rt.config.names \
            else "report"
        if policy == "delete":
            lines.append(f'Profile "{folder.profile}" has foreign_contacts = "delete": the nightly reconcile '
                         "deletes it from galsync's folder.")
        else:
            lines.append(f'galsync leaves it alone (profile "{folder.profile}": foreign_contacts = "report"); '
                         "`galsync doctor` lists it.")
    else:
        lines.append("It is outside galsync's folders; galsync never touches it.")
    if seen:
        lines.append(f"The nightly reconcile reported it at {when_text(seen)}.")
    return tuple(lines)


def _counted_line(owners: tuple[OwnerCount, ...]) -> tuple[str, ...]:
    """For a contact of the owner's own in a default Contacts folder galsync writes into: it was counted."""
    if not owners:
        return ()
    counts = ", ".join(f'{o.count:,} for profile "{o.profile}" at {when_text(o.checked_at)}' for o in owners)
    return (f"It is one of the owner's own contacts that the nightly reconcile counts, not lists, in this folder "
            f"({counts}).",)


def _phones(item: Mapping[str, Any]) -> tuple[str, ...]:
    out = [item.get("mobilePhone")] + list(item.get("businessPhones") or []) + list(item.get("homePhones") or [])
    return tuple(str(p) for p in out if p)


def _emails(item: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(e.get("address")) for e in item.get("emailAddresses") or []
                 if isinstance(e, dict) and e.get("address"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
