"""galsync measures how long a notified change takes to reach the phones: from the notification's arrival at
the webhook to the end of the last push that wrote it, through the sync-source and push-targets queues.

The Runtime's clock (which the webhook, the sync and the pushes read) is a fake one that moves only when the
test says so, so every measurement is an exact number. Everything else is real: the Graph emulator and its
notifications over HTTPS, Azurite queues and tables, function_app's functions.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import function_app
from graph_emulator import GraphEmulator
from sync_core.service.propagation import PropagationStats
from sync_core.service.queue_messages import PUSH_TARGETS_QUEUE, SYNC_SOURCE_QUEUE, sync_lease
from sync_core.service.runtime import Runtime
from sync_core.service.status import status
from sync_core.service.telemetry import RUN_RECORD
from sync_core.service.webhook import PendingMemo
from sync_core.settings import LEASE_SECONDS
from sync_core.state import docs
from tests.functions.conftest import Configure, emulator_settings, use_store_clock
from tests.functions.functions_host import FunctionsHost, HttpsFront
from tests.functions.test_end_to_end import CONFIG
from tests.state.conftest import FakeClock

THREE_TRUCKS = CONFIG.replace('mailboxes = ["trucks.north@northwind.example"]',
                              'mailboxes = ["trucks.north@northwind.example", "trucks.south@northwind.example", '
                              '"trucks.east@northwind.example"]')
# The hour the test starts in: Graph checks a subscription's expiry, asked by the Runtime's clock, by its own.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def at(seconds: float) -> str:
    """The time `seconds` after START, as galsync stores times."""
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def push_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    found = [r.getMessage() for r in caplog.records if r.name == "galsync.telemetry"]
    runs = [json.loads(m[len(RUN_RECORD) + 1:]) for m in found if m.startswith(RUN_RECORD + " ")]
    return [r for r in runs if r["kind"] == "push"]


class Scene:
    """Dispatch's drivers in the trucks' address books, filled by a timer sync; the clock at START."""

    def __init__(self, configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
                 config: str, **env: str) -> None:
        self.graph, self.host = graph, host
        self.drivers = (graph.scenario or {})["drivers_by_depot"]["North"]
        self.rt: Runtime = configure(config, **emulator_settings(graph), GALSYNC_WEBHOOK_BASE_URL=front.base_url,
                                     **env)
        self.clock = FakeClock(START.timestamp())
        self.rt.clock = self.clock
        use_store_clock(self.rt, self.clock)
        function_app.process.webhook().memo = PendingMemo(self.clock)
        host.timer("subscriptions_timer")
        host.timer("sync_timer")
        host.drain()
        host.sent.clear()

    def change(self, driver: int, phone: str) -> None:
        """A driver's phone changes in the directory and Graph notifies the webhook, now by the clock."""
        self.graph.tenant.directory.update_user(self.drivers[driver], mobilePhone=phone)
        assert self.graph.tenant.subscriptions.flush()

    def pushes_waiting(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.host.peek(PUSH_TARGETS_QUEUE)]

    def stats(self, after: float) -> PropagationStats:
        report = status(self.rt.store, ["Dispatch"], now=START + timedelta(seconds=after))
        return report.profiles[0].propagation


def test_the_time_from_notification_to_the_last_push_is_measured_once_per_notified_sync(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    scene = Scene(configure, graph, front, host, THREE_TRUCKS, GALSYNC_TARGETS_PER_MESSAGE="1")
    store = scene.rt.store
    # The timer's sync served no notification: nothing is tracked, nothing measured.
    assert docs.read(store, docs.Propagation, "Dispatch") is None and scene.stats(60) == PropagationStats(0, None, None)
    caplog.set_level(logging.INFO, logger="galsync")
    caplog.clear()

    scene.clock.advance(600)
    scene.change(0, "+44 7700 900 601")  # arrives at START + 600 s
    scene.clock.advance(2)  # past the webhook's memo: the second notification consults the store
    scene.change(1, "+44 7700 900 602")
    assert [json.loads(b)["reason"] for q, b in host.sent] == ["notification"]  # one sync for the burst
    assert docs.read(store, docs.Notified, "Dispatch") == docs.Notified(at(600))  # the first arrival is kept

    scene.clock.advance(0.5)
    host.process_one(SYNC_SOURCE_QUEUE)
    assert docs.read(store, docs.Notified, "Dispatch") is None  # served: the next notification starts anew
    pushes = scene.pushes_waiting()
    assert sorted((p["part"], p["notified_at"]) for p in pushes) == [(0, at(600)), (1, at(600)), (2, at(600))]
    tracked = docs.read(store, docs.Propagation, "Dispatch")
    assert tracked is not None and list(tracked.runs.values()) == [docs.PushesLeft(at(600), (0, 1, 2))]

    for seconds in (1.0, 1.0, 1.25):  # three pushes, one truck each, one after the other
        scene.clock.advance(seconds)
        host.process_one(PUSH_TARGETS_QUEUE)
    records = push_records(caplog)
    assert [r["counts"] for r in records] == [{"updated": 2}] * 3  # each truck got both changes
    assert [r["notified_at"] for r in records] == [at(600)] * 3
    # Only the last push knows the whole run's time: 2 + 0.5 + 1 + 1 + 1.25 s after the first arrival.
    assert [r["propagation_ms"] for r in records] == [None, None, 5750]
    assert docs.read(store, docs.Propagation, "Dispatch") == docs.Propagation({})
    assert scene.stats(3600) == PropagationStats(1, 5750, 5750)

    # A second notified change, quicker: the day's p50 and p95 are two different measurements.
    scene.clock.advance(60)
    scene.change(2, "+44 7700 900 603")
    scene.clock.advance(0.25)
    host.drain()  # the sync and its three pushes, no clock move in between
    assert push_records(caplog)[-1]["propagation_ms"] == 250
    assert scene.stats(3600) == PropagationStats(2, 250, 5750)
    # Measured at START + 605.75 s and + 666 s (kept to the second): a day later, one, then none, is left.
    assert scene.stats(86400 + 606) == PropagationStats(1, 250, 250)
    assert scene.stats(86400 + 666) == PropagationStats(0, None, None)


def test_a_notified_change_is_measured_from_its_arrival_after_its_sync_waited_for_a_dead_worker(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    """The notification's own sync message finds the lease held and only raises the flag; the holder dies,
    the stale sweep sends the sync again, and that sync, started by a timer, measures from the arrival."""
    scene = Scene(configure, graph, front, host, CONFIG)
    caplog.set_level(logging.INFO, logger="galsync")
    caplog.clear()
    assert scene.rt.store.acquire_lease(sync_lease("Dispatch"), "worker-a", LEASE_SECONDS)
    scene.change(0, "+44 7700 900 700")  # arrives at START
    host.drain()
    assert [d.queue for d in host.deliveries[-1:]] == [SYNC_SOURCE_QUEUE] and push_records(caplog) == []

    scene.clock.advance(LEASE_SECONDS + 1)  # worker-a's lease runs out; nobody renews it
    host.timer("stale_pending_timer")
    assert [json.loads(b)["reason"] for q, b in host.sent if q == SYNC_SOURCE_QUEUE][-1] == "stale-pending"
    host.drain()
    [push] = push_records(caplog)
    assert push["counts"]["updated"] == 1
    assert (push["notified_at"], push["propagation_ms"]) == (at(0), (LEASE_SECONDS + 1) * 1000)
    assert scene.stats(LEASE_SECONDS + 2) == PropagationStats(1, (LEASE_SECONDS + 1) * 1000,
                                                              (LEASE_SECONDS + 1) * 1000)
