"""Peak memory of the command line's first fill: a fresh galsync process fills T new mailboxes with U contacts.

A push plans and sends a wave at a time from the state store, so this peak should stay flat in U and T. Each
size gets a fresh emulator (with latency, so the early fill's pushes overlap the read as they do for real) and
one fresh galsync process, whose peak (VmHWM) is its own (see core_speed.peak_mb).

    .venv/bin/python -m bench.fill_memory --users 1000,4000 --targets 40 --latency-ms 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sync_core.core.profile import parse_config

from .core_speed import ROOT, peak_mb
from .measure import CONFIG, PROFILE


def fill_peak(users: int, targets: int, latency_ms: int) -> dict[str, float]:
    """One fill of `targets` mailboxes with `users` contacts each; its writes, seconds and peak RSS."""
    from .emulator_process import start

    with start(users, targets, latency_ms=latency_ms, batch_workers=512) as emulator, \
            tempfile.TemporaryDirectory(prefix="galsync-fill-rss-") as workdir:
        emulator.throttle(directory_requests=10**9)  # measure memory, not Graph's directory budget
        env = emulator.galsync_env(f"sqlite:{Path(workdir) / 'fill.db'}")
        child = subprocess.run([sys.executable, "-m", "bench.fill_memory", "--child"], cwd=ROOT,
                               input=json.dumps(env), capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"fill ({users} users, {targets} targets) failed: {child.stderr[-2000:]}")
        return json.loads(child.stdout.strip().splitlines()[-1])


def _child() -> None:
    """In a fresh process: sign in, fill every target as `galsync sync` does, print the peak."""
    from sync_core.service.runtime import Runtime
    from sync_core.service.sync import InlineFanOut, sync_profile
    from sync_core.settings import Settings

    env = json.loads(sys.stdin.read())
    rt = Runtime.from_settings(Settings.from_env(env), config=parse_config(CONFIG, "bench.toml"))
    rt.client.get("/users", params={"$top": "1", "$select": "id"})  # sign in, open a connection: the baseline
    baseline = peak_mb()
    started = time.perf_counter()
    fanout = InlineFanOut(rt)
    report = sync_profile(rt, PROFILE, fanout)
    seconds = time.perf_counter() - started
    print(json.dumps({"outcome": report.outcome, "created": fanout.report.counts["created"], "seconds": seconds,
                      "baseline_mb": baseline, "peak_mb": peak_mb()}))
    rt.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1000,4000", help="comma-separated sizes")
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child()
        return
    for users in [int(u) for u in args.users.split(",") if u]:
        result = fill_peak(users, args.targets, args.latency_ms)
        print(f"U={users:,} T={args.targets} L={args.latency_ms} ms: {result['created']:,} created in "
              f"{result['seconds']:.1f} s, peak RSS {result['peak_mb']:.1f} MB (baseline {result['baseline_mb']:.1f})",
              flush=True)


if __name__ == "__main__":
    main()
