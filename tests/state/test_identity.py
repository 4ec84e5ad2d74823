"""Whose state a store holds: stamped on first use, refused for another tenant or endpoint, reset on request.

Every test runs on SQLite and on Table Storage (Azurite), like the contract suite.
"""

from __future__ import annotations

import pytest

from sync_core.core.records import SourceRecord
from sync_core.state import StateStore
from sync_core.state.base import StateMismatch
from sync_core.state.identity import StoreIdentity, claim, reset, stored_identity
from tests.state.conftest import FakeClock

TENANT = "7c1f7a0e-52d4-4c0b-9a8e-3f1a6f0d2b91"
OTHER_TENANT = "0a9b8c7d-1111-2222-3333-444455556666"
GRAPH = "https://graph.microsoft.com/v1.0"
EMULATOR = "https://127.0.0.1:40443/v1.0"


def test_first_use_stamps_the_store_and_later_uses_pass(store: StateStore) -> None:
    mine = StoreIdentity(TENANT, GRAPH)
    assert stored_identity(store) is None

    claim(store, mine)
    claim(store, StoreIdentity(TENANT.upper(), GRAPH + "/"))  # the same, written another way

    assert stored_identity(store) == mine
    assert store.graph_endpoint == GRAPH


@pytest.mark.parametrize(("configured", "named"), [
    (StoreIdentity(OTHER_TENANT, GRAPH), OTHER_TENANT),
    (StoreIdentity(TENANT, EMULATOR), EMULATOR),
])
def test_a_store_of_another_tenant_or_endpoint_is_refused_naming_both(store: StateStore, configured: StoreIdentity,
                                                                      named: str) -> None:
    claim(store, StoreIdentity(TENANT, GRAPH))
    store.put_source_records("Company", [SourceRecord("user:1", "fp", {"displayName": "A"})])

    with pytest.raises(StateMismatch) as refused:
        claim(store, configured)

    message = str(refused.value)
    assert f"made for tenant {TENANT} at {GRAPH}" in message
    assert named in message.split("configured for", 1)[1]
    assert "GALSYNC_STATE" in refused.value.advice and "--reset-state" in refused.value.advice
    assert stored_identity(store) == StoreIdentity(TENANT, GRAPH)  # the stamp stays as it was


def test_an_unknown_tenant_matches_and_is_filled_in_once_known(store: StateStore) -> None:
    claim(store, StoreIdentity("", GRAPH))  # managed identity without GALSYNC_TENANT_ID
    claim(store, StoreIdentity(TENANT, GRAPH))

    assert stored_identity(store) == StoreIdentity(TENANT, GRAPH)
    with pytest.raises(StateMismatch):
        claim(store, StoreIdentity(OTHER_TENANT, GRAPH))


def test_an_unstamped_store_holding_a_link_of_another_endpoint_is_refused_and_not_stamped(store: StateStore) -> None:
    store.set_delta_link("Company", "users", f"{EMULATOR}/users/delta?$deltatoken=t")

    with pytest.raises(StateMismatch, match=f"link of profile 'Company' .source 'users'. at {EMULATOR}"):
        claim(store, StoreIdentity(TENANT, GRAPH), links=[("Company", "groups"), ("Company", "users")])

    assert stored_identity(store) is None
    claim(store, StoreIdentity(TENANT, EMULATOR), links=[("Company", "users")])  # the right settings still pass
    assert stored_identity(store) == StoreIdentity(TENANT, EMULATOR)


def test_reset_empties_the_store_and_stamps_it_for_the_configured_identity(store: StateStore) -> None:
    claim(store, StoreIdentity(OTHER_TENANT, EMULATOR))
    store.set_delta_link("Company", "users", f"{EMULATOR}/users/delta?$deltatoken=t")
    store.put_source_records("Company", [SourceRecord("user:1", "fp", {"displayName": "A"})])
    assert store.acquire_lease("sync:Company", "me", 60)  # this worker's own lease does not stop the reset

    assert reset(store, StoreIdentity(TENANT, GRAPH), "me") == []

    assert stored_identity(store) == StoreIdentity(TENANT, GRAPH)
    assert store.get_delta_link("Company", "users") is None
    assert store.get_source_records("Company") == {}
    claim(store, StoreIdentity(TENANT, GRAPH))


def test_reset_refuses_while_another_worker_holds_a_lease(store: StateStore, clock: FakeClock) -> None:
    claim(store, StoreIdentity(OTHER_TENANT, EMULATOR))
    store.put_source_records("Company", [SourceRecord("user:1", "fp", {"displayName": "A"})])
    assert store.acquire_lease("push:Company:mbx", "host-b:77:feed", 60)

    blocking = reset(store, StoreIdentity(TENANT, GRAPH), "me")

    assert [(lease.name, lease.owner) for lease in blocking] == [("push:Company:mbx", "host-b:77:feed")]
    assert stored_identity(store) == StoreIdentity(OTHER_TENANT, EMULATOR)
    assert list(store.get_source_records("Company")) == ["user:1"]
    clock.advance(61)  # that worker died: its lease ran out
    assert reset(store, StoreIdentity(TENANT, GRAPH), "me") == []
