"""`galsync sync`, `reconcile` and `status` against the emulator's logistics tenant, counted exactly."""

from __future__ import annotations

from pathlib import Path

from graph_emulator import GraphEmulator

from .conftest import Cli, truck

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
MAMAN = {"displayName": "Maman", "mobilePhone": "+33 6 12 34 56 78"}


def writes(g: GraphEmulator) -> int:
    return sum(g.log.count(method=m, via_batch=True) for m in ("POST", "PATCH", "DELETE"))


def test_sync_fills_the_four_truck_mailboxes_and_a_second_run_writes_nothing(graph: GraphEmulator, cli: Cli) -> None:
    data = cli.json("sync")
    [dispatch] = data["profiles"]
    assert data["ok"] is True and dispatch["outcome"] == "ok"
    assert dispatch["targets"] == 4 and dispatch["new_targets"] == 4 and dispatch["changed"] == 100
    assert dispatch["writes"]["created"] == 400 == graph.log.count(method="POST", route=CONTACTS)
    north = truck(graph)
    folder = graph.tenant.mailboxes.find_folder(north["id"], "Dispatch")
    assert folder is not None and len(graph.tenant.mailboxes.contacts(north["id"], folder["id"])) == 100

    graph.log.clear()
    again = cli.json("sync", "--profile", "Dispatch")
    assert again["profiles"][0]["writes"]["created"] == 0 and writes(graph) == 0


def test_dry_run_plans_the_fill_and_writes_nothing(graph: GraphEmulator, cli: Cli) -> None:
    data = cli.json("sync", "--dry-run")
    assert data["dry_run"] is True
    assert data["profiles"][0]["planned"] == {"Create": 400}
    # not even a folder: the only POSTs are $batch envelopes carrying reads (the targets' userPurpose)
    assert writes(graph) == 0 and graph.log.count(method="POST", via_batch=True) == 0
    assert graph.log.count(method="POST") == graph.log.count(method="POST", route="/$batch")
    status = cli.json("status", expect=0)
    assert status["runs"] == []  # a dry run is not recorded as a run


def test_sync_table_for_people(cli: Cli) -> None:
    result = cli("sync")
    assert result.exit_code == 0, result.stderr
    assert "galsync sync" in result.stdout and "Dispatch" in result.stdout and "400 / 0 / 0" in result.stdout
    assert "4/4" in result.stdout  # the progress counts the four trucks, filled while the directory was read


def test_sync_with_a_new_state_file_adopts_the_contacts_already_on_the_phones(
    graph: GraphEmulator, cli: Cli, tmp_path: Path
) -> None:
    """The admin runs galsync from another folder (a new, empty state file): nothing is written twice."""
    cli.json("sync")
    graph.log.clear()
    data = cli.json("sync", GALSYNC_STATE=f"sqlite:{tmp_path / 'elsewhere.db'}")
    [dispatch] = data["profiles"]
    assert dispatch["outcome"] == "ok" and dispatch["adopted"] == 400 and dispatch["write_total"] == 0
    assert writes(graph) == 0 and graph.log.count(method="GET", route=CONTACTS) == 4  # one listing per truck
    result = cli("sync", GALSYNC_STATE=f"sqlite:{tmp_path / 'again-elsewhere.db'}")
    assert result.exit_code == 0, result.stderr
    assert "0 / 0 / 0" in result.stdout and "Dispatch: adopted 400 contact(s)" in result.stdout


def test_an_unknown_profile_exits_2_naming_the_profiles(cli: Cli) -> None:
    result = cli("sync", "--profile", "Dispach")
    assert result.exit_code == 2
    assert '--profile: no profile named "Dispach" in' in result.stderr
    assert 'its profiles are: "Dispatch"' in result.stderr


def test_reconcile_reports_maman_in_the_shared_mailbox_and_never_touches_it(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    north = truck(graph)
    maman = graph.tenant.mailboxes.phone_create_contact(north["id"], dict(MAMAN))
    graph.log.clear()

    data = cli.json("reconcile")
    [dispatch] = data["profiles"]
    assert dispatch["outcome"] == "ok" and dispatch["targets"] == 4
    assert dispatch["foreign_found"] == 1 and dispatch["foreign_by_mailbox"] == {north["mail"]: 1}  # by address
    assert dispatch["write_total"] == 0 and writes(graph) == 0
    assert dispatch["drift"]["intact"] == 400
    after = graph.tenant.mailboxes.get_contact(north["id"], maman["id"])
    assert after["changeKey"] == maman["changeKey"] and after["displayName"] == "Maman"
    assert "Maman" not in str(data)  # names stay out of the reconcile report (doctor lists them)


def test_status_lists_runs_counts_and_is_healthy(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    cli.json("reconcile")
    data = cli.json("status")
    assert data["healthy"] is True and data["failures"] == [] and data["poison"] == []
    assert [r["kind"] for r in data["runs"]] == ["reconcile", "sync"]
    [profile] = data["profiles"]
    assert profile == {**profile, "name": "Dispatch", "targets": 4, "shared_targets": 4}
    assert profile["last_sync"]["outcome"] == "ok" and profile["last_reconcile"]["outcome"] == "ok"
    table = cli("status")
    assert table.exit_code == 0 and "no failures recorded" in table.stdout


def test_status_shows_poison_work_and_exits_1(graph: GraphEmulator, cli: Cli) -> None:
    from sync_core.service.poison import record_poison
    from sync_core.state.sqlite_store import SqliteStore

    store = SqliteStore(cli.env["GALSYNC_STATE"].removeprefix("sqlite:"))
    record_poison(store, "push-targets", "m-1", '{"type": "push", "profile": "Dispatch"}', "BadMessage: no mailboxes")
    store.close()
    data = cli.json("status", expect=1)
    assert data["healthy"] is False
    assert [(p["queue"], p["profile"], p["reason"]) for p in data["poison"]] == [
        ("push-targets", "Dispatch", "BadMessage: no mailboxes")]
    result = cli("status")
    assert result.exit_code == 1 and "Poison work" in result.stdout and "1 poison message(s)" in result.stdout


def test_status_works_without_graph_and_with_a_broken_configuration(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[profile]]\nname = 3\n", encoding="utf-8")
    assert cli("sync", "--dry-run").exit_code == 0  # galsync has run with this state
    data = cli.json("status", GALSYNC_CONFIG_PATH=str(broken), GALSYNC_AUTHORITY_HOST="https://127.0.0.1:1")
    assert data["profiles"] == [] and "profiles not listed" in data["config_problem"]
