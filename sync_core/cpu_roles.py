"""CPU time by role (read, plan, record, send), summed over every thread: what a run's CPU was spent on.

A fill spreads its work over many threads (the use case's, the early fill's, the Graph client's `$batch`
lanes), and one thread does several jobs: the early fill's plans, records and sends a lane of its own. So CPU
per thread says little about where CPU goes. Code marks its steps with `role(name)`; while a ledger is open
(`accounting()`, the benchmark's), each thread's CPU time (`time.thread_time`) goes to the innermost role it
is in, so a `$batch` call made while recording counts as send, not as record. With no ledger open, `role`
reads no clock: mark whole steps (a plan, a wave's records, one HTTP call), never one contact.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType

READ = "read"  # reading the sources: mapping, fingerprints, comparing and storing source records
PLAN = "plan"  # what each target needs: the desired contacts, the planner, the write requests built
RECORD = "record"  # the state store: in-flight records before a wave, each answer's record after it
SEND = "send"  # Graph calls: $batch assembly, JSON, HTTP, the answers parsed
ROLES = (READ, PLAN, RECORD, SEND)

_UNMARKED: AbstractContextManager[None] = nullcontext()


class CpuLedger:
    """Thread CPU seconds per role, from every thread that entered a role while the ledger was open."""

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self._clock = clock  # CPU seconds of the calling thread
        self._seconds: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._threads = threading.local()  # per thread: the stack of roles entered, the clock at the last change

    def seconds(self) -> dict[str, float]:
        """CPU seconds per role, every role of ROLES included (0.0 when unused)."""
        with self._lock:
            return {name: self._seconds[name] for name in (*ROLES, *sorted(set(self._seconds) - set(ROLES)))}

    def enter(self, name: str) -> None:
        now = self._clock()
        here = self._threads.__dict__
        stack: list[str] = here.setdefault("stack", [])
        if stack:
            self._charge(stack[-1], now - here["since"])
        stack.append(name)
        here["since"] = now

    def leave(self) -> None:
        now = self._clock()
        here = self._threads.__dict__
        self._charge(here["stack"].pop(), now - here["since"])
        here["since"] = now

    def _charge(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] += seconds


class _Marked(AbstractContextManager[None]):
    __slots__ = ("_ledger", "_name")

    def __init__(self, ledger: CpuLedger, name: str) -> None:
        self._ledger, self._name = ledger, name

    def __enter__(self) -> None:
        self._ledger.enter(self._name)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._ledger.leave()


_open: CpuLedger | None = None


def role(name: str) -> AbstractContextManager[None]:
    """Charge this thread's CPU inside the `with` block to `name` (while a ledger is open)."""
    ledger = _open
    return _UNMARKED if ledger is None else _Marked(ledger, name)


@contextmanager
def accounting(clock: Callable[[], float] = time.thread_time) -> Iterator[CpuLedger]:
    """Open a ledger for the block: the CPU of every role entered in it, from any thread."""
    global _open  # noqa: PLW0603 - one ledger per process, read by `role` without a lock
    if _open is not None:
        raise RuntimeError("CPU accounting is already open")
    ledger = _open = CpuLedger(clock)
    try:
        yield ledger
    finally:
        _open = None
