"""Dialable numbers against the emulator: turning them on rewrites only the contacts whose numbers change,
and the run report counts the numbers kept as they were."""

from __future__ import annotations

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag
from sync_core.service.sync import InlineFanOut, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

PLAIN = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
DIALABLE = PLAIN + '\n[profile.phones]\ndialable = true\nregion = "FR"\n'
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"


def test_dialable_numbers_rewrite_only_the_contacts_whose_numbers_change(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        numbers = {"Ana": "06 12 34 56 78", "Bea": "+33 6 98 76 54 32", "Cat": "ask reception"}
        users = {name: g.tenant.directory.add_user(displayName=name, mailNickname=name.lower(), mobilePhone=n)["id"]
                 for name, n in numbers.items()}
        phones = [g.tenant.directory.add_user(displayName=f"Phone {i}", mailNickname=f"p{i}")["id"] for i in range(2)]
        g.tenant.directory.add_group("Phones", members=phones)
        sync_profile(make_runtime(g, PLAIN), "Small", InlineFanOut(make_runtime(g, PLAIN)))
        g.log.clear()

        rt = make_runtime(g, DIALABLE)
        report = sync_profile(rt, "Small", InlineFanOut(rt))
        assert report.outcome == "ok"
        assert report.undialable == 1 and report.counts()["undialable"] == 1  # "ask reception", kept
        assert g.log.count(method="PATCH", route=CONTACT) == len(phones)  # Ana's contact, in each phone
        assert report.exec.writes == len(phones)
        folder = g.tenant.mailboxes.find_folder(phones[0], "Directory")
        assert folder is not None
        shown = {read_contact_tag(c).source_key: c["mobilePhone"]  # type: ignore[union-attr]
                 for c in g.tenant.mailboxes.contacts(phones[0], folder["id"]) if c["mobilePhone"]}
        assert shown == {f"user:{users['Ana']}": "+33 6 12 34 56 78", f"user:{users['Bea']}": "+33 6 98 76 54 32",
                         f"user:{users['Cat']}": "ask reception"}
        g.log.clear()
        assert sync_profile(rt, "Small", InlineFanOut(rt)).exec.writes == 0
        assert g.log.count(route=CONTACT) == 0
