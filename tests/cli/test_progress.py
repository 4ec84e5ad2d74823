"""Progress as a person sees it: under a pseudo-terminal the sync's line counts mailboxes and contacts written
as they grow; piped, the same run prints plain lines (no redraws, no escape codes).

Two shapes of first fill: a profile with two sources fans out push messages (two mailboxes each here) after
the read; a profile with one source fills its new targets during the read, here in one push of several
`$batch` waves, whose contacts must show wave by wave rather than jump from nothing to everything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from graph_emulator import GraphEmulator

GALSYNC = [sys.executable, "-m", "sync_core"]
NORTH_PHONES = """
[[profile]]
name = "North phones"
folder = "Drivers"
[[profile.source]]
type = "users"
[[profile.source]]
type = "org_contacts"
[profile.users]
in_groups = ["Drivers"]
[profile.targets]
groups = ["Drivers North"]
[profile.photos]
enabled = false
"""
COUNTS = re.compile(r"(\d+)/(\d+|\?) mailboxes, ([\d,]+)/([\d,]+|\?) contacts written")
EVERYONE_TO_TARGETS = """
[[profile]]
name = "Everyone"
folder = "Colleagues"
[[profile.source]]
type = "users"
[profile.targets]
groups = ["Targets"]
[profile.photos]
enabled = false
"""


@pytest.fixture
def slow_graph() -> Iterator[GraphEmulator]:
    """Each Graph request takes a little time, as real Graph's do, so the progress has something to show."""
    with GraphEmulator.start(scenario="logistics", latency_ms=5) as g:
        yield g


def _env(g: GraphEmulator, tmp_path: Path, state: str, profiles: str = NORTH_PHONES) -> dict[str, str]:
    config = tmp_path / "galsync.toml"
    config.write_text(profiles, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALSYNC_")}
    return {**env, **g.galsync_settings(), "GALSYNC_CONFIG_PATH": str(config),
            "GALSYNC_STATE": f"sqlite:{tmp_path / state}", "GALSYNC_TARGETS_PER_MESSAGE": "2", "TERM": "xterm"}


def _sync_on_a_terminal(env: dict[str, str], cwd: Path) -> tuple[str, list[tuple[int, str, int, str]]]:
    """`galsync sync` under a pseudo-terminal: what it drew, and each (mailboxes done, of, contacts written,
    of planned) the line showed, in order."""
    child = pexpect.spawn(GALSYNC[0], [*GALSYNC[1:], "sync"], cwd=str(cwd), env=env, dimensions=(50, 200),
                          encoding="utf-8", timeout=240)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before, [(int(done), total, int(written.replace(",", "")), planned)
                          for done, total, written, planned in COUNTS.findall(child.before)]


def test_a_terminal_sees_counts_that_grow(slow_graph: GraphEmulator, tmp_path: Path) -> None:
    drawn, shown = _sync_on_a_terminal(_env(slow_graph, tmp_path, "a.db"), tmp_path)
    written = [w for _d, _t, w, _p in shown]
    assert len(set(written)) >= 3, shown  # the line was redrawn with new counts, not once at the end
    assert written == sorted(written)  # counts only grow
    assert shown[-1] == (25, "25", 25 * 105, "2,625")  # every North phone: every driver and the 5 suppliers
    assert "0/?" not in drawn.splitlines()[-1]


def test_a_fill_in_one_push_moves_wave_by_wave(tmp_path: Path) -> None:
    """One source, 200 users in one delta page: the early fill writes them to the 3 new targets in one push of
    four waves (60, 60, 60 and 20 contacts per mailbox). The line shows each wave's contacts as it lands, of
    the 600 planned, with a rate and the time left, while no mailbox is in step yet."""
    with GraphEmulator.start(scenario="synthetic", users=200, targets=3, latency_ms=5) as g:
        g.tenant.directory.delta_page_size = 200
        drawn, shown = _sync_on_a_terminal(_env(g, tmp_path, "c.db", EVERYONE_TO_TARGETS), tmp_path)
    written = [w for _d, _t, w, _p in shown]
    assert written == sorted(written)
    during = sorted({w for w in written if 0 < w < 600})
    steps = [after - before for before, after in zip([0, *during], [*during, 600], strict=True)]
    # Each wave as it lands, not one jump from 0 to 600; two are out at once, so the last two may land in
    # either order (180 then 60, or 60 then 180).
    assert sorted(steps) == [60, 180, 180, 180], shown
    assert all(planned == "600" and done == 0 for done, _t, w, planned in shown if 0 < w < 600), shown
    assert re.search(r"/600 contacts written, \d+/s, \d+:\d\d:\d\d left", drawn), drawn
    assert shown[-1] == (3, "3", 600, "600")


def test_piped_output_stays_plain(slow_graph: GraphEmulator, tmp_path: Path) -> None:
    run = subprocess.run([*GALSYNC, "sync"], cwd=tmp_path, env=_env(slow_graph, tmp_path, "b.db"),
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert "\x1b[" not in run.stdout and "\r" not in run.stdout  # no cursor movement, no colours
    lines = run.stdout.splitlines()
    assert "North phones: mailboxes in step ..." in lines
    assert any(re.fullmatch(r"North phones: mailboxes in step: 25/25 mailboxes, 2625 contacts written in [\d.]+ s",
                            line) for line in lines), lines
