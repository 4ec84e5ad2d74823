"""The two HTTP endpoints Graph calls: change notifications and lifecycle events. HTTP in, answer + queue out.

Never a Graph call here (I6): the answer is computed from the request, the cached subscription registry and
the pending flags, and every piece of work goes on the sync-source queue. A burst of notifications for one
profile becomes one queue message: the first marks the profile's pending flag in the store and enqueues;
the rest see the flag (or this process's short memo of it) and add nothing, until the sync worker takes
the flag when it starts (`run_exclusively`), after which the next notification enqueues again. A flag that
nobody will take (a lease ttl old and no live lease: the worker that was to run for it died) does not hold
notifications back: the next one enqueues again (`claim_pending`), so a dead worker delays a change by
about a lease ttl, not until the safety-net timer.

The memo is what keeps a burst from reading storage 1,000 times; its lifetime is short because a
notification it swallows after the worker took the flag waits for the next notification or the
safety-net timer.

Each time it consults the store for a profile, it also notes when the notification arrived, by `wall_clock`
(propagation.py: the sync serving it measures the time to its last write on the phones).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sync_core.service.notifications import (
    BadNotification,
    Notification,
    SubscriptionRegistry,
    parse,
    route,
    validation_answer,
)
from sync_core.service.propagation import note_arrival
from sync_core.service.queue_messages import LifecycleMessage, SyncMessage, sync_lease
from sync_core.service.runtime import iso_time
from sync_core.settings import LEASE_SECONDS
from sync_core.state.base import StateError, StateStore
from sync_core.state.leases import claim_pending

log = logging.getLogger("galsync.webhook")

PENDING_MEMO_SECONDS = 1.0
TEXT = "text/plain; charset=utf-8"
# Sent with every answer: the body is never to be sniffed into HTML, never cached.
SAFE_HEADERS: Mapping[str, str] = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Answer:
    """What the HTTP function returns, and the sync-source messages its queue output binding writes."""

    status: int
    body: str
    messages: tuple[str, ...] = ()
    content_type: str = TEXT


class PendingMemo:
    """Profiles this process saw pending in the last `seconds`: skip the store while a burst lasts."""

    def __init__(self, clock: Callable[[], float], seconds: float = PENDING_MEMO_SECONDS) -> None:
        self._clock = clock
        self._seconds = seconds
        self._seen: dict[str, float] = {}

    def fresh(self, profile: str) -> bool:
        seen = self._seen.get(profile)
        return seen is not None and self._clock() - seen < self._seconds

    def note(self, profile: str) -> None:
        self._seen[profile] = self._clock()


class Webhook:
    """The notification and lifecycle endpoints of one process; share one instance per process."""

    def __init__(self, store: StateStore, tenant_id: str, profiles: Collection[str], *,
                 clock: Callable[[], float] = time.monotonic,
                 memo_seconds: float = PENDING_MEMO_SECONDS, wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._wall_clock = wall_clock
        self._tenant_id = tenant_id
        self._profiles = frozenset(profiles)
        self.registry = SubscriptionRegistry(store, clock)
        self.memo = PendingMemo(clock, memo_seconds)
        self._pending_lock = threading.Lock()

    def notifications(self, params: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Answer:
        """POST /api/notifications: the validation handshake, or change notifications -> 202."""
        return self._handle(params, headers, body, lifecycle=False)

    def lifecycle(self, params: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Answer:
        """POST /api/lifecycle: the validation handshake, or lifecycle events -> 202."""
        return self._handle(params, headers, body, lifecycle=True)

    def _handle(self, params: Mapping[str, str], headers: Mapping[str, str], body: bytes, *,
                lifecycle: bool) -> Answer:
        try:
            if "validationToken" in params:
                return Answer(200, validation_answer(params["validationToken"]))
            notes = parse(body, _header(headers, "content-type"), lifecycle=lifecycle)
            return self._accept(notes)
        except BadNotification as bad:
            log.warning("webhook refused a request (%d): %s", bad.status, bad)
            return Answer(bad.status, f"{bad}\n")
        except StateError as error:
            # Nothing was enqueued; a 503 makes Graph deliver again later, which is what is wanted.
            log.error("webhook could not reach the state store: %s", error)
            return Answer(503, "state store unavailable; retry later\n")

    def _accept(self, notes: list[Notification]) -> Answer:
        arrived_at = iso_time(self._wall_clock())
        routed = route(notes, self.registry, self._tenant_id, self._profiles)
        messages = [LifecycleMessage(known.subscription_id, event).to_json() for known, event in routed.lifecycle]
        enqueued: list[str] = []
        try:
            for profile in routed.profiles:
                if self._claim(profile, arrived_at):
                    enqueued.append(profile)
        except StateError as error:
            # The profiles already claimed must still be enqueued (their flags are set, so Graph's retry of
            # this request will skip them); the 503 makes Graph retry for the others.
            log.error("webhook could not reach the state store after %d profile(s): %s", len(enqueued), error)
            messages += [SyncMessage(p, "notification").to_json() for p in enqueued]
            return Answer(503, "state store unavailable; retry later\n", tuple(messages))
        messages += [SyncMessage(p, "notification").to_json() for p in enqueued]
        if messages:
            log.info("notifications: %d accepted, %d profile(s) to sync, %d enqueued, %d lifecycle event(s)",
                     routed.accepted, len(routed.profiles), len(enqueued), len(routed.lifecycle))
        else:
            log.debug("notifications: %d accepted, nothing new to enqueue", routed.accepted)
        return Answer(202, "accepted\n", tuple(messages))

    def _claim(self, profile: str, arrived_at: str) -> bool:
        """True if this request is the one to enqueue the profile's sync (its pending flag was clear, or stale).
        The arrival is noted first: a sync that takes the flag finds it."""
        with self._pending_lock:
            if self.memo.fresh(profile):
                return False
            note_arrival(self._store, profile, arrived_at)
            claimed = claim_pending(self._store, sync_lease(profile), LEASE_SECONDS)
            self.memo.note(profile)
            return claimed


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict from a caller other than the Functions host
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
