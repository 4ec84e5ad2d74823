"""Writes in doubt, against the emulator: the executor finds its own contact by tag and touches nothing else (I1).

A create answered with a 504 may have landed, so the executor keeps its in-flight record, and the next plan
either recovers the create or, once the source is gone, deletes by tag. Both look the contact up by its tag
in the folder. The folder here also holds another profile's contact tagged for the very same source (a
phone moved it there, or an old profile used this folder) and a phone's own contact with the same name:
neither may be adopted, changed or deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.actions import Action, Create, Delete
from sync_core.core.fingerprint import fingerprint
from sync_core.core.plan import plan_target
from sync_core.core.profile import Profile
from sync_core.core.sources import DesiredContact
from sync_core.core.tags import contact_tag_properties, read_contact_tag
from sync_core.service.executor import ExecReport, TargetWork, execute
from sync_core.service.folders import ensure_folder
from sync_core.service.runtime import Runtime

from .conftest import SMALL_CONFIG, MakeRuntime

CONFIG = SMALL_CONFIG + "\n[profile.photos]\nenabled = false\n"
PROFILE = "Small"
OTHER_PROFILE = "Dispatch"
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
CONTACT = CONTACTS + "/{contact}"
KEY = "user:ana"
ANA = {"displayName": "Ana Costa", "givenName": "Ana", "surname": "Costa", "mobilePhone": "+33 6 00 00 00 01"}


@dataclass
class InDoubt:
    """One target whose create for `key` got a 504, with two contacts that are not galsync's in its folder."""

    g: GraphEmulator
    rt: Runtime
    profile: Profile
    mailbox: str
    folder_id: str
    key: str
    landed: bool  # whether Graph had created the contact before it answered 504
    others: dict[str, str]  # contact id -> changeKey of the contacts galsync must leave alone

    def plan(self, desired: Mapping[str, DesiredContact]) -> list[Action]:
        records = self.rt.store.get_target_records(PROFILE, self.mailbox)
        return plan_target(self.mailbox, desired, {}, records, self.profile)

    def execute(self, actions: Sequence[Action]) -> ExecReport:
        records = self.rt.store.get_target_records(PROFILE, self.mailbox)
        work = TargetWork(self.mailbox, self.folder_id, actions, records)
        return execute(self.rt.client, self.rt.store, self.profile, [work], self.rt.now_iso)

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {str(c["id"]): c for c in self.g.tenant.mailboxes.contacts(self.mailbox, self.folder_id)}

    def ours(self) -> list[str]:
        """Ids of the contacts carrying this profile's tag for `key`."""
        return [cid for cid, c in self.contacts().items()
                if (tag := read_contact_tag(c)) is not None and (tag.profile, tag.source_key) == (PROFILE, self.key)]

    def assert_others_untouched(self) -> None:
        now = {cid: str(c["changeKey"]) for cid, c in self.contacts().items() if cid in self.others}
        assert now == self.others, "I1: a contact galsync did not create (for this profile) was changed or deleted"


def desired() -> dict[str, DesiredContact]:
    return {KEY: DesiredContact(ANA, fingerprint(ANA))}


@pytest.fixture(params=[True, False], ids=["create-landed", "create-lost"])
def in_doubt(graph_empty: GraphEmulator, make_runtime: MakeRuntime, request: pytest.FixtureRequest) -> InDoubt:
    """The create of KEY to Tom's folder answered 504; Graph had created it anyway, or not."""
    g = graph_empty
    rt = make_runtime(g, CONFIG)
    profile = rt.config.profile(PROFILE)
    mailbox = str(g.tenant.directory.add_user(displayName="Tom Truck")["id"])
    folder_id = ensure_folder(rt.client, profile, mailbox)
    mailboxes = g.tenant.mailboxes
    other_profiles = mailboxes.create_contact(
        mailbox, {**ANA, "singleValueExtendedProperties": contact_tag_properties(OTHER_PROFILE, KEY)}, folder_id)
    phones_own = mailboxes.phone_create_contact(mailbox, {"displayName": ANA["displayName"],
                                                          "personalNotes": "from the call log"}, folder_id)
    others = {str(c["id"]): str(c["changeKey"]) for c in (other_profiles, phones_own)}
    scene = InDoubt(g, rt, profile, mailbox, folder_id, KEY, request.param, others)

    [create] = scene.plan(desired())
    assert isinstance(create, Create) and not create.recover
    g.faults.fail_next(1, 504, route=f"POST {CONTACTS}", mailbox=mailbox)
    assert scene.execute([create]).counts["failed"] == 1
    [record] = rt.store.get_target_records(PROFILE, mailbox).values()
    assert record.contact_id is None  # in flight: the create may have happened
    if scene.landed:
        mailboxes.create_contact(mailbox, dict(create.body), folder_id)  # Graph created it; the gateway timed out
    g.log.clear()
    return scene


def test_a_create_in_doubt_adopts_or_makes_only_its_own_contact(in_doubt: InDoubt) -> None:
    scene = in_doubt
    [recover] = scene.plan(desired())
    assert isinstance(recover, Create) and recover.recover
    report = scene.execute([recover])
    scene.assert_others_untouched()
    [contact_id] = scene.ours()
    assert scene.rt.store.get_target_records(PROFILE, scene.mailbox)[scene.key].contact_id == contact_id
    assert dict(report.counts) == ({"adopted": 1} if scene.landed else {"created": 1})
    # One read of the folder to look for the tag, then one write: the adoption's PATCH or the create.
    assert scene.g.log.count(method="GET", route=CONTACTS) == 1
    assert scene.g.log.count(method="PATCH", route=CONTACT) == (1 if scene.landed else 0)
    assert scene.g.log.count(method="POST", route=CONTACTS) == (0 if scene.landed else 1)
    assert scene.g.log.count(method="DELETE", route=CONTACT) == 0
    assert scene.plan(desired()) == []


def test_a_delete_in_doubt_deletes_only_its_own_contact(in_doubt: InDoubt) -> None:
    scene = in_doubt
    plan = scene.plan({})  # the source is gone before the create in doubt was recovered
    assert plan == [Delete(scene.key, None)]
    report = scene.execute(plan)
    scene.assert_others_untouched()
    assert scene.ours() == []
    assert scene.rt.store.get_target_records(PROFILE, scene.mailbox) == {}
    assert dict(report.counts) == ({"deleted": 1} if scene.landed else {"forgotten": 1})
    assert scene.g.log.count(method="GET", route=CONTACTS) == 1
    assert scene.g.log.count(method="DELETE", route=CONTACT) == (1 if scene.landed else 0)
    assert scene.g.log.count(method="PATCH", route=CONTACT) == scene.g.log.count(method="POST", route=CONTACTS) == 0
