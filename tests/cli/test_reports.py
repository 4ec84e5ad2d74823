"""Reports an admin can act on: mailboxes named by address, a dry run per mailbox and per contact, the targets
of a profile with why one fails, and a status whose --limit never hides the latest state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from graph_emulator import GraphEmulator
from sync_core.core.records import Run
from sync_core.settings import Settings
from sync_core.state import docs, open_store

from .conftest import TRUCKS, Cli, MakeCli, truck

ADDRESSES = sorted(f"trucks.{t}@northwind.example" for t in TRUCKS)


def test_a_dry_run_shows_each_mailbox_and_each_contact(graph: GraphEmulator, cli: Cli) -> None:
    data = cli.json("sync", "--dry-run")["profiles"][0]
    assert data["planned_by_mailbox"] == {a: {"Create": 100} for a in ADDRESSES}
    contacts = data["planned_contacts"]
    assert len(contacts) == 400 and data["planned_contacts_complete"] is True
    driver = graph.tenant.directory.get_user(graph.scenario["drivers"][0])  # type: ignore[index]
    assert {"mailbox": "trucks.north@northwind.example", "action": "Create", "source_key": f"user:{driver['id']}",
            "name": driver["displayName"]} in contacts

    people = cli("sync", "--dry-run")
    assert people.exit_code == 0
    assert "trucks.north@northwind.example" in people.stdout and "--verbose lists each contact" in people.stdout
    assert driver["displayName"] not in people.stdout
    verbose = cli("sync", "--dry-run", "--verbose")
    assert driver["displayName"] in verbose.stdout and "each contact" in verbose.stdout


def test_targets_lists_each_mailbox_and_why_one_fails(graph: GraphEmulator, make_cli: MakeCli) -> None:
    cli = make_cli(graph)
    assert cli("sync").exit_code == 0
    listed = cli.json("targets")["profiles"][0]["targets"]
    assert [t["mailbox"] for t in listed] == ADDRESSES
    assert all(t["state"] == "filled" and t["shared"] and t["contacts_written"] == 100 for t in listed)

    # West's phones lose galsync's access (Exchange RBAC scope), then a driver's number changes.
    north, south, east, west = (truck(graph, d) for d in ("North", "South", "East", "West"))
    scoped = graph.register_app(mailbox_scope=[north["id"], south["id"], east["id"]])
    limited = make_cli(graph, client_id=scoped.client_id, client_secret=scoped.secret)
    graph.tenant.directory.update_user(graph.scenario["drivers"][0], mobilePhone="+44 7700 900555")  # type: ignore[index]
    assert limited("sync").exit_code == 1
    result = limited("targets", "--profile", "dispatch", "--json")
    assert result.exit_code == 1
    states = {t["mailbox"]: t for t in json.loads(result.stdout)["profiles"][0]["targets"]}
    assert states[west["mail"]]["state"] == "failing"
    assert states[west["mail"]]["failure"].startswith(west["mail"])  # named by address, not by GUID
    assert west["id"] not in states[west["mail"]]["failure"]
    assert {states[t["mail"]]["state"] for t in (north, south, east)} == {"filled"}


def test_status_limit_never_hides_the_latest_failure(cli: Cli, tmp_path: Path) -> None:
    assert cli("sync", "--dry-run").exit_code == 0  # the state file exists
    store = open_store(Settings.from_env(cli.env))
    try:
        store.record_run(Run("r1", "Dispatch", "sync", "2026-03-02T14:00:00Z", "2026-03-02T14:00:05Z", "failed",
                             {"photos_downloaded": 3}, "GraphError: Graph 503"))
        for i in range(3):
            store.record_run(Run(f"p{i}", "Dispatch", "push", f"2026-03-02T14:0{i + 1}:00Z",
                                 f"2026-03-02T14:0{i + 1}:05Z", "ok", {"created": 1}))
    finally:
        store.close()
    one = cli.json("status", "--limit", "1", expect=1)
    assert [r["run_id"] for r in one["runs"]] == ["p2"]
    assert one["profiles"][0]["last_sync"]["outcome"] == "failed"
    assert [r["run_id"] for r in one["failures"]] == ["r1"] and one["healthy"] is False
    people = cli("status", "--limit", "1", COLUMNS="90")
    assert people.exit_code == 1
    assert "failed" in people.stdout and "Latest runs that failed" in people.stdout
    assert "photos_downloade" not in people.stdout and "downloaded" in people.stdout  # words are never cut


def test_status_shows_the_days_propagation_p50_and_p95_per_profile(cli: Cli) -> None:
    assert cli("sync", "--dry-run").exit_code == 0  # the state file exists
    now = datetime.now(UTC)
    store = open_store(Settings.from_env(cli.env))
    try:  # three notified syncs measured this hour, and one 25 hours ago (its hourly slot not reused yet)
        docs.write(store, docs.propagation_samples_key("Dispatch", now.strftime("%H")),
                   docs.PropagationSamples(now.strftime("%Y-%m-%dT%H"), ((0, 2000), (0, 300), (0, 1200))))
        earlier = now - timedelta(hours=25)
        docs.write(store, docs.propagation_samples_key("Dispatch", earlier.strftime("%H")),
                   docs.PropagationSamples(earlier.strftime("%Y-%m-%dT%H"), ((0, 90_000),)))
    finally:
        store.close()
    data = cli.json("status")
    assert data["profiles"][0]["propagation"] == {"samples": 3, "p50_ms": 1200, "p95_ms": 2000}
    people = cli("status", COLUMNS="200")
    assert "1.2 s / 2.0 s (3 syncs)" in people.stdout
