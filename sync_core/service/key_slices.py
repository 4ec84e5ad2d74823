"""A push's source keys, a slice at a time: what a push plans and sends in one `$batch` wave.

A fill of U contacts into T mailboxes is U x T writes; held at once they are hundreds of megabytes. Instead a
push reads a slice of source records from the state store (in the store's key order), reads each target's
records of the same keys, plans and sends them, and records the answers; it reads the next slice while one is
out, and never has more than two out, so its memory is two slices whatever U and T. The state store's order
lets a push stop after any key and another message resume after it (`PushMessage.after`): one key, never a
list, goes in the message.

A push of given keys (a change, an early fill) slices that list. A push of every key slices the stored records
by range: the records a target has between the slice's first and last key are planned with them, so a record
whose source is gone is deleted in the slice its key falls in, and the last slice reaches to the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

from sync_core.core.records import SourceRecord, TargetRecord
from sync_core.core.sources import DesiredContact
from sync_core.state import docs
from sync_core.state.base import StateStore


@dataclass(frozen=True)
class KeySlice:
    """Some of a push's source keys: their desired contacts and previous versions, and how to read a target's
    records of them (`keys` given; else every record after `after` up to `upto`, None: to the end)."""

    desired: dict[str, DesiredContact]
    previous: Mapping[str, SourceRecord]
    keys: tuple[str, ...] | None
    after: str | None = None
    upto: str | None = None

    def records(self, store: StateStore, profile: str, mailbox: str) -> dict[str, TargetRecord]:
        """The target's records of this slice's keys."""
        if self.keys is not None:
            return store.get_target_records(profile, mailbox, self.keys)
        return {r.source_key: r for r in store.iter_target_records(profile, mailbox, self.after, self.upto)}


class KeySlices:
    """A single-source profile's keys to push (`keys`, or every stored key after `after`), sliced on demand.

    `take(n)` reads the next slice of at most n keys; `done(slice)` says it was sent and recorded, and
    `rest()` is what a message that carries on needs: the keys left, or the key to resume after. The next
    slice may be taken before the one before it is done (slices are sent one behind the other); they are done
    in the order they were taken.
    """

    def __init__(self, store: StateStore, profile: str, keys: tuple[str, ...] | None, after: str | None,
                 every_previous: Mapping[str, SourceRecord]) -> None:
        self.store, self.profile = store, profile
        self._keys = None if keys is None else sorted(set(keys))
        self._taken = self._done = 0  # positions in `_keys`
        self._after = after  # the last key done, for a push of every key
        self._reached = after  # the last key taken: a slice is taken before the one before it is done
        self._records: Iterator[SourceRecord] | None = None
        self._next: SourceRecord | None = None  # read ahead: tells the last slice, which reaches to the end
        self._finished = keys is not None and not keys
        self._every_previous = every_previous

    @property
    def finished(self) -> bool:
        """Every slice was taken and done."""
        return self._finished

    def take(self, n: int) -> KeySlice | None:
        """The next slice of at most `n` keys, or None when none is left."""
        if self._keys is not None:
            return self._take_listed(n)
        return self._take_stored(n)

    def done(self, piece: KeySlice) -> None:
        """The slice was sent and its answers recorded."""
        if self._keys is not None:
            self._done += len(piece.keys or ())
            self._finished = self._done >= len(self._keys)
        else:
            self._after = piece.upto
            self._finished = piece.upto is None

    def keys_left(self) -> int:
        """How many keys the slices not yet taken hold (a stored push counts the records after its key)."""
        if self._keys is not None:
            return len(self._keys) - self._taken
        if self._finished:
            return 0
        return sum(1 for _ in self.store.iter_source_records(self.profile, self._after))

    def rest(self) -> tuple[tuple[str, ...] | None, str | None]:
        """(keys, after) of a message that does what is left: the keys not done, or the key to resume after."""
        if self._keys is not None:
            return tuple(self._keys[self._done:]), None
        return None, self._after

    def _take_listed(self, n: int) -> KeySlice | None:
        assert self._keys is not None
        keys = tuple(self._keys[self._taken:self._taken + n])
        if not keys:
            return None
        self._taken += len(keys)
        found = self.store.get_source_records(self.profile, keys)
        desired = {k: DesiredContact(r.payload, r.fingerprint, r.photo_etag) for k, r in found.items()}
        previous: dict[str, SourceRecord] = {}
        for key in keys:
            prev = docs.read(self.store, docs.Prev, docs.prev_key(self.profile, key))
            if prev is not None:
                previous[key] = prev.record(key)
        return KeySlice(desired, previous, keys)

    def _take_stored(self, n: int) -> KeySlice | None:
        if self._finished or (self._records is not None and self._reached is None):
            return None  # done, or the last slice (reaching to the end) is taken
        if self._records is None:
            self._records = self.store.iter_source_records(self.profile, self._after)
            self._next = next(self._records, None)
        records: list[SourceRecord] = []
        if self._next is not None:
            records = [self._next, *islice(self._records, n - 1)]
            self._next = next(self._records, None)
        desired = {r.source_key: DesiredContact(r.payload, r.fingerprint, r.photo_etag) for r in records}
        # The last slice reaches to the end: records of keys after the last source key are planned there.
        upto = records[-1].source_key if self._next is not None else None
        piece = KeySlice(desired, self._every_previous, None, self._reached, upto)
        self._reached = upto
        return piece
