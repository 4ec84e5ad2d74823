"""Attribute filters and named exclusions against the emulator: a changed filter is applied by the next sync,
which writes only the contacts that come or go."""

from __future__ import annotations

from collections import Counter

from graph_emulator import GraphEmulator
from sync_core.service.sync import InlineFanOut, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

BASE = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
TRANSPORT = BASE + '\n[profile.users.where]\ndepartment = { in = ["Transport"] }\n'
BOTH = BASE + '\n[profile.users.where]\ndepartment = { in = ["Transport", "Dispatch"] }\n'
BOTH_BUT_BOB = BOTH.replace('folder = "Directory"', 'folder = "Directory"\nexclude = ["bob@contoso.example"]')
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"


def writes(g: GraphEmulator) -> Counter[str]:
    return +Counter({"created": g.log.count(method="POST", route=CONTACTS),
                     "updated": g.log.count(method="PATCH", route=CONTACT),
                     "deleted": g.log.count(method="DELETE", route=CONTACT)})


def test_a_changed_filter_adds_and_removes_exactly_the_people_it_concerns(make_runtime: MakeRuntime) -> None:
    with GraphEmulator.start(scenario=None) as g:
        d = g.tenant.directory
        d.add_user(displayName="Ana", mailNickname="ana", department="Transport", mobilePhone="+44 7700 900001")
        d.add_user(displayName="Bob", mailNickname="bob", department="Dispatch", mobilePhone="+44 7700 900002",
                   mail="bob@contoso.example")
        d.add_user(displayName="Cy", mailNickname="cy", department="Dispatch", mobilePhone="+44 7700 900003")
        d.add_user(displayName="Di", mailNickname="di", department="Finance", mobilePhone="+44 7700 900004")
        phones = [d.add_user(displayName=f"Phone {i}", mailNickname=f"p{i}", department="Transport")["id"]
                  for i in range(2)]
        d.add_group("Phones", members=phones)

        def run(config: str) -> Counter[str]:
            g.log.clear()
            rt = make_runtime(g, config)
            assert sync_profile(rt, "Small", InlineFanOut(rt)).outcome == "ok"
            return writes(g)

        assert run(TRANSPORT) == Counter({"created": 3 * len(phones)})  # Ana and the two phones' owners
        assert run(BOTH) == Counter({"created": 2 * len(phones)})  # Bob and Cy join; nobody else is written
        assert run(BOTH_BUT_BOB) == Counter({"deleted": len(phones)})  # Bob, named in exclude
        assert run(BOTH_BUT_BOB) == Counter()
