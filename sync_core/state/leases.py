"""Running one piece of work at a time per lease name, with bursts of triggers coalesced.

A trigger that finds the lease held only raises the pending flag and returns; the holder runs once more
for all such flags together. The order of calls below closes the gaps: a mark that lands after the holder's
last `take_pending` is seen by its `has_pending` check after release (or its own trigger gets the lease).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sync_core.state.base import StateStore

log = logging.getLogger("galsync.state.leases")


def run_exclusively(store: StateStore, name: str, owner: str, ttl_seconds: float,
                    work: Callable[[], None]) -> int:
    """Run `work` under the lease `name` as long as triggers are pending; return how often it ran here.

    0 means another holder is running and will run once more for this trigger. `ttl_seconds` must exceed
    the longest run: a lease that expires mid-run can be taken by another worker. If `work` raises, the
    lease is released and the error propagates (the trigger's own retry runs it again).
    """
    store.mark_pending(name)
    runs = 0
    while store.acquire_lease(name, owner, ttl_seconds):
        try:
            while store.take_pending(name):
                work()
                runs += 1
        finally:
            store.release_lease(name, owner)
        if not store.has_pending(name):
            break
    log.debug("lease %s: owner %s ran %d time(s)", name, owner, runs)
    return runs
