"""How many Graph requests may be in flight: per mailbox (Outlook allows 4), in total (a setting), and when.

One lock and one condition guard all counters, and a request takes every slot it needs at once or none,
so a $batch that touches several mailboxes can never deadlock against another one. A mailbox that
answered 429 is held back until its Retry-After has passed; the others keep going (graph-facts.md: one
throttled mailbox does not affect others). Waiters on the same mailbox are served first come, first served,
so a batch needing all 4 slots of a mailbox is not starved by single requests.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

OUTLOOK_CONCURRENCY_PER_MAILBOX = 4


class Limiter:
    def __init__(self, max_in_flight: int, per_mailbox: int = OUTLOOK_CONCURRENCY_PER_MAILBOX) -> None:
        if max_in_flight < 1 or per_mailbox < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.max_in_flight = max_in_flight
        self.per_mailbox = per_mailbox
        self._cond = threading.Condition()
        self._in_flight = 0
        self._by_mailbox: dict[str, int] = {}
        self._not_before: dict[str, float] = {}  # mailbox -> monotonic time its backoff ends
        self._tickets = itertools.count()
        self._waiting: dict[int, frozenset[str]] = {}  # ticket -> mailboxes, in arrival order

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
        with self._cond:
            if len(self._not_before) > 1024:  # forget backoffs that are over (many mailboxes, long runs)
                self._not_before = {m: t for m, t in self._not_before.items() if t > now}
            if until > self._not_before.get(mailbox, 0.0):
                self._not_before[mailbox] = until
            self._cond.notify_all()

    def in_flight(self, mailbox: str | None = None) -> int:
        with self._cond:
            return self._in_flight if mailbox is None else self._by_mailbox.get(mailbox, 0)

    def _acquire(self, need: Mapping[str, int]) -> None:
        mailboxes = frozenset(need)
        with self._cond:
            ticket = next(self._tickets)
            self._waiting[ticket] = mailboxes
            try:
                while True:
                    delay = self._blocked_for(ticket, need)
                    if delay == 0.0:
                        break
                    self._cond.wait(timeout=delay)
            finally:
                del self._waiting[ticket]
            self._in_flight += 1
            for m, n in need.items():
                self._by_mailbox[m] = self._by_mailbox.get(m, 0) + n
            # Our leaving the queue may unblock a later waiter on the same mailboxes.
            self._cond.notify_all()

    def _blocked_for(self, ticket: int, need: Mapping[str, int]) -> float | None:
        """0.0 when the request may start now; else how long to wait (None: until something is released)."""
        if self._in_flight >= self.max_in_flight:
            return None
        now = time.monotonic()
        gate = max((self._not_before.get(m, 0.0) for m in need), default=0.0)
        if gate > now:
            return gate - now
        for earlier, mailboxes in self._waiting.items():
            # First come, first served per mailbox; a waiter held back by a 429 does not hold others up.
            if earlier < ticket and mailboxes & need.keys() and not self._gated(mailboxes, now):
                return None
        for m, n in need.items():
            if self._by_mailbox.get(m, 0) + n > self.per_mailbox:
                return None
        return 0.0

    def _gated(self, mailboxes: frozenset[str], now: float) -> bool:
        return any(self._not_before.get(m, 0.0) > now for m in mailboxes)

    def _release(self, need: Mapping[str, int]) -> None:
        with self._cond:
            self._in_flight -= 1
            for m, n in need.items():
                left = self._by_mailbox[m] - n
                if left:
                    self._by_mailbox[m] = left
                else:
                    del self._by_mailbox[m]
            self._cond.notify_all()
