"""The sync engine against the emulator's logistics tenant: what an admin would notice, counted exactly.

Every count below comes from the emulator's request log (real HTTPS requests, `$batch` inner requests
logged one by one), and every contact from the emulator's mailboxes, so a test fails if galsync writes
one contact too many or reads what it should not.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service import sync as sync_module
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"


def run(rt: Runtime, profile: str) -> Any:
    return sync_profile(rt, profile, InlineFanOut(rt))


def managed_contacts(g: GraphEmulator, rt: Runtime, profile: str, mailbox: str) -> list[dict[str, Any]]:
    target = rt.store.get_targets(profile)[mailbox]
    assert target.folder_id
    return g.tenant.mailboxes.contacts(mailbox, target.folder_id)


def writes(g: GraphEmulator) -> int:
    """Contact writes (in $batch or not): what a phone would see change."""
    return (g.log.count(method="POST", route=CONTACTS) + g.log.count(method="PATCH", route=CONTACT)
            + g.log.count(method="DELETE", route=CONTACT))


def test_first_run_fills_every_target_and_a_quiet_second_run_costs_one_delta_per_source(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph)
    first = run(rt, "Company directory")
    sources = rt.store.get_source_records("Company directory")
    targets = rt.store.get_targets("Company directory")
    info = graph.scenario
    assert len(targets) == 120 and first.new_targets == 120
    for left_out in (info["disabled_user_id"], info["guest_user_id"], info["unlicensed_user_id"]):
        assert f"user:{left_out}" not in sources
    for mailbox in targets:
        contacts = managed_contacts(graph, rt, "Company directory", mailbox)
        tags = sorted(read_contact_tag(c).source_key for c in contacts)  # type: ignore[union-attr]
        assert tags == sorted(sources), mailbox
    assert first.exec.counts["created"] == 120 * len(sources) == writes(graph)
    assert graph.log.count(method="POST", route="/users/{user}/contactFolders") == 120  # one managed folder each
    [recorded] = rt.store.recent_runs("Company directory")
    assert recorded.outcome == "ok" and recorded.counts["created"] == 120 * len(sources)  # what `status` shows

    graph.log.clear()
    second = run(rt, "Company directory")
    # users + org contacts + the one membership watch for the profile's groups; nothing else at all
    assert graph.log.count() == 3
    assert sorted(graph.log.summary()["byRoute"]) == ["GET /contacts/delta", "GET /groups/delta", "GET /users/delta"]
    assert second.changed == 0 and writes(graph) == 0


def test_one_changed_user_costs_exactly_one_write_per_target_and_no_target_reads(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph)
    run(rt, "Company directory")
    someone = graph.scenario["office_staff"][3]
    graph.tenant.directory.update_user(someone, mobilePhone="+33 6 12 34 56 78")
    graph.log.clear()
    report = run(rt, "Company directory")
    targets = rt.store.get_targets("Company directory")
    assert report.changed == 1
    assert graph.log.count(method="PATCH", route=CONTACT, via_batch=True) == len(targets) == writes(graph)
    assert graph.log.count(method="GET", route=CONTACTS) == 0 and graph.log.count(method="GET", route=CONTACT) == 0
    # 120 targets go out in push messages of 50 (50, 50, 20); each message's PATCHes in $batch calls of 20
    assert graph.log.count(method="POST", route="/$batch", via_batch=False) == 3 + 3 + 1
    for mailbox in targets:
        mine = [c for c in managed_contacts(graph, rt, "Company directory", mailbox)
                if read_contact_tag(c).source_key == f"user:{someone}"]  # type: ignore[union-attr]
        assert [c["mobilePhone"] for c in mine] == ["+33 6 12 34 56 78"]


def test_a_change_the_mapping_ignores_writes_nothing(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt = make_runtime(graph)
    run(rt, "Dispatch")
    driver = graph.scenario["drivers"][0]
    # Dispatch maps no office location: the delta returns the user, the fingerprint stays the same
    graph.tenant.directory.update_user(driver, officeLocation="Depot 7, bay 3")
    graph.log.clear()
    report = run(rt, "Dispatch")
    assert report.changed == 0 and writes(graph) == 0


def test_a_user_who_leaves_is_removed_from_every_target(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt = make_runtime(graph)
    run(rt, "Dispatch")
    leaver, disabled = graph.scenario["drivers"][:2]
    graph.tenant.directory.delete_user(leaver)
    graph.tenant.directory.update_user(disabled, accountEnabled=False)
    graph.log.clear()
    report = run(rt, "Dispatch")
    assert report.removed == 2
    assert graph.log.count(method="DELETE", route=CONTACT, via_batch=True) == 2 * 4 == writes(graph)
    for mailbox in rt.store.get_targets("Dispatch"):
        keys = {read_contact_tag(c).source_key for c in managed_contacts(graph, rt, "Dispatch", mailbox)}  # type: ignore[union-attr]
        assert f"user:{leaver}" not in keys and f"user:{disabled}" not in keys and len(keys) == 98


def test_hand_made_contacts_are_never_modified_or_deleted(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt = make_runtime(graph)
    run(rt, "Dispatch")
    truck = graph.scenario["shared_mailboxes"]["Trucks North"]["id"]
    folder = rt.store.get_targets("Dispatch")[truck].folder_id
    maman = graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Maman", "mobilePhone": "+33 6 00"},
                                                       folder_id=folder)
    garage = graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Garage Dupont"})
    for driver in graph.scenario["drivers"][:5]:
        graph.tenant.directory.update_user(driver, jobTitle="Senior driver")
    graph.tenant.directory.delete_user(graph.scenario["drivers"][6])
    run(rt, "Dispatch")
    after = {c["id"]: c for c in graph.tenant.mailboxes.contacts(truck, folder)}
    assert after[maman["id"]]["changeKey"] == maman["changeKey"]
    default = {c["id"]: c for c in graph.tenant.mailboxes.contacts(truck)}
    assert default[garage["id"]]["changeKey"] == garage["changeKey"]


def test_an_expired_delta_token_reads_everything_again_and_rewrites_nothing(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph)
    run(rt, "Dispatch")
    graph.tenant.expire_delta_tokens()
    graph.log.clear()
    report = run(rt, "Dispatch")
    assert graph.log.count(route="/users/delta", status=410) == 1
    assert report.changed == 0 and report.removed == 0 and writes(graph) == 0
    graph.log.clear()
    run(rt, "Dispatch")
    assert graph.log.count() == 2  # back to one request per source and one for the group watch


def test_a_new_member_of_a_target_group_gets_every_contact_and_a_leaver_loses_them(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph)
    run(rt, "Company directory")
    sources = rt.store.get_source_records("Company directory")
    newcomer = graph.tenant.directory.add_user(displayName="Nadia Haddad", givenName="Nadia", surname="Haddad",
                                               mailNickname="nadia.haddad", mobilePhone="+33 6 99 00 11 22",
                                               department="Planning", jobTitle="Planner")
    leaving = graph.scenario["office_staff"][5]
    all_staff = graph.scenario["all_staff_group_id"]
    graph.tenant.directory.add_member(all_staff, newcomer["id"])
    graph.tenant.directory.remove_member(all_staff, leaving)
    graph.log.clear()
    report = run(rt, "Company directory")
    targets = rt.store.get_targets("Company directory")
    assert report.new_targets == 1 and report.removed_targets == 1 and not targets[leaving].active
    new_folder = managed_contacts(graph, rt, "Company directory", newcomer["id"])
    assert len(new_folder) == len(sources) + 1  # everyone, and Nadia herself (she is a new source too)
    old_folder = targets[leaving].folder_id
    assert old_folder and graph.tenant.mailboxes.contacts(leaving, old_folder) == []
    # the 119 other targets got only Nadia's new contact
    assert graph.log.count(method="POST", route=CONTACTS, via_batch=True) == 119 + len(sources) + 1


def test_dry_run_plans_and_writes_nothing(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt = make_runtime(graph)
    report = sync_profile(rt, "Dispatch", InlineFanOut(rt), dry_run=True)
    assert report.planned == {"Create": 400}
    assert writes(graph) == 0 and graph.log.count(method="POST", route="/users/{user}/contactFolders") == 0
    assert rt.store.get_source_records("Dispatch") == {} and rt.store.recent_runs("Dispatch") == []


def test_a_first_fill_sets_up_its_targets_while_the_directory_is_read(
    graph: GraphEmulator, make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target look-ups and the new targets' folders need only the memberships, so they do not wait for the
    directory read (25 delta pages at 500 users): here the read waits until every target has its folder,
    which only ends if the two run side by side. The requests are the same ones, in the same $batch calls."""
    read_source = sync_module.read_source
    folders_before_read: list[int] = []

    def read_once_folders_exist(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 30
        while graph.log.count(method="POST", route="/users/{user}/contactFolders") < 120:
            assert time.monotonic() < deadline, "the folders were not created while the directory was read"
            time.sleep(0.01)
        folders_before_read.append(graph.log.count(method="POST", route="/users/{user}/contactFolders"))
        return read_source(*args, **kwargs)

    monkeypatch.setattr(sync_module, "read_source", read_once_folders_exist)
    rt = make_runtime(graph)
    report = run(rt, "Company directory")
    assert folders_before_read == [120, 120]  # users, then org contacts: both read after the folders were made
    assert report.new_targets == 120 and report.exec.counts["failed"] == 0
    targets = rt.store.get_targets("Company directory")
    for mailbox, target in targets.items():
        [name] = [f["displayName"] for f in graph.tenant.mailboxes.folders(mailbox) if f["id"] == target.folder_id]
        assert [f["id"] for f in graph.tenant.mailboxes.folders(mailbox) if f["displayName"] == name] == \
            [target.folder_id], mailbox
    assert graph.log.count(method="POST", route="/users/{user}/contactFolders") == 120  # none made twice


def test_a_first_fill_writes_to_new_targets_while_the_directory_is_still_read(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New targets get the first page's contacts before the second page is asked for (early_fill.py); the
    early writes bring them fully in step, so the run sends them no fill push: every contact exactly once."""
    with GraphEmulator.start(scenario=None) as g:
        g.tenant.directory.delta_page_size = 2
        users = [g.tenant.directory.add_user(displayName=f"Driver {i}", mailNickname=f"d{i}",
                                             mobilePhone=f"+44 7700 90000{i}")["id"] for i in range(6)]
        g.tenant.directory.add_group("Phones", members=users[:3])
        read_source = sync_module.read_source
        seen_at_first_writes: list[int] = []

        def read_pausing_after_the_first_page(*args: Any, on_chunk: Any, **kwargs: Any) -> Any:
            def hand_on(chunk: Any) -> None:
                on_chunk(chunk)
                if seen_at_first_writes:
                    return
                deadline = time.monotonic() + 30
                while g.log.count(method="POST", route=CONTACTS) < 3 * len(chunk):
                    assert time.monotonic() < deadline, "nothing was written while the directory was read"
                    time.sleep(0.01)
                seen_at_first_writes.append(g.log.count(method="GET", route="/users/delta"))
            return read_source(*args, on_chunk=hand_on, **kwargs)

        monkeypatch.setattr(sync_module, "read_source", read_pausing_after_the_first_page)
        rt = make_runtime(g, SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n")
        report = run(rt, "Small")
        assert seen_at_first_writes == [1]  # the first page's contacts were on the phones before page 2 was read
        assert report.exec.counts["created"] == 3 * 6 == writes(g)  # no contact written twice
        assert report.messages == 0  # every new target was in step already: no fill push left to plan
        for mailbox in users[:3]:
            tags = sorted(read_contact_tag(c).source_key for c in managed_contacts(g, rt, "Small", mailbox))
            assert tags == sorted(f"user:{u}" for u in users), mailbox


def test_a_write_that_fails_during_the_early_fill_is_written_by_the_fan_out_and_the_run_is_ok(
    make_runtime: MakeRuntime,
) -> None:
    """An early write Graph refuses stops the early fill; the run's fill push writes it again. The run reports
    what is true at its end (everything written), not the attempt it repaired."""
    with GraphEmulator.start(scenario=None) as g:
        g.tenant.directory.delta_page_size = 2
        users = [g.tenant.directory.add_user(displayName=f"Driver {i}", mailNickname=f"d{i}",
                                             mobilePhone=f"+44 7700 90000{i}")["id"] for i in range(6)]
        g.tenant.directory.add_group("Phones", members=users[:3])
        g.faults.fail_next(1, 400, route=f"POST {CONTACTS}", mailbox=users[1])
        rt = make_runtime(g, SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n")
        fanout = InlineFanOut(rt)
        report = sync_profile(rt, "Small", fanout)
        assert g.log.count(method="POST", route=CONTACTS, status=400) == 1  # the early write Graph refused
        assert report.outcome == "ok" and report.exec.counts["failed"] == 0 and report.exec.errors == []
        assert fanout.report.counts == report.exec.counts  # the fan-out's own tally tells the same
        assert report.exec.counts["created"] == 3 * 6 == writes(g) - 1  # each contact once, the refused one again
        for mailbox in users[:3]:
            tags = sorted(read_contact_tag(c).source_key for c in managed_contacts(g, rt, "Small", mailbox))
            assert tags == sorted(f"user:{u}" for u in users), mailbox
        [recorded] = rt.store.recent_runs("Small")
        assert recorded.outcome == "ok"


def test_a_target_that_joins_later_gets_early_what_changed_and_the_rest_from_its_fill_push(
    make_runtime: MakeRuntime,
) -> None:
    """A later run with a new target and one changed user: the early fill writes only what this run stored
    (the changed user), so the target still gets its fill push for the others. Every contact once; the
    targets that were there get only the change."""
    with GraphEmulator.start(scenario=None) as g:
        g.tenant.directory.delta_page_size = 2
        users = [g.tenant.directory.add_user(displayName=f"Driver {i}", mailNickname=f"d{i}",
                                             mobilePhone=f"+44 7700 90000{i}")["id"] for i in range(6)]
        phones = g.tenant.directory.add_group("Phones", members=users[:3])
        rt = make_runtime(g, SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n")
        assert run(rt, "Small").exec.counts["created"] == 3 * 6
        g.log.clear()
        g.tenant.directory.add_member(phones["id"], users[3])
        g.tenant.directory.update_user(users[5], mobilePhone="+44 7700 900999")
        report = run(rt, "Small")
        assert report.new_targets == 1 and report.messages == 2  # the change to 3 targets, the fill of the new one
        assert report.exec.counts["created"] == 6 == g.log.count(method="POST", route=CONTACTS)
        assert report.exec.counts["updated"] == 3 == g.log.count(method="PATCH", route=CONTACT)
        for mailbox in users[:4]:
            contacts = managed_contacts(g, rt, "Small", mailbox)
            assert sorted(read_contact_tag(c).source_key for c in contacts) == sorted(f"user:{u}" for u in users)
            [changed] = [c for c in contacts if read_contact_tag(c).source_key == f"user:{users[5]}"]
            assert changed["mobilePhone"] == "+44 7700 900999", mailbox


def test_a_same_named_folder_galsync_did_not_create_is_never_taken_over(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph)
    truck = graph.scenario["shared_mailboxes"]["Trucks South"]["id"]
    theirs = graph.tenant.mailboxes.create_folder(truck, "Dispatch")
    graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Chef"}, folder_id=theirs["id"])
    report = run(rt, "Dispatch")
    assert report.exec.counts["created"] == 300  # the three other trucks
    assert report.exec.counts["failed"] == 1
    assert [e for e in report.exec.errors if truck in e and "did not create" in e] == report.exec.errors
    assert [c["displayName"] for c in graph.tenant.mailboxes.contacts(truck, theirs["id"])] == ["Chef"]


def test_a_user_added_to_a_nested_group_becomes_a_target_and_a_source(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph)
    run(rt, "Company directory")
    run(rt, "Dispatch")
    kofi = graph.tenant.directory.add_user(displayName="Kofi Mensah", givenName="Kofi", surname="Mensah",
                                           mailNickname="kofi.mensah", mobilePhone="+44 7700 900456",
                                           jobTitle="Driver", department="Transport")
    # "Drivers North" is nested in "Drivers", itself nested in "All Staff": only "Drivers North" changes
    graph.tenant.directory.add_member(graph.scenario["drivers_north_group_id"], kofi["id"])
    company = run(rt, "Company directory")
    dispatch = run(rt, "Dispatch")
    assert company.new_targets == 1 and rt.store.get_targets("Company directory")[kofi["id"]].active
    assert len(managed_contacts(graph, rt, "Company directory", kofi["id"])) == len(
        rt.store.get_source_records("Company directory"))
    assert dispatch.changed == 1 and f"user:{kofi['id']}" in rt.store.get_source_records("Dispatch")
    graph.log.clear()
    run(rt, "Company directory")
    assert graph.log.count() == 3  # and quiet again: one watch request covers the nested groups too


def test_keys_seen_by_a_full_read_are_held_exactly_however_compactly() -> None:
    """A full read removes every stored key it did not see, so "seen" must never confuse two keys: GUID ids
    are held as numbers, and a key whose text differs from the canonical GUID form stays text."""
    from sync_core.service.source_reader import SeenKeys

    seen = SeenKeys()
    guid = "0a1b2c3d-0000-4000-8000-00000000abcd"
    seen.add_all([f"user:{guid}", "folder:mbx:AAMkAD-_=", "user:not-a-guid"])
    assert f"user:{guid}" in seen and "folder:mbx:AAMkAD-_=" in seen and "user:not-a-guid" in seen
    assert f"user:{guid.upper()}" not in seen  # another key, however close
    assert f"orgcontact:{guid}" not in seen  # same id, other kind of source
    assert "user:0a1b2c3d-0000-4000-8000-00000000abce" not in seen
    assert len(seen) == 3


def test_an_unfinished_runs_keys_and_this_runs_past_one_message_push_every_key(
    graph: GraphEmulator, make_runtime: MakeRuntime, monkeypatch: Any
) -> None:
    """A push message names at most MAX_KEYS_PER_MESSAGE keys (queue messages are 64 KB); when this run's
    changes and those an unfinished run left in its outbox pass that together, the pushes plan every key."""
    import sync_core.service.sync as sync_module

    rt = make_runtime(graph)
    run(rt, "Dispatch")
    stored = sorted(rt.store.get_source_records("Dispatch"))
    rt.store.put_doc("outbox", "Dispatch", {"run_id": "unfinished", "keys": stored[:2], "fill": [], "remove": []})
    for driver in graph.scenario["drivers"][:2]:
        graph.tenant.directory.update_user(driver, mobilePhone="+33 6 98 76 54 32")
    monkeypatch.setattr(sync_module, "MAX_KEYS_PER_MESSAGE", 3)  # 2 + 2 keys: one too many for a message
    sent: list[Any] = []

    class Recording(InlineFanOut):
        def push(self, message: Any) -> Any:
            sent.append(message)
            return super().push(message)

    report = sync_profile(rt, "Dispatch", Recording(rt))
    assert report.changed == 2 and sent
    assert all(message.keys is None for message in sent)


def test_the_command_lines_fan_outs_push_in_process_and_the_queues_does_not(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    """Early fill and side-by-side pushes need pushes that run here: the command line's fan-outs (with or
    without a progress bar) offer them; the function app's queue fan-out, whose pushes run elsewhere, does not."""
    from sync_core.cli.run_commands import ProgressFanOut
    from sync_core.service.queue_work import QueueFanOut
    from sync_core.service.sync import InProcessFanOut

    rt = make_runtime(graph)
    assert isinstance(InlineFanOut(rt), InProcessFanOut)
    assert isinstance(ProgressFanOut(rt, lambda _n: None), InProcessFanOut)
    assert not isinstance(QueueFanOut(), InProcessFanOut)
