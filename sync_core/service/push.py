"""`push_targets`: plan a profile's contacts for a chunk of target mailboxes and write them.

Each target is planned against its own records (the pure planner), and every plan of the chunk is applied in
one `$batch` stream (executor). An unchanged contact costs nothing (I4). A fill of a target with no records, into
a folder this run did not make, first adopts what galsync's tag marks as its own there (adoption.py), so a lost
state store never doubles a phone's contacts (I9). Every mailbox is written under its
own lease (`target_lease`), which reconcile takes too, so two workers never write one mailbox at once (I2);
a heartbeat renews the leases while the push runs, and the executor stops between write waves if they are
lost. A mailbox that refuses fails alone, and a managed folder its owner deleted is made again and filled in
the same push (mailbox_checks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from sync_core.core.actions import Create
from sync_core.core.plan import SharedCreates, create_action, plan_removed_target, plan_target
from sync_core.core.profile import Profile
from sync_core.core.records import SourceRecord, Target, folder_place
from sync_core.core.sources import DesiredContact, merge_sources, source_key_prefix
from sync_core.graph import GraphError
from sync_core.settings import LEASE_SECONDS
from sync_core.state import docs
from sync_core.state.base import Lease, StateStore
from sync_core.state.leases import Heartbeat, describe_lease

from .adoption import adopt
from .executor import execute
from .folders import FolderConflict, ensure_folder, ensure_folders
from .mailbox_checks import MailboxChecks
from .moves import finish_moves, pending_moves, start_move
from .runtime import PushMessage, Runtime
from .tagged_removal import tagged_removal
from .target_work import ExecReport, TargetWork, WriteCounter

log = logging.getLogger("galsync.push")

TARGET_LEASE_SECONDS = LEASE_SECONDS


class TargetsBusy(RuntimeError):
    """Another worker is writing to these target mailboxes; the push must be retried later (queue retry)."""

    def __init__(self, profile: str, mailboxes: list[str], holder: Lease | None = None) -> None:
        held = f"; {describe_lease(holder)}" if holder is not None else ""
        super().__init__(f"profile {profile}: {len(mailboxes)} target mailbox(es) are being written by another "
                         f"worker ({', '.join(mailboxes[:3])}{', ...' if len(mailboxes) > 3 else ''}{held}); "
                         "retry later")
        self.mailboxes = mailboxes


def push_targets(rt: Runtime, message: PushMessage, *, targets: Mapping[str, Target] | None = None,
                 counter: WriteCounter | None = None) -> ExecReport:
    """Plan and apply a profile's contacts to a chunk of target mailboxes (`targets`: instead of the stored
    ones, for targets this run found and has not stored yet; `counter`: hears of the writes wave by wave).

    Each mailbox is written under its own lease, so two pushes that overlap (two quick changes fanned out
    to the same targets, handled by two instances) never both create the same contact (I2). Mailboxes held
    by another worker are skipped and reported with TargetsBusy once the others are done: the queue retries
    the message, and a retried push of an up-to-date mailbox writes nothing.
    """
    profile = rt.config.profile(message.profile)
    held: list[str] = []
    busy: list[str] = []
    with Heartbeat(rt.store, rt.owner, TARGET_LEASE_SECONDS, clock=rt.clock) as beat:
        for mailbox in message.mailboxes:
            (held if beat.take(target_lease(profile, mailbox)) else busy).append(mailbox)
        report = _push_held(rt, profile, replace(message, mailboxes=tuple(held)), targets, beat.held, counter)
    if busy:
        raise TargetsBusy(profile.name, busy, rt.store.get_lease(target_lease(profile, busy[0])))
    return report


def target_lease(profile: Profile, mailbox: str) -> str:
    """The lease a worker holds while it writes to one target mailbox (pushes and reconcile alike)."""
    return f"push:{profile.name}:{mailbox}"


def with_folder(rt: Runtime, profile: Profile, target: Target) -> Target:
    """The target with its managed folder, found or created (and stored) if it has none yet."""
    if target.folder_id:
        return target
    folder_id = ensure_folder(rt.client, profile, target.mailbox)
    updated = Target(target.mailbox, target.address, folder_id, target.purpose, target.active)
    rt.store.put_target(profile.name, updated)
    return updated


def _push_held(rt: Runtime, profile: Profile, message: PushMessage, targets: Mapping[str, Target] | None,
               held: Callable[[], bool], counter: WriteCounter | None) -> ExecReport:
    store, client = rt.store, rt.client
    if targets is None:
        targets = store.get_targets(profile.name)
    if message.mode == "remove":
        return _remove_targets(rt, profile, message, targets, held, counter)
    desired, previous, wanted_keys = _desired(store, profile, message.keys)
    want = desired if wanted_keys is None else {k: d for k, d in desired.items() if k in wanted_keys}
    recreate = _recreator(profile, want)
    works: list[TargetWork] = []
    report = ExecReport()
    checks = MailboxChecks(rt, profile, message.run_id, targets)  # one mailbox fails alone; deleted folders heal
    active = checks.ready([targets[m] for m in message.mailboxes if m in targets and targets[m].active], report)
    shared = SharedCreates(profile)  # a contact's create is the same for every target of the push
    known_empty = set(message.new_folders)  # folders made in this run
    moved: set[str] = set()  # targets that move to the profile's place in this push (moves.py)
    everything = _Everything(store, profile, desired if wanted_keys is None else None)
    written = _with_folders(rt, profile, active, report, checks, made=known_empty, moved=moved)
    for target in written:
        mailbox = target.mailbox
        # A target that moves gets every contact in its new place, whatever this push's keys.
        keys, target_want = (None, everything.get()) if mailbox in moved else (wanted_keys, want)
        records = store.get_target_records(profile.name, mailbox, keys)
        if keys is None and not records and mailbox not in known_empty:
            # A fill with nothing recorded, into a folder that may hold galsync's contacts (lost state).
            actions = adopt(client, profile, mailbox, target.folder_id or "", target_want, report)
        else:
            actions = plan_target(mailbox, target_want, previous, records, profile, shared)
        works.append(TargetWork(mailbox, target.folder_id or "", actions, records, recreate))
    report.merge(execute(client, store, profile, works, rt.now_iso, held, counter))
    # The old place's copies of a move go once the new place has its own: in the same run, after the creates.
    if moves := pending_moves(store, profile, [t.mailbox for t in active]):
        wanted = everything.get()
        report.merge(finish_moves(client, store, profile, moves, wanted.__contains__, rt.now_iso, held))
    healed = checks.settle(written, report)
    if healed:
        refill = _refill(rt, profile, healed, checks, held, counter)
        checks.settle(healed, refill, heal=False)
        report.merge(refill)
    checks.save()
    log.info("profile %s: push %s to %d mailbox(es): %s", profile.name, message.run_id, len(works),
             dict(report.counts))
    return report


def _refill(rt: Runtime, profile: Profile, targets: list[Target], checks: MailboxChecks, held: Callable[[], bool],
            counter: WriteCounter | None) -> ExecReport:
    """Every contact, into the managed folders of targets whose folder was deleted (their records were
    forgotten): a folder made again is empty, so a plain fill; one found by its tag is adopted first."""
    report = ExecReport()
    desired, _, _ = _desired(rt.store, profile, None)
    shared = SharedCreates(profile)
    made: set[str] = set()
    works: list[TargetWork] = []
    for target in _with_folders(rt, profile, targets, report, checks, made=made):
        mailbox, folder = target.mailbox, target.folder_id or ""
        actions = plan_target(mailbox, desired, {}, {}, profile, shared) if mailbox in made else \
            adopt(rt.client, profile, mailbox, folder, desired, report)
        works.append(TargetWork(mailbox, folder, actions, {}, _recreator(profile, desired)))
    report.merge(execute(rt.client, rt.store, profile, works, rt.now_iso, held, counter))
    return report


def _desired(store: StateStore, profile: Profile, keys: tuple[str, ...] | None
             ) -> tuple[dict[str, DesiredContact], Mapping[str, SourceRecord], set[str] | None]:
    """Desired contacts (for `keys`, or all), previous versions to diff against, and the keys to plan."""
    multi = len({s.kind for s in profile.sources}) > 1 or len(profile.sources) > 1
    if keys is None or multi:
        records = list(store.iter_source_records(profile.name))
    else:
        records = list(store.get_source_records(profile.name, keys).values())
    precedence = [source_key_prefix(s, None) if s.kind != "folder" else "folder:" for s in profile.sources]
    desired = merge_sources(records, precedence) if multi else {
        r.source_key: DesiredContact(r.payload, r.fingerprint, r.photo_etag) for r in records}
    wanted: set[str] | None = None
    if keys is not None:
        wanted = set(keys)
        if multi:
            wanted |= _same_person(records, wanted)
    if wanted is None:
        return desired, _AllPrevious(store, profile), wanted
    previous: dict[str, SourceRecord] = {}
    for key in sorted(wanted):
        prev = docs.read(store, docs.Prev, docs.prev_key(profile.name, key))
        if prev is not None:
            previous[key] = prev.record(key)
    return desired, previous, wanted


class _AllPrevious(Mapping[str, SourceRecord]):
    """The previous version of every changed source, for a push of all keys (after a configuration change),
    listed once and only when a target's record is behind: so a category taken out of the profile is taken
    off the contacts, and only what changed is sent."""

    def __init__(self, store: StateStore, profile: Profile) -> None:
        self.store, self.profile = store, profile
        self._loaded: dict[str, SourceRecord] | None = None

    def _all(self) -> dict[str, SourceRecord]:
        if self._loaded is None:
            prefix = docs.prev_key(self.profile.name, "")
            self._loaded = {key[len(prefix):]: prev.record(key[len(prefix):])
                            for key, prev in docs.read_all(self.store, docs.Prev) if key.startswith(prefix)}
        return self._loaded

    def __getitem__(self, key: str) -> SourceRecord:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class _Everything:
    """Every desired contact of the profile, read from the store at most once, and only if a move needs it."""

    def __init__(self, store: StateStore, profile: Profile, known: dict[str, DesiredContact] | None) -> None:
        self.store, self.profile, self.known = store, profile, known

    def get(self) -> dict[str, DesiredContact]:
        if self.known is None:
            self.known = _desired(self.store, self.profile, None)[0]
        return self.known


def _same_person(records: list[SourceRecord], keys: set[str]) -> set[str]:
    """Keys that may win or lose a merge because one of `keys` changed (same first email address)."""
    def email(r: SourceRecord) -> str | None:
        emails = r.payload.get("emailAddresses") or []
        return str(emails[0].get("address", "")).casefold() if emails else None
    identities = {email(r) for r in records if r.source_key in keys} - {None}
    return {r.source_key for r in records if email(r) in identities}


def _recreator(profile: Profile, desired: Mapping[str, DesiredContact]) -> Callable[[str], Create | None]:
    def recreate(key: str) -> Create | None:
        want = desired.get(key)
        return create_action(key, want, profile) if want is not None else None
    return recreate


def _with_folders(rt: Runtime, profile: Profile, targets: list[Target], report: ExecReport, checks: MailboxChecks,
                  made: set[str] | None = None, moved: set[str] | None = None) -> list[Target]:
    """The targets with their managed folder, found or created in `$batch` calls for those that have none yet
    (`made` collects the mailboxes whose folder was created here); a target whose folder name is taken by a
    foreign folder, or whose mailbox refuses, is reported and left out. A target stored in the profile's other
    place starts its move there (moves.py; `moved` collects it)."""
    missing = [t for t in targets if folder_place(t.folder_id) != profile.place]
    found = ensure_folders(rt.client, profile, [t.mailbox for t in missing], made=made) if missing else {}
    out: list[Target] = []
    for target in targets:
        folder = found.get(target.mailbox, target.folder_id)
        if isinstance(folder, FolderConflict):
            report.counts["failed"] += 1
            report.errors.append(str(folder))
            log.error("profile %s: %s", profile.name, folder)
        if isinstance(folder, FolderConflict | GraphError):
            checks.folder_failed(target, folder)
            continue
        if folder != target.folder_id:
            if target.folder_id:
                start_move(rt.store, profile, target, rt.now_iso())
                if moved is not None:
                    moved.add(target.mailbox)
            target = Target(target.mailbox, target.address, folder, target.purpose, target.active)
            rt.store.put_target(profile.name, target)
        out.append(target)
    return out


def _remove_targets(rt: Runtime, profile: Profile, message: PushMessage, targets: Mapping[str, Target],
                    held: Callable[[], bool], counter: WriteCounter | None) -> ExecReport:
    """Mailboxes that left the profile: delete galsync's contacts (or keep them), then forget the target.

    A mailbox with no records (never stored, or its first contact failed before a lost store was rebuilt) may
    still hold this profile's contacts: under "delete" they are found by their tag (tagged_removal.py)."""
    store = rt.store
    report = ExecReport()
    checks = MailboxChecks(rt, profile, message.run_id, targets)  # a mailbox that refuses is emptied next run
    leaving = checks.ready([targets[m] for m in message.mailboxes if m in targets], report, heal=False)
    unknown = [m for m in message.mailboxes if m not in targets]
    works: list[TargetWork] = []
    unrecorded: list[Target] = []  # no records to go by: their folder is found and listed (tagged_removal.py)
    for leaver in leaving:
        records = store.get_target_records(profile.name, leaver.mailbox)
        if leaver.folder_id and records:
            works.append(TargetWork(leaver.mailbox, leaver.folder_id, plan_removed_target(records, profile), records))
        else:
            unrecorded.append(leaver)
    if profile.policies.removed_target == "delete":
        for leaver in [*unrecorded, *(Target(m, "", None, None, active=False) for m in unknown)]:
            try:
                work = tagged_removal(rt.client, profile, leaver.mailbox)
            except GraphError as exc:
                checks.removal_failed(leaver, exc)
                continue
            if work is not None:
                works.append(work)
    report.merge(execute(rt.client, store, profile, works, rt.now_iso, held, counter))
    checks.removed(leaving, report, unknown=unknown)
    checks.save()
    for mailbox in message.mailboxes:
        if profile.policies.removed_target == "keep":
            store.delete_target_records(profile.name, mailbox, list(store.get_target_records(profile.name, mailbox)))
        target = targets.get(mailbox)
        if target is not None:
            store.put_target(profile.name, Target(mailbox, target.address, target.folder_id, target.purpose,
                                                  active=False))
    return report
