"""CPU by role: each thread's CPU goes to the innermost role it is in, summed over threads, only while open.

The clock is a stand-in that each test moves by hand (per thread, as `time.thread_time` is), so what each role
is charged is exact.
"""

from __future__ import annotations

import threading

import pytest

from sync_core import cpu_roles
from sync_core.cpu_roles import PLAN, READ, RECORD, SEND, accounting, role


class ThreadClock:
    """A CPU clock per thread, moved by `spend`."""

    def __init__(self) -> None:
        self._now = threading.local()

    def __call__(self) -> float:
        return float(getattr(self._now, "value", 0.0))

    def spend(self, seconds: float) -> None:
        self._now.value = self() + seconds


def test_nested_roles_charge_the_innermost_and_the_outer_keeps_the_rest() -> None:
    clock = ThreadClock()
    with accounting(clock) as ledger:
        with role(RECORD):
            clock.spend(1.0)
            with role(SEND):  # a $batch call made while recording is sending
                clock.spend(4.0)
            clock.spend(2.0)
        clock.spend(100.0)  # outside every role: nobody's
    assert ledger.seconds() == {READ: 0.0, PLAN: 0.0, RECORD: 3.0, SEND: 4.0}


def test_threads_are_summed_per_role() -> None:
    clock = ThreadClock()

    def lane(seconds: float) -> None:
        with role(SEND):
            clock.spend(seconds)

    with accounting(clock) as ledger:
        threads = [threading.Thread(target=lane, args=(s,)) for s in (1.0, 2.0, 3.0)]
        for t in threads:
            t.start()
        with role(PLAN):
            clock.spend(0.5)
        for t in threads:
            t.join()
    assert ledger.seconds()[SEND] == 6.0 and ledger.seconds()[PLAN] == 0.5


def test_without_an_open_ledger_nothing_is_counted_and_no_clock_is_read() -> None:
    reads: list[int] = []
    clock = ThreadClock()

    def counting_clock() -> float:
        reads.append(1)
        return clock()

    with role(SEND):  # no ledger: a shared no-op
        clock.spend(1.0)
    assert cpu_roles.role(SEND) is cpu_roles.role(PLAN)
    with accounting(counting_clock) as ledger:
        pass
    with role(SEND):
        clock.spend(1.0)
    assert reads == [] and ledger.seconds()[SEND] == 0.0


def test_a_block_entered_while_open_is_charged_even_if_it_ends_after_the_ledger_closed() -> None:
    clock = ThreadClock()
    with accounting(clock) as ledger:
        block = role(RECORD)
        block.__enter__()
        clock.spend(2.0)
    block.__exit__(None, None, None)
    assert ledger.seconds()[RECORD] == 2.0


def test_one_ledger_at_a_time() -> None:
    with accounting(), pytest.raises(RuntimeError, match="already open"), accounting():
        pass
