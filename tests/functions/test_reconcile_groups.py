"""The nightly reconcile on the function app: one reconcile message, then one reconcile-targets message per group
of targets, each taken by the queue trigger as any instance would take it.

Real parts: the Graph emulator over HTTPS, Azurite queues and tables, function_app's functions. Each night's cost
is compared with the command line's in-process reconcile of the same drift, request for request (plus the
doctor's verdict, which the function app logs after each night).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.records import Target
from sync_core.core.tags import contact_tag_properties, read_contact_tag
from sync_core.service.folder_heal import folder_link
from sync_core.service.poison import list_poison
from sync_core.service.queue_messages import RECONCILE_TARGETS_QUEUE, SYNC_SOURCE_QUEUE, ReconcileGroupMessage
from sync_core.service.queue_work import log_doctor_summary
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.reconcile_groups import give_up_group, start_reconcile
from sync_core.service.runtime import Runtime
from sync_core.state import docs
from tests.cli.conftest import DISPATCH_CONFIG
from tests.functions.conftest import Configure, emulator_settings
from tests.functions.functions_host import MAX_DEQUEUE, FunctionsHost
from tests.functions.test_queues import UNREACHABLE_GRAPH
from tests.functions.test_telemetry import records

TRUCKS = ("Trucks North", "Trucks South", "Trucks East", "Trucks West")
DRIVERS = 100  # members of "Drivers" (nested groups included) in the logistics scenario: each truck's contacts
DELTA = "/users/{user}/contactFolders/{folder}/contacts/delta"
WRITES = ("POST", "PATCH", "DELETE")


def trucks(graph: GraphEmulator) -> list[str]:
    return [(graph.scenario or {})["shared_mailboxes"][name]["id"] for name in TRUCKS]


def folder(rt: Runtime, mailbox: str) -> str:
    found = rt.store.get_targets("Dispatch")[mailbox].folder_id
    assert found
    return found


def contacts(graph: GraphEmulator, rt: Runtime, mailbox: str) -> list[dict[str, Any]]:
    return graph.tenant.mailboxes.contacts(mailbox, folder(rt, mailbox))


def writes(graph: GraphEmulator) -> int:
    return sum(graph.log.count(method=m, via_batch=True) for m in WRITES) + sum(
        graph.log.count(method=m, via_batch=False) for m in ("PATCH", "DELETE"))


def drift(graph: GraphEmulator, rt: Runtime, deleted_in: str, duplicated_in: str, n: int) -> tuple[str, str]:
    """A phone deletes a managed contact in one truck; a stray copy of a managed contact, tagged as galsync
    tags it (what a crash between a create and its record leaves), appears in another. Returns both names."""
    victim = sorted(contacts(graph, rt, deleted_in), key=lambda c: c["displayName"])[n]
    graph.tenant.mailboxes.phone_delete_contact(deleted_in, victim["id"])
    original = sorted(contacts(graph, rt, duplicated_in), key=lambda c: c["displayName"])[n]
    tag = read_contact_tag(original)
    assert tag is not None
    graph.tenant.mailboxes.create_contact(duplicated_in, {
        "displayName": original["displayName"],
        "singleValueExtendedProperties": contact_tag_properties("Dispatch", tag.source_key)},
        folder_id=folder(rt, duplicated_in))
    return victim["displayName"], original["displayName"]


def night(host: FunctionsHost) -> list[tuple[str, BaseException | None]]:
    """The nightly timer, then every queue drained; the functions that ran, in order."""
    host.deliveries.clear()
    host.timer("reconcile_timer", past_due=True)
    host.drain()
    return [(d.function, d.error) for d in host.deliveries]


def filled(configure: Configure, graph: GraphEmulator, host: FunctionsHost, group_size: int) -> Runtime:
    rt = configure(DISPATCH_CONFIG, **emulator_settings(graph), GALSYNC_RECONCILE_TARGETS_PER_MESSAGE=str(group_size))
    host.timer("sync_timer")
    host.drain()
    assert [len(contacts(graph, rt, m)) for m in trucks(graph)] == [DRIVERS] * 4
    return rt


def in_process(rt: Runtime, graph: GraphEmulator) -> int:
    """The command line's reconcile, then the doctor's verdict the function app logs after it: their requests."""
    graph.log.clear()
    reconcile_profile(rt, "Dispatch")
    log_doctor_summary(rt, "Dispatch")
    return graph.log.count()


def forget_folder_links(rt: Runtime, mailboxes: list[str]) -> None:
    """As if no reconcile had run yet: each folder is read in full again (a first reconcile's cost)."""
    for mailbox in mailboxes:
        rt.store.set_delta_link("Dispatch", folder_link(mailbox), None)


@pytest.mark.parametrize("group_size", [1, 3])
def test_the_targets_are_reconciled_in_groups_at_the_cost_of_the_in_process_reconcile(
        configure: Configure, graph: GraphEmulator, host: FunctionsHost, caplog: pytest.LogCaptureFixture,
        group_size: int) -> None:
    caplog.set_level(logging.INFO, logger="galsync")
    rt = filled(configure, graph, host, group_size)
    mailboxes = trucks(graph)
    groups = math.ceil(len(mailboxes) / group_size)

    # The first night: every folder read in full, one group message per `group_size` targets.
    graph.log.clear()
    assert night(host) == [("sync_source", None)] + [("reconcile_targets", None)] * groups
    assert [graph.log.count(route=DELTA, mailbox=m) for m in mailboxes] == [1, 1, 1, 1]  # each exactly once
    first_night = graph.log.count()
    graph.log.clear()
    forget_folder_links(rt, mailboxes)
    assert in_process(rt, graph) == first_night and writes(graph) == 0  # the same folders read in full again

    # A phone deletes a contact (in the first group), a stray tagged copy appears (in the last group).
    deleted, duplicated = drift(graph, rt, mailboxes[0], mailboxes[-1], 0)
    graph.log.clear()
    caplog.clear()
    assert night(host) == [("sync_source", None)] + [("reconcile_targets", None)] * groups
    assert [graph.log.count(route=DELTA, mailbox=m) for m in mailboxes] == [1, 1, 1, 1]
    grouped_requests, grouped_writes = graph.log.count(), writes(graph)
    assert grouped_writes == 2  # the deleted contact made again, the stray copy deleted
    assert deleted in {c["displayName"] for c in contacts(graph, rt, mailboxes[0])}
    assert [c["displayName"] for c in contacts(graph, rt, mailboxes[-1])].count(duplicated) == 1
    assert all(len(contacts(graph, rt, m)) == DRIVERS for m in mailboxes)
    [grouped] = records(caplog)
    lines = [r.getMessage() for r in caplog.records]
    verdicts = [n for n, line in enumerate(lines) if line.startswith("doctor: profile Dispatch:")]
    group_lines = [n for n, line in enumerate(lines) if f"reconcile {grouped['run_id']} group " in line]
    assert len(group_lines) == groups and len(verdicts) == 1 and verdicts[0] > max(group_lines)

    # The same drift again, reconciled by the command line in this process (after a quiet night that reads
    # back the repairs, as one did before the drift above).
    night(host)
    drift(graph, rt, mailboxes[0], mailboxes[-1], 1)
    caplog.clear()
    assert in_process(rt, graph) == grouped_requests and writes(graph) == grouped_writes
    [local] = records(caplog)
    assert grouped["counts"] == local["counts"]
    assert grouped["counts"]["targets"] == 4 and grouped["counts"]["deleted_on_device"] == 1
    assert grouped["counts"]["duplicates"] == 1 and grouped["counts"]["created"] == 1
    assert grouped["counts"]["deleted"] == 1
    assert (grouped["kind"], grouped["outcome"]) == ("reconcile", "ok")
    assert [r.kind for r in rt.store.recent_runs("Dispatch")].count("reconcile") == 5


def test_a_target_that_refuses_fails_alone_and_the_run_says_so(
        configure: Configure, graph: GraphEmulator, host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="galsync")
    rt = filled(configure, graph, host, 1)
    night(host)  # the first night: every link stored
    mailboxes = trucks(graph)
    refusing = mailboxes[1]  # alone in its group: that the others work is known from the other groups
    with graph.tenant.lock:
        graph.tenant.apps[graph.client_id].mailbox_scope = set(mailboxes) - {refusing}
    drift(graph, rt, mailboxes[0], mailboxes[3], 0)
    graph.log.clear()
    caplog.clear()

    assert night(host) == [("sync_source", None)] + [("reconcile_targets", None)] * 4
    for mailbox in (mailboxes[0], mailboxes[2], mailboxes[3]):
        assert graph.log.count(route=DELTA, mailbox=mailbox, status=200) == 1
    assert graph.log.count(route=DELTA, mailbox=refusing, status=403) == 1
    assert writes(graph) == 2 and all(len(contacts(graph, rt, m)) == DRIVERS for m in (mailboxes[0], mailboxes[3]))
    grouped_requests = graph.log.count()
    [grouped] = records(caplog)
    assert (grouped["outcome"], grouped["failing_mailboxes"]) == ("partial", [refusing])
    assert grouped["counts"]["targets"] == 4
    [failure] = [r for r in rt.store.recent_runs("Dispatch") if r.run_id == grouped["run_id"]]
    assert failure.error and "403 ErrorAccessDenied while reading its folder" in failure.error

    # The command line, the same drift, the same refusal: the same requests and counts.
    night(host)  # reads back the repairs, as the first night read back the fill
    drift(graph, rt, mailboxes[0], mailboxes[3], 1)
    caplog.clear()
    assert in_process(rt, graph) == grouped_requests
    [local] = records(caplog)
    assert (local["counts"], local["outcome"]) == (grouped["counts"], "partial")
    [local_run] = [r for r in rt.store.recent_runs("Dispatch") if r.run_id == local["run_id"]]
    assert local_run.error == failure.error and "outside galsync's Exchange scope" in failure.error


def test_a_retried_group_counts_once_and_a_group_of_an_older_run_is_dropped(
        configure: Configure, graph: GraphEmulator, host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="galsync")
    rt = filled(configure, graph, host, 2)
    host.timer("reconcile_timer")
    host.process_one(SYNC_SOURCE_QUEUE)
    first = host.process_one(RECONCILE_TARGETS_QUEUE)
    graph.log.clear()
    host.send(RECONCILE_TARGETS_QUEUE, first)  # delivered again (the host lost the first one's completion)
    host.drain()
    # the repeat costs no Graph request; the other group then ends the run, counted once
    assert graph.log.count(route=DELTA, mailbox=json.loads(first)["mailboxes"][0]) == 0
    [run] = [r for r in rt.store.recent_runs("Dispatch") if r.kind == "reconcile"]
    assert run.counts["targets"] == 4 and run.outcome == "ok"

    night(host)  # a newer run: the older run's group is now stale
    graph.log.clear()
    host.send(RECONCILE_TARGETS_QUEUE, first)
    host.drain()
    assert graph.log.count() == 0 and len([r for r in rt.store.recent_runs("Dispatch") if r.kind == "reconcile"]) == 2
    assert "dropped: the profile's latest reconcile is another" in caplog.text


def test_groups_that_finish_together_are_all_counted_and_the_run_is_recorded_once(
        configure: Configure, host: FunctionsHost) -> None:
    rt = configure()
    groups = 8
    docs.write(rt.store, "Dispatch", docs.ReconcileRun("r1", rt.now_iso(), groups))
    finished: list[object] = []
    barrier = threading.Barrier(groups)

    def give_up(n: int) -> None:
        barrier.wait()
        finished.append(give_up_group(rt, ReconcileGroupMessage("Dispatch", "r1", n, groups, (f"m{n}",)), "gone"))

    threads = [threading.Thread(target=give_up, args=(n,)) for n in range(groups)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run = docs.read(rt.store, docs.ReconcileRun, "Dispatch")
    assert run is not None and sorted(run.done) == list(range(groups)) and run.finished
    assert len([f for f in finished if f is not None]) == 1
    [recorded] = [r for r in rt.store.recent_runs("Dispatch") if r.kind == "reconcile"]
    assert recorded.outcome == "partial" and recorded.error and "1 target(s) not reconciled: gone" in recorded.error


def test_a_group_that_fails_on_every_try_is_poison_and_the_run_still_ends(
        configure: Configure, host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="galsync")
    rt = configure(DISPATCH_CONFIG, **UNREACHABLE_GRAPH)  # no token can be had: every group fails before any target
    rt.store.put_target("Dispatch", Target("mbx-1", "trucks.north@northwind.example", None, "shared", True))
    host.send(SYNC_SOURCE_QUEUE, json.dumps({"type": "reconcile", "profile": "Dispatch"}))
    host.drain()
    tries = [d for d in host.deliveries if d.function == "reconcile_targets"]
    assert len(tries) == MAX_DEQUEUE and all(d.error is not None for d in tries)
    [record] = list_poison(rt.store)
    assert record.queue == RECONCILE_TARGETS_QUEUE and record.reason.startswith("failed on every try")
    [run] = [r for r in rt.store.recent_runs("Dispatch") if r.kind == "reconcile"]
    assert run.outcome == "partial" and run.error and "group 1 of 1: 1 target(s) not reconciled" in run.error
    assert len([m for m in caplog.messages if m.startswith("doctor: profile Dispatch")]) == 1


def test_a_night_whose_group_never_finished_is_recorded_as_failed_when_the_next_begins(
        configure: Configure, graph: GraphEmulator, host: FunctionsHost) -> None:
    rt = filled(configure, graph, host, 3)
    lost, _ = start_reconcile(rt, "Dispatch", 3)  # its messages never reach a worker
    assert len(lost) == 2
    night(host)
    runs = {r.run_id: r for r in rt.store.recent_runs("Dispatch") if r.kind == "reconcile"}
    assert runs[lost[0].run_id].outcome == "failed"
    assert runs[lost[0].run_id].error == "2 of 2 target group(s) never finished"
    assert [r.outcome for r in runs.values()].count("ok") == 1
