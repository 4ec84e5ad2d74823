"""A mailbox fails alone: one target that refuses (out of galsync's Exchange scope, gone, misnamed) costs that
target only. The others are filled, the run ends "partial", the failure names the mailbox by address with
Graph's code and a hint, and the target is tried again on every run until it works.

Counted from the emulator's request log; galsync's Exchange scope (RBAC for Applications) is the emulator's
mailbox scope of galsync's app, changed as an admin changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from graph_emulator import DEFAULT_ROLES, GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.status import status
from sync_core.service.sync import InlineFanOut, SyncReport, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

CONFIG = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"
FOLDERS = "/users/{user}/contactFolders"
DELTA = "/users/{user}/contactFolders/{folder}/contacts/delta"


PHONES = "00000000-0000-4000-9000-000000000001"


def small_tenant(g: GraphEmulator) -> list[str]:
    """Six users; the first three are in "Phones" (id PHONES), the targets of SMALL_CONFIG."""
    users = [g.tenant.directory.add_user(displayName=f"Driver {i}", mailNickname=f"d{i}",
                                         mobilePhone=f"+44 7700 90000{i}")["id"] for i in range(6)]
    g.tenant.directory.add_group("Phones", members=users[:3], id=PHONES)
    return users


def scope(g: GraphEmulator, mailboxes: Iterable[str] | None) -> None:
    """galsync's Exchange scope as the admin sets it (None: every mailbox)."""
    with g.tenant.lock:
        g.tenant.apps[g.client_id].mailbox_scope = None if mailboxes is None else set(mailboxes)


def run(rt: Runtime, profile: str = "Small") -> SyncReport:
    return sync_profile(rt, profile, InlineFanOut(rt))


def keys_in(g: GraphEmulator, rt: Runtime, mailbox: str, profile: str = "Small") -> list[str]:
    folder = rt.store.get_targets(profile)[mailbox].folder_id
    assert folder
    return sorted(read_contact_tag(c).source_key for c in g.tenant.mailboxes.contacts(mailbox, folder))  # type: ignore[union-attr]


def writes(g: GraphEmulator, mailbox: str | None = None) -> int:
    return (g.log.count(method="POST", route=CONTACTS, mailbox=mailbox)
            + g.log.count(method="PATCH", route=CONTACT, mailbox=mailbox)
            + g.log.count(method="DELETE", route=CONTACT, mailbox=mailbox))


def address(g: GraphEmulator, user: str) -> str:
    return str(g.tenant.directory.get_user(user)["mail"])


def failing(rt: Runtime, profile: str = "Small") -> dict[str, Any]:
    """What `galsync status` lists as failing target mailboxes, by mailbox id (or address)."""
    report = status(rt.store, [profile])
    return {f.key: f for f in report.failing_targets}


def test_a_new_target_outside_the_scope_fails_alone_and_is_filled_once_the_scope_applies(
    make_runtime: MakeRuntime
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        inside, outside = users[:2], users[2]
        scope(g, inside)
        rt = make_runtime(g, CONFIG)
        first = run(rt)
        assert first.outcome == "partial"
        assert first.exec.counts["created"] == 2 * 6 == writes(g)  # the two others are filled
        assert g.log.count(mailbox=outside) == 1  # its userPurpose (403), nothing else
        [failure] = first.failing
        assert (failure.key, failure.address, failure.status, failure.code) == \
            (outside, address(g, outside), 403, "ErrorAccessDenied")
        assert "Exchange scope" in failure.hint and "30 minutes to 2 hours" in failure.hint
        assert "MailboxSettings.Read" not in failure.hint  # it is granted: the others answered
        assert outside not in rt.store.get_targets("Small")  # not stored as resolved: tried again next run
        [recorded] = rt.store.recent_runs("Small")
        assert recorded.outcome == "partial" and address(g, outside) in (recorded.error or "")
        since = failing(rt)[outside].since

        g.log.clear()
        second = run(rt)  # still outside: tried again, one request, and still reported
        assert second.outcome == "partial" and g.log.count(mailbox=outside) == 1 and writes(g) == 0
        assert [f.key for f in second.failing] == [outside] and failing(rt)[outside].since == since

        scope(g, None)  # the scope applied
        g.log.clear()
        third = run(rt)
        assert third.outcome == "ok" and third.failing == [] and failing(rt) == {}
        assert third.exec.counts["created"] == 6 == writes(g) == writes(g, outside)
        assert keys_in(g, rt, outside) == sorted(f"user:{u}" for u in users)


def test_when_no_target_answers_the_hint_names_the_permission_as_well(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        app = g.register_app(roles=DEFAULT_ROLES - {"MailboxSettings.Read"})
        rt = make_runtime(g, CONFIG, GALSYNC_CLIENT_ID=app.client_id, GALSYNC_CLIENT_SECRET=app.secret)
        report = run(rt)
        assert report.outcome == "partial" and writes(g) == 0 and rt.store.get_targets("Small") == {}
        assert sorted(f.key for f in report.failing) == sorted(users[:3])
        assert all("grant the application permission MailboxSettings.Read" in f.hint for f in report.failing)
        assert len(rt.store.get_source_records("Small")) == 6  # the directory was read and kept all the same


def test_a_filled_target_that_leaves_the_scope_fails_alone_and_gets_what_it_missed_when_back(
    make_runtime: MakeRuntime
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        rt = make_runtime(g, CONFIG)
        assert run(rt).exec.counts["created"] == 3 * 6
        outside = users[2]
        scope(g, users[:2])
        g.tenant.directory.update_user(users[4], mobilePhone="+44 7700 900444")
        g.log.clear()
        report = run(rt)
        assert report.outcome == "partial" and report.exec.counts["updated"] == 2
        assert g.log.count(method="PATCH", route=CONTACT, mailbox=outside, status=403) == 1
        [failure] = report.failing
        assert (failure.key, failure.address, failure.code, failure.stage) == \
            (outside, address(g, outside), "ErrorAccessDenied", "write")
        assert "Exchange scope" in failure.hint

        g.tenant.directory.update_user(users[5], mobilePhone="+44 7700 900555")
        g.log.clear()
        again = run(rt)  # still outside: one look at its folder, no write tried
        assert again.outcome == "partial" and again.exec.counts["updated"] == 2
        assert g.log.count(mailbox=outside) == 1 and writes(g, outside) == 0

        scope(g, None)
        g.log.clear()
        back = run(rt)  # both changes it missed, and nothing else
        assert back.outcome == "ok" and back.failing == [] and failing(rt) == {}
        assert writes(g) == writes(g, outside) == g.log.count(method="PATCH", route=CONTACT) == 2
        folder = rt.store.get_targets("Small")[outside].folder_id
        phones = {read_contact_tag(c).source_key: c["mobilePhone"]  # type: ignore[union-attr]
                  for c in g.tenant.mailboxes.contacts(outside, folder)}
        assert phones[f"user:{users[4]}"] == "+44 7700 900444" and phones[f"user:{users[5]}"] == "+44 7700 900555"


def test_a_mailbox_named_by_an_address_nobody_has_fails_alone_until_it_exists(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        config = CONFIG.replace('groups = ["Phones"]', 'groups = ["Phones"]\nmailboxes = ["spare.phone@contoso.com"]')
        rt = make_runtime(g, config)
        first = run(rt)
        assert first.outcome == "partial" and first.exec.counts["created"] == 3 * 6
        [failure] = first.failing
        assert (failure.key, failure.address, failure.status) == ("spare.phone@contoso.com",) * 2 + (404,)
        assert "no user" in failure.hint and "spare.phone@contoso.com" in failure.line()

        g.log.clear()
        assert run(rt).outcome == "partial" and writes(g) == 0  # looked up again, still nobody

        spare = g.tenant.directory.add_user(displayName="Spare phone", userPrincipalName="spare.phone@contoso.com")
        g.log.clear()
        filled = run(rt)
        assert filled.outcome == "ok" and failing(rt) == {}
        assert writes(g, spare["id"]) == 7 and filled.exec.counts["created"] == 7 + 3  # the newcomer to the others
        assert keys_in(g, rt, spare["id"]) == sorted([*(f"user:{u}" for u in users), f"user:{spare['id']}"])


def test_a_target_whose_mailbox_is_gone_fails_alone_in_sync_and_reconcile_and_no_folder_is_made(
    make_runtime: MakeRuntime
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        config = CONFIG.replace('groups = ["Phones"]', 'groups = ["Phones"]\nmailboxes = ["spare.phone@contoso.com"]')
        spare = g.tenant.directory.add_user(displayName="Spare phone", userPrincipalName="spare.phone@contoso.com")
        rt = make_runtime(g, config)
        assert run(rt).exec.counts["created"] == 4 * 7
        reconcile_profile(rt, "Small")
        # The mailbox loses its licence: the user stays (a source), its mailbox answers 404.
        g.tenant.directory.update_user(spare["id"], assignedLicenses=[])
        g.tenant.directory.update_user(users[0], mobilePhone="+44 7700 900999")
        g.log.clear()
        report = run(rt)
        assert report.outcome == "partial" and report.exec.counts["updated"] == 3
        [failure] = report.failing
        assert (failure.key, failure.address, failure.code) == \
            (spare["id"], "spare.phone@contoso.com", "MailboxNotEnabledForRESTAPI")
        assert "no longer" in failure.hint
        assert g.log.count(method="POST", route=FOLDERS) == 0  # a gone mailbox is not a deleted folder

        g.log.clear()
        night = reconcile_profile(rt, "Small")
        assert night.targets == 4 and g.log.count(route=DELTA, status=200) == 3
        assert [f.key for f in night.failing] == [spare["id"]] and night.exec.writes == 0
        assert any("spare.phone@contoso.com" in e and "MailboxNotEnabledForRESTAPI" in e for e in night.errors)
        assert g.log.count(method="POST", route=FOLDERS) == 0
        assert next(r for r in rt.store.recent_runs("Small") if r.kind == "reconcile").outcome == "partial"


def test_a_mailbox_that_leaves_the_targets_and_the_scope_together_is_emptied_once_it_answers_again(
    make_runtime: MakeRuntime
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        rt = make_runtime(g, CONFIG)
        assert run(rt).exec.counts["created"] == 3 * 6
        leaving = users[2]
        folder = rt.store.get_targets("Small")[leaving].folder_id
        g.tenant.directory.remove_member(PHONES, leaving)
        scope(g, users[:2])  # the admin took it out of the scope at the same time
        g.log.clear()
        report = run(rt)
        assert report.outcome == "partial" and report.removed_targets == 1
        assert g.log.count(method="DELETE", route=CONTACT, mailbox=leaving, status=403) == 6
        [failure] = report.failing
        assert (failure.key, failure.stage, failure.code) == (leaving, "remove", "ErrorAccessDenied")
        assert "left the targets" in failure.line() and "Exchange scope" in failure.hint
        assert len(g.tenant.mailboxes.contacts(leaving, folder)) == 6

        g.log.clear()
        again = run(rt)  # still refused: one look at its folder
        assert again.outcome == "partial" and g.log.count(mailbox=leaving) == 1 and writes(g) == 0

        scope(g, None)
        g.log.clear()
        emptied = run(rt)
        assert emptied.outcome == "ok" and failing(rt) == {} and emptied.exec.counts["deleted"] == 6
        assert writes(g) == writes(g, leaving) == 6 and g.tenant.mailboxes.contacts(leaving, folder) == []


def test_a_refused_removal_ends_when_the_mailbox_is_deleted(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        rt = make_runtime(g, CONFIG)
        run(rt)
        leaving = users[2]
        g.tenant.directory.remove_member(PHONES, leaving)
        scope(g, users[:2])
        assert run(rt).outcome == "partial"
        g.tenant.directory.delete_user(leaving)  # its mailbox goes, and galsync's contacts with it
        scope(g, None)
        report = run(rt)
        assert report.outcome == "ok" and report.failing == [] and failing(rt) == {}


def test_a_full_mailbox_fails_alone_and_gets_what_it_missed_once_it_has_room(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        rt = make_runtime(g, CONFIG)
        run(rt)
        full = users[1]
        newcomer = g.tenant.directory.add_user(displayName="Driver 6", mailNickname="d6")["id"]
        g.faults.fail_next(1, 507, route=f"POST {CONTACTS}", mailbox=full)  # Graph: storage quota reached
        report = run(rt)
        assert report.outcome == "partial" and report.exec.counts["created"] == 2
        [failure] = report.failing
        assert (failure.key, failure.status, failure.stage) == (full, 507, "write") and "full" in failure.hint

        g.log.clear()
        again = run(rt)  # room again: one look at its folder, then the contact it missed
        assert again.outcome == "ok" and failing(rt) == {}
        # the folder, the look for the contact (a 5xx create may have happened, so its tag is looked for), the create
        assert g.log.count(mailbox=full) == 3 and writes(g) == writes(g, full) == 1
        assert f"user:{newcomer}" in keys_in(g, rt, full)


def test_a_mailbox_whose_removal_a_reconcile_overlapped_is_still_emptied_once_it_answers(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconcile that read the targets before a sync removed one met that mailbox refusing, after the sync's
    removal had failed: the failure it recorded is still a removal to finish (found by the chaos run)."""
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        rt = make_runtime(g, CONFIG)
        run(rt)
        leaving = users[2]
        folder = rt.store.get_targets("Small")[leaving].folder_id
        read_before = rt.store.get_targets("Small")
        scope(g, users[:2])
        g.tenant.directory.remove_member(PHONES, leaving)
        assert [f.stage for f in run(rt).failing] == ["remove"]
        with monkeypatch.context() as m:
            m.setattr(rt.store, "get_targets", lambda profile: read_before)
            assert [f.stage for f in reconcile_profile(rt, "Small").failing] == ["reconcile"]
        g.log.clear()
        assert run(rt).outcome == "partial" and g.log.count(mailbox=leaving) == 1  # still listed, still asked
        scope(g, None)
        emptied = run(rt)
        assert emptied.outcome == "ok" and failing(rt) == {} and emptied.exec.counts["deleted"] == 6
        assert g.tenant.mailboxes.contacts(leaving, folder) == []


def test_a_reconcile_that_listed_a_target_before_its_removal_does_not_fill_it_again(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync removes a target while a reconcile that listed the targets earlier is still running: when the
    reconcile reaches that mailbox, its removal has emptied it and left no records; filling it from nothing
    would give a mailbox that left the profile every contact again (found by the chaos run)."""
    with GraphEmulator.start(scenario=None) as g:
        users = small_tenant(g)
        rt = make_runtime(g, CONFIG)
        run(rt)
        leaving = users[2]
        folder = rt.store.get_targets("Small")[leaving].folder_id
        listed_before = rt.store.get_targets("Small")
        g.tenant.directory.remove_member(PHONES, leaving)
        assert run(rt).exec.counts["deleted"] == 6
        get_targets = rt.store.get_targets
        calls: list[str] = []

        def listed_once_before_the_removal(profile: str) -> Any:
            calls.append(profile)
            return listed_before if len(calls) == 1 else get_targets(profile)

        monkeypatch.setattr(rt.store, "get_targets", listed_once_before_the_removal)
        g.log.clear()
        night = reconcile_profile(rt, "Small")
        assert night.exec.writes == 0 and writes(g) == 0
        assert g.tenant.mailboxes.contacts(leaving, folder) == []
