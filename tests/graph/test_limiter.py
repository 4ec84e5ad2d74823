"""The in-process limiter: per-mailbox cap, global cap, and per-mailbox backoff (threads, no HTTP).

Proof against Graph's own view of concurrency is in test_concurrency.py (from the emulator's log).
"""

from __future__ import annotations

import threading

from sync_core.graph.concurrency import Limiter


def _hold(limiter: Limiter, demand: dict[str, int], entered: threading.Event, leave: threading.Event) -> None:
    with limiter.slot(demand):
        entered.set()
        leave.wait(10)


def test_fifth_request_to_a_mailbox_waits_while_other_mailboxes_go() -> None:
    limiter = Limiter(max_in_flight=100)
    leave = threading.Event()
    holders = []
    for _ in range(4):
        entered = threading.Event()
        t = threading.Thread(target=_hold, args=(limiter, {"a": 1}, entered, leave))
        t.start()
        assert entered.wait(5)
        holders.append(t)
    fifth_in, other_in = threading.Event(), threading.Event()
    fifth = threading.Thread(target=_hold, args=(limiter, {"a": 1}, fifth_in, leave))
    other = threading.Thread(target=_hold, args=(limiter, {"b": 1}, other_in, leave))
    fifth.start()
    other.start()
    assert other_in.wait(5)  # mailbox b is not held up by a
    assert not fifth_in.is_set() and limiter.in_flight("a") == 4
    leave.set()
    assert fifth_in.wait(5)
    for t in [*holders, fifth, other]:
        t.join(5)
    assert limiter.in_flight() == 0


def test_a_batch_takes_all_slots_it_needs_at_once() -> None:
    limiter = Limiter(max_in_flight=100)
    leave = threading.Event()
    single_in = threading.Event()
    t1 = threading.Thread(target=_hold, args=(limiter, {"a": 1}, single_in, leave))
    t1.start()
    assert single_in.wait(5)
    batch_in = threading.Event()
    t2 = threading.Thread(target=_hold, args=(limiter, {"a": 20, "b": 1}, batch_in, leave))  # 20 -> capped at 4
    t2.start()
    late_in = threading.Event()
    t3 = threading.Thread(target=_hold, args=(limiter, {"a": 1}, late_in, leave))
    t3.start()
    t3.join(0.2)
    # The batch waits for a's 4th slot; the later single request does not jump the queue.
    assert not batch_in.is_set() and not late_in.is_set()
    leave.set()
    for t in (t1, t2, t3):
        t.join(5)
    assert batch_in.is_set() and late_in.is_set() and limiter.in_flight() == 0


def test_global_cap() -> None:
    limiter = Limiter(max_in_flight=2)
    leave = threading.Event()
    events = [threading.Event() for _ in range(3)]
    threads = [threading.Thread(target=_hold, args=(limiter, {f"m{i}": 1}, events[i], leave)) for i in range(3)]
    for t in threads:
        t.start()
    assert events[0].wait(5) and events[1].wait(5)
    threads[2].join(0.2)
    assert not events[2].is_set() and limiter.in_flight() == 2
    leave.set()
    for t in threads:
        t.join(5)
    assert events[2].is_set()


def test_a_held_off_mailbox_does_not_hold_up_others() -> None:
    limiter = Limiter(max_in_flight=10)
    limiter.hold_off("a", 30.0)
    leave = threading.Event()
    leave.set()
    a_in, b_in = threading.Event(), threading.Event()
    ta = threading.Thread(target=_hold, args=(limiter, {"a": 1}, a_in, leave), daemon=True)
    tb = threading.Thread(target=_hold, args=(limiter, {"b": 1}, b_in, leave))
    ta.start()
    tb.start()
    assert b_in.wait(5)
    assert not a_in.is_set()
    limiter.hold_off("a", 0.0)  # a shorter hold-off never shortens the one in force
    ta.join(0.2)
    assert not a_in.is_set()
