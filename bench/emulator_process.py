"""The Graph emulator in its own process, driven through its control surface, for benchmarks.

Real Graph runs on Microsoft's machines, not in galsync's process; so does the emulator here. That keeps
galsync's CPU time (read from this process) apart from the emulator's (read from /proc), and the emulator's
work never holds galsync's interpreter lock. Counting uses the emulator's request log through
`/_emulator/log`; directory changes go through `/_emulator/users/...`, as the demo does.

    python -m bench.emulator_process --users 500 --targets 100 --latency-ms 30 [--batch-workers 512]

prints one JSON line with the connection details and the synthetic scenario's ids, then serves until
its stdin closes (so it never outlives the benchmark that started it).

`--batch-workers`: how many inner requests of `$batch` calls the emulator runs at once across all calls
(its `batch_workers` option; 0 or absent: the emulator's default, graph_emulator.pipeline.BATCH_WORKERS).
Graph has no such tenant-wide cap, only 4 at a time per mailbox, so a cap smaller than 4 x the busy
mailboxes would decide the time instead of Graph's limits.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LogSummary:
    """What the emulator answered since the log was last cleared (counts only)."""

    total: int  # every Graph request: HTTP requests and the requests inside each $batch
    round_trips: int  # HTTP requests (a $batch counts once)
    by_route: Mapping[str, int]  # "METHOD /route/{template}" -> count
    by_status: Mapping[str, int]
    max_in_flight: int  # the most requests one mailbox had in flight at once
    contact_writes: int = 0  # creates, updates and deletes of contacts that succeeded (what phones see change)

    @property
    def batches(self) -> int:
        return self.by_route.get("POST /$batch", 0)

    @property
    def requests(self) -> int:
        """Graph operations: every request Graph counts against its limits ($batch envelopes excluded)."""
        return self.total - self.batches

    @property
    def contact_write_attempts(self) -> int:
        """Creates, updates and deletes of contacts sent, throttled or failed ones included."""
        return sum(
            n
            for route, n in self.by_route.items()
            if (route.startswith("POST ") and route.endswith("/contacts"))
            or (route.startswith(("PATCH ", "DELETE ")) and route.endswith("/contacts/{contact}"))
        )

    @property
    def throttled(self) -> int:
        return self.by_status.get("429", 0)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], contact_writes: int = 0) -> LogSummary:
        return cls(
            total=int(data["total"]),
            round_trips=int(data["roundTrips"]),
            by_route=dict(data.get("byRoute") or {}),
            by_status=dict(data.get("byStatus") or {}),
            max_in_flight=int(data.get("maxInFlight") or 0),
            contact_writes=contact_writes,
        )


CONTACTS_ROUTE = "/users/{user}/contactFolders/{folder}/contacts"
# (method, route, status of success) of each contact write
CONTACT_WRITES = (
    ("POST", CONTACTS_ROUTE, 201),
    ("PATCH", CONTACTS_ROUTE + "/{contact}", 200),
    ("DELETE", CONTACTS_ROUTE + "/{contact}", 204),
)


@dataclass
class EmulatorProcess:
    """A running emulator process and what galsync needs to talk to it."""

    process: subprocess.Popen[str]
    info: dict[str, Any]
    _control: requests.Session = field(default_factory=requests.Session, repr=False)

    @property
    def root(self) -> str:
        return str(self.info["url"])

    @property
    def base_url(self) -> str:
        return self.root + "/v1.0"

    @property
    def ca_file(self) -> str:
        return str(self.info["ca_file"])

    def galsync_env(self, state: str) -> dict[str, str]:
        """The GALSYNC_* settings an admin would export to point galsync at this tenant."""
        return {**self.info["galsync_settings"], "GALSYNC_STATE": state}

    # --- control surface ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        resp = self._control.request(
            method, f"{self.root}/_emulator{path}", json=body, params=params, verify=self.ca_file, timeout=60
        )
        if resp.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def log(self) -> LogSummary:
        writes = sum(
            int(self._call("GET", "/log", params={"method": m, "route": r, "status": str(ok)})["count"])
            for m, r, ok in CONTACT_WRITES
        )
        return LogSummary.from_json(self._call("GET", "/log"), writes)

    def clear_log(self) -> None:
        self._call("POST", "/log/clear")

    def throttle(self, **limits: float) -> dict[str, Any]:
        return dict(self._call("POST", "/throttle", limits))

    def update_user(self, user_id: str, **props: Any) -> None:
        self._call("PATCH", f"/users/{user_id}", props)

    def cpu_seconds(self) -> float:
        """CPU time the emulator process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._control.close()
        if self.process.stdin is not None:
            self.process.stdin.close()  # the child serves until its stdin closes
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    users: int,
    targets: int,
    *,
    latency_ms: int = 0,
    seed: int = 0,
    batch_workers: int | None = None,
) -> EmulatorProcess:
    """Start an emulator process with the synthetic scenario loaded; wait until it serves."""
    command = [sys.executable, "-m", "bench.emulator_process", "--users", str(users), "--targets", str(targets),
               "--latency-ms", str(latency_ms), "--seed", str(seed)]
    if batch_workers:
        command += ["--batch-workers", str(batch_workers)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise RuntimeError(f"the emulator process exited with status {process.returncode} before serving")
    return EmulatorProcess(process, json.loads(line))


# --- the child ------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> None:
    from graph_emulator import GraphEmulator
    from graph_emulator.pipeline import BATCH_WORKERS

    started = time.perf_counter()
    batch_workers = args.batch_workers or BATCH_WORKERS
    with GraphEmulator.start(
        scenario="synthetic",
        users=args.users,
        targets=args.targets,
        seed=args.seed,
        latency_ms=args.latency_ms,
        batch_workers=batch_workers,
    ) as g:
        # The loaded tenant lives as long as the process: keep the garbage collector off it and let it run
        # less often (this process stands in for Graph, whose CPU is not galsync's).
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        scenario = g.scenario or {}
        info = {
            "url": g.url,
            "ca_file": g.ca_file,
            "galsync_settings": g.galsync_settings(),
            "users": args.users,
            "some_user_ids": scenario.get("user_ids", [])[:10],
            "target_ids": scenario.get("target_ids", []),
            "targets_group_id": scenario.get("targets_group_id"),
            "load_seconds": round(time.perf_counter() - started, 2),
            "batch_workers": batch_workers,
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--targets", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-workers", type=int, default=0)
    _serve(parser.parse_args(argv))


if __name__ == "__main__":
    main()
