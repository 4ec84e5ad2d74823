"""Engine bugs the chaos suite found, each replayed as a short, fixed history distilled from hypothesis's shrunk one.

Every test names the invariant that broke. They run the real engine against the emulator exactly like the
state machine does (tests/chaos/world.py), without randomness, so each one stays a precise regression test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import contact_tag_properties
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from tests.crash_injection import Crash, CrashingGraph, CrashingStore

from . import oracle, world
from .world import GROUP_ID

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
Workers = Callable[[], Runtime]


@pytest.fixture
def workers(graph_empty: GraphEmulator, tmp_path: Path) -> Iterator[Workers]:
    """Workers sharing one state file, closed at the end (a crashed one is simply never used again)."""
    made: list[Runtime] = []

    def make() -> Runtime:
        made.append(world.runtime(graph_empty, tmp_path / "state.db"))
        return made[-1]
    yield make
    for rt in made:
        rt.close()


def filled(g: GraphEmulator, workers: Workers, staff: int, phones: int) -> tuple[Runtime, list[str]]:
    people = world.small_tenant(g, staff, phones)
    rt = workers()
    assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    oracle.check_converged(g, GROUP_ID)
    return rt, people


def contact_of(g: GraphEmulator, mailbox: str, user: str) -> dict[str, object]:
    [contact] = oracle.managed_contacts(g, mailbox)[oracle.source_key(user)]
    return dict(contact)


def posts_to(g: GraphEmulator, mailbox: str) -> int:
    return sum(1 for e in g.log.entries(method="POST", route=CONTACTS) if e.path.startswith(f"/users/{mailbox}/"))


def test_a_phone_edit_of_a_field_that_an_update_does_not_resend_is_repaired(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I3. A phone changed a contact's first name; then the person's surname changed in the directory. The
    push sent only the surname and recorded the new changeKey, so the nightly reconcile took the contact for
    intact and the phone's first name stayed forever."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=1)
    phone, colleague = people[0], people[1]
    g.tenant.mailboxes.phone_update_contact(phone, str(contact_of(g, phone, colleague)["id"]), {"givenName": "Zed"})
    g.tenant.directory.update_user(colleague, displayName="Bo Novak", surname="Novak")
    assert world.sync(rt) == "ok"
    g.log.clear()
    assert world.reconcile(rt) == "ok"
    assert g.log.count(method="PATCH", via_batch=True) == 1  # the repair, and nothing else
    oracle.check_converged(g, GROUP_ID)


def test_a_target_deleted_while_a_create_to_it_was_in_doubt_does_not_block_the_profile(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I3/I5. A create to a target timed out (504: maybe applied), then the target's user was deleted. Every
    later sync looked for the in-doubt contact in a mailbox that no longer exists, got 404, and failed, so no
    change reached any phone again."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=2)
    phone = people[1]
    g.tenant.mailboxes.phone_delete_contact(phone, str(contact_of(g, phone, people[0])["id"]))
    g.faults.fail_next(1, 504, route=f"POST {CONTACTS}")
    assert world.reconcile(rt) == "partial"  # the recreate is in doubt
    g.tenant.directory.delete_user(phone)
    g.tenant.directory.update_user(people[2], mobilePhone="+33 6 55 55 55 55")
    assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    oracle.check_converged(g, GROUP_ID)


def test_a_deleted_target_does_not_stop_the_reconcile_of_the_other_targets(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I3. A target's user was deleted before a sync noticed; the reconcile raised 404 on that mailbox and
    reconciled none of the others."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=2)
    gone, phone = people[0], people[1]
    g.tenant.directory.delete_user(gone)
    g.tenant.mailboxes.phone_delete_contact(phone, str(contact_of(g, phone, people[2])["id"]))
    report = reconcile_profile(rt, oracle.PROFILE)
    assert len(report.errors) == 1 and gone in report.errors[0]
    assert report.exec.counts["created"] == 1  # the other phone got its contact back
    contact_of(g, phone, people[2])


def test_a_rerun_after_a_crash_in_a_removal_writes_nothing_to_the_removed_mailbox(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I3/I5. A target's user was deleted and the worker died during that sync's pushes. The rerun replayed
    the unfinished work to every stored target, the removed one included: its creates came back 404 and the
    sync reported a failure (a mailbox that still exists would have been written to while being emptied)."""
    g = graph_empty
    rt, people = filled(g, workers, staff=4, phones=2)
    g.tenant.directory.delete_user(people[1])
    crashing = workers()
    CrashingGraph(crashing.client, 1)
    with pytest.raises(Crash):
        world.sync(crashing)
    world.hire(g, 4)
    g.log.clear()
    assert world.sync(rt) == "ok"
    assert posts_to(g, people[1]) == 0
    assert world.reconcile(rt) == "ok"
    oracle.check_converged(g, GROUP_ID)


def test_a_mailbox_that_rejoins_before_its_removal_finished_keeps_its_contacts(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I3. A phone left the target group and the worker died while removing its contacts; the phone rejoined.
    The rerun finished the stale removal anyway: the phone lost every contact and was never filled again."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=2)
    g.tenant.directory.remove_member(GROUP_ID, people[1])
    crashing = workers()
    CrashingGraph(crashing.client, 1)
    with pytest.raises(Crash):
        world.sync(crashing)
    g.tenant.directory.add_member(GROUP_ID, people[1])
    assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    oracle.check_converged(g, GROUP_ID)


def test_a_crash_right_after_the_membership_watch_was_saved_still_fills_the_new_target(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I3. A phone joined the target group; the worker died right after saving the group watch's delta link
    and before saving the new target. The rerun saw no membership change, did not know the target, and
    dropped the fill the unfinished run had left for it: the phone never got a contact."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=1)
    g.tenant.directory.add_member(GROUP_ID, people[2])
    crashing = workers()
    crashing.store = CrashingStore(crashing.store, 2, counting={"set_delta_link"})  # type: ignore[assignment]
    with contextlib.suppress(Crash):
        world.sync(crashing)
    assert crashing.store.dead  # type: ignore[attr-defined]
    assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    oracle.check_converged(g, GROUP_ID)


def test_a_repair_that_failed_is_tried_again_the_next_night(graph_empty: GraphEmulator, workers: Workers) -> None:
    """I3/I5. A phone edited a managed contact; the nightly repair timed out (504 on the PATCH). The reconcile
    still moved its folder delta link on, so the next night did not see the edit again and took the contact
    for intact: the phone's edit stayed forever."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=1)
    phone = people[0]
    g.tenant.mailboxes.phone_update_contact(phone, str(contact_of(g, phone, people[1])["id"]),
                                            {"mobilePhone": "+33 7 00 00 00 00"})
    g.faults.fail_next(1, 504, route=f"PATCH {CONTACTS}/{{contact}}")
    assert world.reconcile(rt) == "partial"
    g.log.clear()
    assert world.reconcile(rt) == "ok"
    assert g.log.count(method="PATCH", via_batch=True) == 1
    oracle.check_converged(g, GROUP_ID)


def _foreign_contacts(g: GraphEmulator, mailbox: str) -> list[str]:
    """An untagged contact and one tagged by another profile, in the managed folder: never galsync's to delete."""
    folder = oracle.managed_folder(g, mailbox)
    made = [g.tenant.mailboxes.phone_create_contact(mailbox, fields, folder_id=folder) for fields in (
        {"displayName": "Phone friend", "mobilePhone": "+33 6 98 76 54 32"},
        {"displayName": "Other profile", "singleValueExtendedProperties":
            contact_tag_properties("Dispatch", oracle.source_key(mailbox))})]
    return [str(c["id"]) for c in made]


def _held(g: GraphEmulator, mailbox: str) -> list[str]:
    """The ids of the contacts in the mailbox's managed folder, sorted."""
    return sorted(str(c["id"]) for c in g.tenant.mailboxes.contacts(mailbox, oracle.managed_folder(g, mailbox)))


def test_a_target_that_refused_its_look_up_after_a_wipe_is_emptied_when_it_leaves(
    graph_empty: GraphEmulator, workers: Workers, tmp_path: Path
) -> None:
    """I3. The state store was wiped while a target was outside galsync's Exchange scope (403): the sync after
    the wipe failed on it and did not store it. It then left the targets: a sync and a reconcile said ok, and
    it still held every contact galsync had written there."""
    g = graph_empty
    _, people = filled(g, workers, staff=3, phones=2)
    phone = people[1]
    foreign = _foreign_contacts(g, phone)
    scope = g.tenant.apps[g.client_id]
    scope.mailbox_scope = set(people) - {phone}
    rt = world.runtime(g, tmp_path / "wiped.db")
    try:
        assert world.sync(rt) == "partial"
        g.tenant.directory.remove_member(GROUP_ID, phone)
        scope.mailbox_scope = None
        assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    finally:
        rt.close()
    oracle.check_converged(g, GROUP_ID)
    assert _held(g, phone) == sorted(foreign)


def test_a_stored_target_with_no_records_is_emptied_when_it_leaves(
    graph_empty: GraphEmulator, workers: Workers, tmp_path: Path
) -> None:
    """I3. After a wipe, a target's folder refused the first push (403): the target was stored with no records.
    It then left the targets, and its removal deleted what its (missing) records named: nothing."""
    g = graph_empty
    _, people = filled(g, workers, staff=3, phones=2)
    phone = people[1]
    foreign = _foreign_contacts(g, phone)
    rt = world.runtime(g, tmp_path / "wiped.db")
    try:
        g.faults.fail_next(5, 403, route="GET /users/{user}/contactFolders", mailbox=phone)
        assert world.sync(rt) == "partial"
        g.faults.clear()
        g.tenant.directory.remove_member(GROUP_ID, phone)
        assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    finally:
        rt.close()
    oracle.check_converged(g, GROUP_ID)
    assert _held(g, phone) == sorted(foreign)


def test_a_new_target_the_early_fill_wrote_to_before_a_crash_is_emptied_when_it_leaves(
    graph_empty: GraphEmulator, workers: Workers
) -> None:
    """I1/I3. A phone joined the targets and a colleague was hired; while the directory was still read, the
    early fill wrote the newcomer's contact into the phone's new folder, and the worker died before the run
    stored the target. The phone then left: no run knew it had been a target, and the contact stayed."""
    g = graph_empty
    rt, people = filled(g, workers, staff=3, phones=1)
    phone = people[1]
    g.tenant.directory.add_member(GROUP_ID, phone)
    world.hire(g, 3, "member", "+33 6 00 00 00 03")
    crashing = workers()
    # The early fill's in-flight record, its create, then the record naming the contact: the worker dies there.
    crashing.store = CrashingStore(crashing.store, 2, counting={"put_target_records"})  # type: ignore[assignment]
    with contextlib.suppress(Crash):
        world.sync(crashing)
    assert crashing.store.dead  # type: ignore[attr-defined]
    assert posts_to(g, phone) == 1  # the early fill's create reached the phone before the worker died
    g.tenant.directory.remove_member(GROUP_ID, phone)
    assert (world.sync(rt), world.reconcile(rt)) == ("ok", "ok")
    oracle.check_converged(g, GROUP_ID)
    assert _held(g, phone) == []
