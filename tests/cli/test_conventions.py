"""Conventions admins know from az, azd and kubectl: --version, -h, type words, examples in every command's help,
global options after the command name, --verbose / --quiet, completion, profile names ignoring case."""

from __future__ import annotations

import json
import re
from importlib.metadata import version

import pytest
import typer.main

from sync_core.cli.app import app

from .conftest import Cli

COMMANDS = [("sync",), ("reconcile",), ("doctor",), ("explain",), ("status",), ("settings",), ("emulator",),
            ("functions",), ("demo",), ("targets",), ("config", "validate"), ("subscriptions", "list"),
            ("subscriptions", "ensure"), ("subscriptions", "delete")]


def test_version_and_short_help(cli: Cli) -> None:
    for flag in ("--version", "-V"):
        result = cli(flag)
        assert result.exit_code == 0 and result.stdout.strip() == f"galsync {version('galsync')}"
    assert cli("-h").exit_code == 0 and "Usage: galsync" in cli("-h").stdout
    assert "Usage: galsync sync" in cli("sync", "-h").stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_command_has_examples_and_type_words(cli: Cli, command: tuple[str, ...]) -> None:
    text = cli(*command, "--help").stdout
    assert "Examples:" in text and f"galsync {command[0]}" in text.split("Examples:", 1)[1]
    assert not re.search(r"<(bool|int|str|list\[str\]|int range)>", text), text  # no Python annotations
    assert "--config" in text and "--json" in text  # the global options are accepted here too


def test_option_types_read_as_words(cli: Cli) -> None:
    status = cli("status", "--help").stdout
    assert re.search(r"--limit\s+INTEGER", status)
    sync = cli("sync", "--help").stdout
    assert re.search(r"--profile\s+-p\s+TEXT", sync) and re.search(r"--dry-run\s+Read and plan", sync)


def test_shell_completion_is_offered() -> None:
    names = {p.name for p in typer.main.get_command(app).params}
    assert {"install_completion", "show_completion"} <= names


def test_global_options_after_the_command(cli: Cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other.db"
    data = cli.json("sync", "--dry-run", "--state", f"sqlite:{other}")
    assert data["ok"] is True and other.exists()
    result = cli("sync", "--dry-run", "--config", str(tmp_path / "missing.toml"), "--json")
    assert result.exit_code == 2 and "no profiles file at" in json.loads(result.stdout)["error"]["message"]
    debug = cli("sync", "--dry-run", "--debug")
    assert debug.exit_code == 0 and "GET" in debug.stderr  # --debug logs every Graph request


def test_verbose_and_quiet(cli: Cli) -> None:
    assert cli("--verbose", "--quiet", "status").exit_code == 2
    quiet = cli("sync", "--dry-run", "--quiet", "--state", "sqlite:quiet.db")
    assert quiet.exit_code == 0 and "created the state file" not in quiet.stderr
    assert "planning" not in quiet.stdout  # no progress line


def test_profile_names_ignore_case_and_a_wrong_one_is_bad_usage(cli: Cli) -> None:
    data = cli.json("sync", "--dry-run", "--profile", "DISPATCH")
    assert [p["profile"] for p in data["profiles"]] == ["Dispatch"]
    result = cli("sync", "--profile", "Drivers")
    assert result.exit_code == 2
    assert '--profile: no profile named "Drivers"' in result.stderr
    assert 'its profiles are: "Dispatch"' in result.stderr
    assert "configuration has" not in result.stderr  # the file is not blamed
