"""Paging and delta against the emulator: exact request counts, streaming, delta links, expired tokens."""

from __future__ import annotations

import pytest

from graph_emulator import GraphEmulator
from sync_core.graph import DeltaTokenExpired, GraphClient

from .support import Mailbox

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
DELTA = "/users/{user}/contactFolders/{folder}/contacts/delta"


def _fill(emu: GraphEmulator, mailbox: Mailbox, n: int) -> None:
    for i in range(n):
        emu.tenant.mailboxes.create_contact(mailbox.user_id, {"displayName": f"Driver {i:02d}"}, mailbox.folder_id)


def _delta_path(mailbox: Mailbox) -> str:
    return f"{mailbox.contacts}/delta"


def test_a_45_item_walk_costs_exactly_the_pages_it_needs(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    _fill(emu, mailbox, 45)
    names = [c["displayName"] for c in client.iter_pages(mailbox.contacts, params={"$top": "10"})]
    assert sorted(names) == [f"Driver {i:02d}" for i in range(45)]
    assert emu.log.count(method="GET", route=CONTACTS) == 5  # 10+10+10+10+5


def test_pages_stream_one_at_a_time(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    _fill(emu, mailbox, 45)
    items = client.iter_pages(mailbox.contacts, params={"$top": "10", "$select": "displayName"})
    first = [next(items) for _ in range(10)]
    assert len(first) == 10 and emu.log.count(route=CONTACTS) == 1  # nothing fetched ahead
    next(items)
    assert emu.log.count(route=CONTACTS) == 2


def test_delta_yields_items_then_a_link_that_returns_only_changes(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    _fill(emu, mailbox, 45)
    delta = client.delta(_delta_path(mailbox), headers={"Prefer": "odata.maxpagesize=10"})
    first = [next(delta) for _ in range(45)]
    assert delta.delta_link is None  # not handed out before every item was taken
    assert next(delta, None) is None and delta.delta_link is not None
    assert len({c["id"] for c in first}) == 45 and delta.pages == 5
    assert emu.log.count(route=DELTA) == 5

    emu.tenant.mailboxes.phone_create_contact(mailbox.user_id, {"displayName": "Maman"}, mailbox.folder_id)
    changes = client.delta(delta.delta_link)
    assert [c["displayName"] for c in changes] == ["Maman"]
    assert changes.delta_link and emu.log.count(route=DELTA) == 6


def test_delta_batches_hand_each_page_on_before_the_next_is_asked_for(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    """What a sync stores (and writes) a page at a time can start before Graph is asked for the next page."""
    _fill(emu, mailbox, 25)
    delta = client.delta(_delta_path(mailbox), headers={"Prefer": "odata.maxpagesize=10"})
    sizes, asked = [], []
    for batch in delta.batches(4):
        sizes.append(len(batch))
        asked.append(emu.log.count(route=DELTA))
    assert sizes == [4, 4, 2, 4, 4, 2, 4, 1]  # never more than 4, and never across a page boundary
    assert asked == [1, 1, 1, 2, 2, 2, 3, 3]
    assert delta.delta_link is not None and delta.pages == 3


def test_deleted_contacts_come_back_as_removed(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    _fill(emu, mailbox, 3)
    delta = client.delta(_delta_path(mailbox))
    gone = next(iter(delta))["id"]
    list(delta)
    emu.tenant.mailboxes.phone_delete_contact(mailbox.user_id, gone)
    assert [(c["id"], c["@removed"]["reason"]) for c in client.delta(str(delta.delta_link))] == [(gone, "deleted")]


def test_expired_delta_token_raises_one_typed_error(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    _fill(emu, mailbox, 2)
    delta = client.delta(_delta_path(mailbox))
    list(delta)
    emu.tenant.expire_delta_tokens()
    with pytest.raises(DeltaTokenExpired) as err:
        list(client.delta(str(delta.delta_link)))
    assert err.value.request_id
    # Starting over with the plain path works.
    assert len(list(client.delta(_delta_path(mailbox)))) == 2


def test_a_delta_link_takes_no_extra_params(client: GraphClient, mailbox: Mailbox) -> None:
    with pytest.raises(ValueError, match="delta link"):
        client.delta(f"{client.base_url}{_delta_path(mailbox)}?$deltatoken=abc", params={"$select": "id"})


def test_links_outside_graph_are_refused(emu: GraphEmulator, client: GraphClient) -> None:
    with pytest.raises(ValueError, match="outside"):
        client.get("https://attacker.example/v1.0/users")
    assert emu.log.count() == 0


def test_directory_delta_and_its_expiry(emu: GraphEmulator, client: GraphClient) -> None:
    for i in range(3):
        emu.tenant.directory.add_user(displayName=f"Driver {i}")
    delta = client.delta("/users/delta", params={"$select": "displayName,mail"})
    assert sorted(u["displayName"] for u in delta) == ["Driver 0", "Driver 1", "Driver 2"]
    link = str(delta.delta_link)
    emu.tenant.directory.add_user(displayName="Driver 3")
    assert [u["displayName"] for u in client.delta(link)] == ["Driver 3"]
    emu.tenant.expire_delta_tokens()
    with pytest.raises(DeltaTokenExpired) as err:
        list(client.delta(link))
    assert err.value.status == 410
