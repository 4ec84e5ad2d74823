"""Where an initial fill's time goes: wall time of each phase of the use case's own thread (cProfile).

The sync runs its phases one after another in one thread; only the `$batch` writes fan out to the Graph
client's worker threads. So the wall time that thread spends in each phase adds up to the run, and a phase
that is long for its share of requests (one request after another where they could go together) stands out.
The profiler slows the thread it watches, so this is a separate, diagnostic fill (`--profile`), never the
measured one.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# (label, file the function lives in, function name): in the order the fill runs them.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("group memberships", "sync_core/service/groups.py", "read_memberships"),
    ("read the directory (delta pages)", "sync_core/service/source_reader.py", "read_source"),
    ("store source records", "sync_core/state/sqlite_store.py", "put_source_records"),
    ("resolve targets (userPurpose, one GET each)", "sync_core/service/targets.py", "resolve"),
    ("find or create each managed folder", "sync_core/service/sync.py", "_with_folder"),
    ("read target records", "sync_core/state/sqlite_store.py", "get_target_records"),
    ("plan", "sync_core/core/plan.py", "plan_target"),
    ("record in-flight creates", "sync_core/service/executor.py", "_prepare"),
    ("$batch writes (worker threads)", "sync_core/graph/client.py", "batch"),
    ("record results", "sync_core/service/executor.py", "flush"),
)


@dataclass(frozen=True)
class Phase:
    label: str
    seconds: float
    calls: int


def profile_phases(work: Callable[[], Any]) -> tuple[float, list[Phase]]:
    """Run `work` under cProfile (wall clock, this thread); its total seconds and the seconds of each phase."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        work()
    finally:
        profiler.disable()
    total = time.perf_counter() - started
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    phases: list[Phase] = []
    for label, path, function in PHASES:
        seconds, calls = 0.0, 0
        for (filename, _, name), (_, ncalls, _, cumulative, _) in stats.items():
            if name == function and filename.replace("\\", "/").endswith(path):
                seconds += cumulative
                calls += ncalls
        phases.append(Phase(label, seconds, calls))
    accounted = sum(p.seconds for p in phases)
    phases.append(Phase("everything else", max(total - accounted, 0.0), 0))
    return total, phases
