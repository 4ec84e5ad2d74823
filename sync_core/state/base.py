"""The one interface every state store implements, and the errors it raises.

Two stores implement it: SQLite (the command line's embedded default) and Azure Table Storage (the function
app). Both pass the same contract suite (tests/state/test_contract.py), so the service layer never needs to
know which one it has. Limits follow Table Storage everywhere (key and value sizes), so that a profile that
works from the command line also works in Azure.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from sync_core.core.records import Run, SourceRecord, Target, TargetRecord
from sync_core.settings import SettingsError

Clock = Callable[[], float]
"""Seconds since the epoch; leases compare against it (tests pass a fake one to expire leases)."""

DEFAULT_CLOCK: Clock = time.time


class StateError(Exception):
    """The state store failed (storage unreachable, refused a request, or holds unreadable data)."""


class StateValueError(StateError, ValueError):
    """A key or value galsync tried to store is unusable; the message names it and says why."""


class ValueTooLargeError(StateValueError):
    """A value is over Table Storage's size limit (enforced by every store, so the CLI fails like Azure)."""


class ConcurrencyError(StateError):
    """Someone else changed (or deleted) a document since the ETag the caller gave was read."""


RESET_ADVICE = ("point galsync at the state of this tenant and endpoint (GALSYNC_STATE or --state), or empty this "
                "one with `galsync sync --reset-state` (safe: galsync re-adopts its contacts from the mailboxes)")


class StateMismatch(SettingsError):
    """The state store was made for another tenant or Graph endpoint than the settings name.

    A configuration error, not a storage failure: its records, ids and links belong elsewhere, so nothing
    may be read from it or written to it until the admin points galsync at the right store or resets it.
    """

    def __init__(self, message: str, advice: str = RESET_ADVICE) -> None:
        super().__init__(message)
        self.advice = advice


@dataclass(frozen=True)
class Lease:
    """Who holds a lease, and until when (seconds since the epoch, by the holder's clock)."""

    name: str
    owner: str
    expires_at: float


def link_origin(link: str) -> str:
    """Where a Graph link points, without its query (tokens stay out of messages): scheme, host, version."""
    parts = urlsplit(link)
    version = next((s for s in parts.path.split("/") if s), "")
    return f"{parts.scheme}://{parts.netloc}/{version}" if parts.netloc else link[:40]


class StateStore(ABC):
    """Everything galsync remembers between runs, scoped by profile name where that applies.

    Reads return plain values (the dataclasses of sync_core.core.records); writes are idempotent upserts or
    deletes, so a retried call is harmless. Deleting something that does not exist is not an error.
    """

    graph_endpoint: str | None = None  # set by `bind`: the Graph root every stored link must lie under

    def bind(self, graph_endpoint: str) -> None:
        """From now on, refuse stored links outside `graph_endpoint` (the configured Graph root, ".../v1.0").

        A link from another endpoint would send galsync's token elsewhere; the Graph client refuses it, but
        only the store can say that the state, not galsync, is what is wrong.
        """
        self.graph_endpoint = graph_endpoint.rstrip("/")

    def checked_link(self, profile: str, source: str, link: str | None) -> str | None:
        """`link` if it lies under the bound endpoint (or nothing is bound), else StateMismatch naming both."""
        root = self.graph_endpoint
        if link is None or root is None or link == root or link.startswith((root + "/", root + "?")):
            return link
        raise StateMismatch(f"the state store holds a link of profile {profile!r} (source {source!r}) at "
                            f"{link_origin(link)}, outside the configured Graph endpoint {root}: this state was "
                            "made for another Graph endpoint")

    # --- delta links, per (profile, source)

    @abstractmethod
    def get_delta_link(self, profile: str, source: str) -> str | None:
        """The delta link to resume `source` from, or None to start with a full read.

        StateMismatch if the store is bound (`bind`) and the link lies outside that endpoint.
        """

    @abstractmethod
    def set_delta_link(self, profile: str, source: str, link: str | None) -> None:
        """Remember the delta link; None forgets it (the next read of the source is a full read)."""

    # --- source records: the last mapped contact of each source object

    @abstractmethod
    def iter_source_records(self, profile: str, after: str | None = None) -> Iterator[SourceRecord]:
        """Every source record of the profile, read page by page (100,000 records never sit in one reply), in
        the store's key order; with `after`, only those that come after that source key.

        The order is the store's own (the same for `iter_target_records`), so a push can stop at any key and
        a later one resume after it without holding the keys it has done.
        """

    @abstractmethod
    def get_source_records(self, profile: str, keys: Iterable[str] | None = None) -> dict[str, SourceRecord]:
        """Records by source key: all of the profile's if `keys` is None, else those of `keys` that exist."""

    @abstractmethod
    def put_source_records(self, profile: str, records: Iterable[SourceRecord]) -> None:
        """Insert or replace records, written in chunks as `records` is consumed (it may be a generator)."""

    @abstractmethod
    def delete_source_records(self, profile: str, keys: Iterable[str]) -> None:
        """Forget the records of `keys`; missing ones are ignored."""

    # --- target records: what galsync wrote into one target mailbox

    @abstractmethod
    def get_target_records(self, profile: str, mailbox: str, keys: Iterable[str] | None = None
                           ) -> dict[str, TargetRecord]:
        """The mailbox's records by source key: all of them if `keys` is None, else those of `keys` that exist.

        A push for one changed contact reads one record per target, not the whole folder's records.
        """

    @abstractmethod
    def iter_target_records(self, profile: str, mailbox: str, after: str | None = None, upto: str | None = None
                            ) -> Iterator[TargetRecord]:
        """The mailbox's records page by page, in the key order of `iter_source_records`: those after the source
        key `after` (None: from the first) up to and including `upto` (None: to the last)."""

    @abstractmethod
    def put_target_records(self, profile: str, mailbox: str, records: Iterable[TargetRecord]) -> None:
        """Insert or replace records of one mailbox (each record's `mailbox` must be `mailbox`).

        Written in transactions of at most 100 operations: a failure leaves earlier transactions applied,
        which the executor tolerates because every write is an idempotent upsert.
        """

    @abstractmethod
    def delete_target_records(self, profile: str, mailbox: str, source_keys: Iterable[str]) -> None:
        """Forget these records of the mailbox (at most 100 per transaction); missing ones are fine."""

    # --- targets

    @abstractmethod
    def get_targets(self, profile: str) -> dict[str, Target]:
        """The profile's targets by mailbox id."""

    @abstractmethod
    def put_target(self, profile: str, target: Target) -> None:
        """Insert or replace one target."""

    @abstractmethod
    def delete_target(self, profile: str, mailbox: str) -> None:
        """Forget a target (its target records are separate: delete them first if they should go too)."""

    # --- leases and the pending flag

    @abstractmethod
    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the lease `name` for `ttl_seconds`.

        True if it was free, expired, or already `owner`'s (then renewed); False if another owner holds it.
        Of several concurrent acquirers exactly one gets True.
        """

    @abstractmethod
    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if `owner` holds it; otherwise do nothing (it expired and someone took it)."""

    @abstractmethod
    def get_lease(self, name: str) -> Lease | None:
        """Who holds the lease `name` and until when; None if it is free or has expired."""

    @abstractmethod
    def list_leases(self) -> list[Lease]:
        """Every lease held now (expired ones left out), ordered by name."""

    @abstractmethod
    def mark_pending(self, name: str) -> None:
        """Say that work arrived for `name` (a trigger that could not take the lease calls this).

        The flag keeps the time it was raised: marking a flag that is already set does not make it younger,
        so its age says how long the work has waited for someone to take it (see `pending_age`).
        """

    @abstractmethod
    def take_pending(self, name: str) -> bool:
        """Clear the pending flag of `name`; True if it was set. Any number of marks are taken at once."""

    @abstractmethod
    def restart_pending(self, name: str, min_age: float) -> bool:
        """Raise the pending flag of `name` afresh (its age back to 0) if it was raised at least `min_age`
        seconds ago; True if this call did. Of several concurrent callers exactly one gets True, and the
        flag is never clear meanwhile (a clear flag would let another trigger send its work too)."""

    @abstractmethod
    def pending_age(self, name: str) -> float | None:
        """Seconds since the pending flag of `name` was raised (by this store's clock, never below 0); None
        if it is clear. A flag stored without its time (by an older galsync) counts as raised long ago."""

    def has_pending(self, name: str) -> bool:
        """Whether the pending flag of `name` is set, without clearing it."""
        return self.pending_age(name) is not None

    # --- run history

    @abstractmethod
    def record_run(self, run: Run) -> None:
        """Insert or replace a run by run_id (record it when it starts, again when it ends).

        `started_at` (ISO 8601 with a time zone) orders the history and must not change between the two calls.
        """

    @abstractmethod
    def recent_runs(self, profile: str | None = None, limit: int = 20) -> list[Run]:
        """Up to `limit` runs, newest `started_at` first (ties by run_id); of one profile, or of all."""

    # --- documents for later features (subscriptions, poison messages, photos)

    @abstractmethod
    def put_doc(self, kind: str, key: str, data: dict[str, Any], etag: str | None = None) -> str:
        """Store a JSON document and return its new ETag.

        With `etag`, write only if the stored document still has that ETag, else raise ConcurrencyError
        (also when it was deleted meanwhile). Without, write unconditionally.
        """

    @abstractmethod
    def get_doc(self, kind: str, key: str) -> tuple[dict[str, Any], str] | None:
        """The document and its ETag, or None."""

    @abstractmethod
    def list_docs(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Every document of `kind` as (key, data), ordered by key."""

    @abstractmethod
    def delete_doc(self, kind: str, key: str) -> None:
        """Forget a document; a missing one is ignored."""

    # --- lifetime

    @abstractmethod
    def clear(self) -> None:
        """Forget everything this store holds: records, targets, links, leases, flags, runs and documents."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
