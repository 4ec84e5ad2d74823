"""POST /api/notifications and /api/lifecycle, called as the Functions host calls them.

The Functions host is the one thing stood in for (tests/functions/functions_host.py): the functions come from
`app.get_functions()`, get real `func.HttpRequest` objects, and their queue output goes to Azurite. The
subscription documents are written here the way `ensure_subscriptions` writes them (its own tests create
them through Graph).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote

import pytest

import function_app
import sync_core.service.runtime as runtime_module
from sync_core.service.queue_messages import SYNC_SOURCE_QUEUE, sync_lease
from sync_core.service.runtime import Runtime
from sync_core.service.webhook import PendingMemo
from sync_core.settings import LEASE_SECONDS
from sync_core.state.base import StateError
from tests.functions.conftest import Configure, use_store_clock
from tests.functions.functions_host import FunctionsHost

TENANT = "7f3a1c2e-0000-4000-8000-00000000aaaa"
URL = "https://galsync-test.example/api/{route}?code=key"
JSON = {"Content-Type": "application/json; charset=utf-8"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CLIENT_STATE = "s3cret-client-state"


def subscribe(rt: Runtime, sid: str, profiles: list[str], secret: str = CLIENT_STATE) -> str:
    rt.store.put_doc("subscription", sid, {"resource": "users", "change_type": "updated,deleted",
                                           "client_state": secret, "profiles": profiles})
    return secret


def note(sid: str, secret: str, **over: Any) -> dict[str, Any]:
    item = {"id": "n1", "subscriptionId": sid, "subscriptionExpirationDateTime": "2030-01-01T00:00:00.0000000Z",
            "clientState": secret, "changeType": "updated", "resource": "Users/u1", "tenantId": TENANT,
            "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": "Users/u1", "id": "u1"}}
    item.update(over)
    return item


def post(host: FunctionsHost, route: str, items: list[dict[str, Any]] | None = None, *, body: bytes | None = None,
         headers: dict[str, str] | None = None, query: str = "") -> Any:
    data = body if body is not None else json.dumps({"value": items}).encode()
    return host.http(route, "POST", URL.format(route=route) + query, JSON if headers is None else headers, data)


def queued(host: FunctionsHost) -> list[dict[str, Any]]:
    return [json.loads(body) for queue, body in host.sent if queue == SYNC_SOURCE_QUEUE]


@pytest.mark.parametrize("route", ["notifications", "lifecycle"])
def test_validation_handshake_answers_the_token_as_plain_text(configure: Configure, host: FunctionsHost,
                                                              route: str) -> None:
    configure()
    token = "Validation: Testing client application reachability <script>alert(1)</script> 100% & more"
    response = post(host, route, body=b"", headers={"Content-Type": "text/plain; charset=utf-8"},
                    query=f"&validationToken={quote(token, safe='')}")
    assert response.status_code == 200
    assert response.get_body().decode() == token
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert host.sent == []


@pytest.mark.parametrize("token", ["x" * 2049, "line\nbreak", "bell\x07"])
def test_validation_refuses_overlong_or_control_character_tokens(configure: Configure, host: FunctionsHost,
                                                                 token: str) -> None:
    configure()
    response = post(host, "notifications", body=b"", query=f"&validationToken={quote(token, safe='')}")
    assert response.status_code == 400
    assert "validationToken" in response.get_body().decode()
    assert response.headers["Content-Type"].startswith("text/plain")


def test_notification_enqueues_one_sync_per_profile_and_answers_202(configure: Configure,
                                                                     host: FunctionsHost) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Company directory", "Dispatch"])
    response = post(host, "notifications", [note("sub-1", secret), note("sub-1", secret, id="n2"),
                                             note("sub-1", secret, id="n3", resource="Users/u2")])
    assert response.status_code == 202
    assert sorted(m["profile"] for m in queued(host)) == ["Company directory", "Dispatch"]
    assert {m["type"] for m in queued(host)} == {"sync"}
    assert host.count(SYNC_SOURCE_QUEUE) == 2
    assert rt.store.has_pending(sync_lease("Dispatch"))


def test_a_burst_enqueues_once_until_the_worker_takes_the_pending_flag(
        configure: Configure, host: FunctionsHost, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    webhook = function_app.process.webhook()
    clock = FakeClock()
    webhook.memo = PendingMemo(clock, seconds=1.0)
    reads = count_calls(monkeypatch, rt.store, "pending_age")

    for i in range(50):
        assert post(host, "notifications", [note("sub-1", secret, id=f"n{i}")]).status_code == 202
    assert len(queued(host)) == 1
    assert reads.calls == 1  # the memo kept the other 49 requests away from storage

    clock.now += 5  # the memo has expired: the store's flag still says a sync is queued
    post(host, "notifications", [note("sub-1", secret, id="late")])
    assert len(queued(host)) == 1
    assert reads.calls == 2

    assert rt.store.take_pending(sync_lease("Dispatch"))  # what the sync worker does when it starts
    clock.now += 5
    post(host, "notifications", [note("sub-1", secret, id="after-start")])
    assert len(queued(host)) == 2  # a change after the worker started gets its own sync


def test_a_flag_left_by_a_worker_that_died_holds_notifications_back_for_a_lease_ttl_only(
        configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    clock = FakeClock()
    clock.now = time.time()
    use_store_clock(rt, clock)
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    function_app.process.webhook().memo = PendingMemo(clock, seconds=1.0)
    lease = sync_lease("Dispatch")

    # A worker is syncing Dispatch (it took the flag when it started). A change arrives: the webhook raises
    # the flag and enqueues a sync, which will find the lease held and leave the flag for the holder.
    assert rt.store.acquire_lease(lease, "worker-a", LEASE_SECONDS)
    post(host, "notifications", [note("sub-1", secret, id="during-run")])
    assert len(queued(host)) == 1
    # Then worker-a is SIGKILLed: it never runs once more, never renews, never releases.
    clock.now += LEASE_SECONDS - 1
    post(host, "notifications", [note("sub-1", secret, id="while-its-lease-lasts")])
    assert len(queued(host)) == 1

    clock.now += 2  # its lease ended a second ago; nobody will take the flag
    for i in range(50):
        assert post(host, "notifications", [note("sub-1", secret, id=f"after-{i}")]).status_code == 202
    assert len(queued(host)) == 2
    clock.now += 5
    post(host, "notifications", [note("sub-1", secret, id="later")])
    assert len(queued(host)) == 2  # the flag was raised afresh: the new sync covers this one
    assert [m["reason"] for m in queued(host)] == ["notification", "notification"]


def test_a_live_worker_keeps_a_burst_coalesced_however_long_it_runs(configure: Configure,
                                                                    host: FunctionsHost) -> None:
    rt = configure()
    clock = FakeClock()
    clock.now = time.time()
    use_store_clock(rt, clock)
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    function_app.process.webhook().memo = PendingMemo(clock, seconds=1.0)
    lease = sync_lease("Dispatch")
    assert rt.store.acquire_lease(lease, "worker-a", LEASE_SECONDS)

    for step in range(30):  # ten minutes of a run, a notification every 20 s
        post(host, "notifications", [note("sub-1", secret, id=f"n{step}")])
        clock.now += LEASE_SECONDS / 3
        assert rt.store.acquire_lease(lease, "worker-a", LEASE_SECONDS)  # its heartbeat renews
    assert len(queued(host)) == 1  # the first; the holder runs once more for all the others
    assert rt.store.pending_age(lease) == pytest.approx(30 * LEASE_SECONDS / 3)


@pytest.mark.parametrize("case", ["wrong secret", "unknown subscription", "other tenant", "no secret"])
def test_notifications_that_are_not_ours_are_dropped_and_logged_without_the_secret(
        configure: Configure, host: FunctionsHost, caplog: pytest.LogCaptureFixture, case: str) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    item = {
        "wrong secret": note("sub-1", "guessed-client-state"),
        "unknown subscription": note("sub-404", secret),
        "other tenant": note("sub-1", secret, tenantId="00000000-0000-0000-0000-000000000001"),
        "no secret": note("sub-1", secret, clientState=None),
    }[case]
    with caplog.at_level(logging.DEBUG, logger="galsync"):
        response = post(host, "notifications", [item])
    assert response.status_code == 202
    assert host.sent == []
    assert not rt.store.has_pending(sync_lease("Dispatch"))
    assert "dropped notifications" in caplog.text
    assert secret not in caplog.text and "guessed-client-state" not in caplog.text


def test_one_forged_item_does_not_stop_the_genuine_ones(configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    response = post(host, "notifications", [note("sub-1", "forged"), note("sub-1", secret)])
    assert response.status_code == 202
    assert [m["profile"] for m in queued(host)] == ["Dispatch"]


BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int]] = [
    ("not JSON", b"{value: nope", JSON, 400),
    ("JSON array", b"[1, 2]", JSON, 400),
    ("no value", b'{"values": []}', JSON, 400),
    ("empty value", b'{"value": []}', JSON, 400),
    ("item not an object", b'{"value": [42]}', JSON, 400),
    ("missing subscriptionId", json.dumps({"value": [{"tenantId": TENANT, "changeType": "updated",
                                                      "resource": "Users/u1"}]}).encode(), JSON, 400),
    ("number for tenantId", json.dumps({"value": [note("s", "c", tenantId=7)]}).encode(), JSON, 400),
    ("lone surrogate", b'{"value": [{"subscriptionId": "\\ud800", "tenantId": "t", "changeType": "updated", '
                       b'"resource": "r"}]}', JSON, 400),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, JSON, 400),
    ("not UTF-8", b'{"value": ["\xff\xfe"]}', JSON, 400),
    ("oversized", b'{"value": [' + b'{"x": "' + b"a" * 1_100_000 + b'"}]}', JSON, 413),
    ("too many items", json.dumps({"value": [note("s", "c")] * 1001}).encode(), JSON, 413),
    ("form content type", b"value=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("no content type", b'{"value": []}', {}, 415),
]


@pytest.mark.parametrize("route", ["notifications", "lifecycle"])
@pytest.mark.parametrize(("name", "body", "headers", "status"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_malformed_requests_get_a_clear_4xx_and_enqueue_nothing(configure: Configure, host: FunctionsHost,
                                                                route: str, name: str, body: bytes,
                                                                headers: dict[str, str], status: int) -> None:
    configure()
    response = post(host, route, body=body, headers=headers)
    assert response.status_code == status, response.get_body()
    text = response.get_body().decode()
    assert text.strip() and len(text) < 600  # says what is wrong, briefly
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert host.sent == []


def test_lifecycle_events_queue_the_work_for_the_worker(configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    secret = subscribe(rt, "5a6b7c8d-0000-4000-8000-000000000001", ["Company directory"])
    sid = "5a6b7c8d-0000-4000-8000-000000000001"
    items = [{"subscriptionId": sid, "subscriptionExpirationDateTime": "2030-01-01T00:00:00.0000000Z",
              "tenantId": TENANT, "clientState": secret, "lifecycleEvent": event}
             for event in ("reauthorizationRequired", "reauthorizationRequired", "missed", "subscriptionRemoved")]
    response = post(host, "lifecycle", items)
    assert response.status_code == 202
    assert sorted(queued(host), key=json.dumps) == sorted([
        {"type": "lifecycle", "subscription_id": sid, "event": "reauthorizationRequired"},
        {"type": "lifecycle", "subscription_id": sid, "event": "subscriptionRemoved"},
        {"type": "sync", "profile": "Company directory", "reason": "notification"},
    ], key=json.dumps)


@pytest.mark.parametrize("route", ["lifecycle", "notifications"])
def test_a_lifecycle_event_galsync_does_not_know_is_skipped_and_the_known_ones_beside_it_acted_on(
        configure: Configure, host: FunctionsHost, caplog: pytest.LogCaptureFixture, route: str) -> None:
    rt = configure()
    sid = "5a6b7c8d-0000-4000-8000-000000000001"
    secret = subscribe(rt, sid, ["Company directory"])
    items = [{"subscriptionId": sid, "tenantId": TENANT, "clientState": secret, "lifecycleEvent": event}
             for event in ("subscriptionRemoved", "somethingGraphAddsLater", "missed")]
    if route == "notifications":
        items.append(note(sid, secret))

    with caplog.at_level(logging.WARNING, logger="galsync"):
        response = post(host, route, items)

    assert response.status_code == 202
    assert sorted(queued(host), key=json.dumps) == sorted([
        {"type": "lifecycle", "subscription_id": sid, "event": "subscriptionRemoved"},
        {"type": "sync", "profile": "Company directory", "reason": "notification"},
    ], key=json.dumps)
    assert "skipped lifecycle event 'somethingGraphAddsLater'" in caplog.text


def test_a_post_of_lifecycle_events_galsync_does_not_know_only_is_answered_202(configure: Configure,
                                                                              host: FunctionsHost) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    item = {"subscriptionId": "sub-1", "tenantId": TENANT, "clientState": secret, "lifecycleEvent": "brandNew"}
    assert post(host, "lifecycle", [item, item]).status_code == 202
    assert host.sent == []


def test_lifecycle_event_with_a_wrong_secret_is_dropped(configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    subscribe(rt, "sub-1", ["Dispatch"])
    item = {"subscriptionId": "sub-1", "tenantId": TENANT, "clientState": "nope",
            "lifecycleEvent": "subscriptionRemoved"}
    assert post(host, "lifecycle", [item]).status_code == 202
    assert host.sent == []


def test_a_lifecycle_event_sent_to_the_notification_url_is_understood(configure: Configure,
                                                                      host: FunctionsHost) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    item = {"subscriptionId": "sub-1", "tenantId": TENANT, "clientState": secret, "lifecycleEvent": "missed"}
    assert post(host, "notifications", [item]).status_code == 202
    assert [m["profile"] for m in queued(host)] == ["Dispatch"]


def test_the_webhook_reads_the_profiles_once_and_never_builds_a_graph_client(
        configure: Configure, host: FunctionsHost, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = count_calls(monkeypatch, runtime_module, "load_config")
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Dispatch"])
    for i in range(5):
        post(host, "notifications", [note("sub-1", secret, id=str(i))])
        post(host, "lifecycle", body=b"", query="&validationToken=abc")
    assert loads.calls == 1
    assert function_app.process.runtime()._client is None


def test_a_profile_that_left_the_configuration_is_not_enqueued(configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Removed profile", "Dispatch"])
    post(host, "notifications", [note("sub-1", secret)])
    assert [m["profile"] for m in queued(host)] == ["Dispatch"]


def test_an_unusable_configuration_answers_503_not_500(configure: Configure, host: FunctionsHost) -> None:
    with pytest.raises(Exception, match="profile"):
        configure(config_text="[[profile]]\nname = 'no sources'\n")
    response = post(host, "notifications", [note("sub-1", "x")])
    assert response.status_code == 503
    assert "not configured" in response.get_body().decode()
    assert host.sent == []


def test_a_storage_failure_midway_answers_503_and_graphs_retry_completes_the_work(
        configure: Configure, host: FunctionsHost, monkeypatch: pytest.MonkeyPatch) -> None:
    # An outage of one storage call cannot be staged with the shared Azurite: it is injected here.
    rt = configure()
    secret = subscribe(rt, "sub-1", ["Company directory", "Dispatch"])
    real = rt.store.pending_age

    def failing(name: str) -> float | None:
        if name == sync_lease("Dispatch"):
            raise StateError("Table service unavailable")
        return real(name)

    monkeypatch.setattr(rt.store, "pending_age", failing)
    response = post(host, "notifications", [note("sub-1", secret)])
    assert response.status_code == 503
    assert [m["profile"] for m in queued(host)] == ["Company directory"]  # its flag is set: it must go out

    monkeypatch.setattr(rt.store, "pending_age", real)
    function_app.process.webhook().memo = PendingMemo(FakeClock(), seconds=0)
    assert post(host, "notifications", [note("sub-1", secret)]).status_code == 202  # Graph's retry
    assert [m["profile"] for m in queued(host)] == ["Company directory", "Dispatch"]


class Counter:
    def __init__(self) -> None:
        self.calls = 0


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Counter:
    """Count calls of `owner.name`, still calling the real thing."""
    counter = Counter()
    real = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        counter.calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return counter
