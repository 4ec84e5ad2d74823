"""Whose state the Runtime's store holds, checked against this process's settings (sync_core/state/identity.py).

The command line checks it before a command touches the store, the queue worker before each message, the
doctor reports it; a store made for another tenant or endpoint is then one clear configuration error,
before anything is read or written.
"""

from __future__ import annotations

from sync_core.core.profile import Config
from sync_core.graph.clouds import endpoints
from sync_core.settings import Settings
from sync_core.state import identity
from sync_core.state.base import Lease, StateMismatch
from sync_core.state.identity import StoreIdentity

from .groups import GROUPS_SOURCE, group_refs
from .runtime import Runtime


def configured_identity(settings: Settings) -> StoreIdentity:
    """The tenant and Graph root the settings name (the cloud's root unless GALSYNC_GRAPH_BASE_URL is set)."""
    return StoreIdentity(settings.tenant_id, endpoints(settings).graph_base_url)


def source_links(config: Config) -> list[tuple[str, str]]:
    """(profile, source) names of the delta links a sync keeps: each source's, and the group watch's."""
    links = [(p.name, s.name) for p in config for s in p.sources]
    return links + [(p.name, GROUPS_SOURCE) for p in config if group_refs(p)]


def claim_state(rt: Runtime) -> None:
    """Stamp the store on first use, or raise StateMismatch if it belongs to another tenant or endpoint."""
    identity.claim(rt.store, configured_identity(rt.settings), source_links(rt.config))


def state_problem(rt: Runtime) -> StateMismatch | None:
    """What `claim_state` would raise, found without stamping anything (for the doctor)."""
    try:
        identity.verify(rt.store, configured_identity(rt.settings), source_links(rt.config))
    except StateMismatch as mismatch:
        return mismatch
    return None


def reset_state(rt: Runtime) -> list[Lease]:
    """Empty the store and stamp it for the configured tenant and endpoint; the leases of other workers that
    stopped it ([] when it was done)."""
    return identity.reset(rt.store, configured_identity(rt.settings), rt.owner)
