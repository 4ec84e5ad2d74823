"""Adopt before writing: a sync with a lost or new state store, against folders galsync already filled.

What an admin does: runs the command line in another folder, moves from a SQLite trial to the function app
on Table Storage, recreates the storage account. The phones still hold what galsync wrote; the next sync
must find it (by galsync's hidden tag), not write every contact a second time. Counted from the emulator's
request log and its mailboxes; nothing is mocked.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import contact_tag_properties, read_contact_tag
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, SyncReport, sync_profile
from tests.azurite import Azurite

from .conftest import SMALL_CONFIG, MakeRuntime

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"
# Photos off: an adopted contact's photo is unknown and would be written again (see adoption.py).
CONFIG = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
OTHER_PROFILE = "Workshop"  # a profile of another galsync configuration sharing these mailboxes
USERS = 6
PHONES = 3


@pytest.fixture
def tenant() -> Iterator[tuple[GraphEmulator, list[str]]]:
    """Six users, the first three in "Phones" (the targets); pages of two users, so the early fill runs."""
    with GraphEmulator.start(scenario=None) as g:
        g.tenant.directory.delta_page_size = 2
        users = [g.tenant.directory.add_user(displayName=f"Driver {i}", givenName="Driver", surname=str(i),
                                             mailNickname=f"d{i}", mobilePhone=f"+44 7700 90000{i}")["id"]
                 for i in range(USERS)]
        g.tenant.directory.add_group("Phones", members=users[:PHONES])
        yield g, users


def sync(rt: Runtime) -> SyncReport:
    return sync_profile(rt, "Small", InlineFanOut(rt))


def folder_of(g: GraphEmulator, mailbox: str) -> str:
    folder = g.tenant.mailboxes.find_folder(mailbox, "Directory")
    assert folder is not None
    return str(folder["id"])


def tags(g: GraphEmulator, mailbox: str) -> Counter[str]:
    """Source keys of the contacts in the managed folder that carry this profile's tag."""
    found = (read_contact_tag(c) for c in g.tenant.mailboxes.contacts(mailbox, folder_of(g, mailbox)))
    return Counter(t.source_key for t in found if t is not None and t.profile == "Small")


def ours(users: list[str]) -> Counter[str]:
    """One managed contact per user: the folder as it should be."""
    return Counter(f"user:{u}" for u in users)


def contact_of(g: GraphEmulator, mailbox: str, key: str) -> dict[str, Any]:
    [found] = [c for c in g.tenant.mailboxes.contacts(mailbox, folder_of(g, mailbox))
               if (t := read_contact_tag(c)) is not None and t.profile == "Small" and t.source_key == key]
    return found


def writes(g: GraphEmulator) -> Counter[str]:
    return Counter({"created": g.log.count(method="POST", route=CONTACTS),
                    "updated": g.log.count(method="PATCH", route=CONTACT),
                    "deleted": g.log.count(method="DELETE", route=CONTACT)})


def foreign_contacts(g: GraphEmulator, mailbox: str) -> dict[str, dict[str, Any]]:
    """A contact saved on the phone, one with another profile's tag and a same-name copy of a managed one."""
    folder = folder_of(g, mailbox)
    managed = g.tenant.mailboxes.contacts(mailbox, folder)[0]
    saved = [
        g.tenant.mailboxes.phone_create_contact(mailbox, {"displayName": "Maman"}, folder_id=folder),
        g.tenant.mailboxes.phone_create_contact(mailbox, {"displayName": managed["displayName"],
                                                          "mobilePhone": "+44 7700 900999"}, folder_id=folder),
        g.tenant.mailboxes.create_contact(mailbox, {
            "displayName": managed["displayName"],
            "singleValueExtendedProperties": contact_tag_properties(OTHER_PROFILE, read_contact_tag(
                managed).source_key)}, folder_id=folder),  # type: ignore[union-attr]
    ]
    return {c["id"]: c for c in saved}


def assert_untouched(g: GraphEmulator, mailbox: str, saved: dict[str, dict[str, Any]]) -> None:
    """The foreign contacts are there, unchanged, and they are the only contacts without this profile's tag."""
    now = g.tenant.mailboxes.contacts(mailbox, folder_of(g, mailbox))
    others = {c["id"]: c["changeKey"] for c in now
              if (t := read_contact_tag(c)) is None or t.profile != "Small"}
    assert others == {i: c["changeKey"] for i, c in saved.items()}


def test_a_sync_with_an_empty_state_adopts_every_contact_and_writes_nothing(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    g, users = tenant
    first = make_runtime(g, CONFIG, state=f"sqlite:{tmp_path / 'first.db'}")
    assert sync(first).exec.counts["created"] == PHONES * USERS
    saved = {m: foreign_contacts(g, m) for m in users[:PHONES]}
    g.log.clear()

    rt = make_runtime(g, CONFIG, state=f"sqlite:{tmp_path / 'another-folder.db'}")
    report = sync(rt)
    assert report.outcome == "ok"
    assert writes(g) == Counter()  # not one contact created, updated or deleted
    assert g.log.count(method="GET", route=CONTACTS) == PHONES  # one listing of each managed folder
    assert g.log.count(method="POST", route="/users/{user}/contactFolders") == 0  # each folder found by its tag
    assert report.exec.counts["matched"] == PHONES * USERS and report.exec.writes == 0
    for mailbox in users[:PHONES]:
        assert tags(g, mailbox) == ours(users)
        assert_untouched(g, mailbox, saved[mailbox])
        records = rt.store.get_target_records("Small", mailbox)
        assert {k: r.contact_id for k, r in records.items()} == {
            f"user:{u}": contact_of(g, mailbox, f"user:{u}")["id"] for u in users}

    g.log.clear()
    again = sync(rt)  # adopted contacts are recorded: the next run is a quiet one
    assert again.changed == 0 and writes(g) == Counter() and g.log.count(route=CONTACTS) == 0


def test_adoption_updates_what_changed_deletes_duplicates_and_leavers_and_creates_what_is_missing(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    g, users = tenant
    first = make_runtime(g, CONFIG, state=f"sqlite:{tmp_path / 'first.db'}")
    sync(first)
    north = users[0]
    saved = foreign_contacts(g, north)
    # While the state was lost: a user's number changed, a phone deleted a contact, a crash left a second
    # contact for a source, a user left the company, and a phone edited a field galsync does not own.
    g.tenant.directory.update_user(users[1], mobilePhone="+44 7700 900111")
    g.tenant.mailboxes.phone_delete_contact(north, contact_of(g, north, f"user:{users[2]}")["id"])
    original = contact_of(g, north, f"user:{users[3]}")
    g.tenant.mailboxes.create_contact(north, {"displayName": original["displayName"],
                                              "singleValueExtendedProperties": contact_tag_properties(
                                                  "Small", f"user:{users[3]}")}, folder_id=folder_of(g, north))
    g.tenant.directory.delete_user(users[5])
    noted = contact_of(g, north, f"user:{users[4]}")
    g.tenant.mailboxes.phone_update_contact(north, noted["id"], {"personalNotes": "gate 2"})
    g.log.clear()

    rt = make_runtime(g, CONFIG, state=f"sqlite:{tmp_path / 'lost.db'}")
    report = sync(rt)
    assert report.outcome == "ok"
    # north: one update, one recreate, the duplicate and the leaver deleted; the others: the update, the leaver
    assert writes(g) == Counter({"updated": PHONES, "created": 1, "deleted": 1 + PHONES})
    assert report.exec.counts["created"] == 1 and report.exec.counts["updated"] == PHONES
    assert g.log.count(method="GET", route=CONTACTS) == PHONES
    assert contact_of(g, north, f"user:{users[1]}")["mobilePhone"] == "+44 7700 900111"
    assert contact_of(g, north, f"user:{users[3]}")["id"] == original["id"]  # the older one stays
    assert contact_of(g, north, f"user:{users[4]}")["personalNotes"] == "gate 2"  # no galsync field: no write
    for mailbox in users[:PHONES]:
        assert tags(g, mailbox) == ours(users[:5])
    assert_untouched(g, north, saved)

    g.log.clear()
    sync(rt)
    assert writes(g) == Counter() and g.log.count(route=CONTACTS) == 0


def test_a_first_fill_without_the_early_fill_reads_no_folder_it_created(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    """Two sources: no early fill, so the fan-out's fill pushes write to folders this run made: known empty."""
    rt = make_runtime(graph)
    report = sync_profile(rt, "Company directory", InlineFanOut(rt))
    assert report.new_targets == 120 and report.exec.counts["created"] > 0
    assert graph.log.count(method="GET", route=CONTACTS) == 0 and report.exec.counts["matched"] == 0


@pytest.mark.azurite
def test_moving_from_sqlite_to_table_storage_adopts_what_the_trial_wrote(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, tmp_path: Path, azurite: Azurite
) -> None:
    g, users = tenant
    trial = make_runtime(g, CONFIG, state=f"sqlite:{tmp_path / 'trial.db'}")
    sync(trial)
    g.log.clear()
    rt = make_runtime(g, CONFIG, state="table:", GALSYNC_STORAGE_CONNECTION_STRING=azurite.connection_string,
                      GALSYNC_TABLE_PREFIX="g" + uuid.uuid4().hex[:10])
    report = sync(rt)
    assert report.outcome == "ok" and writes(g) == Counter()
    assert g.log.count(method="GET", route=CONTACTS) == PHONES
    assert report.exec.counts["matched"] == PHONES * USERS
    for mailbox in users[:PHONES]:
        assert tags(g, mailbox) == ours(users)
        assert len(rt.store.get_target_records("Small", mailbox)) == USERS


def test_a_create_in_doubt_is_recovered_without_touching_another_profiles_or_a_same_name_contact(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """I1 on the recovery listing (the one adoption shares): a create whose answer was lost is looked for by
    its tag, and only this profile's tag counts. Another profile's contact for the same person, and a contact
    a phone saved under the same name, are never adopted, updated or deleted."""
    g, users = tenant
    rt = make_runtime(g, CONFIG, state=f"sqlite:{tmp_path / 'state.db'}")
    sync(rt)
    reconcile_profile(rt, "Small")  # the first night reads each folder in full
    north, colleague = users[0], users[1]
    key = f"user:{colleague}"
    original = contact_of(g, north, key)
    g.tenant.mailboxes.phone_delete_contact(north, original["id"])
    folder = folder_of(g, north)
    saved = {c["id"]: c for c in (
        g.tenant.mailboxes.create_contact(north, {"displayName": original["displayName"],
                                                  "singleValueExtendedProperties": contact_tag_properties(
                                                      OTHER_PROFILE, key)}, folder_id=folder),
        g.tenant.mailboxes.phone_create_contact(north, {"displayName": original["displayName"]}, folder_id=folder),
    )}
    g.faults.fail_next(1, 504, route=f"POST {CONTACTS}", mailbox=north)
    night = reconcile_profile(rt, "Small")
    assert night.exec.counts["failed"] == 1  # the recreate is in doubt: its in-flight record stays
    [in_flight] = [r for r in rt.store.get_target_records("Small", north).values() if r.contact_id is None]
    assert in_flight.source_key == key

    g.tenant.directory.update_user(colleague, mobilePhone="+44 7700 900555")
    g.log.clear()
    assert sync(rt).outcome == "ok"
    assert g.log.count(method="GET", route=CONTACTS, mailbox=north) == 1  # the recovery listing
    assert g.log.count(method="POST", route=CONTACTS, mailbox=north) == 1  # none of ours found: created
    assert contact_of(g, north, key)["mobilePhone"] == "+44 7700 900555"
    assert_untouched(g, north, saved)
    assert tags(g, north) == ours(users)
