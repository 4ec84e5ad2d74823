"""Several workers on one profile, and the engine on Azure Table Storage (Azurite) instead of SQLite."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.push import TargetsBusy, push_targets
from sync_core.service.runtime import PushMessage, Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.service.waves import WAVE_PER_MAILBOX
from sync_core.settings import LEASE_SECONDS
from sync_core.state.leases import LeaseLost
from tests.azurite import Azurite
from tests.crash_injection import Crash, CrashingGraph

from .conftest import Collect, MakeRuntime

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"



def duplicates(g: GraphEmulator, rt: Runtime, profile: str) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for mailbox, target in rt.store.get_targets(profile).items():
        if target.folder_id:
            tags = Counter(read_contact_tag(c).source_key  # type: ignore[union-attr]
                           for c in g.tenant.mailboxes.contacts(mailbox, target.folder_id))
            extra = Counter({k: n for k, n in tags.items() if n > 1})
            if extra:
                out[mailbox] = extra
    return out


def test_two_workers_syncing_one_profile_at_once_write_each_contact_once(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    workers = [make_runtime(graph), make_runtime(graph)]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def work(rt: Runtime) -> None:
        start.wait()
        outcomes.append(sync_profile(rt, "Dispatch", InlineFanOut(rt)).outcome)

    threads = [threading.Thread(target=work, args=(rt,)) for rt in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["busy", "ok"], ["ok", "ok"])
    assert duplicates(graph, workers[0], "Dispatch") == {}
    assert graph.log.count(method="POST", route="/users/{user}/contactFolders/{folder}/contacts",
                           via_batch=True) == 400


def test_overlapping_pushes_to_the_same_targets_never_duplicate(graph: GraphEmulator,
                                                                make_runtime: MakeRuntime) -> None:
    a, b = make_runtime(graph), make_runtime(graph)
    fanout = Collect()
    sync_profile(a, "Dispatch", fanout)
    [message] = fanout.messages
    start = threading.Barrier(2)
    busy: list[TargetsBusy] = []

    def push(rt: Runtime) -> None:
        start.wait()
        try:
            push_targets(rt, message)
        except TargetsBusy as exc:
            busy.append(exc)

    threads = [threading.Thread(target=push, args=(rt,)) for rt in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in busy:  # the queue would retry these: a retried push of a filled mailbox writes nothing
        push_targets(b, PushMessage("Dispatch", tuple(exc.mailboxes), None))
    assert duplicates(graph, a, "Dispatch") == {}
    assert graph.log.count(method="POST", route="/users/{user}/contactFolders/{folder}/contacts",
                           via_batch=True) == 400


def more_drivers(graph: GraphEmulator, count: int) -> None:
    """`count` more members of "Drivers", the Dispatch profile's source: more slices to a push."""
    directory = graph.tenant.directory
    drivers = str((graph.scenario or {})["drivers_group_id"])
    for i in range(count):
        user = directory.add_user(displayName=f"Extra Driver {i}", mailNickname=f"extra{i}", jobTitle="Driver",
                                  department="Transport", mobilePhone=f"+44 7700 9{i:05d}")
        directory.add_member(drivers, str(user["id"]))


def test_a_push_that_lost_its_lease_stops_between_write_waves_and_the_next_worker_finishes(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    more_drivers(graph, 100)  # 200 drivers: slices of 60, 60, 60 and 20 keys
    a, b = make_runtime(graph), make_runtime(graph)
    fanout = Collect()
    sync_profile(a, "Dispatch", fanout)
    [message] = fanout.messages  # the fill of the four truck mailboxes, 200 drivers each

    def creates() -> int:
        return graph.log.count(method="POST", route=CONTACTS, via_batch=True)

    # Once a's first wave is written, its heartbeat has not renewed for half the ttl (a frozen process, an
    # unreachable store): by its own account the lease may soon be someone else's.
    a.clock = lambda: time.time() + (LEASE_SECONDS / 2 if creates() else 0)
    # The push reads, plans and sends a wave's slice of keys at a time, the next one going out while the one
    # before it is answered: the wave after those two is never planned.
    with pytest.raises(LeaseLost, match=r"lost.* 0 write\(s\) were not sent"):
        push_targets(a, message)

    wave = 4 * WAVE_PER_MAILBOX
    assert creates() in (wave, 2 * wave)  # the second wave went if it left before the first was answered
    records = [r for m in message.mailboxes for r in a.store.get_target_records("Dispatch", m).values()]
    assert len(records) == creates() and all(r.contact_id for r in records)  # no create left in doubt
    assert a.store.list_leases() == []  # given up on the way out

    sent = creates()
    graph.log.clear()
    report = push_targets(b, message)
    assert report.counts["created"] == 800 - sent == creates()
    assert graph.log.count(method="GET", route=CONTACTS, via_batch=True) == 0  # nothing to look up
    assert duplicates(graph, b, "Dispatch") == {}


def test_a_push_killed_mid_way_keeps_its_finished_waves_and_the_next_worker_resumes_at_the_unfinished_one(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    a, b = make_runtime(graph), make_runtime(graph)
    fanout = Collect()
    sync_profile(a, "Dispatch", fanout)
    [message] = fanout.messages  # the fill of the four truck mailboxes, 100 drivers each: waves of 60 and 40

    def creates() -> int:
        return graph.log.count(method="POST", route=CONTACTS, via_batch=True)

    # a dies right after the first create of its second wave reached Graph, before any answer came back.
    first_wave = 4 * WAVE_PER_MAILBOX
    CrashingGraph(a.client, crash_at=first_wave + 1)
    with pytest.raises(Crash):
        push_targets(a, message)
    assert creates() == first_wave + 1
    records = [r for m in message.mailboxes for r in a.store.get_target_records("Dispatch", m).values()]
    assert sum(1 for r in records if r.contact_id) == first_wave  # the first wave is recorded
    assert sum(1 for r in records if not r.contact_id) == 400 - first_wave  # the second is in doubt

    graph.log.clear()
    report = push_targets(b, message)
    # Only the wave in doubt is looked up: its one created contact is adopted, the rest created once.
    assert report.counts["adopted"] == 1 and report.counts["created"] == 400 - first_wave - 1 == creates()
    assert graph.log.count(method="PATCH", via_batch=True) == 1
    assert duplicates(graph, b, "Dispatch") == {}
    assert sum(len(b.store.get_target_records("Dispatch", m)) for m in message.mailboxes) == 400


def test_busy_names_the_worker_that_holds_the_profile_and_until_when(graph: GraphEmulator,
                                                                     make_runtime: MakeRuntime) -> None:
    a, b = make_runtime(graph), make_runtime(graph)
    a.store.mark_pending("sync:Dispatch")
    assert a.store.acquire_lease("sync:Dispatch", a.owner, LEASE_SECONDS)  # a is syncing

    report = sync_profile(b, "Dispatch", InlineFanOut(b))

    assert report.outcome == "busy"
    assert report.holder is not None and (report.holder.name, report.holder.owner) == ("sync:Dispatch", a.owner)
    assert time.time() < report.holder.expires_at <= time.time() + LEASE_SECONDS
    assert graph.log.count() == 0


def test_a_busy_push_names_the_worker_that_holds_the_mailbox(graph: GraphEmulator,
                                                             make_runtime: MakeRuntime) -> None:
    a, b = make_runtime(graph), make_runtime(graph)
    fanout = Collect()
    sync_profile(a, "Dispatch", fanout)
    [message] = fanout.messages
    north = message.mailboxes[0]
    assert a.store.acquire_lease(f"push:Dispatch:{north}", a.owner, LEASE_SECONDS)

    graph.log.clear()
    with pytest.raises(TargetsBusy, match=f"lease push:Dispatch:{north} held by worker {a.owner} until "):
        push_targets(b, message)
    assert graph.log.count(method="POST", route=CONTACTS, via_batch=True) == 300  # the three others are filled
    assert b.store.get_target_records("Dispatch", north) == {}


@pytest.mark.azurite
def test_the_engine_on_table_storage_fills_then_writes_nothing_when_nothing_changed(
    graph: GraphEmulator, make_runtime: MakeRuntime, azurite: Azurite
) -> None:
    rt = make_runtime(graph, state="table:", GALSYNC_STORAGE_CONNECTION_STRING=azurite.connection_string,
                      GALSYNC_TABLE_PREFIX="g" + uuid.uuid4().hex[:10])
    first: Any = sync_profile(rt, "Dispatch", fanout := InlineFanOut(rt))
    assert first.outcome == "ok" and fanout.report.counts["created"] == 400
    graph.tenant.directory.update_user(graph.scenario["drivers"][10], mobilePhone="+44 7700 900123")
    graph.log.clear()
    second = sync_profile(rt, "Dispatch", fanout := InlineFanOut(rt))
    assert second.changed == 1 and fanout.report.counts["updated"] == 4
    assert graph.log.count(method="PATCH", via_batch=True) == 4
    assert duplicates(graph, rt, "Dispatch") == {}
