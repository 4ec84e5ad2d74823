"""Read a profile's sources by delta and turn what changed into source records.

First run (or after an expired token or a config change): a full read, after which every stored source key
of that source that was not seen is removed. Later runs: only what changed since the stored delta link, so
a quiet directory costs one request per source (I4).

The manager's name is not in a user's delta item (only the manager's id), so it is looked up: first among
the users of this run, then in the stored records, and only then with one GET per unknown manager.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync_core.core.filters import GroupMembers
from sync_core.core.mapping import folder_contact_select, manager_ref, org_contact_select, user_select
from sync_core.core.profile import Profile, Source
from sync_core.core.sources import (
    Gone,
    SourceChange,
    read_folder_contact,
    read_org_contact,
    read_user,
    source_key_prefix,
    user_key,
)
from sync_core.graph import DeltaTokenExpired, GraphClient, NotFound
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.sources")


@dataclass
class SourceRead:
    """What one source returned: changes by key, whether it was a full read, and the link to save."""

    source: Source
    changes: dict[str, SourceChange] = field(default_factory=dict)
    full: bool = False
    delta_link: str | None = None
    items: int = 0
    folder_mailbox: str | None = None  # user id of a folder source's mailbox


def read_source(client: GraphClient, store: StateStore, profile: Profile, source: Source,
                members: GroupMembers, *, full: bool) -> SourceRead:
    """Delta-read one source; on an expired token, start over with a full read."""
    link = None if full else store.get_delta_link(profile.name, source.name)
    try:
        return _read(client, store, profile, source, members, link)
    except DeltaTokenExpired:
        log.info("profile %s: delta token of %s expired; reading it in full", profile.name, source.name)
        return _read(client, store, profile, source, members, None)


def _read(client: GraphClient, store: StateStore, profile: Profile, source: Source, members: GroupMembers,
          link: str | None) -> SourceRead:
    out = SourceRead(source, full=link is None)
    if source.kind == "users":
        path, params = "/users/delta", {"$select": ",".join(user_select(profile))}
    elif source.kind == "org_contacts":
        path, params = "/contacts/delta", {"$select": ",".join(org_contact_select(profile))}
    else:
        mailbox, folder_id = _folder_source(client, store, profile, source)
        out.folder_mailbox = mailbox
        path = f"/users/{mailbox}/contactFolders/{folder_id}/contacts/delta"
        params = {"$select": ",".join(folder_contact_select(profile))}
    delta = client.delta(link, None) if link else client.delta(path, params)
    if source.kind == "users":
        out.changes = _users(client, store, profile, delta, members)
    else:
        for item in delta:
            out.items += 1
            change = (read_org_contact(item, profile) if source.kind == "org_contacts"
                      else read_folder_contact(item, profile, out.folder_mailbox or ""))
            out.changes[change.source_key] = change
    out.items = max(out.items, len(out.changes))
    out.delta_link = delta.delta_link
    return out


def _users(client: GraphClient, store: StateStore, profile: Profile, items: Iterator[dict[str, Any]],
           members: GroupMembers) -> dict[str, SourceChange]:
    """Map user delta items, resolving managers' names after the walk (a manager may come later)."""
    wants_manager = "manager" in profile.mapped_fields
    changes: dict[str, SourceChange] = {}
    names: dict[str, str] = {}  # user id -> displayName, from this run's items
    waiting: list[tuple[dict[str, Any], str | None, bool]] = []  # (item, manager id, manager stated)
    for item in items:
        if "@removed" not in item and isinstance(item.get("displayName"), str):
            names[str(item["id"])] = item["displayName"]
        if not wants_manager:
            change = read_user(item, profile, members)
            changes[change.source_key] = change
            continue
        ref = manager_ref(item)
        waiting.append((item, ref.manager_id, ref.stated))
    if waiting:
        resolver = _ManagerNames(client, store, profile, names)
        keys = [user_key(str(item["id"])) for item, _, stated in waiting if not stated]
        previous = store.get_source_records(profile.name, keys) if keys else {}
        for item, manager_id, stated in waiting:
            if stated:
                name = resolver.name(manager_id) if manager_id else None
            else:
                prev = previous.get(user_key(str(item["id"])))
                name = prev.payload.get("manager") if prev is not None else None
            change = read_user(item, profile, members, manager_name=name)
            changes[change.source_key] = change
    return changes


class _ManagerNames:
    def __init__(self, client: GraphClient, store: StateStore, profile: Profile, names: Mapping[str, str]) -> None:
        self._client, self._store, self._profile = client, store, profile
        self._names = dict(names)

    def name(self, manager_id: str) -> str | None:
        if manager_id in self._names:
            return self._names[manager_id]
        stored = self._store.get_source_records(self._profile.name, [user_key(manager_id)]).get(user_key(manager_id))
        if stored is not None and isinstance(stored.payload.get("displayName"), str):
            self._names[manager_id] = stored.payload["displayName"]
            return self._names[manager_id]
        try:
            user = self._client.get(f"/users/{manager_id}", params={"$select": "id,displayName"})
        except NotFound:
            return None
        self._names[manager_id] = str(user.get("displayName") or "")
        return self._names[manager_id] or None


def fetch_users(client: GraphClient, store: StateStore, profile: Profile, user_ids: list[str],
                members: GroupMembers) -> dict[str, SourceChange]:
    """Read single users whose group-based filter result flipped (they are not in this run's delta)."""
    select = ",".join(s for s in user_select(profile) if s != "manager")
    out: dict[str, SourceChange] = {}
    for user_id in user_ids:
        try:
            item = client.get(f"/users/{user_id}", params={"$select": select,
                                                            "$expand": "manager($select=id,displayName)"})
        except NotFound:
            out[user_key(user_id)] = Gone(user_key(user_id), "deleted")
            continue
        manager = item.get("manager") if isinstance(item.get("manager"), dict) else None
        name = manager.get("displayName") if manager else None
        change = read_user(item, profile, members, manager_name=name)
        out[change.source_key] = change
    return out


def removed_after_full_read(store: StateStore, profile: Profile, read: SourceRead) -> dict[str, SourceChange]:
    """After a full read: stored keys of this source that were not seen are gone from the directory."""
    prefix = source_key_prefix(read.source, read.folder_mailbox)
    out: dict[str, SourceChange] = {}
    for record in store.iter_source_records(profile.name):
        if record.source_key.startswith(prefix) and record.source_key not in read.changes:
            out[record.source_key] = Gone(record.source_key, "not in a full read")
    return out


def _folder_source(client: GraphClient, store: StateStore, profile: Profile, source: Source) -> tuple[str, str]:
    """User id of a folder source's mailbox and the folder's id, looked up once and remembered."""
    key = f"{profile.name}|{source.name}"
    cached = store.get_doc("folder-source", key)
    if cached is not None:
        return str(cached[0]["mailbox"]), str(cached[0]["folder"])
    user = client.get(f"/users/{source.mailbox}", params={"$select": "id"})
    mailbox = str(user["id"])
    name = (source.folder or "").replace("'", "''")
    folders = list(client.iter_pages(f"/users/{mailbox}/contactFolders",
                                     params={"$filter": f"displayName eq '{name}'"}))
    if len(folders) != 1:
        raise ValueError(f'profile "{profile.name}": source folder "{source.folder}" in mailbox {source.mailbox}: '
                         f"found {len(folders)} folders with that name, expected exactly one")
    folder_id = str(folders[0]["id"])
    store.put_doc("folder-source", key, {"mailbox": mailbox, "folder": folder_id})
    return mailbox, folder_id
