"""Categories on the contacts galsync writes: adding one to a profile of U users and T targets writes exactly
U x T updates once, then nothing; a category a person added on a phone is never removed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, SyncReport, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

PLAIN = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
WITH_COMPANY = PLAIN.replace('folder = "Directory"', 'folder = "Directory"\ncategories = ["Company"]')
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"
USERS = 4
PHONES = 3


@pytest.fixture
def tenant() -> Iterator[tuple[GraphEmulator, list[str]]]:
    with GraphEmulator.start(scenario=None) as g:
        users = [g.tenant.directory.add_user(displayName=f"Driver {i}", mailNickname=f"d{i}",
                                             mobilePhone=f"+44 7700 90000{i}")["id"] for i in range(USERS)]
        g.tenant.directory.add_group("Phones", members=users[:PHONES])
        yield g, users


def sync(rt: Runtime) -> SyncReport:
    return sync_profile(rt, "Small", InlineFanOut(rt))


def managed(g: GraphEmulator, mailbox: str) -> list[dict[str, Any]]:
    folder = g.tenant.mailboxes.find_folder(mailbox, "Directory")
    assert folder is not None
    return [c for c in g.tenant.mailboxes.contacts(mailbox, folder["id"]) if read_contact_tag(c) is not None]


def writes(g: GraphEmulator) -> Counter[str]:
    return +Counter({"created": g.log.count(method="POST", route=CONTACTS),
                     "updated": g.log.count(method="PATCH", route=CONTACT),
                     "deleted": g.log.count(method="DELETE", route=CONTACT)})


def test_a_new_category_writes_each_contact_once_keeping_what_a_person_added(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    sync(make_runtime(g, PLAIN))
    phone = users[0]
    vip = managed(g, phone)[0]
    g.tenant.mailboxes.phone_update_contact(phone, vip["id"], {"categories": ["VIP"]})
    g.log.clear()

    rt = make_runtime(g, WITH_COMPANY)
    assert sync(rt).outcome == "ok"
    assert writes(g) == Counter({"updated": USERS * PHONES})
    assert g.log.count(method="GET", route=CONTACT) == USERS * PHONES  # each list read once: Graph replaces it
    for mailbox in users[:PHONES]:
        for contact in managed(g, mailbox):
            expected = ["VIP", "Company"] if contact["id"] == vip["id"] else ["Company"]
            assert contact["categories"] == expected

    g.log.clear()
    assert sync(rt).exec.writes == 0
    assert reconcile_profile(rt, "Small").exec.writes == 0
    assert writes(g) == Counter()

    # Someone takes galsync's category off on a phone: the reconcile puts it back, beside theirs.
    g.tenant.mailboxes.phone_update_contact(phone, vip["id"], {"categories": ["VIP", "Family"]})
    g.log.clear()
    reconcile_profile(rt, "Small")
    assert writes(g) == Counter({"updated": 1})
    assert g.tenant.mailboxes.get_contact(phone, vip["id"])["categories"] == ["VIP", "Family", "Company"]

    # Taking the category out of the profile takes it off every contact, and only it.
    g.log.clear()
    sync(make_runtime(g, PLAIN))
    assert writes(g) == Counter({"updated": USERS * PHONES})
    assert g.tenant.mailboxes.get_contact(phone, vip["id"])["categories"] == ["VIP", "Family"]
    assert all(c["categories"] == [] for c in managed(g, users[1]))
