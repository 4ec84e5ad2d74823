"""POST /$batch over real HTTPS: limits, validation, dependsOn/424, inner throttling, response order.

Every test runs twice: without latency (a batch's waves run in its own thread) and with it (waves of
Outlook requests wait on the pipeline's latency clock, which also completes them): a client must not be
able to tell the two apart.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from graph_emulator import DEFAULT_ROLES, GraphEmulator
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error


@pytest.fixture(params=[0, 5], ids=["no-latency", "latency-5ms"])
def graph_empty(request: pytest.FixtureRequest) -> Iterator[GraphEmulator]:
    with GraphEmulator.start(scenario=None, latency_ms=request.param) as g:
        yield g


def _batch(g: GraphEmulator, requests_: list[dict[str, Any]], client_id: str | None = None) -> Any:
    return g.session(client_id).post(g.base_url + "/$batch", json={"requests": requests_})


def _by_id(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()["responses"]}


def _count(user: str, request_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": request_id, "method": "POST", "url": f"/users/{user}/probe/count", **extra}


def test_more_than_20_requests_is_refused_and_nothing_runs(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    response = _batch(g, [_count(ann, str(i)) for i in range(21)])
    error = assert_graph_error(response, 400, "BadRequest")
    assert "20" in error["message"]
    assert probe.calls[ann] == 0
    assert g.log.count(via_batch=True) == 0
    # 20 is fine.
    assert all(
        r["status"] == 201 for r in _by_id(_batch(g, [_count(ann, str(i)) for i in range(20)])).values()
    )
    assert probe.calls[ann] == 20


@pytest.mark.parametrize(
    ("requests_", "problem"),
    [
        ([], "non-empty"),
        ([{"method": "GET", "url": probe.DIRECTORY}], "'id'"),
        ([{"id": "1", "url": probe.DIRECTORY}], "'method'"),
        ([{"id": "1", "method": "GET"}], "'url'"),
        ([{"id": "1", "method": "POST", "url": probe.ECHO, "body": {"a": 1}}], "Content-Type"),
        (
            [{"id": "1", "method": "POST", "url": probe.ECHO, "body": {"a": 1}, "headers": {"Accept": "x"}}],
            "Content-Type",
        ),
        (
            [
                {"id": "A", "method": "GET", "url": probe.DIRECTORY},
                {"id": "a", "method": "GET", "url": probe.DIRECTORY},
            ],
            "more than once",
        ),
        ([{"id": "1", "method": "GET", "url": probe.DIRECTORY, "dependsOn": ["9"]}], "unknown request"),
        (
            [
                {"id": "1", "method": "GET", "url": probe.DIRECTORY, "dependsOn": ["2"]},
                {"id": "2", "method": "GET", "url": probe.DIRECTORY, "dependsOn": ["1"]},
            ],
            "cycle",
        ),
        ([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}], "relative"),
        ([{"id": "1", "method": "GET", "url": "/$batch"}], "relative"),
    ],
)
def test_malformed_batches_are_refused_whole(
    graph_empty: GraphEmulator, requests_: list[Any], problem: str
) -> None:
    g = graph_empty
    error = assert_graph_error(_batch(g, requests_), 400, "BadRequest")
    assert problem in error["message"]
    assert g.log.count(via_batch=True) == 0


def test_depends_on_orders_requests_and_a_failed_dependency_gives_424(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    responses = _by_id(
        _batch(
            g,
            [
                _count(ann, "1"),
                {"id": "2", "method": "GET", "url": "/no/such/resource", "dependsOn": ["1"]},
                _count(ann, "3", dependsOn=["2"]),
                _count(ann, "4", dependsOn=["1"]),
                _count(ann, "5", dependsOn=["3"]),
            ],
        )
    )
    assert {k: r["status"] for k, r in responses.items()} == {
        "1": 201,
        "2": 400,
        "3": 424,
        "4": 201,
        "5": 424,
    }
    assert responses["3"]["body"]["error"]["code"] == "FailedDependency"
    assert probe.calls[ann] == 2  # 3 and 5 never ran
    # Request 1 ran (and finished) before request 2, which depends on it.
    assert responses["1"]["body"]["count"] == 1
    assert [e.status for e in g.log.entries(via_batch=True)][:2] == [201, 400]
    assert g.log.count(via_batch=True) == 3 and g.log.round_trips() == 1


def test_a_request_skipped_with_424_does_not_use_up_a_planned_fault(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    g.faults.fail_next(1, 503, route=f"POST {probe.COUNT}")
    failing = {"id": "1", "method": "GET", "url": "/no/such/resource"}
    responses = _by_id(_batch(g, [failing, _count(ann, "2", dependsOn=["1"])]))
    assert responses["2"]["status"] == 424
    assert_graph_error(g.session().post(g.base_url + f"/users/{ann}/probe/count"), 503, "serviceNotAvailable")


def test_each_inner_request_is_throttled_on_its_own(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    g.throttle.configure(requests=3, window_seconds=600)
    response = _batch(g, [_count(ann, f"ann{i}") for i in range(5)] + [_count(bob, "bob")])
    assert response.status_code == 200
    responses = _by_id(response)
    statuses = sorted(r["status"] for k, r in responses.items() if k.startswith("ann"))
    assert statuses == [201, 201, 201, 429, 429]
    assert responses["bob"]["status"] == 201  # another mailbox is not throttled
    for throttled in (r for r in responses.values() if r["status"] == 429):
        assert float(throttled["headers"]["Retry-After"]) > 0
        assert throttled["body"]["error"]["code"] == "ApplicationThrottled"
    assert g.log.count(mailbox=ann, status=429, via_batch=True) == 2


def test_responses_come_back_out_of_order_and_match_by_id(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ids = [f"r{i}" for i in range(8)]
    response = _batch(g, [{"id": i, "method": "GET", "url": probe.DIRECTORY} for i in ids])
    returned = [r["id"] for r in response.json()["responses"]]
    assert sorted(returned) == sorted(ids) and returned != ids


def test_independent_requests_run_four_at_a_time(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    gate = probe.new_gate()
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(
            _batch(g, [{"id": str(i), "method": "GET", "url": f"/users/{ann}/probe/hold"} for i in range(6)])
        )
    )
    worker.start()
    try:
        gate.wait_entered(1)  # the first wave is being handled: its four requests hold ann's slots
        assert g.throttle.in_flight(g.client_id, ann) == 4
        # Those four are what ann's 4-concurrent limit sees: a fifth request from outside is refused.
        outside = g.session().get(g.base_url + f"/users/{ann}/probe/hold")
        error = assert_graph_error(outside, 429, "ApplicationThrottled")
        assert error["message"] == "Application is over its MailboxConcurrency limit."
    finally:
        gate.open()
        worker.join(timeout=20)
    assert all(r["status"] == 200 for r in _by_id(result[0]).values())
    inner = g.log.entries(mailbox=ann, via_batch=True)
    assert len(inner) == 6
    # Never the 5th: a batch alone stays within the mailbox limit, and four were worked on at once.
    assert max(e.in_flight_for_mailbox for e in inner) == 4
    assert max(sum(1 for o in inner if o.start <= e.start < o.end) for e in inner) == 4
    assert g.throttle.in_flight(g.client_id, ann) == 0  # every slot is free again


def test_an_inner_request_throttled_at_admission_does_not_take_a_place_in_the_wave(
    graph_empty: GraphEmulator,
) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    g.throttle.configure(requests=2, window_seconds=600)
    gate = probe.new_gate()
    result: list[Any] = []
    # ann's budget lets two through; the next two are refused at once and bob's two fill the first wave.
    requests_ = [{"id": f"ann{i}", "method": "GET", "url": f"/users/{ann}/probe/hold"} for i in range(4)]
    requests_ += [{"id": f"bob{i}", "method": "GET", "url": f"/users/{bob}/probe/hold"} for i in range(2)]
    worker = threading.Thread(target=lambda: result.append(_batch(g, requests_)))
    worker.start()
    try:
        gate.wait_entered(1)
        assert g.throttle.in_flight(g.client_id, ann) == 2
        assert g.throttle.in_flight(g.client_id, bob) == 2
    finally:
        gate.open()
        worker.join(timeout=20)
    statuses = {k: r["status"] for k, r in _by_id(result[0]).items()}
    assert statuses == {"ann0": 200, "ann1": 200, "ann2": 429, "ann3": 429, "bob0": 200, "bob1": 200}
    # The two refusals were answered before the wave was handled; the wave's four then ran together.
    waved = g.log.entries(status=200, via_batch=True)
    refused = g.log.entries(status=429, via_batch=True)
    assert len(waved) == 4 and len(refused) == 2
    assert max(r.end for r in refused) <= min(w.end for w in waved)
    assert all(w.start <= min(o.end for o in waved) for w in waved)


def test_inner_requests_use_the_batch_token_roles_and_scope(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    scoped = g.register_app(roles=DEFAULT_ROLES - {"User.Read.All"}, mailbox_scope=[ann])
    responses = _by_id(
        _batch(
            g,
            [_count(ann, "in"), _count(bob, "out"), {"id": "dir", "method": "GET", "url": probe.DIRECTORY}],
            client_id=scoped.client_id,
        )
    )
    assert responses["in"]["status"] == 201
    assert (
        responses["out"]["status"] == 403 and responses["out"]["body"]["error"]["code"] == "ErrorAccessDenied"
    )
    assert responses["dir"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    assert {e.app_id for e in g.log.entries()} == {scoped.client_id}


def test_the_batch_itself_needs_a_valid_bearer(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    session = g.session()
    del session.headers["Authorization"]
    response = session.post(
        g.base_url + "/$batch", json={"requests": [{"id": "1", "method": "GET", "url": probe.DIRECTORY}]}
    )
    assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert g.log.count(via_batch=True) == 0


def test_urls_without_leading_slash_and_binary_bodies(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    jpeg = bytes(range(256))
    responses = _by_id(
        _batch(
            g,
            [
                {"id": "1", "method": "GET", "url": probe.DIRECTORY.lstrip("/") + "?$top=1"},
                {
                    "id": "2",
                    "method": "POST",
                    "url": probe.ECHO,
                    "body": base64.b64encode(jpeg).decode(),
                    "headers": {"Content-Type": "image/jpeg"},
                },
                {
                    "id": "3",
                    "method": "POST",
                    "url": probe.ECHO,
                    "body": {"a": 1},
                    "headers": {"Content-Type": "application/json"},
                },
            ],
        )
    )
    assert responses["1"]["status"] == 200
    assert base64.b64decode(responses["2"]["body"]) == jpeg
    assert responses["2"]["headers"]["Content-Type"] == "image/jpeg"
    assert base64.b64decode(responses["3"]["body"]) == b'{"a": 1}'
