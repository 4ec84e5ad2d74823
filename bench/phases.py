"""Where an initial fill's time goes: when each kind of Graph call ran, across all of galsync's threads.

The sync's phases overlap: the targets and their folders are set up beside the directory read, and a first
fill's writes start while the read goes on (early_fill.py). So this is a timeline, not a sum: for each kind
of call, how many, when the first started and the last ended (seconds from the start of the run), and how
long one took (p50). The time from the last call to the end of the run is planning and recording with
nothing in flight. It is a separate, diagnostic fill (`--profile`): the
recording costs a little, so it is never the measured one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sync_core.graph import jsonbody
from sync_core.graph.session import GraphSession

# (label, test on the method, the path after /v1.0 and, for $batch, its first inner request): in run order.
KINDS: tuple[tuple[str, Callable[[str, str, str], bool]], ...] = (
    ("group memberships", lambda m, p, i: p.startswith("/groups")),
    ("read the directory (delta pages)", lambda m, p, i: p.startswith("/users/delta")),
    ("targets: userPurpose ($batch)", lambda m, p, i: "/mailboxSettings" in i),
    ("targets: managed folders ($batch)", lambda m, p, i: "/contactFolders" in i and "/contacts" not in i),
    ("contact writes ($batch)", lambda m, p, i: "/contacts" in i),
)


@dataclass(frozen=True)
class Phase:
    label: str
    calls: int
    first_start: float  # seconds from the start of the run
    last_end: float
    p50: float  # seconds one call took


@dataclass
class _Call:
    label: str
    start: float
    end: float


def profile_phases(work: Callable[[], Any]) -> tuple[float, list[Phase]]:
    """Run `work`, recording every Graph call galsync makes; its total seconds and the phases' timeline."""
    calls: list[_Call] = []
    lock = threading.Lock()
    started = time.perf_counter()
    with _recording(calls, lock, started):
        work()
    total = time.perf_counter() - started
    phases: list[Phase] = []
    for label, _ in (*KINDS, ("other Graph calls", None)):
        mine = sorted((c for c in calls if c.label == label), key=lambda c: c.end - c.start)
        if mine:
            phases.append(Phase(label, len(mine), min(c.start for c in mine), max(c.end for c in mine),
                                mine[len(mine) // 2].end - mine[len(mine) // 2].start))
    last = max((c.end for c in calls), default=0.0)
    phases.append(Phase("after the last Graph call (nothing in flight)", 0, last, total, 0.0))
    return total, phases


@contextmanager
def _recording(calls: list[_Call], lock: threading.Lock, started: float) -> Iterator[None]:
    original = GraphSession.send_graph

    def send_graph(self: GraphSession, method: str, url: str, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        try:
            return original(self, method, url, **kwargs)
        finally:
            ended = time.perf_counter()
            call = _Call(_kind(method, url, kwargs.get("body")), begun - started, ended - started)
            with lock:
                calls.append(call)

    GraphSession.send_graph = send_graph  # type: ignore[method-assign]
    try:
        yield
    finally:
        GraphSession.send_graph = original  # type: ignore[method-assign]


def _kind(method: str, url: str, body: bytes | None) -> str:
    path = url.split("/v1.0", 1)[-1]
    inner = ""
    if path.startswith("/$batch") and body:
        requests = jsonbody.decode(body).get("requests") or [{}]
        inner = str(requests[0].get("url", ""))
    for label, test in KINDS:
        if test(method, path, inner):
            return label
    return "other Graph calls"
