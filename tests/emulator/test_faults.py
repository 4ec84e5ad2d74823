"""Faults on demand: exact ones (fail_next, drop_next) and seeded random ones that repeat for a seed."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from graph_emulator import GraphEmulator
from graph_emulator.faults import Faults
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error

COUNT_ROUTE = f"POST {probe.COUNT}"


def test_fail_next_fails_exactly_n_matching_requests(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    ann_upn = probe.upn_of(g, ann)
    g.faults.fail_next(2, 503, retry_after=3, route=COUNT_ROUTE, mailbox=ann_upn)
    session = g.session()
    assert session.post(g.base_url + f"/users/{bob}/probe/count").status_code == 201  # other mailbox
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200  # other route
    for _ in range(2):
        response = session.post(g.base_url + f"/users/{ann}/probe/count")
        assert_graph_error(response, 503, "serviceNotAvailable")
        assert response.headers["Retry-After"] == "3"
    assert session.post(g.base_url + f"/users/{ann}/probe/count").status_code == 201
    assert probe.calls[ann] == 1  # failed requests never reached the handler
    assert g.log.count(mailbox=ann, status=503) == 2


def test_fail_next_504_without_filters_hits_the_next_request(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    g.faults.fail_next(1, 504)
    session = g.session()
    response = session.get(g.base_url + probe.DIRECTORY)
    assert_graph_error(response, 504, "timeout")
    assert "Retry-After" not in response.headers
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200


def test_a_dropped_connection_before_the_handler_changes_nothing(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    g.faults.drop_next(1, route=COUNT_ROUTE)
    session = g.session()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(g.base_url + f"/users/{ann}/probe/count")
    assert probe.calls[ann] == 0
    [entry] = g.log.entries()
    assert entry.dropped and entry.status == 0
    assert session.post(g.base_url + f"/users/{ann}/probe/count").status_code == 201  # a new connection works


def test_a_dropped_connection_after_the_handler_leaves_the_change_made(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    g.faults.drop_next(1, after_handler=True, route=COUNT_ROUTE)
    with pytest.raises(requests.exceptions.ConnectionError):
        g.session().post(g.base_url + f"/users/{ann}/probe/count")
    assert probe.calls[ann] == 1  # applied, although the client never heard
    [entry] = g.log.entries()
    assert entry.dropped and entry.status == 201


def test_batch_inner_requests_get_error_faults_but_never_drops(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    g.faults.drop_next(1, route=COUNT_ROUTE)
    g.faults.fail_next(1, 503, route=COUNT_ROUTE)
    batch = {"requests": [{"id": "1", "method": "POST", "url": f"/users/{ann}/probe/count"}]}
    response = g.session().post(g.base_url + "/$batch", json=batch)
    assert response.status_code == 200 and response.json()["responses"][0]["status"] == 503
    # The drop rule is still waiting for an HTTP request.
    with pytest.raises(requests.exceptions.ConnectionError):
        g.session().post(g.base_url + f"/users/{ann}/probe/count")


def _run(seed: int) -> list[Any]:
    """20 requests and 4 batches of 4, one after the other, against a fresh emulator with random faults."""
    with GraphEmulator.start(scenario=None, seed=seed) as g:
        ann = probe.add_mailbox_user(g, "ann")
        g.faults.configure(seed=seed, error_rate=0.3, statuses=(503, 504), drop_rate=0.1)
        outcomes: list[Any] = []
        session = g.session()
        for i in range(20):
            try:
                outcomes.append(session.post(g.base_url + f"/users/{ann}/probe/count").status_code)
            except requests.exceptions.ConnectionError:
                outcomes.append("dropped")
            if i % 5 == 0:
                batch = {
                    "requests": [
                        {"id": str(n), "method": "POST", "url": f"/users/{ann}/probe/count"} for n in range(4)
                    ]
                }
                try:
                    response = session.post(g.base_url + "/$batch", json=batch)
                    if response.status_code != 200:  # the batch itself can fail too
                        outcomes.append(response.status_code)
                    else:
                        outcomes.append(sorted((r["id"], r["status"]) for r in response.json()["responses"]))
                except requests.exceptions.ConnectionError:
                    outcomes.append("dropped")
        return outcomes


def test_random_faults_repeat_for_a_seed() -> None:
    first, again, other = _run(7), _run(7), _run(8)
    assert first == again
    assert first != other
    flat = [o for o in first if not isinstance(o, list)]
    assert {503, 504, "dropped"} & set(flat) and 201 in flat  # the run did see faults and successes


def test_random_faults_can_be_limited_to_routes(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    g.faults.configure(error_rate=1.0, statuses=(503,), routes=[probe.DIRECTORY])
    session = g.session()
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 503
    assert session.post(g.base_url + f"/users/{ann}/probe/count").status_code == 201
    g.faults.clear()
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200


@pytest.mark.parametrize(
    "settings",
    [{"error_rate": 1.5}, {"drop_rate": -0.1}, {"statuses": (200,)}, {"statuses": ()}, {"latency_ms": -1}],
)
def test_bad_fault_settings_are_refused_by_name(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        Faults().configure(**settings)


def test_fail_next_needs_an_error_status_and_a_count() -> None:
    with pytest.raises(ValueError, match="error status"):
        Faults().fail_next(1, 200)
    with pytest.raises(ValueError, match="at least 1"):
        Faults().fail_next(0, 503)


def test_latency_is_a_setting_of_start() -> None:
    with GraphEmulator.start(scenario=None, latency_ms=30) as g:
        assert g.faults.settings.latency_ms == 30
