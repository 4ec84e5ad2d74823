"""A state store made for another tenant or Graph endpoint, as an admin meets it, and `--reset-state`.

The second tenant is a second emulator (its own tenant id, its own HTTPS port), which is also what a
restarted emulator or a misspelt GALSYNC_GRAPH_BASE_URL looks like to galsync.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from graph_emulator import GraphEmulator
from sync_core.settings import LEASE_SECONDS
from sync_core.state.docs import STATE_IDENTITY, state_identity_key
from sync_core.state.sqlite_store import SqliteStore

from .conftest import Cli, MakeCli

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"


@pytest.fixture
def other_tenant() -> Iterator[GraphEmulator]:
    with GraphEmulator.start(scenario="logistics") as g:
        yield g


def state_file(cli: Cli) -> str:
    return cli.env["GALSYNC_STATE"].removeprefix("sqlite:")


def test_state_of_another_tenant_is_a_configuration_error_naming_both(
        graph: GraphEmulator, other_tenant: GraphEmulator, make_cli: MakeCli) -> None:
    make_cli(graph).json("sync")
    cli = make_cli(other_tenant)  # the same state file, the settings of another tenant

    for command in ("sync", "reconcile"):
        result = cli(command)
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
        error = " ".join(result.stderr.split())
        assert f"made for tenant {graph.tenant_id.lower()} at {graph.base_url}" in error
        assert f"configured for tenant {other_tenant.tenant_id.lower()} at {other_tenant.base_url}" in error
        assert "GALSYNC_STATE" in error and "--reset-state" in error
        assert "Traceback" not in result.stderr and "bug in galsync" not in result.stderr
    data = cli.json("sync", expect=2)
    assert data["error"]["kind"] == "state-mismatch"
    assert other_tenant.log.count(method="POST", route=CONTACTS) == 0


def test_a_store_older_than_stamps_with_a_link_of_another_endpoint_is_the_same_clear_error(
        graph: GraphEmulator, other_tenant: GraphEmulator, make_cli: MakeCli) -> None:
    first = make_cli(graph)
    first.json("sync")
    with SqliteStore(state_file(first)) as store:
        store.delete_doc(STATE_IDENTITY, state_identity_key())  # what a state file from before stamps looks like

    result = make_cli(other_tenant)("sync")

    assert result.exit_code == 2, (result.stdout, result.stderr)
    error = " ".join(result.stderr.split())
    assert f"at {graph.base_url}, outside the configured Graph endpoint {other_tenant.base_url}" in error
    assert "refusing a Graph URL" not in error and "bug in galsync" not in error
    with SqliteStore(state_file(first)) as store:
        assert store.get_doc(STATE_IDENTITY, state_identity_key()) is None  # not stamped with the wrong settings


def test_reset_state_empties_the_store_stamps_it_and_the_sync_fills_the_new_tenant(
        graph: GraphEmulator, other_tenant: GraphEmulator, make_cli: MakeCli) -> None:
    make_cli(graph).json("sync")
    cli = make_cli(other_tenant)

    result = cli("sync", "--reset-state")
    assert result.exit_code == 0, result.stderr
    assert f"state store emptied and stamped for tenant {other_tenant.tenant_id.lower()}" in result.stdout
    assert other_tenant.log.count(method="POST", route=CONTACTS) == 400
    other_tenant.log.clear()
    again = cli.json("sync")
    assert again["ok"] is True and other_tenant.log.count(method="POST", route=CONTACTS) == 0
    assert make_cli(graph)("sync").exit_code == 2  # now the first tenant's settings are the wrong ones


def test_reset_state_help_says_why_it_is_safe(cli: Cli) -> None:
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", cli("sync", "--help").stdout).split())  # without rich's box
    assert "--reset-state" in text and "re-adopts its contacts from the mailboxes" in text


def test_reset_state_cannot_go_with_a_dry_run(cli: Cli) -> None:
    result = cli("sync", "--reset-state", "--dry-run")
    assert result.exit_code == 2 and "--dry-run" in result.stderr


def test_reset_state_refuses_while_another_worker_holds_a_lease(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    with SqliteStore(state_file(cli)) as store:
        assert store.acquire_lease("push:Dispatch:mbx", "host-b:77:feed", LEASE_SECONDS)

    result = cli("sync", "--reset-state")

    assert result.exit_code == 2
    error = " ".join(result.stderr.split())
    assert "the state store was not reset" in error and "push:Dispatch:mbx held by worker host-b:77:feed" in error
    with SqliteStore(state_file(cli)) as store:
        assert store.get_targets("Dispatch")  # nothing was emptied


def test_doctor_reports_state_of_another_tenant_as_one_problem(
        graph: GraphEmulator, other_tenant: GraphEmulator, make_cli: MakeCli) -> None:
    make_cli(graph).json("sync")
    cli = make_cli(other_tenant)

    data = cli.json("doctor", expect=1)

    [problem] = [f for f in data["findings"] if f["severity"] == "problem"]
    assert problem["topic"] == "state" and graph.tenant_id.lower() in problem["message"]
    assert other_tenant.tenant_id.lower() in problem["message"] and "--reset-state" in problem["advice"]
    text = " ".join(cli("doctor").stdout.split())
    assert "PROBLEM: state" in text and "fix the cause above" not in text


def test_busy_sync_status_and_doctor_name_the_worker_holding_a_lease(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    with SqliteStore(state_file(cli)) as store:
        store.mark_pending("sync:Dispatch")
        assert store.acquire_lease("sync:Dispatch", "host-b:77:feed", LEASE_SECONDS)
        until = store.list_leases()[0].expires_at

    busy = cli("sync")
    assert busy.exit_code == 1
    assert "lease sync:Dispatch is held by worker host-b:77:feed until" in " ".join(busy.stdout.split())
    [dispatch] = cli.json("sync", expect=1)["profiles"]
    assert dispatch["outcome"] == "busy" and dispatch["held_by"]["worker"] == "host-b:77:feed"

    status = cli.json("status")
    assert [(x["name"], x["worker"]) for x in status["leases"]] == [("sync:Dispatch", "host-b:77:feed")]
    assert "host-b:77:feed" in cli("status").stdout
    doctor = cli.json("doctor")
    [lease] = [f for f in doctor["findings"] if f["topic"] == "lease"]
    assert "sync:Dispatch held by worker host-b:77:feed" in lease["message"] and lease["severity"] == "info"
    assert until > 0
