"""A worker that dies while it syncs a profile delays a notified change by about a lease ttl, not 15 minutes.

The dead worker is its lease in the state store: taken, never renewed, never released (what a SIGKILL
leaves). The store's clock is a fake one (`use_store_clock`), so its lease ends when the test moves the
clock, not after a wait. Everything else is real: the Graph emulator and its notifications over HTTPS,
Azurite queues and tables, function_app's functions.
"""

from __future__ import annotations

import json
import time
from typing import Any

import function_app
from graph_emulator import GraphEmulator
from sync_core.service.queue_messages import PUSH_TARGETS_QUEUE, SYNC_SOURCE_QUEUE, sync_lease
from sync_core.service.runtime import Runtime
from sync_core.service.webhook import PendingMemo
from sync_core.settings import LEASE_SECONDS
from tests.functions.conftest import Configure, emulator_settings, use_store_clock
from tests.functions.functions_host import FunctionsHost, HttpsFront
from tests.functions.test_end_to_end import CONFIG, contacts
from tests.state.conftest import FakeClock


def phones(graph: GraphEmulator, rt: Runtime, truck: str) -> set[str]:
    return {c.get("mobilePhone") or "" for c in contacts(graph, rt, truck)}


def sync_messages(host: FunctionsHost) -> list[dict[str, Any]]:
    return [json.loads(body) for queue, body in host.sent if queue == SYNC_SOURCE_QUEUE]


class DeadWorkerScene:
    """A filled truck mailbox, then a change notified while worker-a holds Dispatch's sync lease: the
    notification's sync finds the lease held and leaves the flag for worker-a, which is then killed."""

    def __init__(self, configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost) -> None:
        scenario = graph.scenario or {}
        self.graph, self.host = graph, host
        self.truck = scenario["shared_mailboxes"]["Trucks North"]["id"]
        self.drivers = scenario["drivers_by_depot"]["North"]
        self.rt = configure(CONFIG, **emulator_settings(graph), GALSYNC_WEBHOOK_BASE_URL=front.base_url)
        self.clock = FakeClock(time.time())
        use_store_clock(self.rt, self.clock)
        function_app.process.webhook().memo = PendingMemo(self.clock)
        host.timer("subscriptions_timer")
        host.timer("sync_timer")
        host.drain()
        assert len(contacts(graph, self.rt, self.truck)) == 25

        assert self.rt.store.acquire_lease(sync_lease("Dispatch"), "worker-a", LEASE_SECONDS)
        host.deliveries.clear()
        host.sent.clear()
        self.change(0, "+44 7700 900 100")
        assert [m["reason"] for m in sync_messages(host)] == ["notification"]
        host.drain()
        assert [(d.queue, d.error) for d in host.deliveries] == [(SYNC_SOURCE_QUEUE, None)]  # busy: no push
        assert "+44 7700 900 100" not in phones(graph, self.rt, self.truck)
        assert self.rt.store.has_pending(sync_lease("Dispatch"))  # left for worker-a, which never runs again
        host.deliveries.clear()

    def change(self, driver: int, phone: str) -> None:
        self.graph.tenant.directory.update_user(self.drivers[driver], mobilePhone=phone)
        assert self.graph.tenant.subscriptions.flush()  # Graph POSTed the notification to /api/notifications


def test_the_change_notified_while_a_worker_died_is_synced_by_the_sweep_after_its_lease_ends(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost) -> None:
    scene = DeadWorkerScene(configure, graph, front, host)

    scene.clock.advance(LEASE_SECONDS - 1)
    host.timer("stale_pending_timer")
    assert len(sync_messages(host)) == 1  # worker-a's lease still runs: it may yet run once more

    scene.clock.advance(2)  # no further notification: the sweep finds the flag nobody will take
    host.timer("stale_pending_timer")
    assert [m["reason"] for m in sync_messages(host)] == ["notification", "stale-pending"]
    host.drain()

    assert [(d.queue, d.error) for d in host.deliveries] == [(SYNC_SOURCE_QUEUE, None), (PUSH_TARGETS_QUEUE, None)]
    assert "+44 7700 900 100" in phones(graph, scene.rt, scene.truck)
    assert len(contacts(graph, scene.rt, scene.truck)) == 25
    assert not scene.rt.store.has_pending(sync_lease("Dispatch"))
    host.timer("stale_pending_timer")
    assert len(sync_messages(host)) == 2


def test_the_next_notification_after_the_dead_workers_lease_syncs_every_change_since(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost) -> None:
    scene = DeadWorkerScene(configure, graph, front, host)

    scene.clock.advance(LEASE_SECONDS / 2)
    scene.change(1, "+44 7700 900 101")
    assert len(sync_messages(host)) == 1  # coalesced: worker-a's lease still runs

    scene.clock.advance(LEASE_SECONDS / 2 + 1)
    scene.change(2, "+44 7700 900 102")
    assert [m["reason"] for m in sync_messages(host)] == ["notification", "notification"]
    host.drain()

    assert [(d.queue, d.error) for d in host.deliveries] == [(SYNC_SOURCE_QUEUE, None), (PUSH_TARGETS_QUEUE, None)]
    assert {"+44 7700 900 100", "+44 7700 900 101", "+44 7700 900 102"} <= phones(graph, scene.rt, scene.truck)
    assert len(contacts(graph, scene.rt, scene.truck)) == 25
    host.timer("stale_pending_timer")
    assert len(sync_messages(host)) == 2  # the flag was taken: the sweep has nothing to send again
