"""This run's source changes, compared with the stored records and stored a chunk at a time.

The source reader hands changes over in chunks (source_reader.CHUNK_ITEMS); each chunk is compared with the
stored records and, in a real run, stored at once, so a first read of a large directory never holds all of
it. Crash safety (docs/architecture.md, I5): before the first source record of a run changes, an outbox that pushes
every key to every target is written (keeping the fill and removals of an outbox left by an earlier run).
The sync narrows it to the changed keys once the walk is complete; a crash before that replays a full push,
which writes only what differs.

A dry run stores nothing: it keeps the changes in memory for the planner instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from sync_core.core.fingerprint import fingerprint
from sync_core.core.profile import Profile
from sync_core.core.records import SourceRecord
from sync_core.core.sources import Gone, Mapped, SourceChange
from sync_core.state import docs

from . import photos
from .runtime import Runtime

MAX_KEYS_PER_MESSAGE = 1000  # beyond this a push plans against every source key (queue messages are 64 KB)


@dataclass
class SourceChanges:
    """What changed in this run's sources; in a real run already stored, in a dry run held in memory."""

    rt: Runtime
    profile: Profile
    run_id: str
    dry_run: bool
    outbox: docs.Outbox | None  # the outbox an earlier, unfinished run left (None: none)
    # Told the keys of each set of new or changed records once they are stored (a real run only).
    on_stored: Callable[[Collection[str]], None] | None = None
    notified_at: str | None = None  # the first notification this run serves arrived then (kept in the outbox)
    changed: int = 0
    removed: int = 0
    undialable: int = 0  # phone numbers of the items read that [profile.phones] kept as they were
    # Changed and removed keys; None once there are more than a push message can name (push everything).
    keys: set[str] | None = field(default_factory=set)
    renamed: dict[str, str] = field(default_factory=dict)  # manager renames: old displayName -> new
    # Dry run only: what a real run would have stored.
    new_records: dict[str, SourceRecord] = field(default_factory=dict)
    removed_keys: set[str] = field(default_factory=set)
    previous: dict[str, SourceRecord] = field(default_factory=dict)
    _outbox_written: bool = False

    def add(self, changes: Mapping[str, SourceChange]) -> None:
        """Compare a chunk of changes with the stored records; keep (store) what really changed."""
        if not changes:
            return
        store = self.rt.store
        previous = store.get_source_records(self.profile.name, list(changes))
        new_records: dict[str, SourceRecord] = {}
        removed: set[str] = set()
        for key, change in changes.items():
            old = previous.get(key)
            if isinstance(change, Mapped):
                self.undialable += change.undialable
                if old is None or old.fingerprint != change.fingerprint:
                    new_records[key] = SourceRecord(key, change.fingerprint, change.payload,
                                                    old.photo_etag if old is not None else None)
            elif isinstance(change, Gone) and old is not None:
                removed.add(key)
        if "manager" in self.profile.mapped_fields:
            self.renamed.update(_renames(previous, new_records))
        if not self.dry_run:
            # Photos (issue 10): not in the users delta; each user whose delta item arrived gets one check.
            new_records.update(photos.arrived_photo_changes(self.rt.client, self.profile, changes, new_records,
                                                            previous))
        self._keep(new_records, removed, previous)

    def apply_manager_renames(self) -> None:
        """Reports of a manager whose name changed get the new name (their own delta items did not change)."""
        renamed = {old: new for old, new in self.renamed.items() if old != new}
        if not renamed:
            return
        out: dict[str, SourceRecord] = {}
        for record in self.rt.store.iter_source_records(self.profile.name):
            record = self.new_records.get(record.source_key, record)
            manager = record.payload.get("manager")
            if manager in renamed:
                payload = {**record.payload, "manager": renamed[manager]}
                out[record.source_key] = SourceRecord(record.source_key, fingerprint(payload), payload,
                                                      record.photo_etag)
        self._keep(out, set(), {})

    def _keep(self, new_records: dict[str, SourceRecord], removed: set[str],
              previous: Mapping[str, SourceRecord]) -> None:
        if not new_records and not removed:
            return
        if self.keys is not None:
            self.keys |= set(new_records) | removed
            if len(self.keys) > MAX_KEYS_PER_MESSAGE:
                self.keys = None
        if self.dry_run:
            self.changed += len(set(new_records) - set(self.new_records))
            self.removed += len(removed - self.removed_keys)
            for key, old in previous.items():
                self.previous.setdefault(key, old)
            self.new_records.update(new_records)
            self.removed_keys |= removed
            return
        self.changed += len(new_records)
        self.removed += len(removed)
        store, name = self.rt.store, self.profile.name
        self._write_outbox_first()
        for key, old in previous.items():
            if key in new_records or key in removed:
                docs.write(store, docs.prev_key(name, key), docs.Prev(old.fingerprint, old.payload))
        store.put_source_records(name, new_records.values())
        store.delete_source_records(name, removed)
        if self.on_stored is not None and new_records:
            self.on_stored(list(new_records))

    def _write_outbox_first(self) -> None:
        if self._outbox_written:
            return
        earlier = self.outbox or docs.Outbox(self.run_id, None)
        docs.write(self.rt.store, self.profile.name,
                   docs.Outbox(self.run_id, None, earlier.fill, earlier.remove, self.notified_at))
        self._outbox_written = True


def _renames(previous: Mapping[str, SourceRecord], new_records: Mapping[str, SourceRecord]) -> dict[str, str]:
    out = {old.payload.get("displayName"): new_records[key].payload.get("displayName")
           for key, old in previous.items()
           if key in new_records and old.payload.get("displayName") != new_records[key].payload.get("displayName")}
    out.pop(None, None)
    return {str(k): str(v) for k, v in out.items() if v is not None}
