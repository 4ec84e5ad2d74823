"""Fixtures of the state store tests: every contract test runs once on SQLite and once on Table (Azurite).

Both stores are real: a SQLite file in a temp dir, and azure-data-tables against the session's Azurite with
a fresh table prefix per test. Lease expiry is driven by a fake clock instead of sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.core.pipeline import PipelineResponse
from azure.data.tables import TableServiceClient

from sync_core.state import StateStore
from sync_core.state.sqlite_store import SqliteStore
from sync_core.state.table_store import TABLES, TableStore
from tests.azurite import Azurite


class FakeClock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class StorageRequests:
    """HTTP requests a TableStore sent to Azurite (method, path), recorded by an azure-core response hook."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def hook(self, response: PipelineResponse) -> None:
        request = response.http_request
        self.seen.append((request.method, request.url.split("?", 1)[0].rsplit("/", 1)[-1]))

    def batches(self) -> int:
        return sum(1 for method, last in self.seen if method == "POST" and last == "$batch")

    def queries(self) -> int:
        return sum(1 for method, _ in self.seen if method == "GET")

    def clear(self) -> None:
        self.seen.clear()


@dataclass
class StoreUnderTest:
    """A store plus a way to open a second instance on the same state (another process, in effect)."""

    store: StateStore
    reopen: Callable[[], StateStore]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage_requests() -> StorageRequests:
    return StorageRequests()


def table_service(azurite: Azurite, requests: StorageRequests | None = None) -> TableServiceClient:
    hooks = {"raw_response_hook": requests.hook} if requests is not None else {}
    return TableServiceClient.from_connection_string(azurite.connection_string, **hooks)


def fresh_prefix() -> str:
    return "t" + uuid.uuid4().hex[:16]


@pytest.fixture
def table_store(request: pytest.FixtureRequest, clock: FakeClock,
                storage_requests: StorageRequests) -> Iterator[TableStore]:
    azurite: Azurite = request.getfixturevalue("azurite")
    prefix = fresh_prefix()
    store = TableStore(table_service(azurite, storage_requests), prefix, clock=clock)
    storage_requests.clear()
    yield store
    store.close()
    with table_service(azurite) as service:
        for name in TABLES:
            service.delete_table(prefix + name)


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "state.db", clock=clock)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("table", marks=pytest.mark.azurite)])
def subject(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[StoreUnderTest]:
    opened: list[StateStore] = []
    if request.param == "sqlite":
        store: StateStore = request.getfixturevalue("sqlite_store")

        def reopen() -> StateStore:
            opened.append(SqliteStore(tmp_path / "state.db", clock=clock))
            return opened[-1]
    else:
        table: TableStore = request.getfixturevalue("table_store")
        azurite: Azurite = request.getfixturevalue("azurite")
        store = table

        def reopen() -> StateStore:
            opened.append(TableStore(table_service(azurite), table.prefix, clock=clock))
            return opened[-1]

    yield StoreUnderTest(store, reopen)
    for other in opened:
        other.close()


@pytest.fixture
def store(subject: StoreUnderTest) -> StateStore:
    return subject.store
