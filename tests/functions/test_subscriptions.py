"""ensure_subscriptions and lifecycle events, against the Graph emulator with the real validation handshake.

The HTTP functions are served over HTTPS by the Functions host stand-in (the one thing stood in for), so when
galsync subscribes, the emulator POSTs `?validationToken=...` to them and refuses the subscription unless they
echo it. Counts of Graph requests come from the emulator's request log.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import function_app
from graph_emulator import GraphEmulator
from sync_core.service.queue_messages import SYNC_SOURCE_QUEUE
from sync_core.service.runtime import Runtime
from sync_core.service.status import DAMAGED, subscriptions
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

[[profile]]
name = "Office"
[[profile.source]]
type = "users"
[[profile.source]]
type = "org_contacts"
[profile.targets]
groups = ["All Staff"]
"""
# The same without the filter group: Dispatch no longer needs the "Drivers North" subscription.
CONFIG_WITHOUT_FILTER = CONFIG.replace('[profile.users]\nin_groups = ["Drivers North"]\n', "")

SUBSCRIPTIONS = "/subscriptions"
ONE = "/subscriptions/{id}"


def start(configure: Configure, graph: GraphEmulator, front: HttpsFront, config: str = CONFIG) -> Runtime:
    return configure(config, **emulator_settings(graph), GALSYNC_WEBHOOK_BASE_URL=front.base_url)


def remote(graph: GraphEmulator) -> dict[str, dict[str, Any]]:
    return {s["resource"]: s for s in graph.tenant.subscriptions.list()}


def writes(graph: GraphEmulator) -> dict[str, int]:
    log = graph.log
    return {"POST": log.count("POST", SUBSCRIPTIONS), "PATCH": log.count("PATCH", ONE),
            "DELETE": log.count("DELETE", ONE)}


def test_the_timer_subscribes_to_users_and_the_profiles_groups_through_the_handshake(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    rt = start(configure, graph, front)
    scenario = graph.scenario or {}
    with caplog.at_level(logging.DEBUG, logger="galsync"):
        host.timer("subscriptions_timer")

    subs = remote(graph)
    assert sorted(subs) == sorted(["users", f"groups/{scenario['drivers_north_group_id']}",
                                   f"groups/{scenario['all_staff_group_id']}"])
    assert subs["users"]["changeType"] == "updated,deleted"
    for sub in subs.values():
        assert sub["notificationUrl"] == f"{front.base_url}/api/notifications?code={host.function_key}"
        assert sub["lifecycleNotificationUrl"] == f"{front.base_url}/api/lifecycle?code={host.function_key}"
    # The emulator validated both URLs of each subscription against the HTTP functions.
    assert [(route, status) for route, status, _ in front.answers].count(("notifications", 200)) == 3
    assert [(route, status) for route, status, _ in front.answers].count(("lifecycle", 200)) == 3

    docs = dict(rt.store.list_docs("subscription"))
    assert set(docs) == {s["id"] for s in subs.values()}
    secrets = {doc["client_state"] for doc in docs.values()}
    assert len(secrets) == 3 and all(len(s) >= 40 for s in secrets)  # a fresh secret each
    assert {docs[s["id"]]["client_state"] for s in subs.values()} == {s["clientState"] for s in subs.values()}
    assert docs[subs["users"]["id"]]["profiles"] == ["Dispatch", "Office"]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("galsync"))
    assert "subscription" in ours
    for secret in [*secrets, host.function_key]:
        assert secret not in ours
    assert function_app.process.runtime().client.stats.snapshot()["http_requests"] > 0


def test_a_second_run_only_reads(configure: Configure, graph: GraphEmulator, front: HttpsFront,
                                 host: FunctionsHost) -> None:
    start(configure, graph, front)
    host.timer("subscriptions_timer")
    before = writes(graph)
    group_lookups = graph.log.count("GET", "/groups")
    host.timer("subscriptions_timer")
    assert writes(graph) == before == {"POST": 3, "PATCH": 0, "DELETE": 0}
    assert graph.log.count("GET", SUBSCRIPTIONS) == 2  # one list per run
    assert graph.log.count("GET", "/groups") == group_lookups == 2  # group names are looked up once


def test_subscriptions_are_renewed_once_half_their_lifetime_has_passed(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost) -> None:
    rt = start(configure, graph, front)
    host.timer("subscriptions_timer")
    first = {r: s["expirationDateTime"] for r, s in remote(graph).items()}

    move_clocks(rt, graph, timedelta(days=13))  # under half of the 29-day maximum: nothing to do yet
    host.timer("subscriptions_timer")
    assert writes(graph)["PATCH"] == 0

    move_clocks(rt, graph, timedelta(days=15))  # now past half
    host.timer("subscriptions_timer")
    assert writes(graph) == {"POST": 3, "PATCH": 3, "DELETE": 0}
    renewed = remote(graph)
    for resource, sub in renewed.items():
        assert sub["expirationDateTime"] > first[resource]
    docs = dict(rt.store.list_docs("subscription"))
    assert {docs[s["id"]]["expiration"] for s in renewed.values()} == {s["expirationDateTime"]
                                                                       for s in renewed.values()}
    host.timer("subscriptions_timer")
    assert writes(graph)["PATCH"] == 3


def test_subscriptions_no_longer_needed_are_deleted(configure: Configure, graph: GraphEmulator, front: HttpsFront,
                                                   host: FunctionsHost) -> None:
    start(configure, graph, front)
    host.timer("subscriptions_timer")
    drivers = f"groups/{(graph.scenario or {})['drivers_north_group_id']}"
    gone_id = remote(graph)[drivers]["id"]

    rt = start(configure, graph, front, CONFIG_WITHOUT_FILTER)  # the admin edited the profiles file
    host.timer("subscriptions_timer")
    assert drivers not in remote(graph)
    assert writes(graph) == {"POST": 3, "PATCH": 0, "DELETE": 1}
    assert rt.store.get_doc("subscription", gone_id) is None


def test_a_group_that_does_not_resolve_is_reported_and_deletes_nothing(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    start(configure, graph, front)
    host.timer("subscriptions_timer")
    before = remote(graph)
    start(configure, graph, front, CONFIG.replace('groups = ["All Staff"]', 'groups = ["All Staff", "Al Staff"]'))
    with caplog.at_level(logging.ERROR, logger="galsync"):
        host.timer("subscriptions_timer")
    assert remote(graph) == before
    assert writes(graph) == {"POST": 3, "PATCH": 0, "DELETE": 0}
    assert 'profile "Office"' in caplog.text and 'no group named "Al Staff"' in caplog.text


def test_a_subscription_without_its_secret_is_replaced_and_foreign_ones_are_left_alone(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost) -> None:
    rt = start(configure, graph, front)
    host.timer("subscriptions_timer")
    lost = remote(graph)["users"]["id"]
    rt.store.delete_doc("subscription", lost)  # e.g. the state store was restored from an old backup
    with graph.session() as http:  # another webhook of the same app registration, not galsync's routes
        foreign = http.post(f"{graph.base_url}/subscriptions", json={
            "changeType": "updated", "resource": "users", "clientState": "theirs",
            "notificationUrl": f"{front.base_url}/api/lifecycle?code={host.function_key}",
            "expirationDateTime": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}).json()

    host.timer("subscriptions_timer")
    ids = {s["id"] for s in graph.tenant.subscriptions.list()}
    assert lost not in ids and foreign["id"] in ids
    assert rt.store.get_doc("subscription", remote_users_id(graph)) is not None
    assert writes(graph) == {"POST": 5, "PATCH": 0, "DELETE": 1}  # 3 + foreign + the replacement


def test_a_damaged_subscription_record_is_listed_then_replaced_and_notifications_for_it_are_dropped(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    """A record whose clientState cannot be read is never trusted: the webhook drops its notifications, status
    lists it as damaged (so the admin sees it), and the next timer replaces the subscription."""
    rt = start(configure, graph, front)
    host.timer("subscriptions_timer")
    damaged = remote_users_id(graph)
    rt.store.put_doc("subscription", damaged, {"resource": "users", "client_state": 42, "profiles": ["Office"]})

    assert [(s.subscription_id, s.resource) for s in subscriptions(rt.store) if s.subscription_id == damaged] == [
        (damaged, DAMAGED)]
    answer = function_app.process.webhook().notifications({}, {"content-type": "application/json"}, json.dumps(
        {"value": [{"subscriptionId": damaged, "clientState": "42", "changeType": "updated",
                    "resource": "Users/x", "tenantId": graph.tenant_id}]}).encode())
    assert answer.status == 202 and answer.messages == ()

    graph.log.clear()
    with caplog.at_level(logging.ERROR, logger="galsync"):
        host.timer("subscriptions_timer")
    assert f"stored subscription document '{damaged}' is malformed: 'client_state' must be a string" in caplog.text
    assert writes(graph) == {"POST": 1, "PATCH": 0, "DELETE": 1}  # the damaged one replaced, the others kept
    assert damaged not in {s["id"] for s in graph.tenant.subscriptions.list()}
    assert rt.store.get_doc("subscription", damaged) is None
    assert DAMAGED not in {s.resource for s in subscriptions(rt.store)}


def test_reauthorization_required_renews_the_subscription(configure: Configure, graph: GraphEmulator,
                                                          front: HttpsFront, host: FunctionsHost) -> None:
    start(configure, graph, front)
    host.timer("subscriptions_timer")
    sid = remote(graph)["users"]["id"]
    graph.tenant.subscriptions.emit_lifecycle(sid, "reauthorizationRequired")
    assert graph.tenant.subscriptions.flush()
    assert [json.loads(b) for b in host.peek(SYNC_SOURCE_QUEUE)] == [
        {"type": "lifecycle", "subscription_id": sid, "event": "reauthorizationRequired"}]
    host.process_one(SYNC_SOURCE_QUEUE)
    assert graph.log.count("PATCH", ONE) == 1
    assert host.count(SYNC_SOURCE_QUEUE) == 0  # nothing was missed: no resync


def test_subscription_removed_recreates_it_then_queues_a_resync(configure: Configure, graph: GraphEmulator,
                                                                 front: HttpsFront, host: FunctionsHost) -> None:
    rt = start(configure, graph, front)
    host.timer("subscriptions_timer")
    sid = remote(graph)["users"]["id"]
    graph.tenant.subscriptions.emit_lifecycle(sid, "subscriptionRemoved")
    assert graph.tenant.subscriptions.flush()
    assert "users" not in remote(graph)
    host.process_one(SYNC_SOURCE_QUEUE)

    assert "users" in remote(graph) and remote(graph)["users"]["id"] != sid
    assert rt.store.get_doc("subscription", sid) is None
    assert sorted(json.loads(b)["profile"] for b in host.peek(SYNC_SOURCE_QUEUE)) == ["Dispatch", "Office"]
    assert {json.loads(b)["reason"] for b in host.peek(SYNC_SOURCE_QUEUE)} == {"lifecycle:subscriptionRemoved"}


def test_missed_notifications_queue_a_resync_without_calling_graph(configure: Configure, graph: GraphEmulator,
                                                                   front: HttpsFront, host: FunctionsHost) -> None:
    start(configure, graph, front)
    host.timer("subscriptions_timer")
    groups = [s for r, s in remote(graph).items() if r.startswith("groups/")]
    calls = graph.log.round_trips()
    for sub in groups:
        graph.tenant.subscriptions.emit_lifecycle(sub["id"], "missed")
    assert graph.tenant.subscriptions.flush()
    assert sorted(json.loads(b)["profile"] for b in host.peek(SYNC_SOURCE_QUEUE)) == ["Dispatch", "Office"]
    assert graph.log.round_trips() == calls


def remote_users_id(graph: GraphEmulator) -> str:
    return str(remote(graph)["users"]["id"])


def move_clocks(rt: Runtime, graph: GraphEmulator, by: timedelta) -> None:
    """Move galsync's clock and the emulator's subscription clock forward together."""
    offset = rt.clock() - time.time() + by.total_seconds()
    rt.clock = lambda: time.time() + offset
    graph.tenant.subscriptions.clock = lambda: datetime.now(UTC) + timedelta(seconds=offset)
