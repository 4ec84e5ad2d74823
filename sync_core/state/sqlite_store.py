"""The embedded state store: one SQLite file, the command line's default.

WAL mode lets readers go on while one writer commits; every thread gets its own connection, and every
write runs in `BEGIN IMMEDIATE`, which also makes lease decisions atomic across threads and processes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync_core.core.records import Run, SourceRecord, Target, TargetRecord
from sync_core.state import rows
from sync_core.state.base import (
    DEFAULT_CLOCK,
    Clock,
    ConcurrencyError,
    Lease,
    StateError,
    StateStore,
    StateValueError,
)
from sync_core.state.keys import check as check_key
from sync_core.state.keys import check_each
from sync_core.state.payload import from_json
from sync_core.state.rows import Row, chunks

log = logging.getLogger("galsync.state.sqlite")

SCHEMA_VERSION = 1
CHUNK = 1000  # rows per write transaction and per read page
BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS delta_links (
    profile TEXT NOT NULL, source TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (profile, source));
CREATE TABLE IF NOT EXISTS source_records (
    profile TEXT NOT NULL, source_key TEXT NOT NULL, fingerprint TEXT NOT NULL, payload TEXT NOT NULL,
    photo_etag TEXT, PRIMARY KEY (profile, source_key));
CREATE TABLE IF NOT EXISTS target_records (
    profile TEXT NOT NULL, mailbox TEXT NOT NULL, source_key TEXT NOT NULL, contact_id TEXT,
    fingerprint TEXT NOT NULL, change_key TEXT, written_at TEXT NOT NULL, photo_etag TEXT,
    deleted_on_device INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (profile, mailbox, source_key));
CREATE TABLE IF NOT EXISTS targets (
    profile TEXT NOT NULL, mailbox TEXT NOT NULL, address TEXT NOT NULL, folder_id TEXT, purpose TEXT,
    active INTEGER NOT NULL, PRIMARY KEY (profile, mailbox));
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending (name TEXT PRIMARY KEY, raised_at REAL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, profile TEXT NOT NULL, kind TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, outcome TEXT NOT NULL, counts TEXT NOT NULL, error TEXT, order_key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_order ON runs (order_key);
CREATE INDEX IF NOT EXISTS runs_by_profile ON runs (profile, order_key);
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, etag TEXT NOT NULL, PRIMARY KEY (kind, key));
"""

# Every table of the schema but `meta` (which says what the file is, not what galsync remembers).
_TABLES = ("delta_links", "source_records", "target_records", "targets", "leases", "pending", "runs", "docs")


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


def _insert(table: str, built: Sequence[Row], **scope: str) -> tuple[str, list[tuple[Any, ...]]]:
    """INSERT OR REPLACE of rows built by sync_core.state.rows (all with the same columns), plus `scope`.

    Columns come from the rows themselves, so a field added in rows.py reaches SQLite (or fails loudly on a
    missing column) instead of being dropped silently.
    """
    columns = [*scope, *built[0]]
    sql = (f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "  # noqa: S608 (names are ours)
           f"VALUES ({', '.join('?' for _ in columns)})")
    return sql, [(*scope.values(), *row.values()) for row in built]


_TARGET_RECORD_COLUMNS = ("profile", *rows.TARGET_RECORD_COLUMNS)
_TARGET_RECORD_INSERT = (
    f"INSERT OR REPLACE INTO target_records ({', '.join(_TARGET_RECORD_COLUMNS)}) "  # noqa: S608 (names are ours)
    f"VALUES ({', '.join('?' for _ in _TARGET_RECORD_COLUMNS)})"
)


class SqliteStore(StateStore):
    """State in one SQLite file; safe for several threads of one process and for several processes."""

    def __init__(self, path: str | Path, *, clock: Clock = DEFAULT_CLOCK) -> None:
        text = str(path)
        if not text or text == ":memory:" or text.startswith("file:"):
            raise StateValueError(f"SQLite state needs a file path, got {text!r}")
        self.path = Path(text)
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create_schema()
        except (OSError, sqlite3.Error) as error:
            self.close()
            raise StateError(f"cannot open SQLite state {self.path}: {error}") from error

    # --- connections and transactions

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StateError(f"SQLite state {self.path} is closed")
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = _dict_row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock at once so read-then-write decisions are atomic."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StateError(f"SQLite state {self.path}: cannot start a write: {error}") from error
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StateError(f"SQLite state {self.path}: write failed: {error}") from error
            raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StateError(f"SQLite state {self.path}: read failed: {error}") from error

    def _create_schema(self) -> None:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            pending_columns = {column["name"] for column in conn.execute("PRAGMA table_info(pending)")}
            if "raised_at" not in pending_columns:  # a file made before flags knew their age: NULL is long ago
                conn.execute("ALTER TABLE pending ADD COLUMN raised_at REAL")
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
                log.info("created SQLite state schema version %d", SCHEMA_VERSION)
            elif int(row["value"]) > SCHEMA_VERSION:
                raise StateError(
                    f"SQLite state {self.path} has schema version {row['value']}, newer than this galsync "
                    f"({SCHEMA_VERSION}); upgrade galsync"
                )

    def clear(self) -> None:
        with self._write() as conn:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 (names are ours)
        log.info("emptied SQLite state %s", self.path)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # --- delta links

    def get_delta_link(self, profile: str, source: str) -> str | None:
        found = self._read("SELECT link FROM delta_links WHERE profile = ? AND source = ?",
                           (check_key("profile", profile), check_key("source", source)))
        return self.checked_link(profile, source, found[0]["link"] if found else None)

    def set_delta_link(self, profile: str, source: str, link: str | None) -> None:
        params = (check_key("profile", profile), check_key("source", source))
        with self._write() as conn:
            if link is None:
                conn.execute("DELETE FROM delta_links WHERE profile = ? AND source = ?", params)
            else:
                conn.execute("INSERT OR REPLACE INTO delta_links (profile, source, link) VALUES (?, ?, ?)",
                             (*params, rows.text(f"delta link of {profile}/{source}", link)))

    # --- source records

    def iter_source_records(self, profile: str, after: str | None = None) -> Iterator[SourceRecord]:
        check_key("profile", profile)
        after = "" if after is None else check_key("source key", after)
        while True:
            page = self._read(
                "SELECT * FROM source_records WHERE profile = ? AND source_key > ? "
                "ORDER BY source_key LIMIT ?", (profile, after, CHUNK))
            for row in page:
                yield rows.source_record(row)
            if len(page) < CHUNK:
                return
            after = page[-1]["source_key"]

    def get_source_records(self, profile: str, keys: Iterable[str] | None = None) -> dict[str, SourceRecord]:
        if keys is None:
            return {r.source_key: r for r in self.iter_source_records(profile)}
        check_key("profile", profile)
        wanted = list(check_each("source key", keys))
        found: dict[str, SourceRecord] = {}
        for chunk in chunks(dict.fromkeys(wanted), CHUNK // 2):
            marks = ", ".join("?" for _ in chunk)
            for row in self._read(
                f"SELECT * FROM source_records WHERE profile = ? AND source_key IN ({marks})",  # noqa: S608
                (profile, *chunk),
            ):
                found[row["source_key"]] = rows.source_record(row)
        return found

    def put_source_records(self, profile: str, records: Iterable[SourceRecord]) -> None:
        check_key("profile", profile)
        for chunk in chunks(records, CHUNK):
            sql, values = _insert("source_records", [rows.source_row(r) for r in chunk], profile=profile)
            with self._write() as conn:
                conn.executemany(sql, values)

    def delete_source_records(self, profile: str, keys: Iterable[str]) -> None:
        check_key("profile", profile)
        for chunk in chunks(check_each("source key", keys), CHUNK):
            values = [(profile, k) for k in chunk]
            with self._write() as conn:
                conn.executemany("DELETE FROM source_records WHERE profile = ? AND source_key = ?", values)

    # --- target records

    def get_target_records(self, profile: str, mailbox: str, keys: Iterable[str] | None = None
                           ) -> dict[str, TargetRecord]:
        check_key("profile", profile)
        check_key("target mailbox", mailbox)
        if keys is None:
            found = self._read("SELECT * FROM target_records WHERE profile = ? AND mailbox = ?", (profile, mailbox))
            return {row["source_key"]: rows.target_record(row) for row in found}
        out: dict[str, TargetRecord] = {}
        for chunk in chunks(dict.fromkeys(check_each("source key", keys)), CHUNK // 2):
            marks = ", ".join("?" for _ in chunk)
            for row in self._read(
                f"SELECT * FROM target_records WHERE profile = ? AND mailbox = ? AND source_key IN ({marks})",  # noqa: S608
                (profile, mailbox, *chunk),
            ):
                out[row["source_key"]] = rows.target_record(row)
        return out

    def iter_target_records(self, profile: str, mailbox: str, after: str | None = None, upto: str | None = None
                            ) -> Iterator[TargetRecord]:
        check_key("profile", profile)
        check_key("target mailbox", mailbox)
        after = "" if after is None else check_key("source key", after)
        if upto is not None:
            check_key("source key", upto)
        while True:
            page = self._read(
                "SELECT * FROM target_records WHERE profile = ? AND mailbox = ? AND source_key > ? "
                "AND (? IS NULL OR source_key <= ?) ORDER BY source_key LIMIT ?",
                (profile, mailbox, after, upto, upto, CHUNK))
            for row in page:
                yield rows.target_record(row)
            if len(page) < CHUNK:
                return
            after = page[-1]["source_key"]

    def put_target_records(self, profile: str, mailbox: str, records: Iterable[TargetRecord]) -> None:
        check_key("profile", profile)
        check_key("target mailbox", mailbox)
        # All checked before any write; built as tuples, not rows (a fill writes 100,000 of them).
        checked = [(profile, *rows.target_record_values(mailbox, r)) for r in records]
        for chunk in chunks(checked, CHUNK):
            with self._write() as conn:
                conn.executemany(_TARGET_RECORD_INSERT, chunk)

    def delete_target_records(self, profile: str, mailbox: str, source_keys: Iterable[str]) -> None:
        check_key("profile", profile)
        check_key("target mailbox", mailbox)
        for chunk in chunks(check_each("source key", source_keys), CHUNK):
            values = [(profile, mailbox, k) for k in chunk]
            with self._write() as conn:
                conn.executemany(
                    "DELETE FROM target_records WHERE profile = ? AND mailbox = ? AND source_key = ?", values)

    # --- targets

    def get_targets(self, profile: str) -> dict[str, Target]:
        found = self._read("SELECT * FROM targets WHERE profile = ?", (check_key("profile", profile),))
        return {row["mailbox"]: rows.target(row) for row in found}

    def put_target(self, profile: str, target: Target) -> None:
        sql, values = _insert("targets", [rows.target_row(target)], profile=check_key("profile", profile))
        with self._write() as conn:
            conn.execute(sql, values[0])

    def delete_target(self, profile: str, mailbox: str) -> None:
        params = (check_key("profile", profile), check_key("target mailbox", mailbox))
        with self._write() as conn:
            conn.execute("DELETE FROM targets WHERE profile = ? AND mailbox = ?", params)

    # --- leases and the pending flag

    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        check_key("lease name", name)
        check_key("lease owner", owner)
        rows.check_ttl(ttl_seconds)
        with self._write() as conn:
            now = self._clock()
            held = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
            if held is not None and held["owner"] != owner and held["expires_at"] > now:
                return False
            conn.execute("INSERT OR REPLACE INTO leases (name, owner, expires_at) VALUES (?, ?, ?)",
                         (name, owner, now + ttl_seconds))
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?",
                         (check_key("lease name", name), check_key("lease owner", owner)))

    def get_lease(self, name: str) -> Lease | None:
        found = self._read("SELECT name, owner, expires_at FROM leases WHERE name = ? AND expires_at > ?",
                           (check_key("lease name", name), self._clock()))
        return Lease(**found[0]) if found else None

    def list_leases(self) -> list[Lease]:
        found = self._read("SELECT name, owner, expires_at FROM leases WHERE expires_at > ? ORDER BY name",
                           (self._clock(),))
        return [Lease(**row) for row in found]

    def mark_pending(self, name: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO pending (name, raised_at) VALUES (?, ?)",
                         (check_key("lease name", name), self._clock()))

    def take_pending(self, name: str) -> bool:
        with self._write() as conn:
            taken = conn.execute("DELETE FROM pending WHERE name = ?", (check_key("lease name", name),))
            return taken.rowcount > 0

    def restart_pending(self, name: str, min_age: float) -> bool:
        with self._write() as conn:
            now = self._clock()
            restarted = conn.execute(
                "UPDATE pending SET raised_at = ? WHERE name = ? AND (raised_at IS NULL OR raised_at <= ?)",
                (now, check_key("lease name", name), now - min_age))
            return restarted.rowcount > 0

    def pending_age(self, name: str) -> float | None:
        found = self._read("SELECT raised_at FROM pending WHERE name = ?", (check_key("lease name", name),))
        return rows.flag_age(self._clock(), found[0]["raised_at"]) if found else None

    # --- run history

    def record_run(self, run: Run) -> None:
        sql, values = _insert("runs", [rows.run_row(run)])
        with self._write() as conn:
            conn.execute(sql, values[0])

    def recent_runs(self, profile: str | None = None, limit: int = 20) -> list[Run]:
        rows.check_limit(limit)
        if profile is None:
            found = self._read("SELECT * FROM runs ORDER BY order_key LIMIT ?", (limit,))
        else:
            found = self._read("SELECT * FROM runs WHERE profile = ? ORDER BY order_key LIMIT ?",
                               (check_key("profile", profile), limit))
        return [rows.run(row) for row in found]

    # --- documents

    def put_doc(self, kind: str, key: str, data: dict[str, Any], etag: str | None = None) -> str:
        check_key("document kind", kind)
        check_key("document key", key)
        text = rows.doc_data(f"document {kind}/{key}", data)
        new_etag = uuid.uuid4().hex
        with self._write() as conn:
            if etag is None:
                conn.execute("INSERT OR REPLACE INTO docs (kind, key, data, etag) VALUES (?, ?, ?, ?)",
                             (kind, key, text, new_etag))
            elif conn.execute("UPDATE docs SET data = ?, etag = ? WHERE kind = ? AND key = ? AND etag = ?",
                              (text, new_etag, kind, key, etag)).rowcount == 0:
                raise ConcurrencyError(f"document {kind}/{key} changed or was deleted since it was read")
        return new_etag

    def get_doc(self, kind: str, key: str) -> tuple[dict[str, Any], str] | None:
        found = self._read("SELECT data, etag FROM docs WHERE kind = ? AND key = ?",
                           (check_key("document kind", kind), check_key("document key", key)))
        if not found:
            return None
        return from_json(f"document {kind}/{key}", found[0]["data"]), found[0]["etag"]

    def list_docs(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        found = self._read("SELECT key, data FROM docs WHERE kind = ? ORDER BY key",
                           (check_key("document kind", kind),))
        return [(row["key"], from_json(f"document {kind}/{row['key']}", row["data"])) for row in found]

    def delete_doc(self, kind: str, key: str) -> None:
        params = (check_key("document kind", kind), check_key("document key", key))
        with self._write() as conn:
            conn.execute("DELETE FROM docs WHERE kind = ? AND key = ?", params)

