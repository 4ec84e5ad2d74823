"""The fleet bench: K worker processes run function_app.py's queue triggers, as K Functions instances would.

    .venv/bin/python -m bench.fleet [--users 1000] [--targets 200] [--latency-ms 200] [--workers 1,2,4,8,16]
                                    [--set GALSYNC_X=value ...] [--out bench/fleet-results.json]

The Functions host cannot be installed here: each worker (bench/fleet_worker.py) stands in for one instance,
importing function_app and running its queue-triggered functions on messages it takes from Azurite queues
the way the host does (host.json's batchSize, newBatchThreshold, visibilityTimeout, maxDequeueCount and
`<queue>-poison`, base64 messages; outputs written and the message deleted only when the function returned).
State lives in Azurite tables (GALSYNC_STATE=table:), Graph is the emulator in its own process with L ms of
latency on every request and Graph's per-mailbox limits (4 at once, 10,000 requests per 10 minutes).
Azurite is the one in AZURITE_CONNECTION_STRING, or one started here.

For each K, on a fresh tenant (U users, T target mailboxes, the bench profile of bench/measure.py), three
runs, each started as the timers start it, by one message on sync-source, and over when every queue is empty:

- fill: a sync message; the sync fans out push messages, which the workers share;
- first reconcile: a reconcile message; it reads every managed folder in full once;
- quiet reconcile: a reconcile message again, with nothing changed.

For each run: wall time (the message sent to the last invocation's end) and its ratio to Graph's bound
(bench/bound.py: 4 requests at once per mailbox, 130,000 requests per 10 s per app), Graph requests and
429s (the emulator's log), peak RSS of each worker during the run (VmHWM, reset before each run), and the
longest single message (seconds, and the writes its run records count). After the runs, every target folder
is read: one contact per user, each once. Nothing here is a timed test; tests/bench/test_fleet_counts.py runs
this small and checks its counts.

Caveats: every worker, the emulator and Azurite share this machine's CPUs, and Azurite (one Node process)
serves every worker's state writes and lease renewals, where Azure Table Storage would scale out; on a small,
busy machine they, not Graph's latency, decide the time (the results keep the load average). A worker's
peak RSS is reset to its current RSS before each run, so a run's peak includes what earlier runs left
allocated in that process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync_core.core.profile import parse_config
from sync_core.service.poison import list_poison
from sync_core.service.queue_messages import SYNC_SOURCE_QUEUE, ReconcileMessage, SyncMessage
from sync_core.service.runtime import Runtime
from sync_core.service.target_work import ExecReport
from sync_core.settings import Settings
from tests.azurite import running as running_azurite

from . import emulator_process
from .bicep_values import FleetSettings
from .bound import APP_RATE, FillBound, ReconcileBound, fill_bound, reconcile_bound
from .emulator_process import EmulatorProcess
from .fleet_worker import POISON_SUFFIX, Queues
from .measure import CONFIG, PROFILE
from .run_all import machine
from .verify import check_targets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "fleet-results.json"
RUNS = ("fill", "first reconcile", "quiet reconcile")
CONTACT_DELTA = "GET /users/{user}/contactFolders/{folder}/contacts/delta"
FILL_GOAL = 1.3  # fill within 1.3 x its bound at some K
MESSAGE_GOAL_SECONDS = 120.0  # every message under 2 minutes
RSS_GOAL_MB = 250.0  # peak RSS per worker
RECONCILE_GOAL = 1.5  # first reconcile within 1.5 x its bound
# App settings the deployment derives for each instance (infra/app/function-app.bicep); the workers get them, as
# instances would, unless --set says otherwise.
DEPLOYED_SETTINGS = ("GALSYNC_MAX_CONCURRENCY", "GALSYNC_TARGETS_PER_MESSAGE", "GALSYNC_WRITES_PER_MESSAGE")
WORKER_STOP_SECONDS = 60.0  # for the invocations in hand to finish once the workers are asked to stop


@dataclass(frozen=True)
class Options:
    users: int
    targets: int
    latency_ms: int
    workers: tuple[int, ...]
    settings: dict[str, str]
    run_timeout: float = 1800.0
    seed: int = 0

    @property
    def latency(self) -> float:
        return self.latency_ms / 1000


@dataclass(frozen=True)
class Invocation:
    """One finished invocation, from a worker's journal."""

    worker: int
    queue: str
    function: str
    started: float
    ended: float
    outcome: str
    error: str
    message: Mapping[str, Any]
    runs: list[dict[str, Any]]

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def writes(self) -> int:
        """Contact writes its run records count (a push's creates, updates, deletes, ...)."""
        return sum(ExecReport(counts=Counter(r.get("counts") or {})).writes for r in self.runs)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Invocation:
        return cls(int(doc["worker"]), str(doc["queue"]), str(doc["function"]), float(doc["started"]),
                   float(doc["ended"]), str(doc["outcome"]), str(doc.get("error") or ""),
                   dict(doc.get("message") or {}), list(doc.get("runs") or []))


@dataclass
class RunResult:
    """One run of the fleet: what it cost and what each message did."""

    run: str
    workers: int
    seconds: float
    requests: int
    round_trips: int
    throttled: int
    contact_writes: int
    emulator_cpu: float
    peak_rss_mb: list[float]  # per worker
    invocations: list[Invocation]
    by_route: dict[str, int]
    finished: bool = True  # False: the queues were not empty when the run's time was up
    bound: float | None = None

    @property
    def longest(self) -> Invocation | None:
        return max(self.invocations, key=lambda i: i.seconds, default=None)

    @property
    def most_writes(self) -> int:
        return max((i.writes for i in self.invocations), default=0)

    @property
    def failed(self) -> list[Invocation]:
        return [i for i in self.invocations if i.outcome != "ok"]

    def to_json(self) -> dict[str, Any]:
        longest = self.longest
        return {
            "run": self.run, "workers": self.workers, "finished": self.finished, "seconds": round(self.seconds, 3),
            "bound_seconds": None if self.bound is None else round(self.bound, 3),
            "ratio_to_bound": None if not self.bound else round(self.seconds / self.bound, 3),
            "requests": self.requests, "round_trips": self.round_trips, "throttled": self.throttled,
            "contact_writes": self.contact_writes, "emulator_cpu_seconds": round(self.emulator_cpu, 2),
            "peak_rss_mb_per_worker": [round(m, 1) for m in self.peak_rss_mb],
            "messages": dict(Counter(i.queue for i in self.invocations)),
            "longest_message": None if longest is None else {
                "seconds": round(longest.seconds, 3), "writes": longest.writes, "queue": longest.queue},
            "most_writes_in_a_message": self.most_writes,
            "writes_per_message": sorted((i.writes for i in self.invocations if i.writes), reverse=True),
            "not_ok": [{"queue": i.queue, "outcome": i.outcome, "error": i.error} for i in self.failed],
            "by_route": self.by_route,
        }


@dataclass
class FleetResult:
    """Every run of one K, and what the checks after them found."""

    workers: int
    runs: list[RunResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def run(self, name: str) -> RunResult | None:
        return next((r for r in self.runs if r.run == name), None)


# --- the workers ---------------------------------------------------------------------------------------------


@dataclass
class Worker:
    number: int
    process: subprocess.Popen[str]
    journal: Path
    queues: tuple[str, ...]  # the queues its triggers listen on

    def peak_mb(self) -> float:
        """Peak RSS since the last reset (VmHWM; ru_maxrss would not follow a reset)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # Linux: VmHWM starts again from now

    def close(self) -> None:
        """Ask the worker to stop: it takes no more messages, lets its invocations finish, then exits."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def wait(self, deadline: float) -> None:
        """Wait for the worker to exit until `deadline` (time.monotonic), then kill it (a run that did not
        finish leaves invocations that would run for minutes)."""
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def workers(count: int, env: Mapping[str, str], prefix: str, workdir: Path) -> Iterator[list[Worker]]:
    """Start `count` workers with these app settings and wait until each is ready; stop them afterwards."""
    started: list[Worker] = []
    try:
        for n in range(count):
            journal = workdir / f"worker-{n}.jsonl"
            with (workdir / f"worker-{n}.err").open("w") as err:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bench.fleet_worker", "--queue-prefix", prefix, "--journal", str(journal),
                     "--worker", str(n)],
                    cwd=ROOT, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
            started.append(Worker(n, process, journal, ()))
        for worker in started:
            assert worker.process.stdout is not None
            line = worker.process.stdout.readline()
            if not line:
                err = (workdir / f"worker-{worker.number}.err").read_text()[-2000:]
                raise RuntimeError(f"worker {worker.number} exited before it was ready: {err}")
            worker.queues = tuple(json.loads(line)["queues"])
        yield started
    finally:
        for worker in started:
            worker.close()
        deadline = time.monotonic() + WORKER_STOP_SECONDS
        for worker in started:
            worker.wait(deadline)


def deployed_settings() -> dict[str, str]:
    """The per-instance app settings Bicep derives from main.bicep's defaults."""
    bicep = FleetSettings()
    return {name: str(bicep.setting(name)) for name in DEPLOYED_SETTINGS}


def app_settings(emulator: EmulatorProcess, connection: str, workdir: Path, settings: Mapping[str, str]
                 ) -> dict[str, str]:
    """The function app's settings for one fleet: this emulator, Azurite tables and queues, a fresh prefix;
    `settings`: the deployment's derived ones and any --set."""
    config = workdir / "galsync.toml"
    config.write_text(CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALSYNC_")}
    env.update(emulator.galsync_env("table:"))
    env.update({"GALSYNC_STORAGE_CONNECTION_STRING": connection, "GALSYNC_TABLE_PREFIX": f"f{uuid.uuid4().hex[:10]}",
                "GALSYNC_CONFIG_PATH": str(config), "AzureWebJobsStorage": connection, **settings})
    return env


# --- one K ---------------------------------------------------------------------------------------------------


def invocations(fleet: list[Worker], since: float) -> list[Invocation]:
    found: list[Invocation] = []
    for worker in fleet:
        if worker.journal.exists():
            for line in worker.journal.read_text(encoding="utf-8").splitlines():
                entry = Invocation.from_json(json.loads(line))
                if entry.started >= since:
                    found.append(entry)
    return found


def wait_until_idle(queues: Queues, names: tuple[str, ...], timeout: float) -> bool:
    """Whether every queue the triggers listen on became empty within `timeout` (a message in hand counts until
    it is deleted, and a function's outputs are written before its message is deleted, so empty means done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(int(queues(n).get_queue_properties().approximate_message_count or 0) == 0 for n in names):
            return True
        time.sleep(0.2)
    return False


def measure_run(name: str, body: str, fleet: list[Worker], queues: Queues, emulator: EmulatorProcess,
                timeout: float) -> RunResult:
    """Send one message to sync-source, as a timer does, and measure the run it starts until the queues empty."""
    for worker in fleet:
        worker.reset_peak()
    emulator.clear_log()
    cpu_before = emulator.cpu_seconds()
    started = time.time()
    queues(SYNC_SOURCE_QUEUE).send_message(body)
    finished = wait_until_idle(queues, fleet[0].queues, timeout)
    handled = invocations(fleet, started)
    ended = max((i.ended for i in handled), default=time.time()) if finished else time.time()
    log = emulator.log()
    return RunResult(name, len(fleet), ended - started, log.requests, log.round_trips, log.throttled,
                     log.contact_writes, emulator.cpu_seconds() - cpu_before, [w.peak_mb() for w in fleet],
                     handled, dict(log.by_route), finished)


def check_folders(rt: Runtime, emulator: EmulatorProcess, users: int) -> list[str]:
    """Every target folder read through Graph: exactly one contact per user (folders read side by side)."""
    profile = rt.config.profile(PROFILE)
    mailboxes = [str(m) for m in emulator.info["target_ids"]]
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = pool.map(lambda m: check_targets(rt.client, profile, [m], users), mailboxes)
        return [problem for problems in found for problem in problems]


def fleet_run(options: Options, count: int, connection: str) -> FleetResult:
    """The three runs with `count` workers, on a fresh tenant, state store and set of queues."""
    result = FleetResult(count)
    with emulator_process.start(options.users, options.targets, latency_ms=options.latency_ms, seed=options.seed,
                                batch_workers=max(512, 4 * options.targets)) as emulator, \
            tempfile.TemporaryDirectory(prefix="galsync-fleet-") as tmp:
        emulator.throttle(requests=10_000, window_seconds=600, concurrency=4)
        workdir, prefix = Path(tmp), f"f{uuid.uuid4().hex[:8]}-"
        env = app_settings(emulator, connection, workdir, options.settings)
        queues = Queues(connection, prefix)
        rt = Runtime.from_settings(Settings.from_env(env), config=parse_config(CONFIG, "bench.toml"))
        try:
            with workers(count, env, prefix, workdir) as fleet:
                messages = (SyncMessage(PROFILE, "timer").to_json(), ReconcileMessage(PROFILE).to_json(),
                            ReconcileMessage(PROFILE).to_json())
                for name, body in zip(RUNS, messages, strict=True):
                    run = measure_run(name, body, fleet, queues, emulator, options.run_timeout)
                    result.runs.append(run)
                    print(f"  K={count} {name}: {run.seconds:.1f} s, {run.requests:,} requests, "
                          f"{len(run.invocations)} messages" + ("" if run.finished else ", NOT FINISHED"), flush=True)
                    if not run.finished:
                        result.problems.append(f"{name} not finished after {options.run_timeout:.0f} s")
                        break
                poison_queues = [q for q in fleet[0].queues if q.endswith(POISON_SUFFIX)]
                emulator.clear_log()
            result.problems += check_folders(rt, emulator, options.users)
            result.problems += [f"poison: {p.queue} {p.reason}" for p in list_poison(rt.store)]
            result.problems += [f"{i.function} {i.outcome} ({i.error})" for r in result.runs for i in r.failed]
            result.problems += [f"a message reached {i.queue}" for r in result.runs for i in r.invocations
                                if i.queue in poison_queues]
        finally:
            rt.close()
            queues.delete_all()
    return result


# --- bounds, goals, output -----------------------------------------------------------------------------------


def bounds(options: Options, fleet: FleetResult) -> tuple[FillBound | None, ReconcileBound | None]:
    """The fill's and the first reconcile's bounds for this size; the pages each reads come from the log."""
    if options.latency_ms == 0:
        return None, None
    fill, first = fleet.run("fill"), fleet.run("first reconcile")
    fill_b = None if fill is None else fill_bound(
        mailboxes=options.targets, contacts=options.users, latency=options.latency, client_cap=None,
        directory_pages=fill.by_route.get("GET /users/delta", 0), app_rate=APP_RATE)
    pages = 0 if first is None else math.ceil(first.by_route.get(CONTACT_DELTA, 0) / options.targets)
    reconcile_b = None if pages < 1 else reconcile_bound(mailboxes=options.targets, pages_per_folder=pages,
                                                         latency=options.latency, app_rate=APP_RATE)
    return fill_b, reconcile_b


@dataclass(frozen=True)
class Goal:
    name: str
    value: str
    met: bool | None


def goals(results: list[FleetResult]) -> list[Goal]:
    runs = [r for fleet in results for r in fleet.runs]
    fills = [r for r in runs if r.run == "fill" and r.bound and r.finished]
    firsts = [r for r in runs if r.run == "first reconcile" and r.bound and r.finished]
    out: list[Goal] = []
    if fills:
        best = min(fills, key=lambda r: r.seconds / (r.bound or 1))
        out.append(Goal(f"fill within {FILL_GOAL} x its bound at some K <= 16",
                        f"best {best.seconds / (best.bound or 1):.2f} x at K={best.workers}",
                        any(r.seconds <= FILL_GOAL * (r.bound or 0) and r.workers <= 16 for r in fills)))
    longest = max((i for r in runs for i in r.invocations), key=lambda i: i.seconds, default=None)
    if longest is not None:
        out.append(Goal(f"every message under {MESSAGE_GOAL_SECONDS:.0f} s",
                        f"longest {longest.seconds:.1f} s ({longest.queue}, {longest.writes:,} writes)",
                        longest.seconds < MESSAGE_GOAL_SECONDS))
    peaks = [(max(r.peak_rss_mb), r) for r in runs if r.peak_rss_mb]
    if peaks:
        peak, at = max(peaks, key=lambda p: p[0])
        out.append(Goal(f"peak RSS per worker under {RSS_GOAL_MB:.0f} MB",
                        f"highest {peak:.0f} MB (K={at.workers}, {at.run})", peak < RSS_GOAL_MB))
    if firsts:
        best = min(firsts, key=lambda r: r.seconds / (r.bound or 1))
        out.append(Goal(f"first reconcile within {RECONCILE_GOAL} x its bound",
                        f"best {best.seconds / (best.bound or 1):.2f} x at K={best.workers}",
                        any(r.seconds <= RECONCILE_GOAL * (r.bound or 0) for r in firsts)))
    return out


def table(results: list[FleetResult]) -> str:
    lines = ["| K | run | wall | x bound | requests | 429 | writes | messages | longest message | most writes "
             "in a message | peak RSS per worker |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for fleet in results:
        for r in fleet.runs:
            longest = r.longest
            ratio = "-" if not r.bound else ("" if r.finished else "> ") + f"{r.seconds / r.bound:.2f}"
            wall = f"{r.seconds:.1f} s" if r.finished else f"> {r.seconds:.0f} s (not finished)"
            message = "-" if longest is None else f"{longest.seconds:.1f} s, {longest.writes:,} writes"
            lines.append(f"| {r.workers} | {r.run} | {wall} | {ratio} | {r.requests:,} | {r.throttled:,} "
                         f"| {r.contact_writes:,} | {len(r.invocations)} | {message} | {r.most_writes:,} "
                         f"| {max(r.peak_rss_mb):.0f} MB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4,8,16", help="the K values, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="GALSYNC_NAME=VALUE",
                        help="another app setting for the workers (say so when quoting numbers)")
    parser.add_argument("--run-timeout", type=float, default=1800.0, help="seconds one run may take")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = deployed_settings()
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("GALSYNC_"):
            parser.error(f"--set needs GALSYNC_NAME=VALUE, got {item!r}")
        settings[name] = value
    options = Options(args.users, args.targets, args.latency_ms, tuple(int(k) for k in args.workers.split(",") if k),
                      settings, args.run_timeout)

    # A bench run in the background is stopped with SIGTERM: exit through the `finally` blocks, so the workers,
    # the emulator and a started Azurite stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started, info = datetime.now(UTC), machine()
    print(f"fleet bench: U={options.users} users, T={options.targets} targets ({options.users * options.targets:,} "
          f"writes), latency {options.latency_ms} ms, K in {list(options.workers)}"
          + (f", settings {settings}" if settings else ""), flush=True)
    print(f"machine: {info['nproc']} CPUs, Python {info['python']}, load average {info['load_average']}", flush=True)
    results: list[FleetResult] = []
    fill_b: FillBound | None = None
    reconcile_b: ReconcileBound | None = None
    command = "python -m bench.fleet " + " ".join(argv if argv is not None else sys.argv[1:])
    with running_azurite() as azurite:
        for count in options.workers:
            fleet = fleet_run(options, count, azurite.connection_string)
            fill_b, reconcile_b = bounds(options, fleet)
            for run in fleet.runs:
                if run.run == "fill" and fill_b is not None:
                    run.bound = fill_b.seconds
                elif run.run == "first reconcile" and reconcile_b is not None:
                    run.bound = reconcile_b.seconds
            results.append(fleet)
            results.sort(key=lambda f: f.workers)
            write_results(args.out, command, started, info, options, results, fill_b, reconcile_b)  # each K kept
    rows = goals(results)
    print()
    print(table(results))
    if fill_b is not None:
        print(f"\nfill bound {fill_b.seconds:.2f} s = set-up {fill_b.setup:.2f} + max(reading {fill_b.reading:.2f}, "
              f"per mailbox {fill_b.per_mailbox:.2f}, app-wide {fill_b.app_wide:.2f}, budget {fill_b.budget:.2f}); "
              f"one $batch after another per mailbox: {fill_b.batched_serial:.2f} s")
    if reconcile_b is not None:
        print(f"first reconcile bound {reconcile_b.seconds:.2f} s = max(contact delta pages one after another per "
              f"folder {reconcile_b.per_folder:.2f}, app-wide {reconcile_b.app_wide:.2f})")
    print()
    for goal in rows:
        print(f"{goal.name}: {goal.value}: " + ("met" if goal.met else "MISSED"))
    problems = [f"K={f.workers}: {p}" for f in results for p in f.problems]
    if problems:
        print("\nproblems:\n  " + "\n  ".join(problems[:20]))
    print(f"results written to {args.out}")
    return 1 if problems else 0


def write_results(out: Path, command: str, started: datetime, info: Mapping[str, Any], options: Options,
                  results: list[FleetResult], fill_b: FillBound | None, reconcile_b: ReconcileBound | None) -> None:
    out.write_text(json.dumps({
        "started": started.isoformat(timespec="seconds"), "command": command,
        "machine": info, "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "options": {**asdict(options), "workers": [f.workers for f in results]},
        "host_json_queues": json.loads((ROOT / "host.json").read_text())["extensions"]["queues"],
        "fill_bound": None if fill_b is None else fill_b.to_json(),
        "first_reconcile_bound": None if reconcile_b is None else reconcile_b.to_json(),
        "goals": [asdict(g) for g in goals(results)],
        "runs": [r.to_json() for f in results for r in f.runs],
        "problems": [f"K={f.workers}: {p}" for f in results for p in f.problems],
    }, indent=2) + "\n", encoding="utf-8")

if __name__ == "__main__":
    raise SystemExit(main())
