"""Where the contacts go: the mailbox's default Contacts folder (which every phone app shows) or galsync's own.

What an admin sees: in the default folder galsync's contacts sit beside the phone owner's own ("Maman"), which
galsync never touches and the reconcile counts instead of listing; a shared mailbox still gets its "Maman"
diagnosis; and changing a profile's place moves every contact with exactly one create in the new place and one
delete in the old, in the same run. Counted from the emulator's request log and mailboxes; nothing is mocked.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.move_plan import PlannedMove
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, SyncReport, sync_profile
from sync_core.state import docs
from tests.crash_injection import Crash, CrashingGraph

from .conftest import SMALL_CONFIG, MakeRuntime

OWN_FOLDER = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
DEFAULT_FOLDER = OWN_FOLDER.replace('folder = "Directory"', 'place = "default_folder"')
KEEP = "\n[profile.policy]\nremoved_target = \"keep\"\n"
IN_DEFAULT = "/users/{user}/contacts"
IN_DEFAULT_ONE = "/users/{user}/contacts/{contact}"
IN_FOLDER = "/users/{user}/contactFolders/{folder}/contacts"
IN_FOLDER_ONE = "/users/{user}/contactFolders/{folder}/contacts/{contact}"
USERS = 5
PHONES = 3


@pytest.fixture
def tenant() -> Iterator[tuple[GraphEmulator, list[str]]]:
    """Five users, the first three in "Phones"; each phone's owner has saved "Maman" in the default folder."""
    with GraphEmulator.start(scenario=None) as g:
        users = [g.tenant.directory.add_user(displayName=f"Driver {i}", givenName="Driver", surname=str(i),
                                             mailNickname=f"d{i}", mobilePhone=f"+44 7700 90000{i}")["id"]
                 for i in range(USERS)]
        g.tenant.directory.add_group("Phones", members=users[:PHONES])
        for mailbox in users[:PHONES]:
            g.tenant.mailboxes.phone_create_contact(mailbox, {"displayName": "Maman", "mobilePhone": "+33 6 1"})
        yield g, users


def sync(rt: Runtime) -> SyncReport:
    return sync_profile(rt, "Small", InlineFanOut(rt))


def ours(contacts: list[dict[str, Any]]) -> Counter[str]:
    return Counter(t.source_key for c in contacts if (t := read_contact_tag(c)) is not None and t.profile == "Small")


def in_default(g: GraphEmulator, mailbox: str) -> list[dict[str, Any]]:
    return g.tenant.mailboxes.contacts(mailbox)


def in_own_folder(g: GraphEmulator, mailbox: str) -> list[dict[str, Any]]:
    folder = g.tenant.mailboxes.find_folder(mailbox, "Directory")
    return g.tenant.mailboxes.contacts(mailbox, folder["id"]) if folder is not None else []


def maman(g: GraphEmulator, mailbox: str) -> dict[str, Any]:
    [found] = [c for c in in_default(g, mailbox) if c["displayName"] == "Maman"]
    return found


def writes(g: GraphEmulator) -> Counter[str]:
    """Every contact write, by place."""
    counts = Counter({
        "created in default": g.log.count(method="POST", route=IN_DEFAULT),
        "created in folder": g.log.count(method="POST", route=IN_FOLDER),
        "deleted in default": g.log.count(method="DELETE", route=IN_DEFAULT_ONE),
        "deleted in folder": g.log.count(method="DELETE", route=IN_FOLDER_ONE),
        "updated": g.log.count(method="PATCH", route=IN_DEFAULT_ONE) + g.log.count(method="PATCH", route=IN_FOLDER_ONE),
        "folders created": g.log.count(method="POST", route="/users/{user}/contactFolders"),
    })
    return +counts


def test_the_default_folder_holds_galsyncs_contacts_beside_the_owners_which_are_counted_never_touched(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    rt = make_runtime(g, DEFAULT_FOLDER)
    before = {m: maman(g, m)["changeKey"] for m in users[:PHONES]}
    assert sync(rt).outcome == "ok"
    assert writes(g) == Counter({"created in default": PHONES * USERS})  # no folder made
    for mailbox in users[:PHONES]:
        assert ours(in_default(g, mailbox)) == Counter(f"user:{u}" for u in users)
        assert maman(g, mailbox)["changeKey"] == before[mailbox]

    g.log.clear()
    report = reconcile_profile(rt, "Small")
    assert report.errors == [] and report.exec.writes == 0 and writes(g) == Counter()
    assert report.owner_contacts == dict.fromkeys(users[:PHONES], 1)
    assert report.foreign == dict.fromkeys(users[:PHONES], [])  # a number, not a list of the owner's contacts
    assert docs.read(rt.store, docs.Foreign, docs.foreign_key("Small", users[0])).owner_contacts == 1  # type: ignore[union-attr]

    # A phone edits one of galsync's contacts and its owner saves another contact: galsync's field is put back,
    # the owner's contacts stay as they are.
    mailbox = users[0]
    edited = next(c for c in in_default(g, mailbox) if read_contact_tag(c) is not None)
    g.tenant.mailboxes.phone_update_contact(mailbox, edited["id"], {"mobilePhone": "+44 0000"})
    g.tenant.mailboxes.phone_create_contact(mailbox, {"displayName": "Garage", "mobilePhone": "+33 6 2"})
    g.log.clear()
    again = reconcile_profile(rt, "Small")
    assert writes(g) == Counter({"updated": 1})
    assert again.owner_contacts[mailbox] == 2 and maman(g, mailbox)["changeKey"] == before[mailbox]


def test_a_shared_mailbox_in_the_default_folder_still_gets_its_maman_diagnosis(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    truck = g.tenant.directory.add_user(displayName="Trucks", mailNickname="trucks", shared_mailbox=True)["id"]
    config = DEFAULT_FOLDER.replace('groups = ["Phones"]', f'mailboxes = ["{truck}"]')
    rt = make_runtime(g, config)
    sync(rt)
    g.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Maman", "mobilePhone": "+33 6 3"})
    report = reconcile_profile(rt, "Small")
    assert [(c["displayName"], c["folder"]) for c in report.foreign[truck]] == [("Maman", "Contacts")]
    assert truck not in report.owner_contacts  # listed by name: every phone of the mailbox shows it


@pytest.mark.parametrize(("start", "end", "created", "deleted"), [
    (OWN_FOLDER, DEFAULT_FOLDER, "created in default", "deleted in folder"),
    (DEFAULT_FOLDER, OWN_FOLDER, "created in folder", "deleted in default"),
])
def test_changing_the_place_moves_each_contact_with_one_create_and_one_delete_in_one_run(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, start: str, end: str, created: str,
    deleted: str,
) -> None:
    g, users = tenant
    assert sync(make_runtime(g, start)).outcome == "ok"
    g.log.clear()

    rt = make_runtime(g, end)
    report = sync(rt)
    assert report.outcome == "ok"
    expected = Counter({created: PHONES * USERS, deleted: PHONES * USERS})
    if end == OWN_FOLDER:
        expected["folders created"] = PHONES
    assert writes(g) == expected
    new_place, old_place = (in_default, in_own_folder) if end == DEFAULT_FOLDER else (in_own_folder, in_default)
    for mailbox in users[:PHONES]:
        assert ours(new_place(g, mailbox)) == Counter(f"user:{u}" for u in users)
        assert ours(old_place(g, mailbox)) == Counter()
        assert maman(g, mailbox)["displayName"] == "Maman"
    assert docs.read_all(rt.store, docs.Move) == []

    g.log.clear()
    assert sync(rt).exec.writes == 0
    assert reconcile_profile(rt, "Small").exec.writes == 0
    assert writes(g) == Counter()


def test_a_move_whose_deletes_failed_is_finished_by_the_nightly_reconcile(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    sync(make_runtime(g, OWN_FOLDER))
    rt = make_runtime(g, DEFAULT_FOLDER)
    g.faults.fail_next(PHONES * USERS, 403, route=f"DELETE {IN_FOLDER_ONE}")  # refused, not retried
    report = sync(rt)
    assert report.exec.counts["failed"] > 0
    for mailbox in users[:PHONES]:  # never neither: the copies are there, the originals stay until deleted
        assert ours(in_default(g, mailbox)) == Counter(f"user:{u}" for u in users)
    assert len(docs.read_all(rt.store, docs.Move)) == PHONES
    g.faults.clear()

    g.log.clear()
    night = reconcile_profile(rt, "Small")
    assert writes(g) == Counter({"deleted in folder": PHONES * USERS})
    assert night.errors == [] and docs.read_all(rt.store, docs.Move) == []
    for mailbox in users[:PHONES]:
        assert ours(in_own_folder(g, mailbox)) == Counter()


def half_moved(g: GraphEmulator, make_runtime: MakeRuntime, mailbox: str, end_config: str = DEFAULT_FOLDER
               ) -> Runtime:
    """The profile moved from its own folder to the default one, but `mailbox` refused the old copies' deletes:
    its contacts are in both places, its move not finished."""
    sync(make_runtime(g, OWN_FOLDER))
    rt = make_runtime(g, end_config)
    g.faults.fail_next(USERS, 403, route=f"DELETE {IN_FOLDER_ONE}", mailbox=mailbox)
    sync(rt)
    g.faults.clear()
    assert ours(in_default(g, mailbox)) == ours(in_own_folder(g, mailbox)) == Counter(f"user:{u}" for u in users_of(g))
    assert [k for k, _ in docs.read_all(rt.store, docs.Move)] == [docs.move_key("Small", mailbox)]
    return rt


def users_of(g: GraphEmulator) -> list[str]:
    return [u["id"] for u in g.tenant.directory.users()]


def busy(dry: SyncReport) -> dict[str, dict[str, int]]:
    """A dry run's planned writes of the mailboxes that have any."""
    return {m: c for m, c in dry.planned_by_mailbox.items() if c}


def leave_phones(g: GraphEmulator, mailbox: str) -> None:
    [group] = [r.id for r in g.tenant.directory.group_records() if r.props.get("displayName") == "Phones"]
    g.tenant.directory.remove_member(group, mailbox)


def test_a_target_that_leaves_in_the_middle_of_a_move_is_emptied_in_both_places(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    leaver = users[0]
    rt = half_moved(g, make_runtime, leaver)
    leave_phones(g, leaver)
    g.log.clear()

    dry = sync_profile(rt, "Small", InlineFanOut(rt), dry_run=True)
    assert busy(dry) == {leaver: {"Delete": USERS, "DeleteMoved": USERS}} and writes(g) == Counter()
    assert sync(rt).outcome == "ok"
    assert writes(g) == Counter({"deleted in default": USERS, "deleted in folder": USERS})  # one per copy
    assert ours(in_default(g, leaver)) == ours(in_own_folder(g, leaver)) == Counter()
    assert maman(g, leaver)["displayName"] == "Maman"
    assert docs.read_all(rt.store, docs.Move) == []
    for mailbox in users[1:PHONES]:  # the others stay as they are
        assert ours(in_default(g, mailbox)) == Counter(f"user:{u}" for u in users)

    g.log.clear()
    assert sync(rt).exec.writes == 0 and reconcile_profile(rt, "Small").exec.writes == 0
    assert writes(g) == Counter()


def test_under_keep_a_target_that_leaves_in_the_middle_of_a_move_keeps_one_copy_of_each_contact(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    leaver = users[0]
    rt = half_moved(g, make_runtime, leaver, DEFAULT_FOLDER + KEEP)
    leave_phones(g, leaver)
    g.log.clear()

    dry = sync_profile(rt, "Small", InlineFanOut(rt), dry_run=True)
    assert busy(dry) == {leaver: {"DeleteMoved": USERS}} and writes(g) == Counter()
    assert sync(rt).outcome == "ok"
    assert writes(g) == Counter({"deleted in folder": USERS})  # the old copies, whose new copy stays
    assert ours(in_default(g, leaver)) == Counter(f"user:{u}" for u in users)
    assert ours(in_own_folder(g, leaver)) == Counter()
    assert docs.read_all(rt.store, docs.Move) == []


@pytest.mark.parametrize("crash_at", [1, USERS - 1, USERS, USERS + 1, 2 * USERS - 1])
def test_a_crash_while_a_half_moved_target_is_emptied_is_finished_by_the_next_sync(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, crash_at: int
) -> None:
    g, users = tenant
    leaver = users[0]
    half_moved(g, make_runtime, leaver)
    leave_phones(g, leaver)
    g.log.clear()

    dying = make_runtime(g, DEFAULT_FOLDER)
    CrashingGraph(dying.client, crash_at, methods={"DELETE"})  # dies right after its crash_at-th delete
    with contextlib.suppress(Crash):
        sync(dying)
    assert sum(writes(g).values()) == crash_at

    rt = make_runtime(g, DEFAULT_FOLDER)  # a restarted worker
    assert sync(rt).outcome == "ok"
    deleted = Counter({
        "in default": g.log.count(method="DELETE", route=IN_DEFAULT_ONE, status=204),
        "in folder": g.log.count(method="DELETE", route=IN_FOLDER_ONE, status=204)})
    assert deleted == Counter({"in default": USERS, "in folder": USERS})  # each copy deleted exactly once
    assert set(writes(g)) == {"deleted in default", "deleted in folder"}  # nothing else written
    assert ours(in_default(g, leaver)) == ours(in_own_folder(g, leaver)) == Counter()
    assert maman(g, leaver)["displayName"] == "Maman"
    assert docs.read_all(rt.store, docs.Move) == []

    g.log.clear()
    assert sync(rt).exec.writes == 0
    assert writes(g) == Counter()


@pytest.mark.parametrize(("start", "end", "created", "deleted"), [
    (OWN_FOLDER, DEFAULT_FOLDER, "created in default", "deleted in folder"),
    (DEFAULT_FOLDER, OWN_FOLDER, "created in folder", "deleted in default"),
])
def test_a_dry_run_shows_each_pending_move_with_the_writes_the_sync_then_makes(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime, start: str, end: str, created: str,
    deleted: str,
) -> None:
    g, users = tenant
    sync(make_runtime(g, start))
    rt = make_runtime(g, end)
    g.log.clear()

    dry = sync_profile(rt, "Small", InlineFanOut(rt), dry_run=True)
    assert writes(g) == Counter()  # a dry run only reads
    # ... each moving mailbox's two places once each (the new own folder does not exist yet: nothing to list)
    listings = Counter({"default": g.log.count(method="GET", route=IN_DEFAULT),
                        "folder": g.log.count(method="GET", route=IN_FOLDER)})
    assert listings == Counter({"default": PHONES, "folder": PHONES if end == DEFAULT_FOLDER else 0})
    new_place, old_place = ("default_folder", "own_folder") if end == DEFAULT_FOLDER else ("own_folder",
                                                                                           "default_folder")
    assert dry.planned_moves == {m: PlannedMove(old_place, new_place, USERS, USERS, 0,
                                                folder_created=end == OWN_FOLDER) for m in users[:PHONES]}
    assert dry.planned == {"Create": PHONES * USERS, "DeleteMoved": PHONES * USERS}
    assert dry.planned_by_mailbox == dict.fromkeys(users[:PHONES], {"Create": USERS, "DeleteMoved": USERS})

    assert sync(rt).outcome == "ok"
    expected = Counter({created: PHONES * USERS, deleted: PHONES * USERS})
    if end == OWN_FOLDER:
        expected["folders created"] = PHONES
    assert writes(g) == expected  # as the dry run said
    assert sync_profile(rt, "Small", InlineFanOut(rt), dry_run=True).planned_moves == {}


def test_a_dry_run_shows_the_rest_of_an_interrupted_move(
    tenant: tuple[GraphEmulator, list[str]], make_runtime: MakeRuntime
) -> None:
    g, users = tenant
    rt = half_moved(g, make_runtime, users[0])
    g.log.clear()

    dry = sync_profile(rt, "Small", InlineFanOut(rt), dry_run=True)
    assert writes(g) == Counter()
    assert dry.planned_moves == {users[0]: PlannedMove("own_folder", "default_folder", 0, USERS, 0)}
    assert dry.planned == {"DeleteMoved": USERS}

    assert sync(rt).outcome == "ok"  # the mailbox that refused is written again, and its move finished
    assert writes(g) == Counter({"deleted in folder": USERS})
    assert docs.read_all(rt.store, docs.Move) == []
