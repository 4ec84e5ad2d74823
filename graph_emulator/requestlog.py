"""The emulator's request log: every Graph request it answered, so tests can count exactly what a run cost.

Each HTTP request under /v1.0 and each request inside a `$batch` is one `LoggedRequest`. Tests assert on
counts ("3 POSTs to the contacts route of mailbox X", "12 round trips") and on the highest number of
requests that were in flight for one mailbox at the same time, never on timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

# Status recorded for a request whose connection the emulator dropped before answering.
DROPPED = 0


@dataclass(frozen=True, slots=True)  # slots: benchmarks log millions of these
class LoggedRequest:
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


class RequestLog:
    def __init__(self, resolve_mailbox: Callable[[str], str] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []
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
    ) -> LoggedRequest:
        with self._lock:
            if mailbox is not None:
                remaining = self._in_flight.get(mailbox, 1) - 1
                if remaining:
                    self._in_flight[mailbox] = remaining
                else:
                    self._in_flight.pop(mailbox, None)
            self._seq += 1
            entry = LoggedRequest(
                seq=self._seq,
                start=start,
                end=time.monotonic(),
                app_id=app_id,
                method=method,
                route=route,
                path=path,
                mailbox=mailbox,
                status=status,
                via_batch=via_batch,
                in_flight_for_mailbox=in_flight,
                request_id=request_id,
                dropped=dropped,
            )
            self._entries.append(entry)
            return entry

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
        if mailbox is not None:
            mailbox = self._mailbox_id(mailbox)
        statuses = {status} if isinstance(status, int) else (set(status) if status is not None else None)
        method = method.upper() if method else None
        with self._lock:
            snapshot = list(self._entries)
        return [
            e
            for e in snapshot
            if (method is None or e.method == method)
            and (route is None or e.route == route)
            and (mailbox is None or e.mailbox == mailbox)
            and (statuses is None or e.status in statuses)
            and (via_batch is None or e.via_batch == via_batch)
        ]

    def count(
        self,
        method: str | None = None,
        route: str | None = None,
        mailbox: str | None = None,
        status: StatusFilter = None,
        via_batch: bool | None = None,
    ) -> int:
        return len(self.entries(method, route, mailbox, status, via_batch))

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
        entries = self.entries()
        by: dict[str, dict[str, int]] = {"status": {}, "route": {}, "mailbox": {}, "method": {}}
        for e in entries:
            for key, value in (
                ("status", str(e.status)),
                ("route", f"{e.method} {e.route}" if e.route else None),
                ("mailbox", e.mailbox),
                ("method", e.method),
            ):
                if value is not None:
                    by[key][value] = by[key].get(value, 0) + 1
        return {
            "total": len(entries),
            "roundTrips": sum(1 for e in entries if not e.via_batch),
            "maxInFlight": max((e.in_flight_for_mailbox for e in entries), default=0),
            "byStatus": by["status"],
            "byRoute": by["route"],
            "byMailbox": by["mailbox"],
            "byMethod": by["method"],
        }

    def _mailbox_id(self, mailbox: str) -> str:
        if self._resolve is None:
            return mailbox
        try:
            return self._resolve(mailbox)
        except Exception:  # an unknown mailbox simply matches nothing it was not logged under
            return mailbox
