"""Driving `galsync` as an admin would: typer's CliRunner with GALSYNC_* settings pointing at the emulator.

Each invocation gets a clean environment (every GALSYNC_* setting unset, then the test's values), a SQLite
state file of the test, and a configuration file; stdout and stderr are kept apart, so a test can check that
--json prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from graph_emulator import GraphEmulator
from sync_core.cli.app import app
from sync_core.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "galsync.example.toml"
TRUCKS = ("north", "south", "east", "west")

# The example's "Dispatch" profile: the drivers into the four shared truck mailboxes (400 contacts, fast).
TRUCK_ADDRESSES = ", ".join(f'"trucks.{t}@northwind.example"' for t in TRUCKS)
DISPATCH_CONFIG = f"""
[[profile]]
name = "Dispatch"
folder = "Dispatch"
[[profile.source]]
type = "users"
[profile.users]
in_groups = ["Drivers"]
[profile.targets]
mailboxes = [{TRUCK_ADDRESSES}]
[profile.photos]
enabled = false
"""


@dataclass
class Cli:
    """Runs `galsync ARGS` with this test's settings; `env` holds them (override per call with **env)."""

    g: GraphEmulator
    env: dict[str, str]
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, **env: str) -> Result:
        clean: dict[str, str | None] = {**dict.fromkeys(SETTING_NAMES, None), "COLUMNS": "200"}  # no wrapped cells
        return self.runner.invoke(app, list(args), env={**clean, **self.env, **env}, catch_exceptions=False)

    def json(self, *args: str, expect: int = 0, **env: str) -> dict[str, Any]:
        """Run with --json; stdout must be one JSON object and the exit code `expect`."""
        result = self(*args, "--json", **env)
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data


MakeCli = Callable[..., Cli]


@pytest.fixture
def make_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeCli:
    monkeypatch.chdir(tmp_path)  # galsync reads local.settings.json from the current folder: only the test's

    def make(g: GraphEmulator, config_text: str = DISPATCH_CONFIG, *, client_id: str | None = None,
             client_secret: str | None = None) -> Cli:
        config = tmp_path / "galsync.toml"
        config.write_text(config_text, encoding="utf-8")
        env = {**g.galsync_settings(), "GALSYNC_CONFIG_PATH": str(config),
               "GALSYNC_STATE": f"sqlite:{tmp_path / 'state.db'}", "GALSYNC_RETRY_MAX_SECONDS": "10"}
        if client_id is not None:
            env["GALSYNC_CLIENT_ID"] = client_id
        if client_secret is not None:
            env["GALSYNC_CLIENT_SECRET"] = client_secret
        return Cli(g, env)

    return make


@pytest.fixture
def cli(graph: GraphEmulator, make_cli: MakeCli) -> Cli:
    return make_cli(graph)


def truck(g: GraphEmulator, depot: str = "North") -> dict[str, Any]:
    """The scenario's shared truck mailbox of a depot: {"id", "mail", "phones", ...}."""
    return dict(g.scenario["shared_mailboxes"][f"Trucks {depot}"])  # type: ignore[index]
