"""The propagation record of a notified sync: every push of it counted once, wherever and however often it runs,
and the run measured by the push that finishes last, from the notification's arrival to the last write.

Real stores: SQLite, and Azure Table Storage (Azurite) where two workers update the same document at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.service import propagation
from sync_core.service.propagation import PropagationStats, push_finished, track
from sync_core.service.push import push_part, push_targets
from sync_core.service.queue_messages import BadMessage, parse_push_message
from sync_core.service.queue_work import QueueFanOut
from sync_core.service.runtime import PushMessage
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.state import docs
from sync_core.state.base import StateStore
from sync_core.state.sqlite_store import SqliteStore
from sync_core.state.table_store import TABLES, TableStore
from tests.azurite import Azurite
from tests.crash_injection import Crash, CrashingStore
from tests.state.conftest import FakeClock, fresh_prefix, table_service

from .conftest import SMALL_CONFIG, MakeRuntime
from .test_crash_recovery import small_tenant

ARRIVED = "2026-03-01T12:00:00.000000Z"


def push(part: int, run_id: str = "r1", notified_at: str = ARRIVED) -> PushMessage:
    return PushMessage("Dispatch", (f"m{part}",), ("user:a",), "changes", run_id, notified_at=notified_at, part=part)


def at(second: float) -> str:
    return datetime.fromtimestamp(datetime.fromisoformat(ARRIVED).timestamp() + second, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "state.db") as opened:
        yield opened


def test_the_last_push_measures_to_the_latest_push_that_wrote(store: StateStore) -> None:
    track(store, "Dispatch", "r1", ARRIVED, 3, at(0.4))
    assert push_finished(store, push(2), True, at(3)) is None
    assert push_finished(store, push(2), True, at(9)) is None  # delivered again: counted once, its end kept
    assert push_finished(store, push(0), True, at(5)) is None
    assert push_finished(store, push(1), False, at(7)) == 5000  # the last push wrote nothing: 5 s, not 7
    assert docs.read(store, docs.Propagation, "Dispatch") == docs.Propagation({})
    assert propagation.stats(store, ["Dispatch", "Office"], datetime.fromisoformat(at(60))) == {
        "Dispatch": PropagationStats(1, 5000, 5000), "Office": PropagationStats(0, None, None)}


def test_a_notified_sync_whose_pushes_wrote_nothing_has_no_propagation_time(store: StateStore) -> None:
    track(store, "Dispatch", "r1", ARRIVED, 2, at(0.4))
    assert push_finished(store, push(0), False, at(1)) is None
    assert push_finished(store, push(1), False, at(2)) is None
    assert propagation.stats(store, ["Dispatch"], datetime.fromisoformat(at(60)))["Dispatch"].samples == 0


def test_pushes_of_two_runs_are_told_apart_and_an_unfinished_run_is_dropped_after_a_day(store: StateStore) -> None:
    track(store, "Dispatch", "r1", ARRIVED, 2, at(0.1))  # one of its pushes never finishes (poison)
    assert push_finished(store, push(0, "r1"), True, at(2)) is None
    track(store, "Dispatch", "r2", at(30), 1, at(30.1))
    assert push_finished(store, push(0, "r2", at(30)), True, at(31)) == 1000
    tracked = docs.read(store, docs.Propagation, "Dispatch")
    assert tracked is not None and set(tracked.runs) == {"r1"}
    track(store, "Dispatch", "r3", at(86401), 1, at(86401))
    tracked = docs.read(store, docs.Propagation, "Dispatch")
    assert tracked is not None and set(tracked.runs) == {"r3"}  # r1 waited a day: dropped
    assert push_finished(store, push(1, "r1"), True, at(86402)) is None  # too late to measure


def test_a_push_of_a_sync_no_notification_started_touches_nothing(store: StateStore) -> None:
    assert push_finished(store, PushMessage("Dispatch", ("m0",), None), True, at(1)) is None
    assert store.list_docs(docs.PROPAGATION) == [] and store.list_docs(docs.PROPAGATION_SAMPLES) == []


def test_p50_and_p95_are_measured_values_of_the_last_day(store: StateStore) -> None:
    for i, seconds in enumerate((4, 1, 3, 2, 20)):  # five runs, each measured as it finished
        run = f"r{i}"
        track(store, "Dispatch", run, at(i * 3600), 1, at(i * 3600))
        assert push_finished(store, PushMessage("Dispatch", ("m",), None, run_id=run, notified_at=at(i * 3600),
                                                part=0), True, at(i * 3600 + seconds)) == seconds * 1000
    now = datetime.fromisoformat(at(4 * 3600 + 60))
    assert propagation.stats(store, ["Dispatch"], now)["Dispatch"] == PropagationStats(5, 3000, 20000)
    a_day_on = datetime.fromisoformat(at(86400 + 2 * 3600))  # the first two measurements are over a day old
    assert propagation.stats(store, ["Dispatch"], a_day_on)["Dispatch"] == PropagationStats(3, 3000, 20000)
    assert propagation.percentile([], 50) is None and propagation.percentile([7], 95) == 7


class Interleaved:
    """A store whose next read of a propagation document lets another worker finish its push first: the write
    this worker then makes carries an ETag that no longer matches."""

    def __init__(self, store: StateStore, other: Any) -> None:
        self._store, self._other = store, other

    def get_doc(self, kind: str, key: str) -> tuple[dict[str, Any], str] | None:
        found = self._store.get_doc(kind, key)
        if kind == docs.PROPAGATION and self._other is not None:
            other, self._other = self._other, None
            other()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.azurite
def test_two_workers_finishing_pushes_at_once_never_lose_each_others_part(azurite: Azurite) -> None:
    prefix = fresh_prefix()
    one, two = (TableStore(table_service(azurite), prefix) for _ in range(2))
    try:
        track(one, "Dispatch", "r1", ARRIVED, 2, at(0.1))
        # Worker one reads the record, worker two finishes part 1 meanwhile, worker one's first write is refused.
        racing = Interleaved(one, lambda: push_finished(two, push(1), True, at(6)))
        measured = push_finished(racing, push(0), True, at(4))  # type: ignore[arg-type]
        assert measured == 6000  # both parts counted; the latest write is worker two's
        assert docs.read(one, docs.Propagation, "Dispatch") == docs.Propagation({})
        assert propagation.stats(one, ["Dispatch"], datetime.fromisoformat(at(60)))["Dispatch"].samples == 1
    finally:
        one.close()
        two.close()
        with table_service(azurite) as service:
            for name in TABLES:
                service.delete_table(prefix + name)


@pytest.mark.parametrize(("extra", "problem"), [
    ({"notified_at": ARRIVED}, "'notified_at' and 'part' must both be absent"),
    ({"notified_at": ARRIVED, "part": -1}, "'notified_at' and 'part'"),
    ({"notified_at": 5, "part": 0}, "'notified_at' and 'part'"),
])
def test_a_push_message_with_half_a_propagation_mark_is_refused(extra: dict[str, Any], problem: str) -> None:
    body = {**PushMessage("Dispatch", ("m0",), None).to_json(), **extra}
    with pytest.raises(BadMessage, match=problem):
        parse_push_message(json.dumps(body))
    assert parse_push_message(json.dumps(push(3).to_json())) == push(3)


def test_a_sync_that_crashed_after_taking_the_arrival_hands_it_on_through_its_outbox(
        graph_empty: GraphEmulator, make_runtime: MakeRuntime, tmp_path: Path) -> None:
    """The crashed sync had taken the webhook's note and stored its outbox; the rerun, with no note waiting,
    numbers its pushes with the crashed sync's arrival, and the last push measures from it."""
    g = graph_empty
    users = small_tenant(g)
    state = f"sqlite:{tmp_path / 'propagation.db'}"
    rt = make_runtime(g, SMALL_CONFIG, state=state)
    sync_profile(rt, "Small", InlineFanOut(rt))  # the first fill: no notification, nothing measured
    g.tenant.directory.update_user(users[0], mobilePhone="+33 6 99 99 99 99")
    propagation.note_arrival(rt.store, "Small", ARRIVED)  # as the webhook does

    crashing = make_runtime(g, SMALL_CONFIG, state=state)
    crashing.store = CrashingStore(crashing.store, 1, counting={"put_source_records"})  # type: ignore[assignment]
    with contextlib.suppress(Crash):
        sync_profile(crashing, "Small", QueueFanOut())
    assert docs.read(rt.store, docs.Notified, "Small") is None  # taken by the crashed sync...
    outbox = docs.read(rt.store, docs.Outbox, "Small")
    assert outbox is not None and outbox.notified_at == ARRIVED  # ...and kept in its outbox

    restarted = make_runtime(g, SMALL_CONFIG, state=state)
    clock = FakeClock(datetime.fromisoformat(at(2)).timestamp())
    restarted.clock = clock
    fanout = QueueFanOut()
    sync_profile(restarted, "Small", fanout)
    messages = [parse_push_message(m) for m in fanout.messages]
    assert [(m.notified_at, m.part) for m in messages] == [(ARRIVED, 0)]
    clock.advance(1.5)
    report = push_targets(restarted, messages[0])
    assert report.counts["updated"] == 3 and report.propagation_ms == 3500


def test_a_push_handed_on_in_parts_is_measured_once_at_the_end_of_its_last_part(
        graph_empty: GraphEmulator, make_runtime: MakeRuntime) -> None:
    """A message that stops at GALSYNC_WRITES_PER_MESSAGE and hands the rest on is not done: the follow-on
    carries its propagation mark, and only the part that ends the push measures."""
    g = graph_empty
    small_tenant(g)  # 6 users into the 3 phones of "Phones"
    rt = make_runtime(g, SMALL_CONFIG, GALSYNC_TARGETS_PER_MESSAGE="3", GALSYNC_WRITES_PER_MESSAGE="6")
    propagation.note_arrival(rt.store, "Small", ARRIVED)  # as the webhook does
    clock = FakeClock(datetime.fromisoformat(at(2)).timestamp())
    rt.clock = clock
    fanout = QueueFanOut()
    sync_profile(rt, "Small", fanout)
    [message] = [parse_push_message(m) for m in fanout.messages]
    assert (message.notified_at, message.part, len(message.mailboxes)) == (ARRIVED, 0, 3)
    measured: list[int | None] = []
    writes = 0
    part: PushMessage | None = message
    while part is not None:
        clock.advance(1)
        done = push_part(rt, part)
        measured.append(done.report.propagation_ms)
        writes += done.report.counts["created"]
        part = done.rest
        assert part is None or (part.notified_at, part.part) == (ARRIVED, 0)
    assert writes == 18 and measured == [None, None, 5000]  # 3 parts of 2 keys x 3 phones; ends at 5 s
    assert propagation.stats(rt.store, ["Small"], datetime.fromisoformat(at(60)))["Small"].samples == 1
