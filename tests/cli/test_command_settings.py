"""Each command's `--help` ends with the settings it reads, by part, with every setting of those parts named;
every command of `galsync` has that line, including one added later (found by walking the command tree)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from sync_core.cli.app import app
from sync_core.cli.command_settings import READS
from sync_core.settings import GRAPH, PROFILES, SETTING_NAMES, SPECS, STATE, WEBHOOK

SETTING = re.compile(r"\bGALSYNC_[A-Z_]+\b")


def _commands(group: TyperGroup, words: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*words, name))
        else:
            yield (*words, name)


EVERY_COMMAND = sorted(_commands(typer.main.get_command(app)))  # type: ignore[arg-type]


def _settings_read(*command: str) -> tuple[str, set[str]]:
    """The help's closing section, and the setting names it lists."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    section = result.stdout.split("Settings read", 1)[1]
    return section, set(SETTING.findall(section))


def _part(part: str) -> set[str]:
    return {s.name for s in SPECS if s.part == part}


def test_every_command_of_galsync_has_a_line_in_the_table() -> None:
    assert {" ".join(c) for c in EVERY_COMMAND} == set(READS)


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_each_commands_help_names_every_setting_of_the_parts_it_reads(command: tuple[str, ...]) -> None:
    section, named = _settings_read(*command)
    reads = READS[" ".join(command)]
    assert named == set().union(*(_part(p) for p in reads.parts)), section
    for part in reads.parts:
        assert re.search(rf"^\s*{re.escape(part)}(, with --\w+ only)?: GALSYNC_", section, re.MULTILINE), section
    if not reads.parts:
        assert section.lstrip(": ").startswith("none"), section


def test_what_the_lines_say_for_a_few_commands() -> None:
    """The parts, as an admin reads them: status needs no Graph, ensure needs the webhook, config validate reads
    Graph only when asked to look names up online, and `settings` shows every one."""
    assert _settings_read("status")[1] == _part(PROFILES) | _part(STATE)
    assert _part(WEBHOOK) <= _settings_read("subscriptions", "ensure")[1]
    assert "Graph, with --online only: GALSYNC_TENANT_ID" in _settings_read("config", "validate")[0]
    assert _part(GRAPH) & _settings_read("sync")[1] == _part(GRAPH)
    assert _settings_read("settings")[1] == SETTING_NAMES
    assert "none (" in _settings_read("demo")[0]
