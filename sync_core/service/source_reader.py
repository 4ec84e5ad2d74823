"""Read a profile's sources by delta and hand what changed, a chunk at a time, to the sync.

First run (or after an expired token or a config change): a full read, after which every stored source key
of that source that was not seen is removed. Later runs: only what changed since the stored delta link, so
a quiet directory costs one request per source (I4).

The walk never holds a whole directory: items are mapped and handed on CHUNK_ITEMS at a time, so a
100,000-user first read needs about the memory of one chunk plus the set of keys it saw.

The manager's name is not in a user's delta item (only the manager's id), so it is looked up: first among
the users of this run, then in the stored records, and only then with one GET per unknown manager. A user
whose manager has not appeared yet in this walk waits for the end of the walk (the manager may come later).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
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
from sync_core.graph import Delta, DeltaTokenExpired, GraphClient, NotFound
from sync_core.state import docs
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.sources")

CHUNK_ITEMS = 500  # delta items mapped, compared and stored together (a Graph page holds up to 999)

Chunk = dict[str, SourceChange]


@dataclass
class SourceRead:
    """What one source's walk did: whether it was a full read, the keys it saw, and the link to save."""

    source: Source
    full: bool = False
    delta_link: str | None = None
    items: int = 0
    folder_mailbox: str | None = None  # user id of a folder source's mailbox
    seen: SeenKeys = field(default_factory=lambda: SeenKeys())  # every key handed on (a full read removes the others)


class SeenKeys:
    """The keys a walk handed on, held compactly: the one thing a full read keeps per user.

    A key whose id is a GUID in its usual lower-case form (users and org contacts: nearly a whole directory)
    is held as one integer, exactly (the text is rebuilt and compared before an id is turned into a number),
    in a list that is sorted once, when it is first asked; any other key as its text. A list of numbers
    takes about half the memory a set of the keys' text would.
    """

    _KINDS = {"user": 1, "orgcontact": 2}

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._sorted = True
        self._other: set[str] = set()

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            compact = self._compact(key)
            if isinstance(compact, int):
                self._ids.append(compact)
                self._sorted = False
            else:
                self._other.add(compact)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        compact = self._compact(key)
        if not isinstance(compact, int):
            return compact in self._other
        ids = self._sorted_ids()
        at = bisect_left(ids, compact)
        return at < len(ids) and ids[at] == compact

    def __len__(self) -> int:
        ids = self._sorted_ids()
        return sum(1 for i, n in enumerate(ids) if i == 0 or ids[i - 1] != n) + len(self._other)

    def _sorted_ids(self) -> list[int]:
        if not self._sorted:
            self._ids.sort()  # in place: no second copy (a replayed delta item may appear twice)
            self._sorted = True
        return self._ids

    @classmethod
    def _compact(cls, key: str) -> int | str:
        prefix, _, rest = key.partition(":")
        kind = cls._KINDS.get(prefix)
        if kind is None or len(rest) != 36:
            return key
        try:
            number = int(rest.replace("-", ""), 16)
        except ValueError:
            return key
        h = f"{number:032x}"
        if f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" != rest:
            return key  # not the canonical form: keep the text, so distinct keys stay distinct
        return (kind << 128) | number


def read_source(client: GraphClient, store: StateStore, profile: Profile, source: Source,
                members: GroupMembers, *, full: bool, on_chunk: Callable[[Chunk], None]) -> SourceRead:
    """Delta-read one source, handing each chunk of changes to `on_chunk` as it is read; on an expired token,
    start over with a full read (chunks already handed on are handed on again: their processing is idempotent).
    """
    link = None if full else store.get_delta_link(profile.name, source.name)
    try:
        return _read(client, store, profile, source, members, link, on_chunk)
    except DeltaTokenExpired:
        log.info("profile %s: delta token of %s expired; reading it in full", profile.name, source.name)
        return _read(client, store, profile, source, members, None, on_chunk)


def _read(client: GraphClient, store: StateStore, profile: Profile, source: Source, members: GroupMembers,
          link: str | None, on_chunk: Callable[[Chunk], None]) -> SourceRead:
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
    chunks = (_user_chunks(client, store, profile, delta, members, out) if source.kind == "users"
              else _contact_chunks(profile, source.kind, delta, out))
    for chunk in chunks:
        out.seen.add_all(chunk)
        on_chunk(chunk)
    out.delta_link = delta.delta_link
    return out


def _batched(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Lists of at most `size` items; from a delta walk, a page's items are handed on when the page arrives."""
    if isinstance(items, Delta):
        yield from items.batches(size)
        return
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _contact_chunks(profile: Profile, kind: str, items: Iterable[dict[str, Any]], out: SourceRead
                    ) -> Iterator[Chunk]:
    for batch in _batched(items, CHUNK_ITEMS):
        out.items += len(batch)
        changes = (read_org_contact(item, profile) if kind == "org_contacts"
                   else read_folder_contact(item, profile, out.folder_mailbox or "", out.source) for item in batch)
        yield {change.source_key: change for change in changes}


def _user_chunks(client: GraphClient, store: StateStore, profile: Profile, items: Iterable[dict[str, Any]],
                 members: GroupMembers, out: SourceRead) -> Iterator[Chunk]:
    """Map user delta items a chunk at a time; a user whose manager has not been seen yet waits for the end."""
    if "manager" not in profile.mapped_fields:
        for batch in _batched(items, CHUNK_ITEMS):
            out.items += len(batch)
            changes = (read_user(item, profile, members) for item in batch)
            yield {change.source_key: change for change in changes}
        return
    resolver = _ManagerNames(client, store, profile)
    waiting: list[dict[str, Any]] = []
    for batch in _batched(items, CHUNK_ITEMS):
        out.items += len(batch)
        resolver.learn(batch)
        ready: list[dict[str, Any]] = []
        for item in batch:
            ref = manager_ref(item)
            (waiting if ref.stated and ref.manager_id and not resolver.seen(ref.manager_id) else ready).append(item)
        if ready:
            yield _map_users(store, profile, ready, members, resolver)
    for batch in _batched(waiting, CHUNK_ITEMS):
        yield _map_users(store, profile, batch, members, resolver)


def _map_users(store: StateStore, profile: Profile, items: list[dict[str, Any]], members: GroupMembers,
               resolver: _ManagerNames) -> Chunk:
    """Map users with their manager's name; an item that says nothing of its manager keeps the stored name."""
    unstated = [user_key(str(item["id"])) for item in items if not manager_ref(item).stated]
    previous = store.get_source_records(profile.name, unstated) if unstated else {}
    changes: Chunk = {}
    for item in items:
        ref = manager_ref(item)
        if ref.stated:
            name = resolver.name(ref.manager_id) if ref.manager_id else None
        else:
            prev = previous.get(user_key(str(item["id"])))
            name = prev.payload.get("manager") if prev is not None else None
        change = read_user(item, profile, members, manager_name=name)
        changes[change.source_key] = change
    return changes


class _ManagerNames:
    """Managers' display names: this walk's users first, then the stored records, then one GET each."""

    def __init__(self, client: GraphClient, store: StateStore, profile: Profile) -> None:
        self._client, self._store, self._profile = client, store, profile
        self._walk: dict[str, str] = {}  # user id -> displayName, from this walk's items
        self._names: dict[str, str] = {}

    def learn(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if "@removed" not in item and isinstance(item.get("displayName"), str):
                self._walk[str(item["id"])] = item["displayName"]

    def seen(self, user_id: str) -> bool:
        """Whether this walk has already returned the user (then its name is this run's name)."""
        return user_id in self._walk

    def name(self, manager_id: str) -> str | None:
        if manager_id in self._walk:
            return self._walk[manager_id]
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
        if record.source_key.startswith(prefix) and record.source_key not in read.seen:
            out[record.source_key] = Gone(record.source_key, "not in a full read")
    return out


def _folder_source(client: GraphClient, store: StateStore, profile: Profile, source: Source) -> tuple[str, str]:
    """User id of a folder source's mailbox and the folder's id, looked up once and remembered."""
    key = docs.folder_source_key(profile.name, source.name)
    cached = docs.read(store, docs.FolderSource, key)
    if cached is not None:
        return cached.mailbox, cached.folder
    user = client.get(f"/users/{source.mailbox}", params={"$select": "id"})
    mailbox = str(user["id"])
    name = (source.folder or "").replace("'", "''")
    folders = list(client.iter_pages(f"/users/{mailbox}/contactFolders",
                                     params={"$filter": f"displayName eq '{name}'"}))
    if len(folders) != 1:
        raise ValueError(f'profile "{profile.name}": source folder "{source.folder}" in mailbox {source.mailbox}: '
                         f"found {len(folders)} folders with that name, expected exactly one")
    folder_id = str(folders[0]["id"])
    docs.write(store, key, docs.FolderSource(mailbox, folder_id))
    return mailbox, folder_id
