"""`galsync doctor` against the emulator: permissions probed, scoping, shared mailboxes and what phones saved."""

from __future__ import annotations

from typing import Any

from graph_emulator import DEFAULT_ROLES, GraphEmulator

from .conftest import EXAMPLE_CONFIG, Cli, MakeCli, truck

MAMAN = {"displayName": "Maman", "mobilePhone": "+33 6 12 34 56 78"}


def findings(data: dict[str, Any], topic: str) -> list[dict[str, Any]]:
    return [f for f in data["findings"] if f["topic"] == topic]


def test_doctor_flags_the_shared_truck_mailboxes_and_lists_maman(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    north = truck(graph)
    maman = graph.tenant.mailboxes.phone_create_contact(north["id"], dict(MAMAN))
    cli.json("reconcile")

    data = cli.json("doctor")  # warnings only: exit 0
    assert data["ok"] is True and data["problems"] == 0 and data["missing_permissions"] == []
    assert {p["permission"]: p["outcome"] for p in data["permissions"]} == {
        "User.Read.All": "granted", "GroupMember.Read.All": "granted", "Contacts.ReadWrite": "granted",
        "MailboxSettings.Read": "granted"}
    [profile] = data["profiles"]
    shared = {t["address"]: t for t in profile["shared_targets"]}
    assert sorted(shared) == sorted(f"trucks.{d}@northwind.example" for d in ("north", "south", "east", "west"))
    assert [(f["id"], f["displayName"], f["folder"]) for f in shared[north["mail"]]["foreign"]] == [
        (maman["id"], "Maman", "Contacts")]
    [warning] = findings(data, "shared-mailbox")
    assert warning["severity"] == "warning"
    assert "shares ONE address book" in warning["message"] and '"Maman" in Trucks North' in warning["message"]
    assert "2 USD per mailbox per month" in warning["advice"]
    # The same, for people.
    result = cli("doctor")
    assert result.exit_code == 0
    assert "WARNING: shared-mailbox" in result.stdout and "Maman" in result.stdout
    assert "no problems, 2 warning(s)" in result.stdout


def test_doctor_names_a_missing_permission_and_how_to_grant_it(graph: GraphEmulator, make_cli: MakeCli) -> None:
    app = graph.register_app(roles=DEFAULT_ROLES - {"MailboxSettings.Read", "GroupMember.Read.All"})
    cli = make_cli(graph, client_id=app.client_id, client_secret=app.secret)
    data = cli.json("doctor", expect=1)
    assert data["missing_permissions"] == ["GroupMember.Read.All", "MailboxSettings.Read"]
    problems = [f for f in data["findings"] if f["severity"] == "problem"]
    assert [f["topic"] for f in problems] == ["permission", "permission"]
    assert all("infra/grant-graph-permissions.sh" in f["advice"] for f in problems)
    result = cli("doctor")
    assert result.exit_code == 1
    assert "MailboxSettings.Read is missing" in result.stdout and "2 problem(s)" in result.stdout


def test_doctor_sees_whether_mailbox_access_is_scoped_to_the_targets(graph: GraphEmulator, make_cli: MakeCli) -> None:
    trucks = [truck(graph, d)["id"] for d in ("North", "South", "East", "West")]
    scoped = graph.register_app(mailbox_scope=trucks)
    data = make_cli(graph, client_id=scoped.client_id, client_secret=scoped.secret).json("doctor")
    assert data["scoping"]["outcome"] == "scoped"
    assert [f["severity"] for f in findings(data, "scoping")] == ["ok"]

    unscoped = make_cli(graph).json("doctor")
    assert unscoped["scoping"]["outcome"] == "not-scoped"
    [warning] = findings(unscoped, "scoping")
    assert warning["severity"] == "warning" and "infra/scope-mailboxes.ps1" in warning["advice"]


def test_doctor_reports_a_failed_run(graph: GraphEmulator, make_cli: MakeCli) -> None:
    config = EXAMPLE_CONFIG.read_text(encoding="utf-8").replace('groups = ["All Staff"]', 'groups = ["All Staf"]')
    cli = make_cli(graph, config)
    result = cli("sync", "--profile", "Company directory")
    assert result.exit_code == 2 and "All Staf" in result.stderr  # a group that does not exist: config error
    data = cli.json("doctor", "--profile", "Company directory", expect=1)
    [run] = [f for f in data["findings"] if f["topic"] == "run"]
    assert run["severity"] == "problem" and "All Staf" in run["message"]
