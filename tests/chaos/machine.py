"""The chaos state machine: random histories of a small tenant, phones and faults, with galsync running through.

Each example starts a fresh emulator with a few users and a "Phones" group (the targets), fills the phones,
then runs a sequence of steps drawn by hypothesis:
- directory changes: hire (a member, an unlicensed user, a guest), leave (soft or hard delete), rename, phone
  number change, disable/enable, joins and leaves of the target group;
- phones on target mailboxes: save a foreign contact (in the managed folder or the default one), edit or delete
  a managed one; put another profile's contact of every colleague, and a card with each colleague's name, in
  the managed folder;
- Graph trouble: expired delta tokens, replayed delta items, 429/503/504 and dropped connections at 10-20%
  (seeded), and calm again;
- mailboxes: an owner deletes galsync's managed folder; a mailbox leaves galsync's Exchange scope (it answers
  403, as before a scope change applies) and the scope applies again;
- galsync: incremental syncs, reconciles, both in a row, a worker that crashes at a drawn Graph call or state
  write, two workers at once on the same profile, a worker that dies holding the profile's sync lease and/or
  the target leases (the next runs find them busy and write nothing; once the workers' clock is a lease's ttl
  later, they proceed), and the state store wiped (a lost SQLite file, a storage account made again: the
  workers start from an empty store of the same tenant and endpoint; the sync that follows adopts what is in
  the mailboxes and creates none of the contacts that were already in step).

After every step that completes (hypothesis invariants): no duplicate managed contact (I2), every foreign
contact untouched (same changeKey, I1 under policy "report"; another profile's contact of a source whose
write galsync recovers by tag included), every note a phone wrote on a managed contact still there, and no
unchanged contact rewritten (a contact whose source did not change and that no phone touched keeps its id
and changeKey). After a sync and a reconcile that both report success, and at the end
of every example once faults stop: every target folder holds exactly the desired contacts (I3), computed
from the emulator's directory by oracle.py, not from galsync's state.

Only one thing is not real here: the "crash" is an exception (tests/crash_injection.py); a real SIGKILL is
tests/chaos/test_sigkill.py.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from graph_emulator import GraphEmulator
from sync_core.core.tags import contact_tag_properties
from sync_core.service.push import target_lease
from sync_core.service.runtime import Runtime
from sync_core.settings import LEASE_SECONDS
from sync_core.state.sqlite_store import SqliteStore
from tests.crash_injection import Crash, CrashingGraph, CrashingStore

from . import oracle, world
from .oracle import source_key
from .world import FIRST, GROUP_ID, LAST

NOTES = ("parks at gate 2", "call after 9", "speaks Portuguese")
OTHER_PROFILE = "Dispatch"  # a profile that is not configured here; its tag is on contacts galsync must not touch
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"  # listed only by a push's lookup by tag
WRITES = ("POST", "PATCH", "DELETE")
DEAD_WORKER = "dead-worker"  # the owner of the leases a killed worker left behind
FOREIGN_NAMES = ("Maman", "Garage Dupont", "Pizza Roma", "Dr Lemaire")
PHONE_EDITS: dict[str, dict[str, Any]] = {
    "mobile": {"mobilePhone": "+33 7 00 00 00 00"},
    "notes": {"personalNotes": NOTES[0]},
    "mobile and notes": {"mobilePhone": "+33 7 11 11 11 11", "personalNotes": NOTES[1]},
    "job title": {"jobTitle": "Boss"},
    "given name": {"givenName": "Zed"},  # Exchange regenerates displayName
    "notes only, other": {"personalNotes": NOTES[2]},
}

picks = st.integers(0, 30)  # an index into whatever list applies at that moment (taken modulo its length)
mobiles = st.one_of(st.none(), st.integers(0, 99).map(lambda n: f"+33 6 12 34 56 {n:02d}"))


class ChaosMachine(RuleBasedStateMachine):
    """See the module docstring. `stats` counts, across examples, what ran and how runs ended (bench prints it)."""

    stats: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        ChaosMachine.stats["examples"] += 1
        self.tmp = Path(tempfile.mkdtemp(prefix="galsync-chaos-"))
        self.state = self.tmp / "state.db"
        self.wipes = 0  # state stores wiped so far: each wipe gives the workers a new, empty file
        self.clock_offset = 0.0  # how far the workers' clock runs ahead (a lease runs out without sleeping)
        self.g: GraphEmulator | None = None
        self.worker: Runtime | None = None
        self.people: list[str] = []  # user ids, in hire order
        # What phones did, to check galsync never touched it: foreign contact id -> (mailbox, folder, changeKey)
        self.foreign: dict[str, tuple[str, str | None, str]] = {}
        self.notes: dict[str, tuple[str, str]] = {}  # managed contact id -> (mailbox, personalNotes a phone wrote)
        # Mailboxes whose managed folder holds another profile's contact, and the lookups by tag counted there.
        self.other_profiles_in: set[str] = set()
        self.lookups_counted = 0
        # (mailbox, source key) -> (contact id, changeKey) at the last converged check, and what changed since.
        self.baseline: dict[tuple[str, str], tuple[str, str]] = {}
        self.dirty_keys: set[str] = set()
        self.dirty_pairs: set[tuple[str, str]] = set()
        self.dirty_mailboxes: set[str] = set()
        self.out_of_scope: set[str] = set()  # mailboxes galsync's Exchange scope leaves out (they answer 403)
        # Former targets still holding galsync's contacts when the state was wiped: galsync cannot know them.
        self.forgotten: set[str] = set()
        self.step_done = True

    # --- set-up and tear-down ---------------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**16), staff=st.integers(3, 5), phones=st.integers(1, 3))
    def start(self, seed: int, staff: int, phones: int) -> None:
        self._begin("start")
        self.g = GraphEmulator.start(scenario=None, seed=seed)
        self.people = world.small_tenant(self.g, staff, phones)
        self.worker = self._runtime()
        self._settle("first fill")

    def teardown(self) -> None:
        try:
            if self.g is not None and self.worker is not None and self.step_done:
                self._settle("end of the example")
                self._count_lookups_beside_other_profiles()
        finally:
            if self.worker is not None:
                self.worker.close()
            if self.g is not None:
                self.g.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _runtime(self) -> Runtime:
        assert self.g is not None
        return world.runtime(self.g, self.state, clock=self._now)

    def _now(self) -> float:
        return time.time() + self.clock_offset

    def _begin(self, what: str) -> None:
        self.step_done = False
        ChaosMachine.stats[f"step: {what}"] += 1

    def _record(self, what: str, outcome: str) -> None:
        note(f"{what}: {outcome}")
        ChaosMachine.stats[f"run: {what}: {outcome}"] += 1

    def _settle(self, why: str) -> None:
        """Faults stop and every mailbox is in scope; one sync and one reconcile must then succeed and leave every
        folder as desired."""
        assert self.g is not None and self.worker is not None
        self.g.faults.clear()
        self._scope(set())
        synced = world.sync(self.worker)
        reconciled = world.reconcile(self.worker)
        self._record("settle", f"{synced}/{reconciled}")
        assert (synced, reconciled) == ("ok", "ok"), f"{why}: with no faults, sync {synced}, reconcile {reconciled}"
        self._converged()

    def _converged(self) -> None:
        assert self.g is not None
        want = oracle.check_converged(self.g, GROUP_ID, self.forgotten)
        self.forgotten -= want.targets  # a target again: galsync knows it from now on
        ChaosMachine.stats["converged checks"] += 1
        self.baseline = {(m, k): (str(c["id"]), str(c["changeKey"]))
                         for m in want.targets for k, [c] in oracle.managed_contacts(self.g, m).items()}
        self.dirty_keys.clear()
        self.dirty_pairs.clear()
        self.dirty_mailboxes.clear()

    # --- the directory ----------------------------------------------------------------------------------------

    @property
    def directory(self) -> Any:
        assert self.g is not None
        return self.g.tenant.directory

    def _active(self) -> list[str]:
        return [u for u in self.people if self.directory.get_user(u) is not None]

    @rule(kind=st.sampled_from(["member", "member", "unlicensed", "guest"]), mobile=mobiles, phone=st.booleans())
    def hire(self, kind: str, mobile: str | None, phone: bool) -> None:
        self._begin("hire")
        assert self.g is not None
        uid = world.hire(self.g, len(self.people), kind, mobile)
        self.people.append(uid)
        self._scope(self.out_of_scope)  # a scope leaves out named mailboxes only: the newcomer is in it
        if phone:
            self.directory.add_member(GROUP_ID, uid)
            self.dirty_mailboxes.add(uid)

    @precondition(lambda self: len(self._active()) > 1)
    @rule(who=picks, hard=st.booleans())
    def leave(self, who: int, hard: bool) -> None:
        self._begin("leave")
        uid = _pick(self._active(), who)
        self.directory.delete_user(uid, hard=hard)
        self.dirty_keys.add(source_key(uid))
        self.dirty_mailboxes.add(uid)

    @precondition(lambda self: self._active())
    @rule(who=picks, first=st.sampled_from(FIRST), last=st.sampled_from(LAST))
    def rename(self, who: int, first: str, last: str) -> None:
        self._begin("rename")
        uid = _pick(self._active(), who)
        self.directory.update_user(uid, displayName=f"{first} {last}", givenName=first, surname=last)
        self.dirty_keys.add(source_key(uid))

    @precondition(lambda self: self._active())
    @rule(who=picks, mobile=mobiles)
    def change_phone(self, who: int, mobile: str | None) -> None:
        self._begin("change phone")
        uid = _pick(self._active(), who)
        self.directory.update_user(uid, mobilePhone=mobile)
        self.dirty_keys.add(source_key(uid))

    @precondition(lambda self: self._active())
    @rule(who=picks)
    def disable_or_enable(self, who: int) -> None:
        self._begin("disable or enable")
        uid = _pick(self._active(), who)
        enabled = self.directory.get_user(uid).get("accountEnabled") is not False
        self.directory.update_user(uid, accountEnabled=not enabled)
        self.dirty_keys.add(source_key(uid))

    @precondition(lambda self: self._outside_group())
    @rule(who=picks)
    def join_phones(self, who: int) -> None:
        self._begin("join phones")
        uid = _pick(self._outside_group(), who)
        self.directory.add_member(GROUP_ID, uid)
        self.dirty_mailboxes.add(uid)

    @precondition(lambda self: self.directory.members(GROUP_ID))
    @rule(who=picks)
    def leave_phones(self, who: int) -> None:
        self._begin("leave phones")
        uid = _pick(sorted(self.directory.members(GROUP_ID)), who)
        self.directory.remove_member(GROUP_ID, uid)
        self.dirty_mailboxes.add(uid)

    def _outside_group(self) -> list[str]:
        members = set(self.directory.members(GROUP_ID))
        return [u for u in self._active() if u not in members]

    # --- phones -----------------------------------------------------------------------------------------------

    def _with_managed_contacts(self) -> list[str]:
        """Mailboxes with galsync contacts. What galsync wrote varies between replays (two workers race), so
        this is never a precondition: hypothesis needs the same draws when it replays an example."""
        assert self.g is not None
        return [m for m in oracle.alive_mailboxes(self.g) if oracle.managed_contacts(self.g, m)]

    @rule(where=picks, managed_folder=st.booleans(), name=st.sampled_from(FOREIGN_NAMES))
    def phone_saves_a_contact(self, where: int, managed_folder: bool, name: str) -> None:
        """Someone saves a number from the call log: in galsync's folder, or in the mailbox's own Contacts."""
        self._begin("phone saves a contact")
        assert self.g is not None
        mailboxes = oracle.alive_mailboxes(self.g)
        if managed_folder:
            mailboxes = [m for m in mailboxes if oracle.managed_folder(self.g, m)]
        if not mailboxes:
            return
        mailbox = _pick(mailboxes, where)
        folder = oracle.managed_folder(self.g, mailbox) if managed_folder else None
        saved = self.g.tenant.mailboxes.phone_create_contact(
            mailbox, {"displayName": name, "mobilePhone": "+33 6 98 76 54 32"}, folder_id=folder)
        self.foreign[str(saved["id"])] = (mailbox, folder, str(saved["changeKey"]))

    @rule(where=picks, which=picks, edit=st.sampled_from(sorted(PHONE_EDITS)))
    def phone_edits_a_managed_contact(self, where: int, which: int, edit: str) -> None:
        self._begin("phone edits a managed contact")
        assert self.g is not None
        mailboxes = self._with_managed_contacts()
        if not mailboxes:
            return
        mailbox = _pick(mailboxes, where)
        found = oracle.managed_contacts(self.g, mailbox)
        key = _pick(sorted(found), which)
        contact = found[key][0]
        self.g.tenant.mailboxes.phone_update_contact(mailbox, str(contact["id"]), dict(PHONE_EDITS[edit]))
        self.dirty_pairs.add((mailbox, key))
        if "personalNotes" in PHONE_EDITS[edit]:
            self.notes[str(contact["id"])] = (mailbox, PHONE_EDITS[edit]["personalNotes"])

    @rule(where=picks, which=picks)
    def phone_deletes_a_managed_contact(self, where: int, which: int) -> None:
        self._begin("phone deletes a managed contact")
        assert self.g is not None
        mailboxes = self._with_managed_contacts()
        if not mailboxes:
            return
        mailbox = _pick(mailboxes, where)
        found = oracle.managed_contacts(self.g, mailbox)
        key = _pick(sorted(found), which)
        contact_id = str(found[key][0]["id"])
        self.g.tenant.mailboxes.phone_delete_contact(mailbox, contact_id)
        self.dirty_pairs.add((mailbox, key))
        self.notes.pop(contact_id, None)

    @rule(where=picks)
    def another_profiles_contacts_in_the_folder(self, where: int) -> None:
        """Into galsync's folder of one mailbox, for every colleague: a contact tagged by another profile (a
        phone moved them there) and a card a phone saved with the colleague's name. A create is in doubt there
        first, so the next push or reconcile of that mailbox looks the colleague's contact up by tag, finds
        these first and must leave them alone (I1), like every other foreign contact."""
        self._begin("another profile's contacts in the folder")
        assert self.g is not None
        mailboxes = [m for m in oracle.alive_mailboxes(self.g)
                     if m not in self.other_profiles_in and oracle.managed_folder(self.g, m)]
        if not mailboxes:
            return
        mailbox = _pick(mailboxes, where)
        self._make_a_create_in_doubt(mailbox)
        folder = oracle.managed_folder(self.g, mailbox)
        if folder is None:
            return
        self.other_profiles_in.add(mailbox)
        self.lookups_counted += self.g.log.count(method="GET", route=CONTACTS, mailbox=mailbox)
        for uid in self._active():
            name = str(self.directory.get_user(uid)["displayName"])
            tag = contact_tag_properties(OTHER_PROFILE, source_key(uid))
            for fields in ({"displayName": name, "mobilePhone": "+33 6 11 22 33 44",
                            "singleValueExtendedProperties": tag},
                           {"displayName": name, "personalNotes": NOTES[1]}):
                saved = self.g.tenant.mailboxes.phone_create_contact(mailbox, fields, folder_id=folder)
                self.foreign[str(saved["id"])] = (mailbox, folder, str(saved["changeKey"]))

    def _make_a_create_in_doubt(self, mailbox: str) -> None:
        """A phone deletes one of the mailbox's managed contacts and a reconcile makes it again, but Graph
        answers that create with a 504 (it may or may not have happened): galsync holds it in doubt. The other
        faults pause for this reconcile, so the in-doubt create does not depend on how the history got here."""
        assert self.g is not None and self.worker is not None
        found = oracle.managed_contacts(self.g, mailbox)
        if mailbox in self.out_of_scope or not found:
            return
        key = sorted(found)[0]
        contact_id = str(found[key][0]["id"])
        self.g.tenant.mailboxes.phone_delete_contact(mailbox, contact_id)
        self.dirty_pairs.add((mailbox, key))
        self.notes.pop(contact_id, None)
        ambient = self.g.faults.settings
        self.g.faults.clear()
        self.g.faults.fail_next(1, 504, route=f"POST {CONTACTS}", mailbox=mailbox)
        try:
            self._record("reconcile with a create in doubt", world.reconcile(self.worker))
        finally:
            self.g.faults.clear()  # the one 504 is for this create only, if the reconcile did not reach it
            self.g.faults.configure(seed=ambient.seed, error_rate=ambient.error_rate, statuses=ambient.statuses,
                                    drop_rate=ambient.drop_rate, latency_ms=ambient.latency_ms)
        if self._writes_in_doubt(mailbox):
            ChaosMachine.stats["creates in doubt beside another profile's contact"] += 1

    def _writes_in_doubt(self, mailbox: str) -> bool:
        """Whether galsync holds a record without a contact id (a create in flight) for this mailbox. Steers
        the step only: what must hold is still checked against the emulator."""
        assert self.worker is not None
        return any(r.contact_id is None for r in self.worker.store.get_target_records(oracle.PROFILE, mailbox).values())

    @rule(where=picks)
    def owner_deletes_the_managed_folder(self, where: int) -> None:
        """Someone deletes galsync's folder, on a phone or in Outlook, with every contact in it."""
        self._begin("owner deletes the managed folder")
        assert self.g is not None
        mailboxes = [m for m in oracle.alive_mailboxes(self.g) if oracle.managed_folder(self.g, m)]
        if not mailboxes:
            return
        mailbox = _pick(mailboxes, where)
        folders = oracle.managed_folders(self.g, mailbox)
        for folder in folders:
            self.g.tenant.mailboxes.delete_folder(mailbox, folder)
        self.foreign = {c: seen for c, seen in self.foreign.items() if (seen[0], seen[1]) not in
                        {(mailbox, f) for f in folders}}
        self.notes = {c: seen for c, seen in self.notes.items() if seen[0] != mailbox}
        self.dirty_mailboxes.add(mailbox)

    # --- lost state and dead workers -----------------------------------------------------------------------

    @rule()
    def state_store_wiped(self) -> None:
        """The admin lost the SQLite file (or made the storage account again): the workers start from a new,
        empty store, for the same tenant and Graph endpoint, and the next trigger's sync runs. It adopts what
        the mailboxes hold: not one contact that was in step is made again (and none is rewritten: the
        invariants). With Graph calm, it creates exactly the missing contacts and lists each folder once."""
        self._begin("state store wiped")
        assert self.g is not None and self.worker is not None
        want = oracle.desired(self.g, GROUP_ID)
        self.forgotten |= {m for m in oracle.alive_mailboxes(self.g)
                           if m not in want.targets and oracle.managed_contacts(self.g, m)}
        targets = sorted(want.targets - self.out_of_scope)
        in_step: dict[tuple[str, str], str] = {}
        missing: dict[str, int] = {}
        folders: dict[str, bool] = {}
        for mailbox in targets:
            found = oracle.managed_contacts(self.g, mailbox)
            in_step.update({(mailbox, k): str(c["id"]) for k, [c] in found.items()
                            if k in want.contacts and oracle.owned_view(c) == want.contacts[k]})
            missing[mailbox] = len(set(want.contacts) - set(found))
            folders[mailbox] = oracle.managed_folder(self.g, mailbox) is not None
        self.worker.close()
        self.wipes += 1
        self.state = self.tmp / f"state-{self.wipes}.db"
        self.worker = self._runtime()
        calm = self._graph_calm()
        creates = {m: self.g.log.count(method="POST", route=CONTACTS, mailbox=m) for m in targets}
        listings = {m: self.g.log.count(method="GET", route=CONTACTS, mailbox=m) for m in targets}
        synced = world.sync(self.worker)
        self._record("sync after the state was wiped", synced)
        for (mailbox, key), contact_id in in_step.items():
            if oracle.mailbox_alive(self.g, mailbox):
                now = [str(c["id"]) for c in oracle.managed_contacts(self.g, mailbox).get(key, [])]
                assert now == [contact_id], f"mailbox {mailbox} {key}: in step before the wipe, made again: {now}"
        if not (calm and synced == "ok"):
            return
        ChaosMachine.stats["calm syncs after a wipe, creates counted"] += 1
        for mailbox in targets:
            made = self.g.log.count(method="POST", route=CONTACTS, mailbox=mailbox) - creates[mailbox]
            listed = self.g.log.count(method="GET", route=CONTACTS, mailbox=mailbox) - listings[mailbox]
            assert made == missing[mailbox], f"mailbox {mailbox}: {made} creates after a wipe, {missing[mailbox]} gone"
            assert listed == int(folders[mailbox]), f"mailbox {mailbox}: its folder listed {listed} times after a wipe"

    def _graph_calm(self) -> bool:
        """No fault of any kind is set: a count of Graph requests is then exact."""
        assert self.g is not None
        settings = self.g.faults.settings
        return settings.error_rate == 0 and settings.drop_rate == 0 and self.g.tenant.delta_replay_rate == 0

    @rule(holds=st.sampled_from(["sync lease", "target leases", "both"]))
    def worker_dies_holding_leases(self, holds: str) -> None:
        """A worker is killed (a deployment, a scale-in, a SIGKILL) while it holds the profile's sync lease,
        the target leases, or both: nobody releases them. The runs that follow at once find them busy and
        write nothing to the held mailboxes; once the workers' clock is a lease's ttl later (no sleeping),
        a sync and a reconcile proceed (convergence is checked by the next settle)."""
        self._begin("worker dies holding leases")
        assert self.g is not None and self.worker is not None
        profile = self.worker.config.profile(oracle.PROFILE)
        held = sorted(oracle.desired(self.g, GROUP_ID).targets) if holds != "sync lease" else []
        names = [f"sync:{oracle.PROFILE}"] if holds != "target leases" else []
        names += [target_lease(profile, m) for m in held]
        with SqliteStore(self.state, clock=self._now) as dead:
            for name in names:
                assert dead.acquire_lease(name, DEAD_WORKER, LEASE_SECONDS), f"lease {name} already held"
        written = self._writes_to(held)
        synced = world.sync(self.worker)
        reconciled = world.reconcile(self.worker)
        self._record(f"runs beside a dead worker's {holds}", f"{synced}/{reconciled}")
        assert self._writes_to(held) == written, f"wrote to mailboxes a dead worker's leases hold: {held}"
        if holds != "target leases":
            assert synced == "busy", f"sync beside a dead worker's sync lease: {synced}"
        self.clock_offset += LEASE_SECONDS + 1
        synced = world.sync(self.worker)
        reconciled = world.reconcile(self.worker)
        self._record("runs a lease's ttl after a worker died", f"{synced}/{reconciled}")
        assert "busy" not in synced + reconciled and "TargetsBusy" not in synced + reconciled, \
            f"the dead worker's leases still block a lease's ttl later: sync {synced}, reconcile {reconciled}"

    def _writes_to(self, mailboxes: list[str]) -> int:
        """Contact writes to these mailboxes. A new target's folder is found or made under the sync lease
        alone (idempotent: a second create of the tagged folder is refused with a conflict and looked up)."""
        assert self.g is not None
        return sum(self.g.log.count(method=w, route=r, mailbox=m)
                   for w in WRITES for r in (CONTACTS, CONTACTS + "/{contact}") for m in mailboxes)

    # --- galsync's Exchange scope -----------------------------------------------------------------------------

    @rule(who=picks)
    def mailbox_leaves_the_scope(self, who: int) -> None:
        """The admin's scope for galsync leaves a mailbox out (or a change has not applied yet): it answers 403."""
        self._begin("mailbox leaves the scope")
        self._scope(self.out_of_scope | {_pick(self.people, who)})

    @rule()
    def scope_applies(self) -> None:
        self._begin("scope applies")
        self._scope(set())

    def _scope(self, out: set[str]) -> None:
        assert self.g is not None
        self.out_of_scope = set(out)
        with self.g.tenant.lock:
            self.g.tenant.apps[self.g.client_id].mailbox_scope = set(self.people) - out if out else None

    # --- Graph trouble ----------------------------------------------------------------------------------------

    @rule()
    def expire_delta_tokens(self) -> None:
        self._begin("expire delta tokens")
        assert self.g is not None
        self.g.tenant.expire_delta_tokens()

    @rule(on=st.booleans())
    def delta_replays(self, on: bool) -> None:
        self._begin("delta replays")
        assert self.g is not None
        self.g.tenant.delta_replay_rate = 0.2 if on else 0.0

    @rule(seed=st.integers(0, 2**16), error_rate=st.sampled_from([0.1, 0.15, 0.2]),
          statuses=st.sampled_from([(429, 503, 504), (429,), (503, 504)]), drop_rate=st.sampled_from([0.0, 0.1, 0.2]))
    def faults(self, seed: int, error_rate: float, statuses: tuple[int, ...], drop_rate: float) -> None:
        self._begin("faults")
        assert self.g is not None
        self.g.faults.configure(seed=seed, error_rate=error_rate, statuses=statuses, drop_rate=drop_rate)

    @rule()
    def calm(self) -> None:
        self._begin("calm")
        assert self.g is not None
        self.g.faults.clear()

    # --- galsync ----------------------------------------------------------------------------------------------

    @rule()
    def sync(self) -> None:
        self._begin("sync")
        assert self.worker is not None
        self._record("sync", world.sync(self.worker))

    @rule()
    def reconcile(self) -> None:
        self._begin("reconcile")
        assert self.worker is not None
        self._record("reconcile", world.reconcile(self.worker))

    @rule()
    def sync_then_reconcile(self) -> None:
        """The nightly pair; when both report success, every folder must be exactly as desired (I3)."""
        self._begin("sync then reconcile")
        assert self.worker is not None
        synced = world.sync(self.worker)
        reconciled = world.reconcile(self.worker)
        self._record("sync then reconcile", f"{synced}/{reconciled}")
        if (synced, reconciled) == ("ok", "ok"):
            self._converged()

    @rule(run=st.sampled_from(["sync", "reconcile"]),
          point=st.sampled_from(["graph write", "graph call", "state write"]), n=st.integers(1, 8))
    def worker_crashes(self, run: str, point: str, n: int) -> None:
        """Another worker runs and dies right after its n-th Graph write / Graph call / state write."""
        self._begin("worker crashes")
        rt = self._runtime()
        try:
            if point == "state write":
                rt.store = CrashingStore(rt.store, n)  # type: ignore[assignment]
            else:
                CrashingGraph(rt.client, n, reads=point == "graph call")
            try:
                outcome = world.sync(rt) if run == "sync" else world.reconcile(rt)
            except Crash:
                outcome = "crashed"
        finally:
            rt.close()
        self._record(f"{run} crashing at {point}", outcome)

    @rule(second=st.sampled_from(["sync", "reconcile"]))
    def two_workers(self, second: str) -> None:
        """The main worker syncs while a second one syncs or reconciles the same profile at the same moment."""
        self._begin("two workers")
        assert self.worker is not None
        other = self._runtime()
        runs: list[tuple[str, Runtime, Callable[[Runtime], str]]] = [
            ("sync", self.worker, world.sync), (second, other, world.sync if second == "sync" else world.reconcile)]
        outcomes: dict[int, str | BaseException] = {}
        start = threading.Barrier(len(runs))

        def work(i: int, rt: Runtime, run: Callable[[Runtime], str]) -> None:
            start.wait()
            try:
                outcomes[i] = run(rt)
            except BaseException as exc:  # re-raised below, in the test's thread
                outcomes[i] = exc

        threads = [threading.Thread(target=work, args=(i, rt, run)) for i, (_, rt, run) in enumerate(runs)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            other.close()
        for outcome in outcomes.values():
            if isinstance(outcome, BaseException):
                raise outcome
        self._record(f"two workers: sync + {second}", f"{outcomes[0]}/{outcomes[1]}")

    @rule()
    def settle(self) -> None:
        self._begin("settle")
        self._settle("settle")

    # --- invariants after every step --------------------------------------------------------------------------

    @invariant()
    def nothing_duplicated_nothing_foreign_touched_nothing_unchanged_rewritten(self) -> None:
        if self.g is None:
            return
        oracle.check_no_duplicates(self.g)
        self._check_foreign_untouched()
        self._count_lookups_beside_other_profiles()
        self._check_notes_kept()
        self._check_unchanged_not_rewritten()
        self.step_done = True

    def _check_foreign_untouched(self) -> None:
        assert self.g is not None
        for contact_id, (mailbox, folder, change_key) in self.foreign.items():
            if not oracle.mailbox_alive(self.g, mailbox):
                continue
            now = {str(c["id"]): c for c in self.g.tenant.mailboxes.contacts(mailbox, folder)}
            assert contact_id in now, f"mailbox {mailbox}: a foreign contact was deleted (folder {folder})"
            assert now[contact_id]["changeKey"] == change_key, f"mailbox {mailbox}: a foreign contact was changed"

    def _count_lookups_beside_other_profiles(self) -> None:
        """How often a push looked for its contacts by tag in a folder that holds another profile's contact
        (the stats show whether histories reach the lookup the step is about)."""
        assert self.g is not None
        lookups = sum(self.g.log.count(method="GET", route=CONTACTS, mailbox=m) for m in self.other_profiles_in)
        ChaosMachine.stats["lookups by tag beside another profile's contact"] += lookups - self.lookups_counted
        self.lookups_counted = lookups

    def _check_notes_kept(self) -> None:
        assert self.g is not None
        for contact_id, (mailbox, text) in self.notes.items():
            if not oracle.mailbox_alive(self.g, mailbox):
                continue
            for contacts in oracle.managed_contacts(self.g, mailbox).values():
                for contact in contacts:
                    if str(contact["id"]) == contact_id:
                        assert contact.get("personalNotes") == text, \
                            f"mailbox {mailbox}: galsync overwrote the notes a phone wrote on a managed contact"

    def _check_unchanged_not_rewritten(self) -> None:
        assert self.g is not None
        for (mailbox, key), (contact_id, change_key) in self.baseline.items():
            if key in self.dirty_keys or (mailbox, key) in self.dirty_pairs or mailbox in self.dirty_mailboxes:
                continue
            found = oracle.managed_contacts(self.g, mailbox).get(key, [])
            now = [(str(c["id"]), str(c["changeKey"])) for c in found]
            assert now == [(contact_id, change_key)], \
                f"mailbox {mailbox} {key}: unchanged contact rewritten or replaced: {(contact_id, change_key)} -> {now}"


def _pick(items: list[str], n: int) -> str:
    return items[n % len(items)]
