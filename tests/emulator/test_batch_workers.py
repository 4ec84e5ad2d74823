"""How many inner requests of $batch calls the emulator works on at once: `batch_workers`, across all calls.

Graph runs 4 inner requests of one $batch at a time and has no tenant-wide cap, so the default must let
many busy mailboxes run side by side (the benchmark fills 100 at once); a smaller cap is an option.
A batch runs in waves of up to 4 (batch.py): a wave's requests all hold their mailbox's throttle slots
while its first handler runs, so a held probe handler shows a whole wave at work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from graph_emulator.__main__ import main as emulator_main
from graph_emulator.requestlog import LoggedRequest
from tests.emulator import probe


def _hold_batch(g: GraphEmulator, user: str, results: list[Any]) -> None:
    body = {"requests": [{"id": str(i), "method": "GET", "url": f"/users/{user}/probe/hold"} for i in range(4)]}
    results.append(g.session().post(g.base_url + "/$batch", json=body))


def _batches_side_by_side(
    g: GraphEmulator, mailboxes: int, check: Callable[[list[str]], None]
) -> list[Any]:
    """One $batch of 4 held requests per mailbox, all sent at once; `check` runs while the first is held."""
    users = [probe.add_mailbox_user(g, f"driver{i}") for i in range(mailboxes)]
    gate = probe.new_gate()
    results: list[Any] = []
    threads = [threading.Thread(target=_hold_batch, args=(g, u, results)) for u in users]
    for t in threads:
        t.start()
    try:
        gate.wait_entered(1)
        check(users)
    finally:
        gate.open()
        for t in threads:
            t.join(timeout=20)
    return results


def _in_flight(g: GraphEmulator, users: list[str]) -> int:
    return sum(g.throttle.in_flight(g.client_id, u) for u in users)


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _most_at_once(entries: list[LoggedRequest]) -> int:
    return max((sum(1 for o in entries if o.start <= e.start < o.end) for e in entries), default=0)


def test_by_default_many_batches_run_their_inner_requests_side_by_side(graph_empty: GraphEmulator) -> None:
    g = graph_empty

    def all_inside(users: list[str]) -> None:  # more than a cap of 32 would allow
        probe.gate.wait_entered(len(users) - 1)  # every batch's first wave is being handled
        assert _in_flight(g, users) == 4 * len(users) == 48

    results = _batches_side_by_side(g, mailboxes=12, check=all_inside)
    assert len(results) == 12
    assert all(r.status_code == 200 and all(x["status"] == 200 for x in r.json()["responses"]) for r in results)
    assert _most_at_once(g.log.entries(via_batch=True)) == 48


def test_batch_workers_caps_inner_requests_across_all_batches() -> None:
    with GraphEmulator.start(scenario=None, batch_workers=3) as g:

        def capped(users: list[str]) -> None:
            # One wave of 3 holds the whole room; the two other batches wait for it.
            _eventually(lambda: g.batch_workers.waiting == 2, "the other batches never waited for room")
            assert _in_flight(g, users) == 3

        results = _batches_side_by_side(g, mailboxes=3, check=capped)
        assert all(r.status_code == 200 for r in results)
        inner = g.log.entries(via_batch=True)
        assert len(inner) == 12 and all(e.status == 200 for e in inner)
        assert _most_at_once(inner) == 3
        assert g.batch_workers.waiting == 0


def test_with_latency_the_cap_still_holds_and_every_batch_is_answered() -> None:
    """With latency, waves wait on the latency clock; one that finds no room queues in its batch's thread."""
    with GraphEmulator.start(scenario=None, batch_workers=4, latency_ms=10) as g:
        users = [probe.add_mailbox_user(g, f"driver{i}") for i in range(3)]
        results: list[Any] = []

        def send(user: str) -> None:
            body = {
                "requests": [
                    {"id": str(i), "method": "POST", "url": f"/users/{user}/probe/count"} for i in range(8)
                ]
            }
            results.append(g.session().post(g.base_url + "/$batch", json=body))

        threads = [threading.Thread(target=send, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert len(results) == 3
        assert all(r.status_code == 200 and all(x["status"] == 201 for x in r.json()["responses"]) for r in results)
        assert all(probe.calls[u] == 8 for u in users)
        inner = g.log.entries(via_batch=True)
        assert len(inner) == 24
        assert _most_at_once(inner) == 4  # never more than the cap, across the three batches
        assert max(e.in_flight_for_mailbox for e in inner) == 4
        assert g.batch_workers.waiting == 0
        assert all(g.throttle.in_flight(g.client_id, u) == 0 for u in users)


def test_batch_workers_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="batch_workers must be at least 1, got 0"):
        GraphEmulator.start(scenario=None, batch_workers=0)
    with pytest.raises(SystemExit) as exit_:
        emulator_main(["--batch-workers", "0"])
    assert exit_.value.code == 2
    assert "--batch-workers: must be at least 1, got 0" in capsys.readouterr().err
