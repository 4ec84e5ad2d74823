"""A push message does at most GALSYNC_WRITES_PER_MESSAGE writes and hands the rest to a message of its own.

The Dispatch profile of the example configuration fills four truck mailboxes with 100 drivers each. A message
keeps its mailboxes from part to part and advances them together: with 3 mailboxes and 90 writes a message,
30 keys each. Most tests here send each truck alone (GALSYNC_TARGETS_PER_MESSAGE=1) with 30 writes a message,
so its fill spans four messages; each message names the source key it resumes after, never a list of keys.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.push import PushPart, push_part, push_targets
from sync_core.service.runtime import PushMessage, Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from tests.crash_injection import Crash, CrashingGraph

from .conftest import Collect, MakeRuntime

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"



def creates(graph: GraphEmulator) -> int:
    return graph.log.count(method="POST", route=CONTACTS, via_batch=True)


def tags_in_folder(graph: GraphEmulator, rt: Runtime, mailbox: str) -> Counter[str]:
    folder = rt.store.get_targets("Dispatch")[mailbox].folder_id
    assert folder
    return Counter(read_contact_tag(c).source_key  # type: ignore[union-attr]
                   for c in graph.tenant.mailboxes.contacts(mailbox, folder))


def parts(graph: GraphEmulator, rt: Runtime, message: PushMessage) -> list[tuple[PushMessage, int]]:
    """Run a message and each message it hands on, as the queue would: each one with the creates it sent."""
    out: list[tuple[PushMessage, int]] = []
    next_message: PushMessage | None = message
    while next_message is not None:
        before = creates(graph)
        part: PushPart = push_part(rt, next_message)
        out.append((next_message, creates(graph) - before))
        assert part.report.counts["created"] == out[-1][1]
        next_message = part.rest
    return out


@pytest.mark.parametrize("state", ["sqlite", pytest.param("table", marks=pytest.mark.azurite)])
def test_a_fill_larger_than_a_message_goes_in_messages_of_at_most_w_writes_each_contact_once(
    graph: GraphEmulator, make_runtime: MakeRuntime, request: pytest.FixtureRequest, state: str
) -> None:
    table = {}
    if state == "table":
        azurite = request.getfixturevalue("azurite")
        table = {"state": "table:", "GALSYNC_STORAGE_CONNECTION_STRING": azurite.connection_string,
                 "GALSYNC_TABLE_PREFIX": "g" + uuid.uuid4().hex[:10]}
    rt = make_runtime(graph, GALSYNC_TARGETS_PER_MESSAGE="1", GALSYNC_WRITES_PER_MESSAGE="30", **table)
    fanout = Collect()
    sync_profile(rt, "Dispatch", fanout)
    assert [len(m.mailboxes) for m in fanout.messages] == [1, 1, 1, 1]

    for message in fanout.messages:
        done = parts(graph, rt, message)
        assert [writes for _, writes in done] == [30, 30, 30, 10]  # ceil(100 / 30) = 4 messages
        assert [m.after is None for m, _ in done] == [True, False, False, False]
        assert {m.mailboxes for m, _ in done} == {message.mailboxes}
        assert max(len(json.dumps(m.to_json())) for m, _ in done) < 1_000  # a key, never a list of keys
        [truck] = message.mailboxes
        assert tags_in_folder(graph, rt, truck) == Counter({k: 1 for k in tags_in_folder(graph, rt, truck)})
        records = rt.store.get_target_records("Dispatch", truck)
        assert len(records) == 100 and all(r.contact_id for r in records.values())
    assert creates(graph) == 400  # as many writes as one message each would have sent

    graph.log.clear()
    again = Collect()
    sync_profile(rt, "Dispatch", again)
    assert again.messages == [] and graph.log.count() == 2  # quiet: the users delta and the group watch


def test_the_command_line_runs_the_parts_one_after_another_with_the_same_writes(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph, GALSYNC_TARGETS_PER_MESSAGE="1", GALSYNC_WRITES_PER_MESSAGE="30")
    fanout = Collect()
    sync_profile(rt, "Dispatch", fanout)
    report = InlineFanOut(rt).push_all(fanout.messages)
    assert [r.counts["created"] for r in report] == [100, 100, 100, 100] and creates(graph) == 400
    for mailbox in rt.store.get_targets("Dispatch"):
        assert set(tags_in_folder(graph, rt, mailbox).values()) == {1}
        assert len(tags_in_folder(graph, rt, mailbox)) == 100


def test_a_worker_killed_in_a_continuation_leaves_its_done_writes_and_the_retry_sends_only_the_rest(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    one_truck = {"GALSYNC_TARGETS_PER_MESSAGE": "1", "GALSYNC_WRITES_PER_MESSAGE": "40"}
    a, b = make_runtime(graph, **one_truck), make_runtime(graph, **one_truck)
    fanout = Collect()
    sync_profile(a, "Dispatch", fanout)
    message = fanout.messages[0]
    [truck] = message.mailboxes
    first = push_part(a, message)
    assert first.report.counts["created"] == 40 == creates(graph) and first.rest is not None

    # a dies in the second message, once 10 creates of its wave of 40 reached Graph, before any answer.
    CrashingGraph(a.client, crash_at=10)
    with pytest.raises(Crash):
        push_part(a, first.rest)
    assert creates(graph) == 50
    records = a.store.get_target_records("Dispatch", truck).values()
    assert sum(1 for r in records if r.contact_id) == 40 and sum(1 for r in records if not r.contact_id) == 40

    # The queue hands the same second message to b: the first 40 are not sent again, the wave in doubt is
    # looked up once (its 10 contacts adopted, 30 created), and the third message does the last 20.
    graph.log.clear()
    second = push_part(b, first.rest)
    assert (second.report.counts["adopted"], second.report.counts["created"]) == (10, 30) == (
        graph.log.count(method="PATCH", via_batch=True), creates(graph))
    assert second.rest is not None
    third = push_part(b, second.rest)
    assert third.report.counts["created"] == 20 and third.rest is None and creates(graph) == 50
    assert tags_in_folder(graph, b, truck) == Counter({k: 1 for k in tags_in_folder(graph, b, truck)})
    assert len(tags_in_folder(graph, b, truck)) == 100
    assert all(r.contact_id for r in b.store.get_target_records("Dispatch", truck).values())


def test_a_message_advances_its_mailboxes_together_and_keeps_them_from_part_to_part(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    # 3 mailboxes a message, 90 writes: each part writes 30 keys to every mailbox of its message.
    rt = make_runtime(graph, GALSYNC_TARGETS_PER_MESSAGE="3", GALSYNC_WRITES_PER_MESSAGE="90")
    fanout = Collect()
    sync_profile(rt, "Dispatch", fanout)
    assert [len(m.mailboxes) for m in fanout.messages] == [3, 1]  # as many mailboxes whatever the keys
    trio, alone = fanout.messages

    first = push_part(rt, trio)
    assert first.report.counts["created"] == 90 == creates(graph) and first.rest is not None
    written = [set(rt.store.get_target_records("Dispatch", t)) for t in trio.mailboxes]
    assert [len(keys) for keys in written] == [30, 30, 30] and written[0] == written[1] == written[2]  # in step
    done = parts(graph, rt, first.rest)
    assert [writes for _, writes in done] == [90, 90, 30]  # 30 keys a mailbox twice, then the last 10
    assert {m.mailboxes for m, _ in done} == {trio.mailboxes}
    assert max(len(json.dumps(m.to_json())) for m, _ in done) < 1_000  # a key, never a list of keys
    for truck in trio.mailboxes:
        records = rt.store.get_target_records("Dispatch", truck)
        assert len(records) == 100 and all(r.contact_id for r in records.values())
    assert [writes for _, writes in parts(graph, rt, alone)] == [90, 10]  # one mailbox: 90 keys a part
    for truck in (*trio.mailboxes, *alone.mailboxes):
        assert set(tags_in_folder(graph, rt, truck).values()) == {1}  # every contact once
        assert len(tags_in_folder(graph, rt, truck)) == 100
    assert creates(graph) == 400

    # A change of one driver is 4 writes, in messages of 3 mailboxes and 1 again.
    driver = next(u for u in graph.tenant.directory.users() if u.get("jobTitle") == "Driver")
    graph.tenant.directory.update_user(driver["id"], mobilePhone="+33 6 99 88 77 66")
    fanout.messages.clear()
    sync_profile(rt, "Dispatch", fanout)
    assert [len(m.mailboxes) for m in fanout.messages] == [3, 1]
    graph.log.clear()
    assert [sum(w for _, w in parts(graph, rt, m)) for m in fanout.messages] == [0, 0]  # updates, not creates
    assert graph.log.count(method="PATCH", via_batch=True) == 4


def test_a_push_of_every_key_deletes_a_leaver_in_whichever_part_its_key_falls(
    graph: GraphEmulator, make_runtime: MakeRuntime
) -> None:
    rt = make_runtime(graph, GALSYNC_TARGETS_PER_MESSAGE="1", GALSYNC_WRITES_PER_MESSAGE="30")
    fanout = Collect()
    sync_profile(rt, "Dispatch", fanout)
    message = fanout.messages[0]
    [truck] = message.mailboxes
    push_targets(rt, message)
    # Two source records go (the last key and one in the middle): a push of every key deletes their contacts.
    keys = sorted(rt.store.get_target_records("Dispatch", truck))
    rt.store.delete_source_records("Dispatch", [keys[45], keys[-1]])
    graph.log.clear()
    done = [(m.after, w) for m, w in parts(graph, rt, PushMessage("Dispatch", (truck,), None))]
    assert graph.log.count(method="DELETE", via_batch=True) == 2 and creates(graph) == 0
    assert len(done) == 1  # nothing else to write: one message
    assert set(rt.store.get_target_records("Dispatch", truck)) == set(keys) - {keys[45], keys[-1]}
