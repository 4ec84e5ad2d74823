"""Names checked before the first write: doctor and `config validate --online` resolve every group, mailbox
and source folder the profiles name and list every unknown one at once, with names from the directory."""

from __future__ import annotations

from pathlib import Path

from graph_emulator import GraphEmulator

from .conftest import MakeCli, truck

MISSPELT = """
[[profile]]
name = "Dispatch"
folder = "Dispatch"
[[profile.source]]
type = "users"
[[profile.source]]
type = "folder"
mailbox = "trucks.north@northwind.example"
folder = "Depot phone lists"
[profile.users]
in_groups = ["Driverz"]
[profile.targets]
groups = ["All Stuff"]
mailboxes = ["trucks.nort@northwind.example", "trucks.south@northwind.example"]
[profile.photos]
enabled = false
"""


def test_doctor_lists_every_unknown_name_at_once_with_did_you_mean(graph: GraphEmulator, make_cli: MakeCli) -> None:
    graph.tenant.mailboxes.create_folder(truck(graph)["id"], "Depot phone list")
    cli = make_cli(graph, MISSPELT)
    before = graph.log.count(method="POST") + graph.log.count(method="PATCH")
    report = cli.json("doctor", expect=1)
    names = [f for f in report["findings"] if f["topic"] == "name"]
    assert {(f["message"], f["advice"].split(" Fix it")[0]) for f in names} == {
        ('users.in_groups: group "Driverz": not found', 'did you mean "Drivers"?'),
        ('targets.groups: group "All Stuff": not found', 'did you mean "All Staff"?'),
        ('targets.mailboxes: mailbox "trucks.nort@northwind.example": not found',
         'did you mean "trucks.north@northwind.example"?'),
        ('source.folder in trucks.north@northwind.example: folder "Depot phone lists": not found',
         'did you mean "Depot phone list"?'),
    }
    assert all(f["severity"] == "problem" and f["profile"] == "Dispatch" for f in names)
    assert graph.log.count(method="POST") + graph.log.count(method="PATCH") == before  # it only reads

    people = cli("doctor")
    assert people.exit_code == 1 and 'did you mean "Drivers"?' in people.stdout


def test_config_validate_online_checks_the_names_without_a_state_file(
        graph: GraphEmulator, make_cli: MakeCli, tmp_path: Path) -> None:
    graph.tenant.mailboxes.create_folder(truck(graph)["id"], "Depot phone list")
    cli = make_cli(graph, MISSPELT)
    assert cli("config", "validate").exit_code == 0  # offline the file is valid
    data = cli.json("config", "validate", "--online", expect=2)
    assert data["ok"] is False
    assert {(u["where"], u["name"], tuple(u["did_you_mean"])) for u in data["unknown_names"]} == {
        ("users.in_groups", "Driverz", ("Drivers",)), ("targets.groups", "All Stuff", ("All Staff",)),
        ("targets.mailboxes", "trucks.nort@northwind.example", ("trucks.north@northwind.example",)),
        ("source.folder in trucks.north@northwind.example", "Depot phone lists", ("Depot phone list",)),
    }
    assert not (tmp_path / "state.db").exists()


def test_good_names_pass_online(graph: GraphEmulator, make_cli: MakeCli) -> None:
    cli = make_cli(graph)
    data = cli.json("config", "validate", "--online")
    assert data["ok"] is True and data["unknown_names"] == []
    assert truck(graph)["mail"]  # the scenario's mailboxes are what the default config names
