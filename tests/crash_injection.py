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
    a delta read or between a read and the write it decided.
    """

    def __init__(self, client: GraphClient, crash_at: int | None, *, reads: bool = False) -> None:
        self.client, self.crash_at, self.reads, self.calls = client, crash_at, reads, 0
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
        if self.crash_at is not None and self.calls + len(requests) >= self.crash_at:
            self._batch(list(requests)[: self.crash_at - self.calls])
            self.calls = self.crash_at
            raise Crash(f"after Graph call {self.crash_at}")
        self.calls += len(requests)
        return self._batch(requests)

    def _counted_request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.crash_at is not None and self.calls >= self.crash_at:
            raise Crash("the worker is dead: no more requests")
        result = self._request(method, *args, **kwargs)
        if self.reads or method.upper() != "GET":
            self.calls += 1
            if self.calls == self.crash_at:
                raise Crash(f"after Graph call {self.calls} ({method})")
        return result
