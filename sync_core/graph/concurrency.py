"""How many Graph requests may be in flight: per mailbox (Outlook allows 4), in total (a setting), and when.

The limit follows the work: each mailbox a run touches may have 4 requests in flight, so 40 mailboxes keep
up to 160 requests (40 `$batch` calls of one mailbox each) busy. The total cap is there only so that one
process stays within Graph's app-wide rate; its default, APP_WIDE_IN_FLIGHT, is the number of calls in
flight at which one process sends that rate when a request takes GRAPH_REQUEST_SECONDS (Little's law: in
flight = rate x time; a call has at most 4 of its requests running at once). More calls in flight than
that would only meet Graph's 429s. Calls that touch no mailbox (directory reads) have their own, smaller cap,
DIRECTORY_IN_FLIGHT: the directory's budget is per app and tenant, not per mailbox.

A request takes every slot it needs at once or none, so a $batch that touches several mailboxes can never
deadlock against another one. A mailbox that answered 429 is held back until its Retry-After has passed;
the others keep going (docs/graph-facts.md: one throttled mailbox does not affect others). Waiters on the same
mailbox are served first come, first served, so a batch needing all 4 slots of a mailbox is not starved
by single requests.

Slots are handed over, not raced for: the thread that frees slots (or lifts a hold-off) grants them to
the waiters that can start now, oldest first, and wakes only those. Each waiter sleeps on its own
condition, so a release on one mailbox never wakes the threads waiting for another (with one shared
condition and `notify_all`, 100 waiting threads woke on every release and the fill spent seconds of CPU
doing nothing).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

OUTLOOK_CONCURRENCY_PER_MAILBOX = 4
GRAPH_APP_REQUESTS_PER_SECOND = 130_000 / 10  # Graph's global limit, per app across tenants
GRAPH_REQUEST_SECONDS = 0.1  # the time of one Outlook request the cap is sized for
APP_WIDE_IN_FLIGHT = math.ceil(
    GRAPH_APP_REQUESTS_PER_SECOND * GRAPH_REQUEST_SECONDS / OUTLOOK_CONCURRENCY_PER_MAILBOX
)  # 325 calls
# Within Graph's smallest directory budget (3,500 resource units per 10 s) while a request takes 50 ms or more.
DIRECTORY_IN_FLIGHT = 16


class _Waiter:
    """One request waiting for its slots; `granted` is set (under the lock) by whoever hands them over."""

    __slots__ = ("ticket", "need", "granted", "wake")

    def __init__(self, ticket: int, need: Mapping[str, int]) -> None:
        self.ticket = ticket
        self.need = need
        self.granted = False
        self.wake: threading.Condition | None = None  # made when it has to sleep


def parallel_calls(demands: Iterable[Mapping[str, int]], cap: int,
                   per_mailbox: int = OUTLOOK_CONCURRENCY_PER_MAILBOX, directory: int = DIRECTORY_IN_FLIGHT) -> int:
    """How many of these calls (each its slots per mailbox) can be in flight together, at most `cap`.

    Per mailbox, as many as fit its slots when each needs the most any of them needs; calls that touch no
    mailbox, up to the `directory` cap. Calls that touch several mailboxes are counted once per mailbox, so
    this is an upper bound: a thread beyond it would only wait for slots.
    """
    calls = 0
    unbound = 0
    touching: dict[str, int] = {}  # mailbox -> calls that touch it
    biggest: dict[str, int] = {}  # mailbox -> the most slots of it one call needs
    for demand in demands:
        calls += 1
        if not demand:
            unbound += 1
        for m, n in demand.items():
            touching[m] = touching.get(m, 0) + 1
            biggest[m] = max(biggest.get(m, 1), min(n, per_mailbox))
    together = min(unbound, directory) + sum(min(n, per_mailbox // biggest[m]) for m, n in touching.items())
    return max(1, min(calls, cap, together))


class Limiter:
    def __init__(
        self,
        max_in_flight: int = APP_WIDE_IN_FLIGHT,
        per_mailbox: int = OUTLOOK_CONCURRENCY_PER_MAILBOX,
        directory: int = DIRECTORY_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1 or per_mailbox < 1 or directory < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.max_in_flight = max_in_flight
        self.per_mailbox = per_mailbox
        self.directory = directory  # most calls in flight that touch no mailbox
        self._directory_in_flight = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._by_mailbox: dict[str, int] = {}
        self._not_before: dict[str, float] = {}  # mailbox -> monotonic time its backoff ends
        self._tickets = itertools.count()
        self._queues: dict[str, deque[_Waiter]] = {}  # mailbox -> its waiters, in arrival order
        self._unbound: dict[int, _Waiter] = {}  # waiters that need no mailbox (only the global cap holds them)
        self._wakeups = 0

    @contextmanager
    def slot(self, demand: Mapping[str, int]) -> Iterator[None]:
        """Hold one global slot and `demand[m]` slots of each mailbox m (capped at the per-mailbox limit)."""
        need = {m: min(max(n, 1), self.per_mailbox) for m, n in demand.items()}
        self._acquire(need)
        try:
            yield
        finally:
            self._release(need)

    def hold_off(self, mailbox: str, seconds: float) -> None:
        """No new request to `mailbox` starts in the next `seconds` (it answered 429)."""
        now = time.monotonic()
        until = now + max(seconds, 0.0)
        with self._lock:
            if len(self._not_before) > 1024:  # forget backoffs that are over (many mailboxes, long runs)
                self._not_before = {m: t for m, t in self._not_before.items() if t > now}
            if until <= self._not_before.get(mailbox, 0.0):
                return  # a shorter hold-off never shortens the one in force
            self._not_before[mailbox] = until
            # Its waiters now sleep until `until` (woken to set their timer); held back, they no longer
            # hold up later waiters on their other mailboxes, which may start now.
            affected: set[str] = {mailbox}
            for waiter in self._queues.get(mailbox, ()):
                affected.update(waiter.need)
                if waiter.wake is not None:
                    waiter.wake.notify()
            self._dispatch(affected)

    def in_flight(self, mailbox: str | None = None) -> int:
        with self._lock:
            return self._in_flight if mailbox is None else self._by_mailbox.get(mailbox, 0)

    def waiting(self, mailbox: str | None = None) -> int:
        """Requests waiting for slots (of `mailbox`, or all)."""
        with self._lock:
            if mailbox is not None:
                return len(self._queues.get(mailbox, ()))
            tickets = {w.ticket for queue in self._queues.values() for w in queue}
            return len(tickets) + len(self._unbound)

    @property
    def wakeups(self) -> int:
        """How many times a waiting thread was woken (for tests: a release wakes only who can start)."""
        with self._lock:
            return self._wakeups

    # ---- acquiring and releasing (all under the lock) ---------------------------------------------------

    def _acquire(self, need: Mapping[str, int]) -> None:
        with self._lock:
            waiter = _Waiter(next(self._tickets), need)
            self._enqueue(waiter)
            now = time.monotonic()
            if self._can_start(waiter, now):
                self._grant(waiter)
                return
            waiter.wake = threading.Condition(self._lock)
            try:
                while not waiter.granted:
                    gate = self._gate(need, now)
                    timed_out = not waiter.wake.wait(timeout=gate - now if gate > now else None)
                    self._wakeups += 1
                    now = time.monotonic()
                    if timed_out and not waiter.granted:
                        # Our hold-off is over: we may start now, and we again hold up later waiters.
                        self._dispatch(need, now)
            except BaseException:
                if waiter.granted:
                    self._give_back(need)
                else:
                    self._dequeue(waiter)
                    self._dispatch(need)  # our leaving may let the ones behind us start
                raise

    def _release(self, need: Mapping[str, int]) -> None:
        with self._lock:
            self._give_back(need)

    def _give_back(self, need: Mapping[str, int]) -> None:
        was_full = self._in_flight >= self.max_in_flight
        self._in_flight -= 1
        if not need:
            self._directory_in_flight -= 1
        for m, n in need.items():
            left = self._by_mailbox[m] - n
            if left:
                self._by_mailbox[m] = left
            else:
                del self._by_mailbox[m]
        # A freed global or directory slot may let any waiter start; freed mailbox slots only that mailbox's.
        self._dispatch(None if was_full or not need else need)

    def _dispatch(self, mailboxes: Iterable[str] | None, now: float | None = None) -> None:
        """Grant slots, oldest first, to the waiters that can start now among those at the head of the
        queues of `mailboxes` (None: every queue, and the waiters that need no mailbox)."""
        if now is None:
            now = time.monotonic()
        pending = set(self._queues) if mailboxes is None else set(mailboxes)
        candidates = dict(self._unbound) if mailboxes is None else {}
        while self._in_flight < self.max_in_flight:
            for m in pending:
                head = self._head(m, now)
                if head is not None:
                    candidates[head.ticket] = head
            if not candidates:
                return
            pending = set()
            for ticket in sorted(candidates):
                waiter = candidates[ticket]
                if self._in_flight >= self.max_in_flight:
                    return
                if not waiter.granted and self._can_start(waiter, now):
                    self._grant(waiter)
                    pending.update(waiter.need)  # the next in these queues may start too
            candidates = {}
            if not pending:
                return

    def _can_start(self, waiter: _Waiter, now: float) -> bool:
        if self._in_flight >= self.max_in_flight or self._gate(waiter.need, now) > now:
            return False
        if not waiter.need and self._directory_in_flight >= self.directory:
            return False
        for m, n in waiter.need.items():
            if self._by_mailbox.get(m, 0) + n > self.per_mailbox or self._head(m, now) is not waiter:
                return False
        return True

    def _head(self, mailbox: str, now: float) -> _Waiter | None:
        """The first waiter on `mailbox` not held back by a 429: nobody behind it may start before it."""
        for waiter in self._queues.get(mailbox, ()):
            if not self._not_before or self._gate(waiter.need, now) <= now:
                return waiter
        return None

    def _gate(self, need: Iterable[str], now: float) -> float:
        """When the last hold-off among these mailboxes ends (`now` or earlier: none is in force)."""
        if not self._not_before:
            return now
        return max((self._not_before.get(m, now) for m in need), default=now)

    def _grant(self, waiter: _Waiter) -> None:
        self._dequeue(waiter)
        waiter.granted = True
        self._in_flight += 1
        if not waiter.need:
            self._directory_in_flight += 1
        for m, n in waiter.need.items():
            self._by_mailbox[m] = self._by_mailbox.get(m, 0) + n
        if waiter.wake is not None:
            waiter.wake.notify()

    def _enqueue(self, waiter: _Waiter) -> None:
        if not waiter.need:
            self._unbound[waiter.ticket] = waiter
        for m in waiter.need:
            self._queues.setdefault(m, deque()).append(waiter)

    def _dequeue(self, waiter: _Waiter) -> None:
        if not waiter.need:
            self._unbound.pop(waiter.ticket, None)
        for m in waiter.need:
            queue = self._queues[m]
            if queue[0] is waiter:
                queue.popleft()
            else:
                queue.remove(waiter)
            if not queue:
                del self._queues[m]
