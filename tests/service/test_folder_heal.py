"""Heal what was deleted: a user deletes galsync's managed folder on a phone or in Outlook.

The next push that writes there (its writes answer 404) or the next reconcile (the folder's delta answers
404) forgets the folder and that mailbox's records, makes the folder again and fills it, in the same run.
Counted from the emulator's request log.
"""

from __future__ import annotations

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime

from .conftest import MakeRuntime
from .test_failing_targets import CONFIG, CONTACT, CONTACTS, DELTA, FOLDERS, run, small_tenant, writes

FOLDER = "/users/{user}/contactFolders/{folder}"


def filled(g: GraphEmulator, make_runtime: MakeRuntime) -> tuple[Runtime, list[str], str]:
    """Three targets filled and reconciled once (so each folder has a delta link); the second one's folder
    is then deleted, as its owner would delete it. Returns the runtime, the users and the deleted folder."""
    users = small_tenant(g)
    rt = make_runtime(g, CONFIG)
    assert run(rt).exec.counts["created"] == 3 * 6
    reconcile_profile(rt, "Small")
    folder = rt.store.get_targets("Small")[users[1]].folder_id
    assert folder
    g.tenant.mailboxes.delete_folder(users[1], folder)
    g.log.clear()
    return rt, users, folder


def phones(g: GraphEmulator, rt: Runtime, mailbox: str) -> dict[str, str]:
    """Source key -> mobile phone of every contact in the mailbox's managed folder."""
    folder = rt.store.get_targets("Small")[mailbox].folder_id
    assert folder
    return {read_contact_tag(c).source_key: c["mobilePhone"]  # type: ignore[union-attr]
            for c in g.tenant.mailboxes.contacts(mailbox, folder)}


def test_a_push_into_a_deleted_folder_makes_it_again_and_fills_it_in_the_same_sync(
    make_runtime: MakeRuntime
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        rt, users, old = filled(g, make_runtime)
        healed = users[1]
        g.tenant.directory.update_user(users[4], mobilePhone="+44 7700 900444")
        report = run(rt)
        assert report.outcome == "ok" and report.failing == [] and report.exec.errors == []
        assert report.exec.counts["folders_recreated"] == 1 and report.exec.counts["failed"] == 0
        assert report.exec.counts["updated"] == 2 and report.exec.counts["created"] == 6
        # the update (404), its re-create (404), one look at the folder (404), the folder found missing by
        # its tag and made again, then six creates
        assert g.log.count(method="PATCH", route=CONTACT, mailbox=healed) == 1
        assert g.log.count(method="GET", route=FOLDER, mailbox=healed) == 1
        assert g.log.count(method="GET", route=FOLDERS, mailbox=healed) == 1
        assert g.log.count(method="POST", route=FOLDERS) == 1
        assert g.log.count(method="POST", route=CONTACTS, mailbox=healed) == 1 + 6
        assert writes(g) == 3 + 1 + 6
        new = rt.store.get_targets("Small")[healed].folder_id
        assert new and new != old
        assert phones(g, rt, healed) == phones(g, rt, users[0])
        assert phones(g, rt, healed)[f"user:{users[4]}"] == "+44 7700 900444" and len(phones(g, rt, healed)) == 6

        g.log.clear()
        night = reconcile_profile(rt, "Small")  # the new folder is read in full once; nothing to repair
        assert night.errors == [] and night.exec.writes == 0 and "folder_deleted" not in night.drift
        assert g.log.count(route=DELTA) == 3 and g.log.count(method="POST", route=FOLDERS) == 0
        g.log.clear()
        assert run(rt).outcome == "ok" and writes(g) == 0


def test_a_new_contact_for_a_deleted_folder_heals_it_too(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        rt, users, _ = filled(g, make_runtime)
        newcomer = g.tenant.directory.add_user(displayName="Driver 6", mailNickname="d6",
                                               mobilePhone="+44 7700 900006")["id"]
        report = run(rt)
        assert report.outcome == "ok" and report.exec.counts["folders_recreated"] == 1
        assert report.exec.counts["created"] == 2 + 7 and report.exec.counts["failed"] == 0
        assert g.log.count(method="POST", route=CONTACTS, mailbox=users[1]) == 1 + 7
        assert sorted(phones(g, rt, users[1])) == sorted(f"user:{u}" for u in [*users, newcomer])


def test_reconcile_makes_a_deleted_folder_again_and_fills_it_and_the_next_night_is_quiet(
    make_runtime: MakeRuntime
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        rt, users, old = filled(g, make_runtime)
        healed = users[1]
        dry = reconcile_profile(rt, "Small", dry_run=True)
        assert dry.planned["Create"] == 6 and dry.drift["folder_deleted"] == 1 and writes(g) == 0
        assert rt.store.get_targets("Small")[healed].folder_id == old

        g.log.clear()
        night = reconcile_profile(rt, "Small")
        assert night.errors == [] and night.failing == [] and night.drift["folder_deleted"] == 1
        assert night.exec.counts["created"] == 6 == writes(g) == writes(g, healed)
        assert g.log.count(route=DELTA, mailbox=healed, status=404) == 1
        assert g.log.count(method="POST", route=FOLDERS) == 1
        new = rt.store.get_targets("Small")[healed].folder_id
        assert new and new != old and phones(g, rt, healed) == phones(g, rt, users[0])
        assert next(r for r in rt.store.recent_runs("Small") if r.kind == "reconcile").outcome == "ok"

        g.log.clear()
        again = reconcile_profile(rt, "Small")
        assert again.errors == [] and again.exec.writes == 0 and "folder_deleted" not in again.drift
        assert g.log.count(route=DELTA) == 3 and g.log.count() == 3
        g.log.clear()
        assert run(rt).outcome == "ok" and writes(g) == 0
