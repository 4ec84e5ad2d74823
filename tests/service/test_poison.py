"""Poison records and failure notes in the state store: a damaged one never hides the others or loses a message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_core.service.poison import list_poison, note_failure, record_from_poison_queue, record_poison
from sync_core.state.sqlite_store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(str(tmp_path / "state.db")) as opened:
        yield opened


def test_a_damaged_poison_record_is_listed_with_what_is_wrong_beside_the_others(store: SqliteStore) -> None:
    kept = record_poison(store, "sync-source", "m1", '{"type": "sync", "profile": "Dispatch"}', "BadMessage: x", 5)
    store.put_doc("poison", "2000-01-01T00:00:00.000000Z|sync-source|m0",
                  {"queue": "sync-source", "dequeue_count": "5"})
    [damaged, listed] = list_poison(store)
    assert listed == kept and listed.profile == "Dispatch"
    assert damaged.key.startswith("2000-01-01") and damaged.recorded_at == "2000-01-01T00:00:00.000000Z"
    assert damaged.reason == ("stored poison document '2000-01-01T00:00:00.000000Z|sync-source|m0' is malformed: "
                              "'dequeue_count' must be an integer, got str")


def test_a_message_whose_failure_note_is_damaged_is_still_recorded_and_the_note_dropped(store: SqliteStore) -> None:
    body = '{"type": "push", "profile": "Dispatch", "mailboxes": ["m"], "keys": null}'
    note_failure(store, "push-targets", body, RuntimeError("first"))
    note_failure(store, "push-targets", body, RuntimeError("second"))
    [(digest, note)] = store.list_docs("queue-failure")
    assert note == {"queue": "push-targets", "reason": "RuntimeError: second", "tries": 2}
    store.put_doc("queue-failure", digest, {"queue": "push-targets", "reason": ["second"], "tries": 2})
    record = record_from_poison_queue(store, "push-targets-poison", "m9", body)
    assert record.reason == "failed on every try (no reason was recorded)" and record.dequeue_count == 0
    assert store.list_docs("queue-failure") == []
    assert list_poison(store) == [record]
