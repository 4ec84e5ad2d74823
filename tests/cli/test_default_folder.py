"""place = "default_folder" from the command line, in text and --json.

The phone owners' own contacts ("Maman") share the folder with galsync's: the nightly reconcile counts them,
`galsync doctor` sums the counts per profile and `galsync explain` shows a mailbox's; nothing is listed by name
(a mailbox may hold thousands). A dry run after a change of place shows each mailbox's move with its counts."""

from __future__ import annotations

from graph_emulator import GraphEmulator

from .conftest import MakeCli

CONFIG = """
[[profile]]
name = "Drivers"
place = "default_folder"
[[profile.source]]
type = "users"
[profile.targets]
groups = ["Phones"]
[profile.photos]
enabled = false
"""
OWN = {0: ["Maman", "Garage"], 1: ["Maman"], 2: []}  # each phone's owner's own contacts


def phones(g: GraphEmulator) -> list[str]:
    users = [g.tenant.directory.add_user(displayName=f"Driver {i}", mailNickname=f"d{i}",
                                         mobilePhone=f"+44 7700 90000{i}")["id"] for i in range(4)]
    g.tenant.directory.add_group("Phones", members=users[:3])
    for n, names in OWN.items():
        for name in names:
            g.tenant.mailboxes.phone_create_contact(users[n], {"displayName": name, "mobilePhone": "+33 6 1"})
    return users


def test_doctor_sums_and_explain_shows_the_owners_own_contacts_counted_by_the_reconcile(
    graph_empty: GraphEmulator, make_cli: MakeCli
) -> None:
    users = phones(graph_empty)
    cli = make_cli(graph_empty, CONFIG)
    cli.json("sync")
    before = cli.json("doctor")
    [profile] = before["profiles"]
    assert profile["owner_contacts"] is None  # nothing counted before the first reconcile
    assert not [f for f in before["findings"] if f["topic"] == "owner-contacts"]

    cli.json("reconcile")
    data = cli.json("doctor")
    [profile] = data["profiles"]
    counted = profile["owner_contacts"]
    assert {k: counted[k] for k in ("mailboxes_counted", "mailboxes", "contacts")} == {
        "mailboxes_counted": 3, "mailboxes": 2, "contacts": 3}
    assert counted["checked_at"]
    [finding] = [f for f in data["findings"] if f["topic"] == "owner-contacts"]
    assert finding["severity"] == "info" and finding["profile"] == "Drivers"
    assert finding["message"].startswith("2 mailboxes hold 3 contacts of their users' own")
    assert "galsync leaves them alone" in finding["message"]
    assert "Maman" not in str(data)  # counted, never listed
    text = cli("doctor").stdout
    assert "2 mailboxes hold 3 contacts of their users' own" in text

    story = cli.json("explain", "--mailbox", users[0], "--contact", "Maman")
    [owners] = story["owner_contacts"]
    assert (owners["profile"], owners["count"]) == ("Drivers", 2) and owners["checked_at"]
    [maman] = story["contacts"]
    assert maman["origin"] == "foreign"
    assert any("one of the owner's own contacts that the nightly reconcile counts" in line for line in maman["story"])
    text = cli("explain", "--mailbox", users[0], "--contact", "Maman").stdout
    assert "The default Contacts folder holds 2 contacts of the mailbox owner's own" in " ".join(text.split())

    empty = cli.json("explain", "--mailbox", users[2], "--contact", "Driver 1")
    assert [(o["profile"], o["count"]) for o in empty["owner_contacts"]] == [("Drivers", 0)]


def test_a_dry_run_after_a_change_of_place_shows_each_mailboxs_move(
    graph_empty: GraphEmulator, make_cli: MakeCli
) -> None:
    users = phones(graph_empty)
    make_cli(graph_empty, CONFIG.replace('place = "default_folder"', 'folder = "Directory"')).json("sync")
    cli = make_cli(graph_empty, CONFIG)
    graph_empty.log.clear()

    [profile] = cli.json("sync", "--dry-run")["profiles"]
    moves = profile["planned_moves"]
    assert sorted(moves) == sorted(profile["planned_by_mailbox"]) == sorted(users[:3])  # named as the plan names
    for move in moves.values():
        assert move == {"from": "own_folder", "to": "default_folder", "create": 4, "delete": 4, "waiting": 0,
                        "folder_created": False, "error": None}
    assert profile["planned"] == {"Create": 12, "DeleteMoved": 12}
    assert graph_empty.log.count(method="DELETE") == graph_empty.log.count(method="PATCH") == 0
    text = " ".join(cli("sync", "--dry-run").stdout.split())
    assert "contacts that move to the profile's place (3 mailbox(es))" in text
    assert "galsync's folder │ default Contacts folder │ 4 │ 4 │ 0" in text
