"""A real worker process killed with SIGKILL in the middle of its writes, then a rerun: no duplicates, and the
target folders end exactly as desired (I2, I3).

The worker is `python -m sync_core sync` (the `galsync sync` command line) in its own process, configured only
through the environment as an admin would (GALSYNC_* settings, the profile file, the emulator's CA file).
The emulator runs in the test process with 20 ms per Graph request, so the first fill takes long enough to
be cut: the test waits on the emulator's request log for the k-th POST (k drawn from a seeded random number:
a folder create or a contact create) and kills the process there. Whatever was in flight is finished by
the emulator, as Graph would: the worker never hears of it. The test goes on once the emulator has closed
every connection of the dead worker, so nothing of it lands after that.

A killed worker keeps its leases (`sync:{profile}`, `push:{profile}:{mailbox}`) until they run out, at most a
lease's ttl (about a minute) after its last heartbeat: a rerun at once finds the profile busy, is told which
worker holds it until when, and writes nothing. A rerun whose state store's clock is a ttl later (what the
next trigger after expiry sees) takes over and finishes the work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graph_emulator import GraphEmulator
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.settings import LEASE_SECONDS
from sync_core.state.sqlite_store import SqliteStore
from tests.service.conftest import emulator_env

from . import oracle, world
from .world import GROUP_ID

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = "/users/{user}/contactFolders"
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
STAFF, PHONES = 15, 5  # a first fill of 5 folders and 5 x 15 contacts
LEASE_EXPIRED = LEASE_SECONDS + 1  # past every lease of the killed worker, however late its last heartbeat
WAIT_SECONDS = 60.0


def posts(g: GraphEmulator) -> int:
    """Folder and contact creates the emulator has finished (inner requests of a $batch included)."""
    return g.log.count(method="POST", route=FOLDERS) + g.log.count(method="POST", route=CONTACTS)


def writes(g: GraphEmulator) -> int:
    return sum(g.log.count(method=m, route=r) for m in ("POST", "PATCH", "DELETE")
               for r in (FOLDERS, CONTACTS, CONTACTS + "/{contact}"))


def start_worker(g: GraphEmulator, tmp_path: Path, state: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "galsync.toml"
    config.write_text(oracle.CONFIG, encoding="utf-8")
    env = {**os.environ, **emulator_env(g, f"sqlite:{state}"), "GALSYNC_CONFIG_PATH": str(config),
           "GALSYNC_MAX_CONCURRENCY": "1", "GALSYNC_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "sync_core", "sync", "--profile", oracle.PROFILE, "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_after_posts(g: GraphEmulator, worker: subprocess.Popen[bytes], k: int) -> tuple[int, float]:
    """SIGKILL the worker once the emulator has finished k creates; the creates finished at that moment, and
    the time of the kill."""
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while (done := posts(g)) < k:
            if worker.poll() is not None:
                out, err = worker.communicate()
                pytest.fail(f"the worker ended (status {worker.returncode}) before the {k}th create, after {done}:"
                            f"\n{out.decode(errors='replace')}\n{err.decode(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {k}th create within {WAIT_SECONDS:.0f} s (saw {done})")
            time.sleep(0.002)
        os.kill(worker.pid, signal.SIGKILL)
        killed = time.time()
        worker.communicate()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == -signal.SIGKILL, f"the worker ended on its own (status {worker.returncode})"
    return done, killed


def wait_until_served(before: set[threading.Thread]) -> None:
    """Wait until the emulator has finished everything the dead worker sent: every thread started since
    `before` has ended.

    The emulator serves each connection in a thread of its own, which ends only when the connection is closed
    and the last request on it has been answered and logged (its $batch waves run on a latency clock thread
    that ends once it has nothing left to do). The worker's connections closed when it died.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while serving := [t for t in threading.enumerate() if t not in before]:
        if time.monotonic() > deadline:
            pytest.fail(f"the emulator still serves the dead worker after {WAIT_SECONDS:.0f} s: {serving}")
        serving[0].join(0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_worker_killed_mid_fill_is_recovered_by_a_rerun(graph_empty: GraphEmulator, tmp_path: Path,
                                                            seed: int) -> None:
    g = graph_empty
    world.small_tenant(g, STAFF, PHONES)
    total = PHONES + PHONES * STAFF
    k = random.Random(seed).randint(1, total // 2)
    state = tmp_path / "state.db"
    g.faults.configure(latency_ms=20)
    serving_before = set(threading.enumerate())
    worker = start_worker(g, tmp_path, state)
    killed_at, killed = kill_after_posts(g, worker, k)
    wait_until_served(serving_before)
    cut = posts(g)
    assert killed_at >= k and cut < total, f"seed {seed}: killed after {killed_at} creates, {cut} of {total} done"
    g.faults.clear()

    with SqliteStore(state) as store:
        leases = store.list_leases()
    assert leases, f"seed {seed}: the dead worker's leases should still be held"
    assert all(f":{worker.pid}:" in lease.owner and lease.expires_at <= killed + LEASE_SECONDS for lease in leases), \
        f"seed {seed}: a dead worker's lease must run out within a ttl of its death: {leases}"

    now = world.runtime(g, state)
    g.log.clear()
    busy = sync_profile(now, oracle.PROFILE, InlineFanOut(now))
    assert busy.outcome == "busy", f"seed {seed}: the dead worker's lease should still hold the profile"
    assert busy.holder is not None and f":{worker.pid}:" in busy.holder.owner  # who holds it, and until when
    assert busy.holder.expires_at <= killed + LEASE_SECONDS
    assert writes(g) == 0

    later = world.runtime(g, state, clock=lambda: time.time() + LEASE_EXPIRED)
    try:
        assert world.sync(later) == "ok", f"seed {seed}: the rerun after the leases expired failed"
        oracle.check_no_duplicates(g)
        oracle.check_converged(g, GROUP_ID)
        g.log.clear()
        assert world.reconcile(later) == "ok"
        assert writes(g) == 0, f"seed {seed}: the rerun left drift behind for the reconcile to repair"
    finally:
        now.close()
        later.close()
