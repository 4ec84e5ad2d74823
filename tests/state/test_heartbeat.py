"""Short leases kept alive by a heartbeat: renewed while work runs, given up at its end, lost when not renewable.

The store's clock (lease expiry) and the heartbeat's clock (time since the last renewal) are separate fake
clocks, so a test can make another worker take a lease over without this worker noticing by time alone.
Every test runs on SQLite and on Table Storage (Azurite).
"""

from __future__ import annotations

import time

import pytest

from sync_core.settings import LEASE_SECONDS
from sync_core.state import StateError, StateStore
from sync_core.state.leases import Heartbeat, LeaseLost, run_exclusively
from tests.state.conftest import FakeClock

OWNER = "host-a:4242:0badf00d"


class Breakable:
    """The lease calls of a store, failing with StateError while `broken` (storage unreachable)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.broken = False

    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        if self.broken:
            raise StateError("Table Storage unreachable during acquire_lease: ServiceRequestError")
        return self.store.acquire_lease(name, owner, ttl_seconds)

    def release_lease(self, name: str, owner: str) -> None:
        self.store.release_lease(name, owner)


def test_leases_last_about_a_minute() -> None:
    assert 30 <= LEASE_SECONDS <= 90


def test_each_renewal_moves_the_expiry_a_ttl_past_it(store: StateStore, clock: FakeClock) -> None:
    beat_clock = FakeClock()
    with Heartbeat(store, OWNER, 60, every=3600, clock=beat_clock) as beat:
        assert beat.take("sync:Company") and beat.take("push:Company:mbx")
        started = clock.now
        for _ in range(5):  # five minutes of work, renewed every 20 s
            clock.advance(20)
            beat_clock.advance(20)
            assert beat.renew() is True
        assert beat.held()
        assert [(lease.name, lease.expires_at) for lease in store.list_leases()] == [
            ("push:Company:mbx", started + 100 + 60), ("sync:Company", started + 100 + 60)]
    assert store.list_leases() == []  # the end of the work gives them up


def test_the_heartbeat_thread_renews_on_its_own(store: StateStore, clock: FakeClock) -> None:
    with Heartbeat(store, OWNER, 60, every=0.01, clock=FakeClock()) as beat:
        assert beat.take("sync:Company")
        first = store.get_lease("sync:Company")
        assert first is not None
        clock.advance(20)
        deadline = time.monotonic() + 30
        while (lease := store.get_lease("sync:Company")) is not None and lease.expires_at == first.expires_at:
            assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
            time.sleep(0.01)
        assert lease is not None and lease.expires_at == clock.now + 60
        assert beat.held()


def test_a_lease_taken_over_by_another_worker_is_lost_for_good(store: StateStore, clock: FakeClock) -> None:
    with Heartbeat(store, OWNER, 60, every=3600, clock=FakeClock()) as beat:
        assert beat.take("push:Company:mbx")
        clock.advance(61)  # by the store's clock it ran out (this process was frozen, say); someone took it
        assert store.acquire_lease("push:Company:mbx", "host-b:7:cafe", 60)

        assert beat.renew() is False
        assert beat.held() is False
        with pytest.raises(LeaseLost, match="push:Company:mbx"):
            beat.check()
    lease = store.get_lease("push:Company:mbx")
    assert lease is not None and lease.owner == "host-b:7:cafe"  # leaving the block did not release theirs


def test_no_renewal_for_half_the_ttl_stops_the_writes_while_the_lease_still_runs(store: StateStore,
                                                                                 clock: FakeClock) -> None:
    beat_clock = FakeClock()
    leases = Breakable(store)
    with Heartbeat(leases, OWNER, 60, every=3600, clock=beat_clock) as beat:  # type: ignore[arg-type]
        assert beat.take("sync:Company")
        leases.broken = True
        beat_clock.advance(20)
        with pytest.raises(StateError):
            beat.renew()
        assert beat.held() is True  # 20 s without renewal: the lease has 40 s left
        beat_clock.advance(10)
        assert beat.held() is False  # 30 s: stop writing; the lease still has 30 s to run
        leases.broken = False
        assert beat.renew() is False  # too late to trust a renewal: another worker may have had it meanwhile
        assert beat.held() is False
        lease = store.get_lease("sync:Company")
        assert lease is not None and lease.expires_at == clock.now + 60


def test_run_exclusively_starts_no_further_run_once_the_lease_is_lost(store: StateStore) -> None:
    beat_clock = FakeClock()
    runs: list[int] = []

    def work() -> None:
        runs.append(1)
        store.mark_pending("sync:Company")  # a trigger arrived meanwhile
        beat_clock.advance(LEASE_SECONDS / 2)  # and the heartbeat could not renew in time

    assert run_exclusively(store, "sync:Company", OWNER, LEASE_SECONDS, work, clock=beat_clock) == 1
    assert runs == [1]
    assert store.has_pending("sync:Company")  # left for the worker that holds the lease now
    assert store.get_lease("sync:Company") is None


def test_a_lease_another_worker_holds_is_neither_taken_nor_released(store: StateStore) -> None:
    assert store.acquire_lease("sync:Company", "host-b:7:cafe", 60)
    with Heartbeat(store, OWNER, 60) as beat:
        assert beat.take("sync:Company") is False
    lease = store.get_lease("sync:Company")
    assert lease is not None and lease.owner == "host-b:7:cafe"
