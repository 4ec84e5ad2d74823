"""The admin's first hour: a shell with nothing set, a stopped emulator, a misspelt variable, settings from
local.settings.json. Each problem is told with what is wrong, what to do, and the exit code it deserves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph_emulator import GraphEmulator
from sync_core.cli.app import app
from sync_core.settings import SETTING_NAMES

from .conftest import Cli, MakeCli

NOTHING_SET: dict[str, str | None] = {**dict.fromkeys(SETTING_NAMES, None), "IDENTITY_ENDPOINT": None,
                                      "MSI_ENDPOINT": None, "COLUMNS": "200"}


def bare(*args: str, **env: str) -> tuple[int, str, str]:
    """`galsync ARGS` in a shell where no galsync setting is set."""
    result = CliRunner().invoke(app, list(args), env={**NOTHING_SET, **env}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [("sync", "--dry-run"), ("doctor",)])
def test_no_credentials_names_the_settings_and_the_emulator(
        command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = bare(*command)
    assert code == 2 and stdout == ""
    assert "no Graph credentials configured" in stderr
    for name in ("GALSYNC_TENANT_ID", "GALSYNC_CLIENT_ID", "GALSYNC_CLIENT_SECRET", "GALSYNC_AUTH_MODE"):
        assert name in stderr
    assert "galsync emulator" in stderr and "managed identity token failed" not in stderr
    assert "galsync doctor" not in stderr  # no advice to run the command that fails the same way
    assert not list(tmp_path.iterdir())  # no state file for a command that could not start


def test_a_stopped_emulator_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "galsync.toml").write_text('[[profile]]\nname = "P"\n', encoding="utf-8")
    with GraphEmulator.start(scenario=None) as g:
        settings = g.galsync_settings()
    code, stdout, stderr = bare("sync", "--json", **settings)
    assert code == 2
    error = json.loads(stdout)["error"]
    assert error["message"] == (f"Graph at {settings['GALSYNC_GRAPH_BASE_URL']} (GALSYNC_GRAPH_BASE_URL) cannot be "
                                "reached (connection refused); is the emulator running?")
    assert 'eval "$(galsync emulator --env)"' in error["details"][0]
    assert "GALSYNC_GRAPH_CA_BUNDLE" not in stderr


def test_a_missing_profiles_file_says_how_to_get_one(cli: Cli, tmp_path: Path) -> None:
    result = cli("sync", GALSYNC_CONFIG_PATH=str(tmp_path / "nowhere.toml"))
    assert result.exit_code == 2
    assert f"no profiles file at {tmp_path / 'nowhere.toml'}" in result.stderr
    assert "copy galsync.example.toml to galsync.toml" in result.stderr


def test_a_misspelt_variable_is_warned_about_with_the_name_it_meant(cli: Cli) -> None:
    result = cli("sync", "--dry-run", GALSYNC_GRAPH_BASEURL="https://graph.example/v1.0")
    assert result.exit_code == 0, result.stderr
    assert ("warning: GALSYNC_GRAPH_BASEURL (environment) is not a galsync setting and is ignored; did you mean "
            "GALSYNC_GRAPH_BASE_URL?") in result.stderr
    assert result.stderr.count("GALSYNC_GRAPH_BASEURL") == 1  # once per run


def test_settings_shows_each_value_with_its_origin_and_masks_secrets(
        graph: GraphEmulator, make_cli: MakeCli, tmp_path: Path) -> None:
    cli = make_cli(graph)
    secret = cli.env.pop("GALSYNC_CLIENT_SECRET")
    tenant = cli.env.pop("GALSYNC_TENANT_ID")
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python", "GALSYNC_TENANT_ID": tenant, "GALSYNC_CLIENT_SECRET": secret,
        "GALSYNC_LOG_LEVEL": "DEBUG", "GALSYNC_TABLES_URL": "https://x"}}), encoding="utf-8")
    data = cli.json("--state", "sqlite:elsewhere.db", "settings", GALSYNC_LOG_LEVEL="WARNING")
    rows = {r["name"]: r for r in data["settings"]}
    assert (rows["GALSYNC_TENANT_ID"]["value"], rows["GALSYNC_TENANT_ID"]["origin"]) == (tenant, "local.settings.json")
    assert (rows["GALSYNC_CLIENT_SECRET"]["value"], rows["GALSYNC_CLIENT_SECRET"]["origin"]) == (
        "(set)", "local.settings.json")
    assert (rows["GALSYNC_LOG_LEVEL"]["value"], rows["GALSYNC_LOG_LEVEL"]["origin"]) == ("WARNING", "environment")
    assert (rows["GALSYNC_STATE"]["value"], rows["GALSYNC_STATE"]["origin"]) == (
        "sqlite:elsewhere.db", "command line (--state)")
    assert (rows["GALSYNC_TABLE_PREFIX"]["value"], rows["GALSYNC_TABLE_PREFIX"]["origin"]) == ("galsync", "default")
    assert data["ignored"] == [{"name": "GALSYNC_TABLES_URL", "origin": "local.settings.json",
                                "did_you_mean": "GALSYNC_TABLES_URI"}]
    # The file's settings are the ones galsync runs with: the emulator accepts the tenant and secret from it.
    assert cli.json("sync", "--dry-run")["ok"] is True
    people = cli("settings", "--state", "sqlite:elsewhere.db")  # a global option after the command
    assert people.exit_code == 0 and secret not in people.output
    assert "local.settings.json" in people.stdout and "command line (--state)" in people.stdout


def test_settings_names_a_value_it_cannot_use(cli: Cli) -> None:
    result = cli("settings", GALSYNC_AUTH_MODE="password")
    assert result.exit_code == 2
    assert "GALSYNC_AUTH_MODE is 'password'; expected managed_identity, client_secret or certificate" in result.stdout


def test_a_broken_local_settings_file_is_named(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text("{not json", encoding="utf-8")
    result = cli("sync")
    assert result.exit_code == 2
    assert "local.settings.json cannot be read as JSON" in result.stderr


def test_status_never_creates_a_state_file_and_sync_says_where_it_made_one(
        cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "scratch" / "galsync-state.db"
    state.parent.mkdir()
    result = cli("--state", f"sqlite:{state}", "status")
    assert result.exit_code == 1 and f"no state file at {state}" in result.stderr
    assert not state.exists()
    made = cli("sync", "--dry-run", "--state", f"sqlite:{state}")
    assert made.exit_code == 0
    assert f"created the state file {state}" in made.stderr
    again = cli("sync", "--dry-run", "--state", f"sqlite:{state}")
    assert "created the state file" not in again.stderr
