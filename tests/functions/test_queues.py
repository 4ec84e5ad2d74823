"""The queue and timer functions, fed by the Functions host stand-in from Azurite queues.

The host itself is the one thing stood in for (tests/functions/functions_host.py): messages are real Azurite
queue messages handed over as `func.QueueMessage`, timers get `func.TimerRequest`, output bindings are
written back to Azurite, and a message that fails maxDequeueCount times moves to `<queue>-poison` as the host
moves it. These tests need no Graph: the sync itself is covered end to end in test_end_to_end.py.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from sync_core.core.records import Target
from sync_core.service.poison import list_poison
from sync_core.service.queue_messages import PUSH_TARGETS_QUEUE, RECONCILE_TARGETS_QUEUE, SYNC_SOURCE_QUEUE, sync_lease
from sync_core.settings import LEASE_SECONDS
from sync_core.state.base import StateMismatch
from sync_core.state.docs import QUEUE_FAILURE
from sync_core.state.identity import StoreIdentity, stamp
from tests.functions.conftest import Configure, use_store_clock
from tests.functions.functions_host import MAX_DEQUEUE, FunctionsHost
from tests.state.conftest import FakeClock

UNREACHABLE_GRAPH = {
    # A Graph and authority nobody listens on: every sync fails quickly with a connection error.
    "GALSYNC_AUTH_MODE": "client_secret",
    "GALSYNC_CLIENT_ID": "00000000-0000-4000-8000-000000000001",
    "GALSYNC_CLIENT_SECRET": "not-a-real-secret",
    "GALSYNC_AUTHORITY_HOST": "https://127.0.0.1:9",
    "GALSYNC_GRAPH_BASE_URL": "https://127.0.0.1:9/v1.0",
    "GALSYNC_RETRY_MAX_ATTEMPTS": "1",
}


@pytest.mark.parametrize(("queue", "body", "reason"), [
    (SYNC_SOURCE_QUEUE, "this is not JSON", "not valid JSON"),
    (SYNC_SOURCE_QUEUE, '{"type": "sync", "profile": "Nobody"}', 'no profile named "Nobody"'),
    (SYNC_SOURCE_QUEUE, '{"type": "resync", "profile": "Dispatch"}', "'type' must be sync, reconcile or lifecycle"),
    (SYNC_SOURCE_QUEUE, '{"type": "lifecycle", "subscription_id": "../../users", "event": "missed"}',
     "subscription_id"),
    (PUSH_TARGETS_QUEUE, '{"type": "push", "profile": "Dispatch", "mailboxes": "all"}', "mailboxes"),
    (PUSH_TARGETS_QUEUE, '{"type": "push", "profile": "Gone", "mailboxes": []}', 'no profile named "Gone"'),
    (PUSH_TARGETS_QUEUE, '{"type": "push", "profile": "Dispatch", "mailboxes": [], "keys": ["user:1"], '
                         '"after": "user:0"}', "'after' must be null, or a source key when 'keys' is null"),
    (RECONCILE_TARGETS_QUEUE, '{"type": "push", "profile": "Dispatch", "mailboxes": ["m1"]}',
     "'type' must be reconcile-group, got \"push\""),
    (RECONCILE_TARGETS_QUEUE, '{"type": "reconcile-group", "profile": "Dispatch", "run_id": "r1", "group": 2, '
                              '"groups": 2, "mailboxes": ["m1"]}', "'group' must be a whole number from 0 to 1, got 2"),
    (RECONCILE_TARGETS_QUEUE, '{"type": "reconcile-group", "profile": "Dispatch", "run_id": "r1", "group": 0, '
                              '"groups": 1, "mailboxes": []}', "'mailboxes' must be a list of 1 to 1000 mailbox ids"),
    (RECONCILE_TARGETS_QUEUE, '{"type": "reconcile-group", "profile": "Dispatch", "group": 0, "groups": 1, '
                              '"mailboxes": ["m1"]}', "'run_id' must be a run id, got nothing"),
    (RECONCILE_TARGETS_QUEUE, '{"type": "reconcile-group", "profile": "Gone", "run_id": "r1", "group": 0, '
                              '"groups": 1, "mailboxes": ["m1"]}', 'no profile named "Gone"'),
])
def test_a_message_that_can_never_work_is_recorded_as_poison_at_once(
        configure: Configure, host: FunctionsHost, queue: str, body: str, reason: str) -> None:
    rt = configure()
    host.send(queue, body)
    assert host.drain() == 1  # handed over once: not retried
    assert [d.error for d in host.deliveries] == [None]
    [record] = list_poison(rt.store)
    assert record.queue == queue
    assert reason in record.reason
    assert record.body == body
    assert host.count(queue) == 0 and host.count(queue + "-poison") == 0


def test_a_message_that_keeps_failing_is_retried_then_recorded_with_its_last_error(
        configure: Configure, host: FunctionsHost) -> None:
    rt = configure(**UNREACHABLE_GRAPH)
    body = json.dumps({"type": "sync", "profile": "Dispatch", "reason": "test"})
    host.send(SYNC_SOURCE_QUEUE, body)
    host.drain()
    tries = [d for d in host.deliveries if d.queue == SYNC_SOURCE_QUEUE]
    assert len(tries) == MAX_DEQUEUE and all(d.error is not None for d in tries)
    assert [d.function for d in host.deliveries if d.queue.endswith("-poison")] == ["sync_source_poison"]
    [record] = list_poison(rt.store)
    assert record.queue == SYNC_SOURCE_QUEUE and record.profile == "Dispatch"
    assert record.dequeue_count == MAX_DEQUEUE
    assert record.reason.startswith("failed on every try; last error: ")
    assert type(tries[-1].error).__name__ in record.reason
    assert rt.store.list_docs(QUEUE_FAILURE) == []  # the note of the last failure went into the record
    assert not rt.store.has_pending(sync_lease("Dispatch"))  # the failed runs released the lease and flag
    assert rt.store.acquire_lease(sync_lease("Dispatch"), "someone else", 60)


def test_a_failing_push_lands_in_the_push_targets_poison_record(configure: Configure, host: FunctionsHost) -> None:
    rt = configure(**UNREACHABLE_GRAPH)
    rt.store.put_target("Dispatch", Target("mbx-1", "trucks.north@northwind.example", None, "shared", True))
    body = json.dumps({"type": "push", "profile": "Dispatch", "mailboxes": ["mbx-1"], "keys": None,
                       "mode": "changes", "run_id": "r1"})
    host.send(PUSH_TARGETS_QUEUE, body)
    host.drain()
    assert len([d for d in host.deliveries if d.queue == PUSH_TARGETS_QUEUE]) == MAX_DEQUEUE
    [record] = list_poison(rt.store)
    assert record.queue == PUSH_TARGETS_QUEUE and record.body == body


OTHER_TENANT = "0b1e2d3c-0000-4000-8000-00000000bbbb"


@pytest.mark.parametrize(("queue", "body"), [
    (SYNC_SOURCE_QUEUE, json.dumps({"type": "sync", "profile": "Dispatch", "reason": "timer"})),
    (PUSH_TARGETS_QUEUE, json.dumps({"type": "push", "profile": "Dispatch", "mailboxes": ["mbx-1"], "keys": None,
                                     "mode": "changes", "run_id": "r1"})),
])
def test_a_state_store_of_another_tenant_sends_the_message_to_poison_naming_both_and_writes_nothing(
        configure: Configure, host: FunctionsHost, caplog: pytest.LogCaptureFixture, queue: str, body: str) -> None:
    rt = configure(**UNREACHABLE_GRAPH)
    configured = rt.settings.tenant_id
    stamp(rt.store, StoreIdentity(OTHER_TENANT, "https://127.0.0.1:9/v1.0"))
    rt.store.put_target("Dispatch", Target("mbx-1", "trucks.north@northwind.example", None, "shared", True))

    host.send(queue, body)
    with caplog.at_level(logging.ERROR, logger="galsync"):
        assert host.drain() == 1  # not retried: it cannot work until the settings or the store change

    [record] = list_poison(rt.store)
    assert record.queue == queue and record.body == body
    assert f"made for tenant {OTHER_TENANT} at https://127.0.0.1:9/v1.0" in record.reason
    assert f"configured for tenant {configured} at https://127.0.0.1:9/v1.0" in record.reason
    assert OTHER_TENANT in caplog.text and configured in caplog.text
    assert rt.store.recent_runs() == [] and rt.store.list_leases() == []  # no run started, nothing written
    assert rt.store.get_target_records("Dispatch", "mbx-1") == {}


def test_the_subscriptions_timer_refuses_a_state_store_of_another_tenant(configure: Configure,
                                                                         host: FunctionsHost) -> None:
    rt = configure(**UNREACHABLE_GRAPH)
    stamp(rt.store, StoreIdentity(OTHER_TENANT, "https://127.0.0.1:9/v1.0"))
    with pytest.raises(StateMismatch, match=OTHER_TENANT):
        host.timer("subscriptions_timer")
    assert rt.store.list_docs("subscription") == []


def test_the_safety_net_timer_queues_a_sync_of_every_profile_even_when_one_is_pending(
        configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    rt.store.mark_pending(sync_lease("Dispatch"))  # a flag whose message was lost must not block the timer
    host.timer("sync_timer")
    assert [json.loads(b) for b in host.peek(SYNC_SOURCE_QUEUE)] == [
        {"type": "sync", "profile": "Company directory", "reason": "timer"},
        {"type": "sync", "profile": "Dispatch", "reason": "timer"},
    ]


def test_the_stale_pending_sweep_sends_again_only_the_sync_whose_worker_died(
        configure: Configure, host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    rt = configure()
    clock = FakeClock(time.time())
    use_store_clock(rt, clock)
    # Dispatch: its sync message found worker-a holding the lease and left the flag for it; worker-a then
    # died. Company directory: a live worker-b holds the lease with a flag raised during its long run.
    assert rt.store.acquire_lease(sync_lease("Dispatch"), "worker-a", LEASE_SECONDS)
    assert rt.store.acquire_lease(sync_lease("Company directory"), "worker-b", LEASE_SECONDS)
    rt.store.mark_pending(sync_lease("Dispatch"))
    rt.store.mark_pending(sync_lease("Company directory"))

    host.timer("stale_pending_timer")
    clock.advance(LEASE_SECONDS - 1)
    host.timer("stale_pending_timer")
    assert host.sent == []  # both flags will be taken by their holders, as far as anyone can tell yet

    clock.advance(2)
    assert rt.store.acquire_lease(sync_lease("Company directory"), "worker-b", LEASE_SECONDS)  # b renews
    with caplog.at_level(logging.INFO, logger="galsync"):
        host.timer("stale_pending_timer")
        host.timer("stale_pending_timer")  # the next sweep: the flag was raised afresh, the message waits
    assert [json.loads(b) for b in host.peek(SYNC_SOURCE_QUEUE)] == [
        {"type": "sync", "profile": "Dispatch", "reason": "stale-pending"}]
    assert "stale pending flags: 1 profile(s)" in caplog.text

    assert rt.store.take_pending(sync_lease("Dispatch"))  # what the sync worker does when it starts
    assert rt.store.take_pending(sync_lease("Company directory"))  # worker-b runs once more, then ends
    rt.store.release_lease(sync_lease("Company directory"), "worker-b")
    clock.advance(10 * LEASE_SECONDS)
    host.timer("stale_pending_timer")
    assert len(host.sent) == 1  # clear flags send nothing


def test_the_nightly_timer_queues_a_reconcile_of_every_profile(configure: Configure, host: FunctionsHost) -> None:
    configure()
    host.timer("reconcile_timer", past_due=True)
    assert [json.loads(b) for b in host.peek(SYNC_SOURCE_QUEUE)] == [
        {"type": "reconcile", "profile": "Company directory"},
        {"type": "reconcile", "profile": "Dispatch"},
    ]
