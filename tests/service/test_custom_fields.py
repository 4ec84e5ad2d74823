"""Templates, mapped attributes and notes against the emulator: what phones show, and what a change costs."""

from __future__ import annotations

from collections import Counter

from graph_emulator import GraphEmulator
from sync_core.core.notes import MARK
from sync_core.core.tags import read_contact_tag
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.sync import InlineFanOut, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

BASE = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
SHAPED = BASE + """
[profile.map]
nickName = "employeeId"
[profile.static]
companyName = "Northwind"
[profile.fields]
jobTitle = "overwrite"
[profile.templates]
fileAs = "{surname}, {givenName}"
personalNotes = "Employee ID: {employeeId}"
"""
RESHAPED = SHAPED.replace('"Employee ID: {employeeId}"', '"Staff number {employeeId}"')
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"


def test_templates_and_notes_reach_phones_and_a_template_change_keeps_the_owners_note(
    make_runtime: MakeRuntime,
) -> None:
    with GraphEmulator.start(scenario=None) as g:
        d = g.tenant.directory
        staff = [d.add_user(displayName=f"Ana {i}", givenName="Ana", surname=f"Costa{i}", mailNickname=f"a{i}",
                            employeeId=f"E-{i}", mobilePhone=f"+44 7700 90000{i}", jobTitle="Driver")["id"]
                 for i in range(3)]
        phones = staff[:2]
        d.add_group("Phones", members=phones)
        rt = make_runtime(g, SHAPED)
        sync_profile(rt, "Small", InlineFanOut(rt))
        folder = g.tenant.mailboxes.find_folder(phones[0], "Directory")
        assert folder is not None
        contacts = {read_contact_tag(c).source_key: c  # type: ignore[union-attr]
                    for c in g.tenant.mailboxes.contacts(phones[0], folder["id"])}
        ana = contacts[f"user:{staff[2]}"]
        assert (ana["fileAs"], ana["nickName"], ana["companyName"]) == ("Costa2, Ana", "E-2", "Northwind")
        assert ana["personalNotes"] == f"{MARK}\nEmployee ID: E-2"

        # The phone's owner writes a note of their own above galsync's: the nightly reconcile leaves it.
        g.tenant.mailboxes.phone_update_contact(phones[0], ana["id"], {"personalNotes": f"Gate 12\n\n{MARK}\n"
                                                                                        "Employee ID: E-2"})
        g.log.clear()
        assert reconcile_profile(rt, "Small").exec.writes == 0

        g.log.clear()
        rt2 = make_runtime(g, RESHAPED)
        report = sync_profile(rt2, "Small", InlineFanOut(rt2))
        assert report.exec.writes == len(staff) * len(phones)  # every note changes, once
        assert Counter(e.method for e in g.log.entries(route=CONTACT)) == Counter(
            {"PATCH": len(staff) * len(phones), "GET": len(staff) * len(phones)})
        assert g.tenant.mailboxes.get_contact(phones[0], ana["id"])["personalNotes"] == (
            f"Gate 12\n\n{MARK}\nStaff number E-2")
        g.log.clear()
        assert sync_profile(rt2, "Small", InlineFanOut(rt2)).exec.writes == 0
        assert reconcile_profile(rt2, "Small").exec.writes == 0

        # jobTitle is "overwrite": emptied in the directory, it stays on the phones; a new value is written.
        d.update_user(staff[2], jobTitle=None)
        assert sync_profile(rt2, "Small", InlineFanOut(rt2)).exec.writes == 0
        assert g.tenant.mailboxes.get_contact(phones[0], ana["id"])["jobTitle"] == "Driver"
        d.update_user(staff[2], jobTitle="Dispatcher")
        assert sync_profile(rt2, "Small", InlineFanOut(rt2)).exec.writes == len(phones)
        assert g.tenant.mailboxes.get_contact(phones[0], ana["id"])["jobTitle"] == "Dispatcher"
