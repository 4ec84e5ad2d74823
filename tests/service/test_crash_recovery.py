"""A crash after every Graph write and every state write, in turn, then a rerun: no duplicate, nothing lost (I2, I3).

The "crash" is an exception raised right after the N-th write has happened (the write is applied, the process
never learns what came next), which is what a killed worker leaves behind. The rerun uses a fresh Runtime over
the same state file, as a restarted process would. Leases are not crash points here: a killed worker's lease
expires on its own, which tests/state covers; an exception releases it so the rerun can start at once.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.graph import GraphClient
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.state.base import StateStore

from .conftest import MakeRuntime

CONFIG = """
[[profile]]
name = "Small"
folder = "Directory"

[[profile.source]]
type = "users"

[profile.targets]
groups = ["Phones"]
"""

STATE_WRITES = {"put_source_records", "delete_source_records", "put_target_records", "delete_target_records",
                "put_target", "delete_target", "set_delta_link", "put_doc", "delete_doc", "record_run"}


class Crash(Exception):
    """The worker died here."""


class CrashingStore:
    """Forwards to a real store; raises Crash right after the `crash_at`-th state write was applied."""

    def __init__(self, inner: StateStore, crash_at: int | None) -> None:
        self._inner, self.crash_at, self.writes = inner, crash_at, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in STATE_WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if self.crash_at is not None and self.writes >= self.crash_at:
                raise Crash("the worker is dead: no more writes")
            if name in ("put_source_records", "put_target_records"):
                args = (*args[:-1], list(args[-1]))  # generators are consumed once, by the real store
            result = attr(*args, **kwargs)
            self.writes += 1
            if self.writes == self.crash_at:
                raise Crash(f"after state write {self.writes} ({name})")
            return result
        return write


class CrashingGraph:
    """Counts Graph writes ($batch inner requests and plain POST/PATCH/DELETE); dies after the `crash_at`-th."""

    def __init__(self, client: GraphClient, crash_at: int | None) -> None:
        self.client, self.crash_at, self.writes = client, crash_at, 0
        self._batch, self._request = client.batch, client.request
        client.batch = self.batch  # type: ignore[method-assign]
        client.request = self.request  # type: ignore[method-assign]

    def batch(self, requests: Any) -> Any:
        if self.crash_at is not None and self.writes >= self.crash_at:
            raise Crash("the worker is dead: no more requests")
        if self.crash_at is not None and self.writes + len(requests) >= self.crash_at:
            self._batch(list(requests)[: self.crash_at - self.writes])
            self.writes = self.crash_at
            raise Crash(f"after Graph write {self.crash_at}")
        self.writes += len(requests)
        return self._batch(requests)

    def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.crash_at is not None and self.writes >= self.crash_at:
            raise Crash("the worker is dead: no more requests")
        result = self._request(method, *args, **kwargs)
        if method.upper() != "GET":
            self.writes += 1
            if self.writes == self.crash_at:
                raise Crash(f"after Graph write {self.writes} ({method})")
        return result


def small_tenant(g: GraphEmulator) -> list[str]:
    names = ["Ana Costa", "Bo Li", "Chloé Martin", "Dev Patel", "Émile O'Brien", "Farah Haddad"]
    ids = [g.tenant.directory.add_user(displayName=n, givenName=n.split()[0], surname=n.split()[1],
                                       mailNickname=f"u{i}", mobilePhone=f"+33 6 00 00 00 0{i}")["id"]
           for i, n in enumerate(names)]
    g.tenant.directory.add_group("Phones", members=ids[:3])
    return ids


@pytest.fixture
def emulators() -> Iterator[Callable[[], GraphEmulator]]:
    started: list[Any] = []

    def start() -> GraphEmulator:
        cm = GraphEmulator.start(scenario=None)
        g = cm.__enter__()
        started.append(cm)
        small_tenant(g)
        return g
    yield start
    for cm in started:
        cm.__exit__(None, None, None)


def crashed_then_rerun(g: GraphEmulator, make_runtime: MakeRuntime, state: str, *, state_crash: int | None = None,
                       graph_crash: int | None = None) -> tuple[Runtime, CrashingStore, CrashingGraph]:
    rt = make_runtime(g, CONFIG, state=state)
    crashing_store = CrashingStore(rt.store, state_crash)
    rt.store = crashing_store  # type: ignore[assignment]
    crashing_graph = CrashingGraph(rt.client, graph_crash)
    with contextlib.suppress(Crash):
        sync_profile(rt, "Small", InlineFanOut(rt))
    restarted = make_runtime(g, CONFIG, state=state)
    report = sync_profile(restarted, "Small", InlineFanOut(restarted))
    assert report.outcome == "ok"
    return restarted, crashing_store, crashing_graph


def assert_converged(g: GraphEmulator, rt: Runtime) -> None:
    """Every target holds exactly one managed contact per source, in exactly one managed folder."""
    sources = sorted(rt.store.get_source_records("Small"))
    targets = rt.store.get_targets("Small")
    assert len(sources) == 6 and len(targets) == 3
    for mailbox, target in targets.items():
        folders = [f for f in g.tenant.mailboxes.folders(mailbox) if f["displayName"] == "Directory"]
        assert [f["id"] for f in folders] == [target.folder_id], f"duplicate folder in {mailbox}"
        tags = Counter(read_contact_tag(c).source_key  # type: ignore[union-attr]
                       for c in g.tenant.mailboxes.contacts(mailbox, target.folder_id))
        assert sorted(tags) == sources and set(tags.values()) == {1}, f"duplicates in {mailbox}: {tags}"


def test_a_crash_after_any_state_write_is_recovered_without_duplicates(
    emulators: Callable[[], GraphEmulator], make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    g = emulators()
    _, clean, _ = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / 'clean.db'}")
    assert clean.writes > 10
    for n in range(1, clean.writes + 1):
        g = emulators()
        rt, store, _ = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / f's{n}.db'}", state_crash=n)
        assert store.writes == n
        assert_converged(g, rt)


def test_a_crash_after_any_graph_write_is_recovered_without_duplicates(
    emulators: Callable[[], GraphEmulator], make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    g = emulators()
    _, _, clean = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / 'clean.db'}")
    assert clean.writes == 3 + 3 * 6  # three managed folders, six contacts in each
    for n in range(1, clean.writes + 1):
        g = emulators()
        rt, _, graph = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / f'g{n}.db'}", graph_crash=n)
        assert graph.writes == n
        assert_converged(g, rt)
