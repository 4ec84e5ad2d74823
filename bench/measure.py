"""One benchmark run measured: wall time, CPU time on each side, and what the emulator's log counted.

Wall time is what an admin waits; the two CPU times say who was busy meanwhile (galsync in this process,
Graph in the emulator's), and the client's is split by role (read, plan, record, send: sync_core/cpu_roles.py)
across all its threads; the log's counts are exact and are what the tests in tests/bench check.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync_core import cpu_roles

from .emulator_process import EmulatorProcess, LogSummary

# The profile both strategies sync: every licensed, enabled member with a phone or an email, into the
# mailboxes of the synthetic scenario's "Targets" group. Photos are left out and no synthetic user
# has a manager, so neither is mapped: both strategies write the same contacts.
PROFILE = "Bench"
FOLDER = "Company Directory"
CONFIG = f"""
[[profile]]
name = "{PROFILE}"
folder = "{FOLDER}"

[[profile.source]]
type = "users"

[profile.targets]
groups = ["Targets"]

[profile.fields]
manager = "never"

[profile.photos]
enabled = false
"""
SOURCES = 1  # the profile reads one source (users)
GROUP_WATCHES = 1  # and watches its target group with one delta request
NEW_MOBILE = "+44 7700 900999"  # the "one change" run: one user's new mobile number


def changed_user(emulator: EmulatorProcess) -> str:
    """The user whose mobile number the "one change" run changes (the same in every emulator of a seed)."""
    return str(emulator.info["some_user_ids"][0])


@dataclass(frozen=True)
class RunResult:
    """One run of one strategy: what it cost and what it did."""

    run: str  # fill | quiet | one change | first reconcile | reconcile
    strategy: str  # galsync | naive
    seconds: float
    client_cpu: float  # CPU seconds of this process (galsync or the naive script) during the run, all threads
    emulator_cpu: float
    log: LogSummary
    outcome: Mapping[str, int] = field(default_factory=dict)  # the strategy's own counts (created, ...)
    # The client's CPU seconds by role (cpu_roles.ROLES), from every thread; what no role covers is `other`.
    cpu_by_role: Mapping[str, float] = field(default_factory=dict)

    @property
    def cpu_other(self) -> float:
        """Client CPU outside every role: set-up, leases, thread hand-offs, and code no role marks."""
        return max(self.client_cpu - sum(self.cpu_by_role.values()), 0.0)

    @property
    def cpu_per_write_ms(self) -> float | None:
        """Client CPU per contact write, in milliseconds (None for a run that wrote nothing)."""
        writes = self.log.contact_writes
        return self.client_cpu * 1000 / writes if writes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "strategy": self.strategy,
            "seconds": round(self.seconds, 3),
            "client_cpu_seconds": round(self.client_cpu, 3),
            "client_cpu_by_role_seconds": {**{k: round(v, 3) for k, v in self.cpu_by_role.items()},
                                           "other": round(self.cpu_other, 3)},
            "emulator_cpu_seconds": round(self.emulator_cpu, 3),
            "requests": self.log.requests,
            "round_trips": self.log.round_trips,
            "batches": self.log.batches,
            "contact_writes": self.log.contact_writes,
            "contact_write_attempts": self.log.contact_write_attempts,
            "throttled": self.log.throttled,
            "max_in_flight_per_mailbox": self.log.max_in_flight,
            "by_route": dict(self.log.by_route),
            "outcome": dict(self.outcome),
        }


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(emulator: EmulatorProcess, run: str, strategy: str, work: Callable[[], Mapping[str, int]]
            ) -> RunResult:
    """Run `work` with a fresh request log and return what it cost, the client's CPU by role included."""
    emulator.clear_log()
    emulator_before, client_before = emulator.cpu_seconds(), cpu_seconds()
    with cpu_roles.accounting() as ledger:
        started = time.perf_counter()
        outcome = work()
        seconds = time.perf_counter() - started
        client_cpu = cpu_seconds() - client_before
    emulator_cpu = emulator.cpu_seconds() - emulator_before
    return RunResult(run, strategy, seconds, client_cpu, emulator_cpu, emulator.log(), dict(outcome),
                     ledger.seconds())


@dataclass(frozen=True)
class StrategyRuns:
    """Every run of one strategy, and what the final check of the target folders found wrong."""

    strategy: str
    results: list[RunResult]
    problems: list[str]

    def result(self, run: str) -> RunResult | None:
        return next((r for r in self.results if r.run == run), None)
