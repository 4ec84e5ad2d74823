"""Short leases kept alive by a heartbeat, and running one piece of work at a time per lease name.

A lease lasts about a minute (settings.LEASE_SECONDS), so a worker that dies (a deployment, a scale-in, a
SIGKILL) holds up the next one by at most that long. A worker that lives renews its leases on a heartbeat
thread every third of the ttl for as long as its work runs, however long that is. If it cannot renew in
time, its work stops writing (it checks `Heartbeat.held()` between its write waves) while the lease still
has about half its ttl to run, so two workers never write to the same place at once.

`run_exclusively` coalesces bursts of triggers: a trigger that finds the lease held only raises the pending
flag and returns; the holder runs once more for all such flags together. The order of calls below closes
the gaps: a mark that lands after the holder's last `take_pending` is seen by its `has_pending` check after
release (or its own trigger gets the lease).

A holder that dies leaves the flag raised with nobody to take it, and a trigger that coalesces on a raised
flag (the webhook) would wait behind it until a timer sends work regardless. So a raised flag counts only
while someone will take it: while it is younger than a ttl (the trigger sent with it has not run yet) or a
live lease holds its name (the holder runs once more). Past that it is stale, and `claim_pending` /
`take_over_stale_pending` hand it to the caller, who sends a trigger again. The flag's age is kept in the
store rather than asking the queue to deliver a busy trigger again later: a queue trigger can only be
delivered again by failing, and a live holder's long run would turn its waiting triggers into poison.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from sync_core.state.base import Lease, StateStore

log = logging.getLogger("galsync.state.leases")

Clock = Callable[[], float]


class LeaseLost(RuntimeError):
    """A lease could not be renewed in time (another worker may hold it now), so this worker stopped writing."""


def describe_lease(lease: Lease) -> str:
    """"lease L held by worker W until T": what an admin needs to know when galsync answers busy."""
    until = datetime.fromtimestamp(lease.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"lease {lease.name} held by worker {lease.owner} until {until}"


class Heartbeat:
    """Leases taken for one piece of work, renewed on a thread every `every` seconds until the block ends.

    `held()` turns False, for good, when a renewal is refused (another owner has the lease) or when no
    renewal has succeeded for half the ttl (the store is unreachable, or this process was frozen). A failed
    renewal is retried at a quarter of the interval. Leaving the `with` block stops the thread and releases
    every lease taken.
    """

    def __init__(self, store: StateStore, owner: str, ttl_seconds: float, *, every: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        self._store = store
        self._owner = owner
        self._ttl = ttl_seconds
        self._every = every if every is not None else ttl_seconds / 3
        self._clock = clock
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._renewed_at: float | None = None  # when the last renewal of every lease began (by `clock`)
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._names)

    def take(self, name: str) -> bool:
        """Acquire the lease `name` for this work (and keep it renewed); False if another owner holds it."""
        started = self._clock()
        if not self._store.acquire_lease(name, self._owner, self._ttl):
            return False
        with self._lock:
            self._names.append(name)
            if self._renewed_at is None:
                self._renewed_at = started
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="galsync-heartbeat", daemon=True)
                self._thread.start()
        return True

    def held(self) -> bool:
        """Whether the work may still write: every lease renewed in time and none lost."""
        with self._lock:
            if self._lost:
                return False
            if self._renewed_at is not None and self._clock() - self._renewed_at >= self._ttl / 2:
                self._lost = True
                log.warning("leases %s: not renewed for half their ttl; stopping writes", ",".join(self._names))
            return not self._lost

    def check(self) -> None:
        """Raise LeaseLost if the work may no longer write."""
        if not self.held():
            raise LeaseLost(f"lost the lease on {', '.join(self.names)} (not renewed in time; another worker may "
                            "hold it now), so this worker stopped writing; the next run finishes the work")

    def renew(self) -> bool:
        """Renew every lease now; False once they are lost (StateError if the store failed: retry soon)."""
        if not self.held():
            return False
        started = self._clock()
        names = self.names
        for name in names:
            if not self._store.acquire_lease(name, self._owner, self._ttl):
                with self._lock:
                    self._lost = True
                log.warning("lease %s: taken by another worker; stopping writes", name)
                return False
        with self._lock:
            if not self._lost:
                self._renewed_at = started
        return self.held()

    def release(self) -> None:
        """Stop renewing and give every lease up (one that is no longer ours is left alone)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for name in self.names:
            try:
                self._store.release_lease(name, self._owner)
            except Exception:  # the lease expires on its own within the ttl; do not hide the work's own error
                log.warning("lease %s: could not be released; it expires within %.0f s", name, self._ttl,
                            exc_info=True)
        with self._lock:
            self._names.clear()

    def _beat(self) -> None:
        wait = self._every
        while not self._stop.wait(wait):
            try:
                if not self.renew():
                    return
                wait = self._every
            except Exception as error:  # the store is unreachable for now: try again sooner
                log.warning("leases %s: renewal failed (%s); retrying", ",".join(self.names), type(error).__name__)
                wait = self._every / 4

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def run_exclusively(store: StateStore, name: str, owner: str, ttl_seconds: float,
                    work: Callable[[], None], *, clock: Clock = time.monotonic) -> int:
    """Run `work` under the lease `name` as long as triggers are pending; return how often it ran here.

    0 means another holder is running and will run once more for this trigger. The lease is renewed by a
    heartbeat while `work` runs; if it is lost, no further run starts here (the new holder runs what is
    pending). If `work` raises, the lease is released and the error propagates (the trigger's own retry
    runs it again).
    """
    store.mark_pending(name)
    runs = 0
    while True:
        with Heartbeat(store, owner, ttl_seconds, clock=clock) as beat:
            if not beat.take(name):
                break
            while beat.held() and store.take_pending(name):
                work()
                runs += 1
            lost = not beat.held()
        if lost:
            log.warning("lease %s: lost while running; the worker holding it now runs what is pending", name)
            break
        if not store.has_pending(name):
            break
    log.debug("lease %s: owner %s ran %d time(s)", name, owner, runs)
    return runs


def claim_pending(store: StateStore, name: str, ttl_seconds: float) -> bool:
    """Raise the pending flag of `name` for a trigger; True if the caller must send work for it.

    False while the flag is raised and someone will take it (younger than a ttl, or a live lease holds
    `name`): the work already on its way covers this trigger, which keeps a burst down to one message.
    True if the flag was clear, or stale and now raised afresh by this caller (`take_over_stale_pending`).
    """
    age = store.pending_age(name)
    if age is None:
        store.mark_pending(name)
        return True
    return _take_over(store, name, ttl_seconds, age)


def take_over_stale_pending(store: StateStore, name: str, ttl_seconds: float) -> bool:
    """If the pending flag of `name` is stale (raised at least a ttl ago, no live lease on `name`: whoever was
    to take it died, or its trigger was lost), raise it afresh and return True: the caller sends the work.

    Raising it afresh makes the next callers coalesce again on the work this caller sends. A clear flag is
    left clear (no work arrived) and a flag someone will take is left alone; both give False.
    """
    age = store.pending_age(name)
    return age is not None and _take_over(store, name, ttl_seconds, age)


def _take_over(store: StateStore, name: str, ttl_seconds: float, age: float) -> bool:
    if age < ttl_seconds or store.get_lease(name) is not None:
        return False
    if not store.restart_pending(name, ttl_seconds):
        return False  # a worker starting now or another caller took it first: that covers this trigger too
    log.warning("lease %s: pending for %.0f s with no live holder (its worker died or its message is late); "
                "sending its work again", name, age)
    return True
