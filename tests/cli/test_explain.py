"""`galsync explain`: the story of a contact, managed or not, told from the mailbox and the state store."""

from __future__ import annotations

from graph_emulator import GraphEmulator

from .conftest import Cli, truck

MAMAN = {"displayName": "Maman", "mobilePhone": "+33 6 12 34 56 78"}


def test_maman_in_a_shared_mailbox_is_foreign_and_probably_saved_on_a_phone(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    north = truck(graph)
    maman = graph.tenant.mailboxes.phone_create_contact(north["id"], dict(MAMAN))
    cli.json("reconcile")
    graph.log.clear()

    data = cli.json("explain", "--mailbox", north["mail"], "--contact", "maman")
    assert data["mailbox"]["shared"] is True and data["found"] == 1
    [story] = data["contacts"]
    assert story["id"] == maman["id"] and story["origin"] == "foreign"
    assert story["folder"]["name"] == "Contacts" and story["written_by_galsync_at"] is None
    assert story["createdDateTime"] == maman["createdDateTime"] and story["phones"] == ["+33 6 12 34 56 78"]
    assert story["seen_by_reconcile"] is not None
    text = " ".join(story["story"])
    assert "no galsync tag" in text and "probably saved on one of those phones" in text
    assert "galsync never touches it" in text
    assert sum(graph.log.count(method=m) for m in ("POST", "PATCH", "DELETE")) == 0  # explain only reads


def test_a_managed_contact_names_its_profile_source_and_last_write(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    north = truck(graph)
    driver_id = graph.scenario["drivers_by_depot"]["North"][0]  # type: ignore[index]
    driver = graph.tenant.directory.get_user(driver_id)
    assert driver is not None
    data = cli.json("explain", "-m", north["mail"], "-c", driver["displayName"])
    managed = [c for c in data["contacts"] if c["origin"] == "managed"]
    assert managed, data
    story = next(c for c in managed if c["source_key"] == f"user:{driver_id}")
    assert story["profile"] == "Dispatch" and story["folder"]["managed_by_profile"] == "Dispatch"
    assert story["source_name"] == driver["displayName"] and story["written_by_galsync_at"]
    assert story["changed_on_device"] is False

    graph.tenant.mailboxes.phone_update_contact(north["id"], story["id"], {"jobTitle": "Chief driver"})
    again = cli.json("explain", "-m", north["mail"], "-c", driver["displayName"])
    edited = next(c for c in again["contacts"] if c["id"] == story["id"])
    assert edited["changed_on_device"] is True
    assert any("changed outside galsync" in line for line in edited["story"])


def test_a_managed_contact_whose_tag_a_phone_stripped_is_still_galsyncs(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    north = truck(graph)
    driver_id = graph.scenario["drivers_by_depot"]["North"][1]  # type: ignore[index]
    driver = graph.tenant.directory.get_user(driver_id)
    assert driver is not None
    story = next(c for c in cli.json("explain", "-m", north["mail"], "-c", driver["displayName"])["contacts"]
                 if c["source_key"] == f"user:{driver_id}")
    graph.tenant.mailboxes.phone_update_contact(north["id"], story["id"], {"jobTitle": "Chief driver"},
                                                strips_hidden_properties=True)
    again = cli.json("explain", "-m", north["mail"], "-c", driver["displayName"])
    stripped = next(c for c in again["contacts"] if c["id"] == story["id"])
    assert stripped["origin"] == "managed" and stripped["source_key"] == f"user:{driver_id}"
    assert stripped["profile"] == "Dispatch" and stripped["changed_on_device"] is True
    assert any("hidden galsync tag is gone" in line for line in stripped["story"])


def test_no_match_suggests_similar_names_and_an_unknown_mailbox_is_advice(graph: GraphEmulator, cli: Cli) -> None:
    cli.json("sync")
    north = truck(graph)
    graph.tenant.mailboxes.phone_create_contact(north["id"], dict(MAMAN))
    data = cli.json("explain", "--mailbox", north["mail"], "--contact", "Mam", expect=1)  # not found: 1
    assert data["found"] == 0 and data["similar"] == ["Maman"]

    result = cli("explain", "--mailbox", "nobody@northwind.example", "--contact", "Maman")
    assert result.exit_code == 2  # an unknown mailbox is bad usage
    assert 'no user or mailbox "nobody@northwind.example" in the directory' in result.stderr
    assert "Traceback" not in result.output


def test_explain_for_people(graph: GraphEmulator, cli: Cli) -> None:
    north = truck(graph)
    graph.tenant.mailboxes.phone_create_contact(north["id"], dict(MAMAN))
    result = cli("explain", "--mailbox", north["mail"], "--contact", "Maman")
    assert result.exit_code == 0
    assert "Trucks North" in result.stdout and "is a shared mailbox" in result.stdout
    assert '"Maman": NOT written by galsync' in result.stdout
