"""Throttling as Graph does it (graph-facts.md, "Throttling").

Outlook resources are limited per (app, mailbox): at most 4 requests in flight and 10,000 requests per
10 minutes. Directory resources get a per-app budget. Every request counts against its budget, throttled
ones included, so a client that retries without waiting stays throttled. The budget is a sliding window:
`Retry-After` is the time until the oldest counted request leaves it. One mailbox's state never touches
another's: a throttled mailbox does not slow the others.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .protocol import GraphError

OUTLOOK = "outlook"
DIRECTORY = "directory"


@dataclass(frozen=True)
class Limits:
    requests: int = 10_000  # Outlook, per (app, mailbox) and window
    window_seconds: float = 600.0
    concurrency: int = 4  # Outlook, per (app, mailbox)
    concurrency_retry_after: float = 1.0  # what a MailboxConcurrency refusal tells the client to wait
    directory_requests: int = 8_000  # per app and window (Graph: 3,500-8,000 resource units per 10 s)
    directory_window_seconds: float = 10.0


class Slot:
    """An admitted request; `release()` frees its concurrency slot (idempotent)."""

    def __init__(self, release: Callable[[], None] | None = None) -> None:
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.limits = Limits()
        self._windows: dict[tuple[str, str, str], deque[float]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}

    def configure(
        self,
        requests: int | None = None,
        window_seconds: float | None = None,
        concurrency: int | None = None,
        concurrency_retry_after: float | None = None,
        directory_requests: int | None = None,
        directory_window_seconds: float | None = None,
    ) -> Limits:
        """Change the limits (None keeps a value) and start counting afresh."""
        given = {
            "requests": requests,
            "window_seconds": window_seconds,
            "concurrency": concurrency,
            "concurrency_retry_after": concurrency_retry_after,
            "directory_requests": directory_requests,
            "directory_window_seconds": directory_window_seconds,
        }
        for name, value in given.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"throttle setting {name!r} must be a positive number, got {value!r}")
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        with self._lock:
            self.limits = dataclasses.replace(self.limits, **changes)
            self._windows.clear()
        return self.limits

    def reset(self) -> None:
        """Forget counted requests (in-flight requests keep their slots)."""
        with self._lock:
            self._windows.clear()

    def admit(self, app_id: str, workload: str, mailbox: str | None) -> Slot:
        """Count the request and admit it, or raise Graph's 429 with Retry-After."""
        limits = self.limits
        if workload == OUTLOOK and mailbox is not None:
            return self._admit_outlook(app_id, mailbox, limits)
        if workload == DIRECTORY:
            key = (DIRECTORY, app_id, "")
            with self._lock:
                wait = self._count(key, limits.directory_requests, limits.directory_window_seconds)
            if wait is not None:
                raise _throttled("TooManyRequests", "Too many requests.", wait)
        return Slot()

    def in_flight(self, app_id: str, mailbox: str) -> int:
        with self._lock:
            return self._in_flight.get((app_id, mailbox), 0)

    def _admit_outlook(self, app_id: str, mailbox: str, limits: Limits) -> Slot:
        key = (app_id, mailbox)
        with self._lock:
            wait = self._count((OUTLOOK, app_id, mailbox), limits.requests, limits.window_seconds)
            if wait is None:
                if self._in_flight.get(key, 0) >= limits.concurrency:
                    wait = -1.0
                else:
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if wait is None:
            return Slot(lambda: self._leave(key))
        if wait < 0:
            raise _throttled(
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
                limits.concurrency_retry_after,
            )
        raise _throttled("ApplicationThrottled", "Application is over its MailboxRequestRate limit.", wait)

    def _leave(self, key: tuple[str, str]) -> None:
        with self._lock:
            left = self._in_flight.get(key, 1) - 1
            if left:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)

    def _count(self, key: tuple[str, str, str], limit: int, window: float) -> float | None:
        """Record one request (throttled ones count too); seconds to wait if over the limit, else None."""
        now = self._clock()
        stamps = self._windows.setdefault(key, deque())
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        over = len(stamps) >= limit
        stamps.append(now)
        if not over:
            return None
        # The window frees up when enough of the oldest requests leave it to bring the count under the limit.
        release_at = stamps[len(stamps) - limit] + window
        return max(release_at - now, 0.001)


def retry_after_value(seconds: float) -> str:
    """Integer seconds when whole, else fractional (graph-facts.md: Retry-After may be fractional)."""
    rounded = math.ceil(seconds * 1000) / 1000
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.3f}".rstrip("0")


def _throttled(code: str, message: str, wait: float) -> GraphError:
    return GraphError(429, code, message, headers={"Retry-After": retry_after_value(wait)})
