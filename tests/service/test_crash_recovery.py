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
from sync_core.service import source_reader
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.state.docs import DocumentError
from tests.crash_injection import Crash, CrashingGraph, CrashingStore

from .conftest import SMALL_CONFIG, MakeRuntime

CONFIG = SMALL_CONFIG
# A first fill writes to its new targets while the directory is read (early_fill.py): with pages of 2 users
# (and, for variety, no photos), crashes land between early writes, the rest of the read and the fan-out.
EARLY_FILL = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
RUNS = pytest.mark.parametrize("config", [CONFIG, EARLY_FILL], ids=["one-page", "pages-of-2"])


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
                       graph_crash: int | None = None, config: str = CONFIG
                       ) -> tuple[Runtime, CrashingStore, CrashingGraph]:
    if config == EARLY_FILL:
        g.tenant.directory.delta_page_size = 2
    rt = make_runtime(g, config, state=state)
    crashing_store = CrashingStore(rt.store, state_crash)
    rt.store = crashing_store  # type: ignore[assignment]
    crashing_graph = CrashingGraph(rt.client, graph_crash)
    with contextlib.suppress(Crash):
        sync_profile(rt, "Small", InlineFanOut(rt))
    restarted = make_runtime(g, config, state=state)
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


@RUNS
def test_a_crash_after_any_state_write_is_recovered_without_duplicates(
    emulators: Callable[[], GraphEmulator], make_runtime: MakeRuntime, tmp_path: Path, config: str
) -> None:
    g = emulators()
    _, clean, _ = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / 'clean.db'}", config=config)
    assert clean.writes > 10
    for n in range(1, clean.writes + 1):
        g = emulators()
        rt, store, _ = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / f's{n}.db'}", state_crash=n,
                                          config=config)
        # The early fill pushes the keys stored by the time it is free, so a run's number of state writes varies
        # a little: a run that ends before its n-th write did not crash, and must be complete all the same.
        assert store.writes == n if store.dead else store.writes < n
        assert_converged(g, rt)


@RUNS
def test_a_crash_after_any_graph_write_is_recovered_without_duplicates(
    emulators: Callable[[], GraphEmulator], make_runtime: MakeRuntime, tmp_path: Path, config: str
) -> None:
    g = emulators()
    _, _, clean = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / 'clean.db'}", config=config)
    # in $batch calls: three userPurpose reads, three folder look-ups, three managed folders, six contacts in each
    assert clean.calls == 3 + 3 + 3 + 3 * 6
    for n in range(1, clean.calls + 1):
        g = emulators()
        rt, _, graph = crashed_then_rerun(g, make_runtime, f"sqlite:{tmp_path / f'g{n}.db'}", graph_crash=n,
                                          config=config)
        assert graph.calls == n
        assert_converged(g, rt)


def test_a_crash_midway_through_a_chunked_read_loses_no_change(
    emulators: Callable[[], GraphEmulator], make_runtime: MakeRuntime, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Changes are stored a chunk at a time as they are read (flat memory); a crash after any state write of
    such a run, chunks already stored and the rest not, still brings every change to every phone on the rerun."""
    monkeypatch.setattr(source_reader, "CHUNK_ITEMS", 2)
    new_numbers = {n: f"+33 7 11 22 33 0{n}" for n in range(5)}

    def changed_run(state: str, crash: int | None) -> tuple[GraphEmulator, Runtime, CrashingStore]:
        g = emulators()
        first = make_runtime(g, CONFIG, state=state)
        assert sync_profile(first, "Small", InlineFanOut(first)).outcome == "ok"
        users = sorted(u["id"] for u in g.tenant.directory.users())
        for n, number in new_numbers.items():
            g.tenant.directory.update_user(users[n], mobilePhone=number)
        rt, store, _ = crashed_then_rerun(g, make_runtime, state, state_crash=crash)
        return g, rt, store

    _, _, clean = changed_run(f"sqlite:{tmp_path / 'clean.db'}", None)
    assert clean.writes > 5  # an outbox, the changed records chunk by chunk, the delta link, ...
    for n in range(1, clean.writes + 1):
        g, rt, store = changed_run(f"sqlite:{tmp_path / f'c{n}.db'}", n)
        assert store.writes == n
        assert_converged(g, rt)
        for mailbox, target in rt.store.get_targets("Small").items():
            phones = {p for c in g.tenant.mailboxes.contacts(mailbox, target.folder_id)
                      for p in [c.get("mobilePhone")] if p}
            assert set(new_numbers.values()) <= phones, f"crash after state write {n}: {mailbox} missed a change"


def test_a_damaged_outbox_stops_the_run_with_an_error_naming_it_and_writes_nothing(
    emulators: Callable[[], GraphEmulator], make_runtime: MakeRuntime
) -> None:
    """An outbox that cannot be read is not taken for "nothing left to push": the run fails at once, says which
    document is damaged, and records the failure; a later run, once it is fixed, converges."""
    g = emulators()
    rt = make_runtime(g, CONFIG)
    rt.store.put_doc("outbox", "Small", {"run_id": "unfinished", "keys": "user:1", "fill": [], "remove": []})
    with pytest.raises(DocumentError, match=r"stored outbox document 'Small' is malformed: 'keys' must be a list"):
        sync_profile(rt, "Small", InlineFanOut(rt))
    assert g.log.count(method="POST") == 0 and g.log.count(method="PATCH") == 0  # no folder, no contact
    [run] = rt.store.recent_runs("Small")
    assert run.outcome == "failed" and run.error is not None and "stored outbox document 'Small'" in run.error
    rt.store.delete_doc("outbox", "Small")
    assert sync_profile(rt, "Small", InlineFanOut(rt)).outcome == "ok"
    assert_converged(g, rt)
