"""Errors read like advice: the setting or permission at fault is named, exit 2 for bad settings, no stack
trace unless --debug."""

from __future__ import annotations

import json

from graph_emulator import GraphEmulator

from .conftest import Cli


def test_an_unreachable_authority_names_the_setting_without_a_trace(cli: Cli) -> None:
    result = cli("sync", GALSYNC_AUTHORITY_HOST="https://127.0.0.1:1")
    assert result.exit_code == 2
    assert ("the token authority at https://127.0.0.1:1 (GALSYNC_AUTHORITY_HOST) cannot be reached "
            "(connection refused); is the emulator running?") in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_debug_adds_the_stack_trace(cli: Cli) -> None:
    result = cli("--debug", "sync", GALSYNC_AUTHORITY_HOST="https://127.0.0.1:1")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "GALSYNC_AUTHORITY_HOST" in result.stderr


def test_a_wrong_client_secret_names_the_setting(graph: GraphEmulator, cli: Cli) -> None:
    result = cli("doctor", "--json", GALSYNC_CLIENT_SECRET="not-the-secret")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "auth" and error["message"].startswith("GALSYNC_CLIENT_SECRET")
    assert "not-the-secret" not in result.output  # secrets are never echoed


def test_a_bad_state_setting_is_named(cli: Cli) -> None:
    result = cli("status", GALSYNC_STATE="postgres://x")
    assert result.exit_code == 2
    assert "GALSYNC_STATE is 'postgres://x'; expected sqlite:PATH or table:" in result.stderr
    override = cli("--state", "sqlite:", "status")
    assert override.exit_code == 2 and "without a path" in override.stderr


def test_bad_usage_exits_2(cli: Cli) -> None:
    assert cli("explain", "--mailbox", "x@northwind.example").exit_code == 2  # --contact is required
    assert cli("no-such-command").exit_code == 2
