"""Progress as a person sees it: under a pseudo-terminal the sync's line counts mailboxes and contacts written
as they grow; piped, the same run prints plain lines (no redraws, no escape codes).

The profile has two sources, so its first fill fans out push messages (two mailboxes each here) instead of
filling every new target during the read; each finished push moves the counts on."""

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
COUNTS = re.compile(r"(\d+)/(\d+|\?) mailboxes, ([\d,]+) contacts written")


@pytest.fixture
def slow_graph() -> Iterator[GraphEmulator]:
    """Each Graph request takes a little time, as real Graph's do, so the progress has something to show."""
    with GraphEmulator.start(scenario="logistics", latency_ms=5) as g:
        yield g


def _env(g: GraphEmulator, tmp_path: Path, state: str) -> dict[str, str]:
    config = tmp_path / "galsync.toml"
    config.write_text(NORTH_PHONES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALSYNC_")}
    return {**env, **g.galsync_settings(), "GALSYNC_CONFIG_PATH": str(config),
            "GALSYNC_STATE": f"sqlite:{tmp_path / state}", "GALSYNC_TARGETS_PER_MESSAGE": "2", "TERM": "xterm"}


def test_a_terminal_sees_counts_that_grow(slow_graph: GraphEmulator, tmp_path: Path) -> None:
    child = pexpect.spawn(GALSYNC[0], [*GALSYNC[1:], "sync"], cwd=str(tmp_path), env=_env(slow_graph, tmp_path, "a.db"),
                          dimensions=(50, 200), encoding="utf-8", timeout=240)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    shown = [(int(done), total, int(written.replace(",", ""))) for done, total, written in COUNTS.findall(child.before)]
    written = [w for _d, _t, w in shown]
    assert len(set(written)) >= 3, shown  # the line was redrawn with new counts, not once at the end
    assert written == sorted(written)  # counts only grow
    assert shown[-1] == (25, "25", 25 * 105)  # every North phone: every driver and the 5 suppliers
    assert "0/?" not in child.before.splitlines()[-1]


def test_piped_output_stays_plain(slow_graph: GraphEmulator, tmp_path: Path) -> None:
    run = subprocess.run([*GALSYNC, "sync"], cwd=tmp_path, env=_env(slow_graph, tmp_path, "b.db"),
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert "\x1b[" not in run.stdout and "\r" not in run.stdout  # no cursor movement, no colours
    lines = run.stdout.splitlines()
    assert "North phones: mailboxes in step ..." in lines
    assert any(re.fullmatch(r"North phones: mailboxes in step: 25/25 mailboxes, 2625 contacts written in [\d.]+ s",
                            line) for line in lines), lines
