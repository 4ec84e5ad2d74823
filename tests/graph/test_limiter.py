"""The in-process limiter: per-mailbox cap, global cap, and per-mailbox backoff (threads, no HTTP).

Proof against Graph's own view of concurrency is in test_concurrency.py (from the emulator's log).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

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


def test_calls_that_touch_no_mailbox_have_their_own_smaller_cap() -> None:
    limiter = Limiter(max_in_flight=100, directory=2)
    leave = threading.Event()
    events = [threading.Event() for _ in range(3)]
    threads = [threading.Thread(target=_hold, args=(limiter, {}, events[i], leave)) for i in range(3)]
    for t in threads:
        t.start()
    assert events[0].wait(5) and events[1].wait(5)
    box_in = threading.Event()
    box = threading.Thread(target=_hold, args=(limiter, {"a": 1}, box_in, leave))
    box.start()
    assert box_in.wait(5)  # mailbox calls are not held up by the directory's cap
    threads[2].join(0.2)
    assert not events[2].is_set() and limiter.in_flight() == 3
    leave.set()  # a directory call that ends lets the waiting one start
    for t in [*threads, box]:
        t.join(5)
    assert events[2].is_set() and limiter.in_flight() == 0


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


# ---- who is woken: only the waiters that can start --------------------------------------------------------


def _until(done: Callable[[], bool]) -> None:
    """Block until `done()` (threads have reached the state the test sets up); 5 s at most."""
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() < deadline, "the threads never got there"
        time.sleep(0.005)


def _wait_until_waiting(limiter: Limiter, n: int) -> None:
    _until(lambda: limiter.waiting() == n)


def _start(
    limiter: Limiter, demand: dict[str, int], leave: threading.Event
) -> tuple[threading.Thread, threading.Event]:
    entered = threading.Event()
    thread = threading.Thread(target=_hold, args=(limiter, demand, entered, leave))
    thread.start()
    return thread, entered


def test_a_release_wakes_only_a_waiter_of_that_mailbox() -> None:
    limiter = Limiter(max_in_flight=100)
    leave_a = [threading.Event() for _ in range(4)]
    leave_b = threading.Event()
    holders = [_start(limiter, {"a": 1}, e)[0] for e in leave_a]
    holders += [_start(limiter, {"b": 1}, leave_b)[0] for _ in range(4)]
    _until(lambda: limiter.in_flight() == 8)
    go = threading.Event()
    go.set()  # waiters leave as soon as they are in
    b_waiters = [_start(limiter, {"b": 1}, go) for _ in range(6)]
    _wait_until_waiting(limiter, 6)
    a_waiter, a_in = _start(limiter, {"a": 1}, go)
    _wait_until_waiting(limiter, 7)

    leave_a[0].set()  # one slot of a is free: the waiter of a starts, the six waiters of b sleep on
    a_waiter.join(5)
    assert a_in.is_set()
    assert limiter.wakeups == 1 and limiter.waiting("b") == 6

    leave_b.set()
    for e in leave_a:
        e.set()
    for t in [*holders, *(t for t, _ in b_waiters)]:
        t.join(5)
    assert all(entered.is_set() for _, entered in b_waiters)
    # Every waiting thread was woken exactly once: when its slot was handed to it.
    assert limiter.wakeups == 7
    assert limiter.in_flight() == 0 and limiter.waiting() == 0


def test_a_freed_global_slot_wakes_the_oldest_waiter_only() -> None:
    limiter = Limiter(max_in_flight=2)
    leave_first, leave_rest = threading.Event(), threading.Event()
    first, _ = _start(limiter, {"m0": 1}, leave_first)
    second, _ = _start(limiter, {"m1": 1}, leave_rest)
    _until(lambda: limiter.in_flight() == 2)
    waiters = []
    for i in range(2, 6):  # mailboxes with free slots: only the global cap holds them
        waiters.append(_start(limiter, {f"m{i}": 1}, leave_rest))
        _wait_until_waiting(limiter, i - 1)

    leave_first.set()
    first.join(5)
    assert waiters[0][1].wait(5)
    assert limiter.wakeups == 1 and limiter.waiting() == 3
    assert not any(entered.is_set() for _, entered in waiters[1:])

    leave_rest.set()
    for t in [second, *(t for t, _ in waiters)]:
        t.join(5)
    assert all(entered.is_set() for _, entered in waiters) and limiter.wakeups == 4


def test_a_held_off_waiter_does_not_hold_up_later_waiters_on_its_other_mailbox() -> None:
    limiter = Limiter(max_in_flight=10)
    leave = threading.Event()
    holders = [_start(limiter, {"a": 1}, leave)[0] for _ in range(4)]
    _until(lambda: limiter.in_flight("a") == 4)
    go = threading.Event()
    go.set()
    first = threading.Thread(target=_hold, args=(limiter, {"a": 1, "b": 1}, threading.Event(), go), daemon=True)
    first.start()
    _wait_until_waiting(limiter, 1)
    _, blocked_in = _start(limiter, {"b": 1}, go)
    _wait_until_waiting(limiter, 2)
    assert not blocked_in.is_set()  # first come, first served on b: behind the batch that waits for a
    limiter.hold_off("a", 30.0)
    assert blocked_in.wait(5)  # the batch now waits for a's hold-off; b's queue moves on
    assert limiter.waiting() == 1
    leave.set()
    for t in holders:
        t.join(5)


def test_a_held_off_waiter_starts_when_its_hold_off_ends_without_any_release() -> None:
    limiter = Limiter(max_in_flight=10)
    leave = threading.Event()
    holders = [_start(limiter, {"a": 1}, leave)[0] for _ in range(4)]
    _until(lambda: limiter.in_flight("a") == 4)
    started_at: list[float] = []

    def wait_for_a() -> None:
        with limiter.slot({"a": 1}):
            started_at.append(time.monotonic())

    waiter = threading.Thread(target=wait_for_a)
    waiter.start()
    _wait_until_waiting(limiter, 1)
    held_until = time.monotonic() + 0.2
    limiter.hold_off("a", 0.2)
    leave.set()  # a's slots are freed while a is held off: the release may not start the waiter
    for t in holders:
        t.join(5)
    waiter.join(5)  # started by its own timer: no release came after the hold-off ended
    assert len(started_at) == 1 and started_at[0] >= held_until
    assert limiter.in_flight() == 0 and limiter.waiting() == 0


def test_many_threads_mixed_demands_never_exceed_a_limit_and_all_finish() -> None:
    limiter = Limiter(max_in_flight=5)
    over: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            mailboxes = rng.sample("abc", rng.randint(0, 3))
            with limiter.slot({m: rng.randint(1, 6) for m in mailboxes}):
                if limiter.in_flight() > 5 or any(limiter.in_flight(m) > 4 for m in "abc"):
                    over.append(f"{limiter.in_flight()} {[limiter.in_flight(m) for m in 'abc']}")
                if rng.random() < 0.03:
                    limiter.hold_off(rng.choice("abc"), 0.01)

    threads = [threading.Thread(target=work, args=(seed,), daemon=True) for seed in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "deadlock: threads still waiting"
    assert over == []
    assert limiter.in_flight() == 0 and limiter.waiting() == 0
