"""What an admin sees when one target mailbox fails alone: `sync`, `status` and `doctor`, counted exactly.

The four truck mailboxes of the Dispatch profile; galsync's app is scoped (Exchange RBAC for Applications)
to three of them, as when the admin has just added the fourth to the scope and it has not applied yet.
"""

from __future__ import annotations

from typing import Any

from graph_emulator import GraphEmulator

from .conftest import MakeCli, truck

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"


def findings(data: dict[str, Any], topic: str) -> list[dict[str, Any]]:
    return [f for f in data["findings"] if f["topic"] == topic]


def test_a_truck_outside_the_scope_fails_alone_and_is_listed_until_the_scope_applies(
    graph: GraphEmulator, make_cli: MakeCli
) -> None:
    trucks = {d: truck(graph, d) for d in ("North", "South", "East", "West")}
    west = trucks["West"]
    app = graph.register_app(mailbox_scope=[trucks[d]["id"] for d in ("North", "South", "East")])
    cli = make_cli(graph, client_id=app.client_id, client_secret=app.secret)

    data = cli.json("sync", expect=1)
    [dispatch] = data["profiles"]
    assert data["ok"] is False and dispatch["outcome"] == "partial" and dispatch["targets"] == 3
    assert dispatch["writes"]["created"] == 300 == graph.log.count(method="POST", route=CONTACTS)
    assert graph.log.count(mailbox=west["id"]) == 1  # its userPurpose, answered 403
    [failing] = dispatch["failing_targets"]
    assert (failing["address"], failing["status"], failing["code"]) == (west["mail"], 403, "ErrorAccessDenied")
    assert west["mail"] in dispatch["errors"][0] and "ErrorAccessDenied" in dispatch["errors"][0]
    assert "outside galsync's Exchange scope" in dispatch["errors"][0] and "30 minutes to 2 hours" in failing["hint"]

    shown = cli("sync")  # for people: still failing, retried with one request
    assert shown.exit_code == 1 and "partial" in shown.stdout
    assert west["mail"] in shown.stdout and "403 ErrorAccessDenied" in shown.stdout

    status = cli.json("status", expect=1)
    [listed] = status["failing_targets"]
    assert (listed["address"], listed["since"], listed["profile"]) == (west["mail"], failing["since"], "Dispatch")
    assert status["healthy"] is False
    table = cli("status")
    assert table.exit_code == 1 and "Failing target mailboxes" in table.stdout and west["mail"] in table.stdout

    doctor = cli.json("doctor", expect=1)
    [finding] = findings(doctor, "target")
    assert finding["severity"] == "problem" and west["mail"] in finding["message"]
    assert "failing since" in finding["message"] and "Exchange scope" in finding["advice"]
    assert doctor["missing_permissions"] == []  # probed on a truck that works: nothing is missing

    app.mailbox_scope = {t["id"] for t in trucks.values()}  # the scope applied
    graph.log.clear()
    healed = cli.json("sync")
    assert healed["profiles"][0]["outcome"] == "ok" and healed["profiles"][0]["failing_targets"] == []
    assert healed["profiles"][0]["writes"]["created"] == 100 == graph.log.count(method="POST", route=CONTACTS,
                                                                                 mailbox=west["id"])
    assert graph.log.count(method="POST", route=CONTACTS) == 100
    after = cli.json("status")
    assert after["failing_targets"] == [] and after["healthy"] is True
