"""Crash injection for a worker: a state store and a Graph client that "die" right after the N-th call.

The crash is an exception raised right after the N-th write (or Graph call) has happened: the call is applied,
the worker never learns what came next, which is what a killed process leaves behind. Used by
tests/service/test_crash_recovery.py (a crash at every point of one run) and tests/chaos (crashes at drawn
points in random histories). Leases are not crash points: an exception releases them (a real SIGKILL, which
leaves them held, is tests/chaos/test_sigkill.py).

A worker has several threads (the early fill's lanes, pushes side by side), and a killed process stops them
all at once: here the counted calls are made one at a time, so none slips in after the N-th.
"""

from __future__ import annotations

import threading
from typing import Any

from sync_core.graph import GraphClient
from sync_core.state.base import StateStore

STATE_WRITES = {"put_source_records", "delete_source_records", "put_target_records", "delete_target_records",
                "put_target", "delete_target", "set_delta_link", "put_doc", "delete_doc", "record_run"}


class Crash(Exception):
    """The worker died here."""


class CrashingStore:
    """Forwards to a real store; raises Crash right after the `crash_at`-th state write was applied.

    `counting` narrows which writes count (e.g. {"set_delta_link"} to die right after the second delta link);
    by default every write does. Once dead, every write raises Crash.
    """

    def __init__(self, inner: StateStore, crash_at: int | None, *, counting: set[str] | None = None) -> None:
        self._inner, self.crash_at, self.writes, self.dead = inner, crash_at, 0, False
        self._lock = threading.Lock()
        self._counting = STATE_WRITES if counting is None else counting & STATE_WRITES

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in STATE_WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self.dead:
                    raise Crash("the worker is dead: no more writes")
                if name in ("put_source_records", "put_target_records"):
                    args = (*args[:-1], list(args[-1]))  # generators are consumed once, by the real store
                result = attr(*args, **kwargs)
                if name in self._counting:
                    self.writes += 1
                    if self.writes == self.crash_at:
                        self.dead = True
                        raise Crash(f"after state write {self.writes} ({name})")
                return result
        return write


class CrashingGraph:
    """Counts Graph writes ($batch inner requests and plain POST/PATCH/DELETE); dies after the `crash_at`-th.

    With `reads=True` every Graph call counts, GETs included, so a crash can also land between two pages of
    a delta read or between a read and the write it decided. `methods` narrows what counts to those methods
    (e.g. {"DELETE"}: die right after the N-th delete, whatever was read or probed before it).
    """

    def __init__(self, client: GraphClient, crash_at: int | None, *, reads: bool = False,
                 methods: set[str] | None = None) -> None:
        self.client, self.crash_at, self.reads, self.calls = client, crash_at, reads, 0
        self.methods = None if methods is None else {m.upper() for m in methods}
        self._lock = threading.Lock()
        self._batch, self._request = client.batch, client.request
        client.batch = self.batch  # type: ignore[method-assign]
        client.request = self.request  # type: ignore[method-assign]

    def batch(self, requests: Any) -> Any:
        with self._lock:
            return self._counted_batch(requests)

    def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._counted_request(method, *args, **kwargs)

    def _counted_batch(self, requests: Any) -> Any:
        if self.crash_at is not None and self.calls >= self.crash_at:
            raise Crash("the worker is dead: no more requests")
        requests = list(requests)
        counted = [n for n, r in enumerate(requests) if self.methods is None or r.method.upper() in self.methods]
        if self.crash_at is not None and self.calls + len(counted) >= self.crash_at:
            last = counted[self.crash_at - self.calls - 1]
            self._batch(requests[: last + 1])
            self.calls = self.crash_at
            raise Crash(f"after Graph call {self.crash_at}")
        self.calls += len(counted)
        return self._batch(requests)

    def _counts(self, method: str) -> bool:
        if self.methods is not None:
            return method.upper() in self.methods
        return self.reads or method.upper() != "GET"

    def _counted_request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.crash_at is not None and self.calls >= self.crash_at:
            raise Crash("the worker is dead: no more requests")
        result = self._request(method, *args, **kwargs)
        if self._counts(method):
            self.calls += 1
            if self.calls == self.crash_at:
                raise Crash(f"after Graph call {self.calls} ({method})")
        return result
