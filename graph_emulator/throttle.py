"""Throttling as Graph does it (docs/graph-facts.md, "Throttling").

Outlook resources are limited per (app, mailbox): at most 4 requests in flight, 10,000 requests per
10 minutes, and 150 MB uploaded (the bodies of PATCH, POST and PUT) per 5 minutes (throttling-limits.md,
"Outlook service limits"). Directory resources get a per-app budget. Every request counts against its
request budget, throttled ones included, so a client that retries without waiting stays throttled; an
upload counts against the upload budget only when it is admitted (a refused body was not taken in). Both
budgets are sliding windows: `Retry-After` is the time until enough of the oldest counted requests (bytes)
leave it. One mailbox's state never touches another's: a throttled mailbox does not slow the others.
"""

from __future__ import annotations

import dataclasses
import functools
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
    upload_bytes: int = 150 * 1024 * 1024  # Outlook, per (app, mailbox) and upload window: "150 MB"
    upload_window_seconds: float = 300.0


class Slot:
    """An admitted request; `release()` frees its concurrency slot (idempotent)."""

    def __init__(self, release: Callable[[], None] | None = None) -> None:
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()


NO_SLOT = Slot()  # what a request that holds no concurrency slot has: releasing it does nothing


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.limits = Limits()
        self._windows: dict[tuple[str, str, str], deque[float]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._uploads: dict[tuple[str, str], _UploadWindow] = {}

    def configure(
        self,
        requests: int | None = None,
        window_seconds: float | None = None,
        concurrency: int | None = None,
        concurrency_retry_after: float | None = None,
        directory_requests: int | None = None,
        directory_window_seconds: float | None = None,
        upload_bytes: int | None = None,
        upload_window_seconds: float | None = None,
    ) -> Limits:
        """Change the limits (None keeps a value) and start counting afresh."""
        given = {
            "requests": requests,
            "window_seconds": window_seconds,
            "concurrency": concurrency,
            "concurrency_retry_after": concurrency_retry_after,
            "directory_requests": directory_requests,
            "directory_window_seconds": directory_window_seconds,
            "upload_bytes": upload_bytes,
            "upload_window_seconds": upload_window_seconds,
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
            self._uploads.clear()
        return self.limits

    def reset(self) -> None:
        """Forget counted requests and uploaded bytes (in-flight requests keep their slots)."""
        with self._lock:
            self._windows.clear()
            self._uploads.clear()

    def admit(self, app_id: str, workload: str, mailbox: str | None, upload_bytes: int = 0) -> Slot:
        """Count the request and admit it, or raise Graph's 429 with Retry-After.

        `upload_bytes` is the size of a PATCH, POST or PUT body; it counts against the mailbox's upload
        budget (Outlook only).
        """
        limits = self.limits
        if workload == OUTLOOK and mailbox is not None:
            return self._admit_outlook(app_id, mailbox, limits, upload_bytes)
        if workload == DIRECTORY:
            key = (DIRECTORY, app_id, "")
            with self._lock:
                wait = self._count(key, limits.directory_requests, limits.directory_window_seconds)
            if wait is not None:
                raise _throttled("TooManyRequests", "Too many requests.", wait)
        return NO_SLOT

    def in_flight(self, app_id: str, mailbox: str) -> int:
        with self._lock:
            return self._in_flight.get((app_id, mailbox), 0)

    def uploaded(self, app_id: str, mailbox: str) -> int:
        """Bytes counted against the (app, mailbox) upload budget in the current window."""
        with self._lock:
            window = self._uploads.get((app_id, mailbox))
            if window is None:
                return 0
            window.prune(self._clock() - self.limits.upload_window_seconds)
            return window.total

    def _admit_outlook(self, app_id: str, mailbox: str, limits: Limits, upload_bytes: int) -> Slot:
        key = (app_id, mailbox)
        upload_wait: float | None = None
        with self._lock:
            wait = self._count((OUTLOOK, app_id, mailbox), limits.requests, limits.window_seconds)
            if wait is None:
                if self._in_flight.get(key, 0) >= limits.concurrency:
                    wait = -1.0
                elif upload_bytes > 0:
                    upload_wait = self._upload(key, upload_bytes, limits)
                if wait is None and upload_wait is None:
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if upload_wait is not None:
            raise _throttled("ApplicationThrottled", "Application is over its MailboxUploadSize limit.",
                             upload_wait)
        if wait is None:
            return Slot(functools.partial(self._leave, key))
        if wait < 0:
            raise _throttled(
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
                limits.concurrency_retry_after,
            )
        raise _throttled("ApplicationThrottled", "Application is over its MailboxRequestRate limit.", wait)

    def _upload(self, key: tuple[str, str], size: int, limits: Limits) -> float | None:
        """Take `size` bytes into the upload window; seconds to wait if they do not fit, else None.

        A body larger than the whole budget is admitted into an empty window (it could never fit otherwise;
        Graph refuses request bodies over 4 MB long before the 150 MB budget matters).
        """
        now = self._clock()
        window = self._uploads.get(key)
        if window is None:
            window = self._uploads[key] = _UploadWindow()
        window.prune(now - limits.upload_window_seconds)
        if window.total + size <= limits.upload_bytes or not window.stamps:
            window.add(now, size)
            return None
        # Wait until enough of the oldest uploads leave the window for this one to fit.
        left = window.total
        for stamp, n in window.stamps:
            left -= n
            if left + size <= limits.upload_bytes:
                return max(stamp + limits.upload_window_seconds - now, 0.001)
        return max(window.stamps[-1][0] + limits.upload_window_seconds - now, 0.001)

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
        stamps = self._windows.get(key)
        if stamps is None:
            stamps = self._windows[key] = deque()
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        over = len(stamps) >= limit
        stamps.append(now)
        if not over:
            return None
        # The window frees up when enough of the oldest requests leave it to bring the count under the limit.
        release_at = stamps[len(stamps) - limit] + window
        return max(release_at - now, 0.001)


class _UploadWindow:
    """Uploads of one (app, mailbox) in the current window, oldest first, with their running total."""

    def __init__(self) -> None:
        self.stamps: deque[tuple[float, int]] = deque()  # (time, bytes)
        self.total = 0

    def add(self, when: float, size: int) -> None:
        self.stamps.append((when, size))
        self.total += size

    def prune(self, before: float) -> None:
        """Drop uploads at or before `before` (they left the window)."""
        while self.stamps and self.stamps[0][0] <= before:
            self.total -= self.stamps.popleft()[1]


def retry_after_value(seconds: float) -> str:
    """Integer seconds when whole, else fractional (docs/graph-facts.md: Retry-After may be fractional)."""
    rounded = math.ceil(seconds * 1000) / 1000
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.3f}".rstrip("0")


def _throttled(code: str, message: str, wait: float) -> GraphError:
    return GraphError(429, code, message, headers={"Retry-After": retry_after_value(wait)})
