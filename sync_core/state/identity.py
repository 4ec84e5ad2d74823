"""Whose state a store holds: the tenant and Graph endpoint it was made for, stamped on first use.

Every id and link galsync keeps (contact ids, folder ids, delta links) is only meaningful in the tenant and
at the Graph endpoint that issued it. A state file carried to another tenant (a restarted emulator, a
misspelt GALSYNC_GRAPH_BASE_URL, a trial's SQLite file next to a new tenant's settings) would otherwise end
in Graph errors about ids that do not exist, or in a link the Graph client refuses to follow. So the store
carries a stamp; a store stamped for someone else is a configuration error that names both and says what
to do, before anything is read from it or written to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sync_core.state import docs
from sync_core.state.base import Lease, StateMismatch, StateStore

log = logging.getLogger("galsync.state.identity")


@dataclass(frozen=True)
class StoreIdentity:
    """The tenant id and Graph root (".../v1.0") a state store belongs to. An empty tenant id is unknown
    (managed identity without GALSYNC_TENANT_ID) and matches any tenant."""

    tenant_id: str
    graph_endpoint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenant_id", self.tenant_id.strip().lower())
        object.__setattr__(self, "graph_endpoint", self.graph_endpoint.strip().rstrip("/"))

    def matches(self, other: StoreIdentity) -> bool:
        same_tenant = not self.tenant_id or not other.tenant_id or self.tenant_id == other.tenant_id
        return same_tenant and self.graph_endpoint.lower() == other.graph_endpoint.lower()

    def describe(self) -> str:
        return f"tenant {self.tenant_id or '(unknown)'} at {self.graph_endpoint}"


def stored_identity(store: StateStore) -> StoreIdentity | None:
    """The identity the store was stamped with, or None if it was never stamped (new, or older than stamps)."""
    found = docs.read(store, docs.StateIdentity, docs.state_identity_key())
    return None if found is None else StoreIdentity(found.tenant_id, found.graph_endpoint)


def verify(store: StateStore, configured: StoreIdentity, links: Iterable[tuple[str, str]] = ()
           ) -> StoreIdentity | None:
    """Raise StateMismatch if the store is someone else's, by its stamp or by one of `links` (profile and
    source names of stored delta links); bind it to the configured endpoint. Returns the stamp (None: none)."""
    stored = stored_identity(store)
    if stored is not None and not stored.matches(configured):
        raise StateMismatch(f"the state store was made for {stored.describe()}, but galsync is configured for "
                            f"{configured.describe()}")
    store.bind(configured.graph_endpoint)
    for profile, source in links:
        store.get_delta_link(profile, source)  # StateMismatch for a link of another endpoint
    return stored


def claim(store: StateStore, configured: StoreIdentity, links: Iterable[tuple[str, str]] = ()) -> None:
    """Make sure the store is `configured`'s (`verify`), stamping it on first use.

    Before a first stamp the `links` are checked too: a store older than stamps may hold links of another
    endpoint, and stamping it with the wrong identity would make the right settings look wrong later.
    """
    stored = verify(store, configured)
    if stored is not None and (stored.tenant_id or not configured.tenant_id):
        return
    verify(store, configured, links)
    stamp(store, configured)
    again = stored_identity(store)  # two first users at once with different settings: the last one loses
    if again is not None and not again.matches(configured):
        raise StateMismatch(f"the state store was just stamped for {again.describe()} by another worker, but "
                            f"galsync is configured for {configured.describe()}")


def stamp(store: StateStore, identity: StoreIdentity) -> None:
    docs.write(store, docs.state_identity_key(), docs.StateIdentity(identity.tenant_id, identity.graph_endpoint))
    log.info("state store stamped for %s", identity.describe())


def reset(store: StateStore, identity: StoreIdentity, owner: str) -> list[Lease]:
    """Empty the store and stamp it for `identity`, unless another worker holds a lease in it.

    Returns the leases of other workers that stopped the reset (nothing was changed then), else [].
    """
    others = [lease for lease in store.list_leases() if lease.owner != owner]
    if others:
        return others
    store.clear()
    stamp(store, identity)
    store.bind(identity.graph_endpoint)
    log.info("state store emptied and stamped anew for %s", identity.describe())
    return []
