"""The emulator's request log: every Graph request it answered, so tests can count exactly what a run cost.

Each HTTP request under /v1.0 and each request inside a `$batch` is one `LoggedRequest`. Tests assert on
counts ("3 POSTs to the contacts route of mailbox X", "12 round trips") and on the highest number of
requests that were in flight for one mailbox at the same time, never on timings.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

# Status recorded for a request whose connection the emulator dropped before answering.
DROPPED = 0


class LoggedRequest(NamedTuple):
    """One answered request.

    The log keeps each as a plain tuple of these values and builds the named tuple when it is read: a
    benchmark logs hundreds of thousands of requests, and the garbage collector stops scanning plain
    tuples of strings and numbers (objects it scanned again on every full collection).
    """

    seq: int
    start: float  # time.monotonic() when the emulator started working on it
    end: float
    app_id: str | None  # None when the bearer was missing or invalid
    method: str
    route: str | None  # the route template, e.g. "/users/{user}/contactFolders/{folder}/contacts"
    path: str  # the path without /v1.0 and without the query string
    mailbox: str | None  # the user id of the mailbox the route touches, if any
    status: int  # DROPPED (0) when the connection was closed before any response was written
    via_batch: bool
    in_flight_for_mailbox: int  # requests to this mailbox being worked on when it started, itself included
    request_id: str
    dropped: bool = False  # the client got no response (the work may still have been done)


StatusFilter = int | Collection[int] | None

# Positions in a raw entry (a plain tuple of LoggedRequest's values).
_METHOD, _ROUTE, _MAILBOX, _STATUS, _VIA_BATCH, _IN_FLIGHT = (
    LoggedRequest._fields.index(name)
    for name in ("method", "route", "mailbox", "status", "via_batch", "in_flight_for_mailbox")
)


class RequestLog:
    def __init__(self, resolve_mailbox: Callable[[str], str] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[Any, ...]] = []  # LoggedRequest values, as plain tuples
        self._seq = 0
        self._in_flight: dict[str, int] = {}
        # Lets tests filter by UPN as well as by user id.
        self._resolve = resolve_mailbox

    # --- recording (called by the pipeline) -------------------------------------------------------

    def begin(self, mailbox: str | None) -> tuple[float, int]:
        """Mark a request as started; returns its start time and the in-flight count for its mailbox."""
        with self._lock:
            in_flight = 0
            if mailbox is not None:
                in_flight = self._in_flight.get(mailbox, 0) + 1
                self._in_flight[mailbox] = in_flight
            return time.monotonic(), in_flight

    def finish(
        self,
        *,
        start: float,
        in_flight: int,
        app_id: str | None,
        method: str,
        route: str | None,
        path: str,
        mailbox: str | None,
        status: int,
        via_batch: bool,
        request_id: str,
        dropped: bool = False,
    ) -> None:
        """Record an answered request (`entries` reads it back as a LoggedRequest)."""
        with self._lock:
            if mailbox is not None:
                remaining = self._in_flight.get(mailbox, 1) - 1
                if remaining:
                    self._in_flight[mailbox] = remaining
                else:
                    self._in_flight.pop(mailbox, None)
            self._seq += 1
            entry = (
                self._seq,
                start,
                time.monotonic(),
                app_id,
                method,
                route,
                path,
                mailbox,
                status,
                via_batch,
                in_flight,
                request_id,
                dropped,
            )
            self._entries.append(entry)

    # --- reading (tests, control surface) ----------------------------------------------------------

    def entries(
        self,
        method: str | None = None,
        route: str | None = None,
        mailbox: str | None = None,
        status: StatusFilter = None,
        via_batch: bool | None = None,
    ) -> list[LoggedRequest]:
        """Logged requests in the order they finished, filtered by every argument that is not None."""
        return list(map(LoggedRequest._make, self._matching(method, route, mailbox, status, via_batch)))

    def count(
        self,
        method: str | None = None,
        route: str | None = None,
        mailbox: str | None = None,
        status: StatusFilter = None,
        via_batch: bool | None = None,
    ) -> int:
        return len(self._matching(method, route, mailbox, status, via_batch))

    def _matching(
        self,
        method: str | None,
        route: str | None,
        mailbox: str | None,
        status: StatusFilter,
        via_batch: bool | None,
    ) -> list[tuple[Any, ...]]:
        """The raw entries that pass every filter that is not None."""
        if mailbox is not None:
            mailbox = self._mailbox_id(mailbox)
        statuses = {status} if isinstance(status, int) else (set(status) if status is not None else None)
        method = method.upper() if method else None
        with self._lock:
            snapshot = list(self._entries)
        return [
            e
            for e in snapshot
            if (method is None or e[_METHOD] == method)
            and (route is None or e[_ROUTE] == route)
            and (mailbox is None or e[_MAILBOX] == mailbox)
            and (statuses is None or e[_STATUS] in statuses)
            and (via_batch is None or e[_VIA_BATCH] == via_batch)
        ]

    def round_trips(self) -> int:
        """HTTP requests the client made: a $batch counts once, whatever it carried."""
        return self.count(via_batch=False)

    def max_in_flight(self, mailbox: str | None = None) -> int:
        """The most requests that were being worked on at once for one mailbox (or for `mailbox`)."""
        return max((e.in_flight_for_mailbox for e in self.entries(mailbox=mailbox)), default=0)

    def clear(self) -> None:
        """Forget logged requests (requests still in flight keep their in-flight accounting)."""
        with self._lock:
            self._entries.clear()

    def summary(self) -> dict[str, object]:
        """Counts per status, route, mailbox and method, for the HTTP control surface and the demo."""
        with self._lock:
            entries = list(self._entries)
        routes = Counter((e[_METHOD], e[_ROUTE]) for e in entries if e[_ROUTE])
        mailboxes = Counter(e[_MAILBOX] for e in entries if e[_MAILBOX] is not None)
        return {
            "total": len(entries),
            "roundTrips": sum(1 for e in entries if not e[_VIA_BATCH]),
            "maxInFlight": max((e[_IN_FLIGHT] for e in entries), default=0),
            "byStatus": {str(k): n for k, n in Counter(e[_STATUS] for e in entries).items()},
            "byRoute": {f"{m} {r}": n for (m, r), n in routes.items()},
            "byMailbox": dict(mailboxes),
            "byMethod": dict(Counter(e[_METHOD] for e in entries)),
        }

    def _mailbox_id(self, mailbox: str) -> str:
        if self._resolve is None:
            return mailbox
        try:
            return self._resolve(mailbox)
        except Exception:  # an unknown mailbox simply matches nothing it was not logged under
            return mailbox
