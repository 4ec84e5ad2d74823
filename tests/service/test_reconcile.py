"""Nightly reconcile on the logistics tenant: phones edit, delete and save contacts; galsync repairs only its own."""

from __future__ import annotations

import time
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import contact_tag_properties, read_contact_tag
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.service.waves import WAVE_PER_MAILBOX
from sync_core.settings import LEASE_SECONDS

from .conftest import EXAMPLE_CONFIG, MakeRuntime

DELTA = "/users/{user}/contactFolders/{folder}/contacts/delta"
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"


def writes(g: GraphEmulator) -> int:
    return sum(g.log.count(method=m, via_batch=True) for m in ("POST", "PATCH", "DELETE")) + sum(
        g.log.count(method=m, via_batch=False) for m in ("PATCH", "DELETE"))


def dispatch_config(**policy: str) -> str:
    """The example config with the Dispatch profile's [profile.policy] table set to `policy` (plus its own)."""
    config = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    head, _, tail = config.rpartition("[profile.policy]\n")  # Dispatch is the last profile
    kept = [line for line in tail.splitlines(keepends=True)
            if not any(line.startswith(f"{key} ") for key in policy)]
    return head + "[profile.policy]\n" + "".join(f'{k} = "{v}"\n' for k, v in policy.items()) + "".join(kept)


def filled(g: GraphEmulator, make_runtime: MakeRuntime, **policy: str) -> tuple[Runtime, str, str]:
    rt = make_runtime(g, dispatch_config(**policy))
    sync_profile(rt, "Dispatch", InlineFanOut(rt))
    reconcile_profile(rt, "Dispatch")  # first night: full read of each folder
    truck = g.scenario["shared_mailboxes"]["Trucks North"]["id"]
    folder = rt.store.get_targets("Dispatch")[truck].folder_id
    assert folder
    g.log.clear()
    return rt, truck, folder


def contact_for(g: GraphEmulator, truck: str, folder: str, key: str) -> dict[str, Any]:
    [found] = [c for c in g.tenant.mailboxes.contacts(truck, folder) if read_contact_tag(c) and
               read_contact_tag(c).source_key == key]  # type: ignore[union-attr]
    return found


def test_a_night_without_drift_costs_one_request_per_target_and_writes_nothing(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt, _, _ = filled(graph, make_runtime)
    report = reconcile_profile(rt, "Dispatch")
    # four truck mailboxes, all shared: one folder delta each, and one read of each shared mailbox's own
    # Contacts folder (where phones save what they save)
    assert graph.log.count(route=DELTA) == 4
    assert graph.log.count(route="/users/{user}/contacts") == 4
    assert graph.log.count() == 8 and writes(graph) == 0
    assert report.exec.writes == 0 and report.drift["intact"] == 0


def test_targets_are_reconciled_side_by_side_at_the_same_cost(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt, _, _ = filled(graph, make_runtime)
    graph.faults.configure(latency_ms=150)  # so that requests of targets read side by side overlap
    reconcile_profile(rt, "Dispatch")
    assert graph.log.count(route=DELTA) == 4 and graph.log.count() == 8 and writes(graph) == 0
    reads = sorted((e.start, e.end) for e in graph.log.entries(route=DELTA))
    overlapping = sum(1 for (_, end), (start, _) in zip(reads, reads[1:], strict=False) if start < end)
    assert overlapping >= 1  # one after another, no folder read would start before the one before it ended


def test_maman_saved_on_a_shared_mailbox_phone_is_reported_and_never_touched(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt, truck, folder = filled(graph, make_runtime)
    in_default = graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Maman",
                                                                     "mobilePhone": "+33 6 11 22 33 44"})
    in_managed = graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Garage Dupont"},
                                                            folder_id=folder)
    report = reconcile_profile(rt, "Dispatch")
    assert writes(graph) == 0
    names = {c["displayName"]: c for c in report.foreign[truck]}
    assert set(names) == {"Maman", "Garage Dupont"}
    assert names["Maman"]["folder"] == "Contacts" and names["Garage Dupont"]["folder"] == "managed"
    doc = rt.store.get_doc("foreign", f"Dispatch|{truck}")
    assert doc is not None and {c["id"] for c in doc[0]["contacts"]} == {in_default["id"], in_managed["id"]}
    for contact, where in ((in_default, None), (in_managed, folder)):
        [now] = [c for c in graph.tenant.mailboxes.contacts(truck, where) if c["id"] == contact["id"]]
        assert now["changeKey"] == contact["changeKey"]
    # the other three trucks have nothing foreign
    assert sum(len(v) for k, v in report.foreign.items() if k != truck) == 0


def test_edits_and_deletions_on_a_phone_are_repaired_with_one_write_each(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt, truck, folder = filled(graph, make_runtime)
    drivers = graph.scenario["drivers"]
    edited = contact_for(graph, truck, folder, f"user:{drivers[0]}")
    deleted = contact_for(graph, truck, folder, f"user:{drivers[1]}")
    graph.tenant.mailboxes.phone_update_contact(truck, edited["id"], {"mobilePhone": "+33 7 00 00 00 00",
                                                                      "personalNotes": "parks at gate 2"})
    graph.tenant.mailboxes.phone_delete_contact(truck, deleted["id"])
    report = reconcile_profile(rt, "Dispatch")
    assert report.drift["edited"] == 1 and report.drift["deleted_on_device"] == 1
    assert graph.log.count(method="PATCH", via_batch=True) == 1 and graph.log.count(method="POST", via_batch=True) == 1
    assert writes(graph) == 2
    repaired = contact_for(graph, truck, folder, f"user:{drivers[0]}")
    assert repaired["mobilePhone"] == edited["mobilePhone"]  # galsync's field is back
    assert repaired["personalNotes"] == "parks at gate 2"  # the user's own field stays
    contact_for(graph, truck, folder, f"user:{drivers[1]}")  # recreated, exactly once
    graph.log.clear()
    reconcile_profile(rt, "Dispatch")
    assert writes(graph) == 0  # its own repairs are not drift the next night


def test_a_deletion_is_respected_when_the_policy_says_so(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt, truck, folder = filled(graph, make_runtime, deleted_on_device="respect")
    driver = graph.scenario["drivers"][2]
    graph.tenant.mailboxes.phone_delete_contact(truck, contact_for(graph, truck, folder, f"user:{driver}")["id"])
    reconcile_profile(rt, "Dispatch")
    assert writes(graph) == 0
    graph.tenant.directory.update_user(driver, mobilePhone="+33 6 98 76 54 32")
    sync_profile(rt, "Dispatch", InlineFanOut(rt))
    # the three other trucks get the change; the phone that deleted the contact does not get it back
    assert graph.log.count(method="PATCH", via_batch=True) == 3 and graph.log.count(method="POST", via_batch=True) == 0


def test_a_duplicate_managed_contact_is_removed(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt, truck, folder = filled(graph, make_runtime)
    key = f"user:{graph.scenario['drivers'][3]}"
    original = contact_for(graph, truck, folder, key)
    # what a crash between a create and its record could leave: a second contact with the same tag
    graph.tenant.mailboxes.create_contact(truck, {"displayName": original["displayName"],
                                                  "singleValueExtendedProperties": contact_tag_properties(
                                                      "Dispatch", key)}, folder_id=folder)
    report = reconcile_profile(rt, "Dispatch")
    assert report.drift["duplicates"] == 1
    assert graph.log.count(method="DELETE", via_batch=True) == 1 and writes(graph) == 1
    assert contact_for(graph, truck, folder, key)["id"] == original["id"]


@pytest.mark.parametrize("policy", ["delete"])
def test_foreign_contacts_are_deleted_only_when_the_admin_says_so(
    graph: GraphEmulator, make_runtime: MakeRuntime, policy: str
) -> None:
    rt, truck, folder = filled(graph, make_runtime, foreign_contacts=policy)
    stray = graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Stray"}, folder_id=folder)
    maman = graph.tenant.mailboxes.phone_create_contact(truck, {"displayName": "Maman"})
    reconcile_profile(rt, "Dispatch")
    assert [c["id"] for c in graph.tenant.mailboxes.contacts(truck, folder) if c["id"] == stray["id"]] == []
    # outside the managed folder galsync never deletes, whatever the policy
    assert [c["id"] for c in graph.tenant.mailboxes.contacts(truck)] == [maman["id"]]


def test_the_first_night_finds_a_contact_deleted_before_it(graph: GraphEmulator, make_runtime: MakeRuntime) -> None:
    rt = make_runtime(graph, dispatch_config())
    sync_profile(rt, "Dispatch", InlineFanOut(rt))
    truck = graph.scenario["shared_mailboxes"]["Trucks West"]["id"]
    folder = rt.store.get_targets("Dispatch")[truck].folder_id
    assert folder
    key = f"user:{graph.scenario['drivers'][80]}"
    graph.tenant.mailboxes.phone_delete_contact(truck, contact_for(graph, truck, folder, key)["id"])
    graph.log.clear()
    report = reconcile_profile(rt, "Dispatch")  # no delta link yet: a full read of every folder
    assert report.drift["deleted_on_device"] == 1 and writes(graph) == 1
    contact_for(graph, truck, folder, key)


def test_a_damaged_foreign_list_fails_its_mailbox_only_and_says_which_document(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt, truck, _ = filled(graph, make_runtime)
    rt.store.put_doc("foreign", f"Dispatch|{truck}", {"checked_at": "t", "purpose": "shared", "contacts": "Maman"})
    report = reconcile_profile(rt, "Dispatch")
    assert report.errors == [f"mailbox {truck}: stored foreign document 'Dispatch|{truck}' is malformed: "
                             "'contacts' must be a list, got str"]
    assert len(report.foreign) == 3 and truck not in report.foreign  # the other mailboxes were reconciled
    latest = next(r for r in rt.store.recent_runs("Dispatch") if r.kind == "reconcile")
    assert latest.outcome == "partial" and latest.error is not None and f"'Dispatch|{truck}'" in latest.error


def test_a_reconcile_that_lost_a_mailbox_lease_stops_its_repairs_there_and_the_next_night_finishes(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt, truck, folder = filled(graph, make_runtime)
    for contact in graph.tenant.mailboxes.contacts(truck, folder):  # a phone wipes the truck's address book
        graph.tenant.mailboxes.phone_delete_contact(truck, contact["id"])
    graph.log.clear()

    def recreated() -> int:
        return graph.log.count(method="POST", route=CONTACTS, via_batch=True)

    # Once the first wave of repairs is written, the heartbeat has not renewed for half the ttl.
    rt.clock = lambda: time.time() + (LEASE_SECONDS / 2 if recreated() else 0)
    report = reconcile_profile(rt, "Dispatch")

    assert recreated() == WAVE_PER_MAILBOX  # one wave, then nothing more in that mailbox
    [error] = report.errors
    assert error.startswith(f"mailbox {truck}: ") and f"{100 - WAVE_PER_MAILBOX} write(s) were not sent" in error
    assert rt.store.list_leases() == []
    assert rt.store.recent_runs("Dispatch", 1)[0].outcome == "partial"

    rt.clock = time.time
    graph.log.clear()
    again = reconcile_profile(rt, "Dispatch")
    assert again.errors == [] and recreated() == 100 - WAVE_PER_MAILBOX
    assert len(graph.tenant.mailboxes.contacts(truck, folder)) == 100


@pytest.mark.parametrize("edit", [{"personalNotes": "saved back by the phone"}, {"mobilePhone": "+33 7 99 99 99 99"}],
                         ids=["own-field", "galsync-field"])
def test_a_contact_whose_tag_a_phone_stripped_is_galsyncs_counted_once_as_edited_and_retagged(
    graph: GraphEmulator, make_runtime: MakeRuntime, edit: dict[str, str]
) -> None:
    """A contact whose id galsync recorded is galsync's, whatever became of its hidden tag: the repair puts the
    tag back (so a lost state adopts it later, and `explain` tells its story), and it is never foreign."""
    rt, truck, folder = filled(graph, make_runtime)
    key = f"user:{graph.scenario['drivers'][4]}"
    contact = contact_for(graph, truck, folder, key)
    graph.tenant.mailboxes.phone_update_contact(truck, contact["id"], edit, strips_hidden_properties=True)
    report = reconcile_profile(rt, "Dispatch")
    assert report.drift["edited"] == 1 and report.drift["foreign"] == 0 and report.foreign[truck] == []
    assert graph.log.count(method="PATCH", via_batch=True) == 1 and writes(graph) == 1
    repaired = contact_for(graph, truck, folder, key)  # tagged again, for this source, and the same contact
    assert repaired["id"] == contact["id"] and repaired["mobilePhone"] == contact["mobilePhone"]
    assert repaired.get("personalNotes") == edit.get("personalNotes")  # the phone's own field stays
    graph.log.clear()
    again = reconcile_profile(rt, "Dispatch")
    assert writes(graph) == 0 and again.drift["edited"] == 0  # the repair is not drift the next night
