"""SQLite specifics: the file's mode and schema version, threads sharing one store, unusable paths."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from sync_core.core.records import TargetRecord
from sync_core.state import StateError, StateValueError
from sync_core.state.sqlite_store import SCHEMA_VERSION, SqliteStore


def test_the_file_is_in_wal_mode_with_a_schema_version(sqlite_store: SqliteStore) -> None:
    with sqlite3.connect(sqlite_store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0] == "1"


def test_a_file_from_a_newer_galsync_is_refused(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "state.db").close()
    with sqlite3.connect(tmp_path / "state.db") as raw:
        raw.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION + 1),))

    with pytest.raises(StateError, match="schema version 2, newer than this galsync"):
        SqliteStore(tmp_path / "state.db")


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "a" / "b" / "state.db") as store:
        store.set_delta_link("Company", "users", "link")
    assert (tmp_path / "a" / "b" / "state.db").exists()


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_a_path_that_is_not_a_file_is_refused(path: str) -> None:
    with pytest.raises(StateValueError, match="needs a file path"):
        SqliteStore(path)


def test_a_path_that_cannot_be_opened_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StateError, match="cannot open SQLite state"):
        SqliteStore(tmp_path / "state.db")


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.close()
    with pytest.raises(StateError, match="closed"):
        store.get_targets("Company")


def test_threads_share_one_store(sqlite_store: SqliteStore) -> None:
    errors: list[BaseException] = []

    def fill(mailbox: str) -> None:
        try:
            for batch in range(4):
                sqlite_store.put_target_records("Company", mailbox, [
                    TargetRecord(mailbox, f"user:{batch}-{n}", f"c{n}", "fp", None, "2026-11-20T10:00:00Z")
                    for n in range(50)])
                sqlite_store.get_target_records("Company", mailbox)
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=fill, args=(f"mbx-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert all(len(sqlite_store.get_target_records("Company", f"mbx-{i}")) == 200 for i in range(8))


def test_a_pending_flag_from_a_file_made_before_flags_had_an_age_counts_as_stale(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as raw:  # the pending table as galsync wrote it before it kept raised_at
        raw.execute("CREATE TABLE pending (name TEXT PRIMARY KEY)")
        raw.execute("INSERT INTO pending (name) VALUES ('sync:Company')")

    with SqliteStore(path, clock=lambda: 1_800_000_000.0) as store:
        assert store.pending_age("sync:Company") == 1_800_000_000.0  # raised "at the epoch": long ago
        assert store.restart_pending("sync:Company", 60) is True
        assert store.pending_age("sync:Company") == 0
        store.mark_pending("sync:Dispatch")
        assert store.pending_age("sync:Dispatch") == 0
