"""End to end: a directory change reaches a phone's address book through webhook, queues and workers.

Real parts throughout: the Graph emulator (HTTPS, msal token endpoint, subscriptions with the validation
handshake and HTTPS notification delivery), Azurite queues and tables, and function_app's functions from
`app.get_functions()`. The Functions host is the one thing stood in for (tests/functions/functions_host.py):
it serves the HTTP functions over HTTPS and moves queue messages to the queue functions.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.service.queue_messages import PUSH_TARGETS_QUEUE, SYNC_SOURCE_QUEUE, sync_lease
from sync_core.service.runtime import Runtime
from tests.functions.conftest import Configure, emulator_settings
from tests.functions.functions_host import FunctionsHost, HttpsFront

CONFIG = """
[[profile]]
name = "Dispatch"
folder = "Dispatch"
[[profile.source]]
type = "users"
[profile.users]
in_groups = ["Drivers North"]
[profile.targets]
mailboxes = ["trucks.north@northwind.example"]
[profile.photos]
enabled = false
"""


def contacts(graph: GraphEmulator, rt: Runtime, mailbox: str) -> list[dict[str, Any]]:
    target = rt.store.get_targets("Dispatch")[mailbox]
    assert target.folder_id
    return graph.tenant.mailboxes.contacts(mailbox, target.folder_id)


def test_a_directory_change_reaches_the_target_mailbox_through_the_function_app(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost) -> None:
    scenario = graph.scenario or {}
    truck = scenario["shared_mailboxes"]["Trucks North"]["id"]
    driver = scenario["drivers_by_depot"]["North"][0]
    rt = configure(CONFIG, **emulator_settings(graph), GALSYNC_WEBHOOK_BASE_URL=front.base_url)

    host.timer("subscriptions_timer")  # subscribes (the emulator validates the HTTPS endpoints)
    host.timer("sync_timer")  # the first sync fills the truck's address book
    host.drain()
    assert len(contacts(graph, rt, truck)) == 25
    # The push message names the folder the sync made: known empty, so the fill lists nothing to adopt.
    assert graph.log.count(method="GET", route="/users/{user}/contactFolders/{folder}/contacts") == 0

    host.deliveries.clear()
    host.sent.clear()
    started = time.perf_counter()
    graph.tenant.directory.update_user(driver, mobilePhone="+44 7700 900 555")
    assert graph.tenant.subscriptions.flush()  # Graph POSTed the notification to /api/notifications
    notified = time.perf_counter()
    assert [json.loads(b) for q, b in host.sent] == [{"type": "sync", "profile": "Dispatch",
                                                      "reason": "notification"}]
    host.drain()
    done = time.perf_counter()

    [changed] = [c for c in contacts(graph, rt, truck) if c.get("mobilePhone") == "+44 7700 900 555"]
    assert len(contacts(graph, rt, truck)) == 25
    assert [(d.queue, d.error) for d in host.deliveries] == [(SYNC_SOURCE_QUEUE, None), (PUSH_TARGETS_QUEUE, None)]
    assert not rt.store.has_pending(sync_lease("Dispatch"))  # the worker took the flag: the next change enqueues
    print(f"\nend-to-end delay: {(done - started) * 1000:.0f} ms "
          f"(change -> notification enqueued {(notified - started) * 1000:.0f} ms, "
          f"queues -> contact updated {(done - notified) * 1000:.0f} ms)")
    assert changed["displayName"]


def test_a_fill_larger_than_a_message_goes_through_the_push_queue_in_messages_of_at_most_w_writes(
        configure: Configure, graph: GraphEmulator, host: FunctionsHost) -> None:
    scenario = graph.scenario or {}
    truck = scenario["shared_mailboxes"]["Trucks North"]["id"]
    rt = configure(CONFIG, **emulator_settings(graph), GALSYNC_WRITES_PER_MESSAGE="10")
    host.timer("sync_timer")
    creates_per_push: list[int] = []
    while host.count(SYNC_SOURCE_QUEUE) or host.count(PUSH_TARGETS_QUEUE):
        queue = SYNC_SOURCE_QUEUE if host.count(SYNC_SOURCE_QUEUE) else PUSH_TARGETS_QUEUE
        before = graph.log.count(method="POST", route="/users/{user}/contactFolders/{folder}/contacts")
        host.process_one(queue)
        if queue == PUSH_TARGETS_QUEUE:
            creates_per_push.append(graph.log.count(method="POST", route="/users/{user}/contactFolders/{folder}/"
                                                    "contacts") - before)
    # 25 drivers, 10 writes a message: the sync's message and the two it handed on, each through the queue.
    assert creates_per_push == [10, 10, 5]
    pushed = [json.loads(b) for q, b in host.sent if q == PUSH_TARGETS_QUEUE]
    assert [p["mailboxes"] for p in pushed] == [[truck]] * 3
    assert pushed[0]["after"] is None and pushed[1]["after"] < pushed[2]["after"]
    assert all(d.error is None for d in host.deliveries)
    assert len(contacts(graph, rt, truck)) == 25 == len({c["displayName"] for c in contacts(graph, rt, truck)})


def test_the_nightly_timer_repairs_a_contact_deleted_on_a_phone(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    scenario = graph.scenario or {}
    truck = scenario["shared_mailboxes"]["Trucks North"]["id"]
    rt = configure(CONFIG, **emulator_settings(graph), GALSYNC_WEBHOOK_BASE_URL=front.base_url)
    host.timer("sync_timer")
    host.drain()
    host.timer("reconcile_timer")  # the first night reads each managed folder in full
    host.drain()
    victim = contacts(graph, rt, truck)[0]
    graph.tenant.mailboxes.phone_delete_contact(truck, victim["id"])
    assert len(contacts(graph, rt, truck)) == 24

    host.deliveries.clear()
    host.timer("reconcile_timer", past_due=True)
    host.drain()
    # the reconcile message reads what is profile-wide, one group message reconciles the truck
    assert [(d.function, d.error) for d in host.deliveries] == [("sync_source", None), ("reconcile_targets", None)]
    assert len(contacts(graph, rt, truck)) == 25  # policy deleted_on_device = "recreate"
    assert victim["displayName"] in {c["displayName"] for c in contacts(graph, rt, truck)}
    # the run's summary in the function log: the doctor's verdict in counts, and no contact's name
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("doctor: profile Dispatch")]
    assert len(summaries) == 2  # one per night
    assert "shared_targets=1" in summaries[-1] and victim["displayName"] not in summaries[-1]
