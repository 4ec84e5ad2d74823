"""Throttling per (app, mailbox) and per app: over HTTPS, and on the Throttle with a hand-moved clock."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from graph_emulator.protocol import GraphError
from graph_emulator.throttle import OUTLOOK, Throttle, retry_after_value
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error


def test_request_budget_per_mailbox_gives_429_with_retry_after(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    g.throttle.configure(requests=5, window_seconds=600)
    session = g.session()
    for _ in range(5):
        assert session.post(g.base_url + f"/users/{ann}/probe/count").status_code == 201
    response = session.post(g.base_url + f"/users/{ann}/probe/count")
    error = assert_graph_error(response, 429, "ApplicationThrottled")
    assert "MailboxRequestRate" in error["message"]
    assert 599 < float(response.headers["Retry-After"]) <= 600
    assert probe.calls[ann] == 5  # the throttled request never reached the handler
    # Other mailboxes, and other apps on the same mailbox, have their own budgets.
    assert session.post(g.base_url + f"/users/{bob}/probe/count").status_code == 201
    other = g.register_app()
    assert g.session(other.client_id).post(g.base_url + f"/users/{ann}/probe/count").status_code == 201
    assert g.log.count(mailbox=ann, status=429) == 1


def test_the_fifth_concurrent_request_to_a_mailbox_is_refused_while_others_are_served(
    graph_empty: GraphEmulator,
) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    gate = probe.new_gate()
    held: list[int] = []

    def hold() -> None:
        held.append(g.session().get(g.base_url + f"/users/{ann}/probe/hold").status_code)

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        gate.wait_entered(4)
        session = g.session()
        fifth = session.get(g.base_url + f"/users/{ann}/probe/hold")
        error = assert_graph_error(fifth, 429, "ApplicationThrottled")
        assert error["message"] == "Application is over its MailboxConcurrency limit."
        assert fifth.headers["Retry-After"] == "1"
        assert session.post(g.base_url + f"/users/{bob}/probe/count").status_code == 201
        other_app = g.register_app()
        assert (
            g.session(other_app.client_id).post(g.base_url + f"/users/{ann}/probe/count").status_code == 201
        )
    finally:
        gate.open()
        for t in threads:
            t.join(timeout=10)
    assert held == [200, 200, 200, 200]
    [refused] = g.log.entries(mailbox=ann, status=429)
    assert refused.in_flight_for_mailbox == 5
    # The slots are free again.
    assert g.session().post(g.base_url + f"/users/{ann}/probe/count").status_code == 201


def test_directory_budget_is_per_app(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    g.throttle.configure(directory_requests=3, directory_window_seconds=10)
    session = g.session()
    for _ in range(3):
        assert session.get(g.base_url + probe.DIRECTORY).status_code == 200
    response = session.get(g.base_url + probe.DIRECTORY)
    assert_graph_error(response, 429, "TooManyRequests")
    assert 9 < float(response.headers["Retry-After"]) <= 10
    other = g.register_app()
    assert g.session(other.client_id).get(g.base_url + probe.DIRECTORY).status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _outcome(throttle: Throttle, mailbox: str = "m1") -> str:
    try:
        throttle.admit("app", OUTLOOK, mailbox).release()
        return "ok"
    except GraphError as exc:
        assert exc.status == 429
        return exc.headers["Retry-After"]


def test_window_slides_and_throttled_requests_still_count() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    throttle.configure(requests=2, window_seconds=10)
    assert [_outcome(throttle) for _ in range(2)] == ["ok", "ok"]  # t=1000
    clock.now = 1004
    assert _outcome(throttle) == "6"  # the requests of t=1000 leave the window at 1010
    clock.now = 1006
    assert _outcome(throttle) == "8"  # counted: the refusal at 1004 now holds the window until 1014
    clock.now = 1010
    # Both requests of t=1000 left, yet the refusals at 1004 and 1006 fill the window: a client that
    # retries without waiting stays throttled.
    assert _outcome(throttle) == "6"
    clock.now = 1016.5
    assert _outcome(throttle) == "ok"
    assert _outcome(throttle, "m2") == "ok"


def test_fractional_retry_after() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    throttle.configure(requests=2, window_seconds=2)
    assert _outcome(throttle) == "ok"
    clock.now = 1000.75
    assert _outcome(throttle) == "ok"
    clock.now = 1001
    assert _outcome(throttle) == "1.75"  # the request of t=1000.75 leaves the window at 1002.75
    assert [retry_after_value(v) for v in (3.0, 0.5, 0.0001, 2.0004)] == ["3", "0.5", "0.001", "2.001"]


def test_concurrency_slots_are_released() -> None:
    throttle = Throttle()
    slots = [throttle.admit("app", OUTLOOK, "m1") for _ in range(4)]
    with pytest.raises(GraphError):
        throttle.admit("app", OUTLOOK, "m1")
    slots[0].release()
    slots[0].release()  # releasing twice frees one slot only
    slots.append(throttle.admit("app", OUTLOOK, "m1"))
    with pytest.raises(GraphError):
        throttle.admit("app", OUTLOOK, "m1")
    assert throttle.in_flight("app", "m1") == 4


@pytest.mark.parametrize(
    "settings", [{"requests": 0}, {"window_seconds": -1}, {"concurrency": True}, {"requests": "5"}]
)
def test_bad_settings_are_refused_by_name(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        Throttle().configure(**settings)
