"""`push_targets`: plan a profile's contacts for a chunk of target mailboxes and write them.

Each target is planned against its own records (the pure planner), a slice of source keys at a time
(key_slices.py), and each slice's plans for every target of the chunk are applied in one `$batch` stream
(executor) and recorded; the next slice goes while the one before it is answered, never more than two out
(`_SliceLine`): memory is two slices, whatever the number of contacts. A
message does at most GALSYNC_WRITES_PER_MESSAGE writes (`push_part`) and names what is left in a message of its
own, which the queue (or the command line, at once) hands to the next part. An unchanged contact costs nothing
(I4). A fill of a target with no records, into a folder this run did not make, first adopts what galsync's tag
marks as its own there (adoption.py), so a lost state store never doubles a phone's contacts (I9). Every mailbox
is written under its own lease (`target_lease`), which reconcile takes too, so two workers never write one
mailbox at once (I2); a heartbeat renews the leases while the push runs, and the executor stops between write
waves if they are lost. A mailbox that refuses fails alone, and a managed folder its owner deleted is made again
and filled in the same push (mailbox_checks.py). A push of a notified sync says when it is
done (propagation.py); a message that hands work on is not done yet.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from sync_core.core.actions import Action, Create, Forget, Record
from sync_core.core.plan import SharedCreates, create_action, plan_removed_target, plan_target
from sync_core.core.profile import Profile
from sync_core.core.records import SourceRecord, Target, folder_place
from sync_core.core.sources import DesiredContact, merge_sources, source_key_prefix
from sync_core.cpu_roles import PLAN, role
from sync_core.graph import GraphError
from sync_core.settings import LEASE_SECONDS
from sync_core.state import docs
from sync_core.state.base import Lease, StateError, StateStore
from sync_core.state.leases import Heartbeat, describe_lease

from . import propagation
from .adoption import adopt
from .executor import execute
from .folders import FolderConflict, ensure_folder, ensure_folders
from .key_slices import KeySlice, KeySlices
from .mailbox_checks import MailboxChecks
from .moves import finish_moves, pending_moves, start_move
from .runtime import PushMessage, Runtime
from .tagged_removal import tagged_removal
from .target_work import ExecReport, TargetWork, WriteCounter
from .waves import WAVE_PER_MAILBOX

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


@dataclass
class PushPart:
    """What one push message did, and the message that does the rest (None: the push is done)."""

    report: ExecReport
    rest: PushMessage | None = None


def push_targets(rt: Runtime, message: PushMessage, *, targets: Mapping[str, Target] | None = None,
                 limit_writes: bool = True, counter: WriteCounter | None = None) -> ExecReport:
    """Plan and apply a profile's contacts to a chunk of target mailboxes, in this process: part after part
    (`push_part`), each taking the mailboxes' leases again as a queued message that carries on would.

    `limit_writes` False: one part, whatever its size (the early fill's pushes: never a queue message).
    `counter`: hears of the writes wave by wave (the command line's progress).
    """
    report = ExecReport()
    part: PushMessage | None = message
    while part is not None:
        done = push_part(rt, part, targets=targets, limit_writes=limit_writes, counter=counter)
        report.merge(done.report)
        part = done.rest
    return report


def push_part(rt: Runtime, message: PushMessage, *, targets: Mapping[str, Target] | None = None,
              limit_writes: bool = True, counter: WriteCounter | None = None) -> PushPart:
    """Plan and apply a profile's contacts to a chunk of target mailboxes (`targets`: instead of the stored
    ones, for targets this run found and has not stored yet), at most GALSYNC_WRITES_PER_MESSAGE writes; the
    message that does the rest, if any is left.

    Each mailbox is written under its own lease, so two pushes that overlap (two quick changes fanned out
    to the same targets, handled by two instances) never both create the same contact (I2). Mailboxes held
    by another worker are skipped and reported with TargetsBusy once the others are done: the queue retries
    the message, and a retried push of an up-to-date mailbox writes nothing.
    """
    profile = rt.config.profile(message.profile)
    most = rt.settings.writes_per_message if limit_writes else None
    held: list[str] = []
    busy: list[str] = []
    with Heartbeat(rt.store, rt.owner, TARGET_LEASE_SECONDS, clock=rt.clock) as beat:
        for mailbox in message.mailboxes:
            (held if beat.take(target_lease(profile, mailbox)) else busy).append(mailbox)
        with role(PLAN):  # a push's CPU is planning, but for its records and Graph calls (their own roles)
            part = _push_held(rt, profile, replace(message, mailboxes=tuple(held)), targets, beat.held, most,
                              counter)
    if busy:
        raise TargetsBusy(profile.name, busy, rt.store.get_lease(target_lease(profile, busy[0])))
    if part.rest is None:
        part.report.propagation_ms = _push_finished(rt, profile, message, part.report)
    return part


def _push_finished(rt: Runtime, profile: Profile, message: PushMessage, report: ExecReport) -> int | None:
    """Tell a notified sync's propagation measurement that this push is done; a part that follows another
    wrote through it (a message hands on only once it has done its writes)."""
    wrote = report.changed_phones or message.after is not None
    try:
        return propagation.push_finished(rt.store, message, wrote, rt.now_iso())
    except StateError as error:  # a measurement never fails a push whose writes are done
        log.warning("profile %s: push %s: propagation not measured (%s)", profile.name, message.run_id,
                    type(error).__name__)
        return None


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
               held: Callable[[], bool], most: int | None, counter: WriteCounter | None) -> PushPart:
    store, client = rt.store, rt.client
    if targets is None:
        targets = store.get_targets(profile.name)
    if message.mode == "remove":
        return PushPart(_remove_targets(rt, profile, message, targets, held, counter))
    report = ExecReport()
    checks = MailboxChecks(rt, profile, message.run_id, targets)  # one mailbox fails alone; deleted folders heal
    active = checks.ready([targets[m] for m in message.mailboxes if m in targets and targets[m].active], report)
    known_empty = set(message.new_folders)  # folders made in this run
    moved: set[str] = set()  # targets that move to the profile's place in this push (moves.py)
    everything = _Everything(store, profile)
    written = _with_folders(rt, profile, active, report, checks, made=known_empty, moved=moved)
    # A target that moves gets every contact in its new place, whatever this push's keys; a fill with nothing
    # recorded, into a folder that may hold galsync's contacts (lost state), adopts them. Both plan the whole
    # target at once (they list its folder); every other target is planned and sent a slice of keys at a time.
    whole: list[TargetWork] = []
    sliced: list[Target] = []
    for target in written:
        mailbox, folder = target.mailbox, target.folder_id or ""
        if mailbox in moved:
            want = everything.get()
            records = store.get_target_records(profile.name, mailbox)
            actions = plan_target(mailbox, want, _AllPrevious(store, profile), records, profile)
            whole.append(TargetWork(mailbox, folder, actions, records, _recreator(profile, want)))
        elif message.keys is None and message.after is None and mailbox not in known_empty and \
                next(store.iter_target_records(profile.name, mailbox), None) is None:
            want = everything.get()
            whole.append(TargetWork(mailbox, folder, adopt(client, profile, mailbox, folder, want, report), {},
                                    _recreator(profile, want)))
        else:
            sliced.append(target)
    report.merge(execute(client, store, profile, whole, rt.now_iso, held, counter))
    slices = _slices(store, profile, message)
    _send_slices(rt, profile, sliced, slices, report, held, most, counter)
    rest = None
    going_on = tuple(t.mailbox for t in sliced if t.mailbox not in checks.failing.failed)
    if going_on and not slices.finished:
        keys, after = slices.rest()
        rest = replace(message, mailboxes=going_on, keys=keys, after=after, new_folders=())
    # The old place's copies of a move go once the new place has its own: in the same run, after the creates.
    if rest is None and (moves := pending_moves(store, profile, [t.mailbox for t in active])):
        wanted = everything.get()
        report.merge(finish_moves(client, store, profile, moves, wanted.__contains__, rt.now_iso, held))
    healed = checks.settle(written, report)
    if healed:
        refill = _refill(rt, profile, healed, checks, held, counter)
        checks.settle(healed, refill, heal=False)
        report.merge(refill)
        if rest is not None:  # filled whole again: nothing of theirs is left to the next message
            gone = {t.mailbox for t in healed}
            left = tuple(m for m in rest.mailboxes if m not in gone)
            rest = replace(rest, mailboxes=left) if left else None
    checks.save()
    log.info("profile %s: push %s to %d mailbox(es)%s: %s", profile.name, message.run_id, len(written),
             " (more to come)" if rest is not None else "", dict(report.counts))
    return PushPart(report, rest)


def _slices(store: StateStore, profile: Profile, message: PushMessage) -> KeySlices | _WholeSlice:
    """The push's keys a slice at a time; a profile of several sources merges every record first (one slice)."""
    if _multi_source(profile):
        return _WholeSlice(*_desired(store, profile, message.keys))
    every_previous = _AllPrevious(store, profile) if message.keys is None else {}
    return KeySlices(store, profile.name, message.keys, message.after, every_previous)


def _send_slices(rt: Runtime, profile: Profile, targets: list[Target], slices: KeySlices | _WholeSlice,
                 report: ExecReport, held: Callable[[], bool], most: int | None,
                 counter: WriteCounter | None) -> None:
    """Plan and send slice after slice to every target at once, each recorded before the next is read, until
    the slices run out or `most` writes are done (a slice that would pass it is left to the next message)."""
    if counter is None or not targets:
        _send_each_slice(rt, profile, targets, slices, report, held, most, counter)
        return
    foretold = _Foretold(counter, min(slices.keys_left() * len(targets), most or sys.maxsize))
    try:
        _send_each_slice(rt, profile, targets, slices, report, held, most, foretold)
    finally:
        foretold.close()


def _send_each_slice(rt: Runtime, profile: Profile, targets: list[Target], slices: KeySlices | _WholeSlice,
                     report: ExecReport, held: Callable[[], bool], most: int | None,
                     counter: WriteCounter | None) -> None:
    store, name = rt.store, profile.name
    used = 0
    with _SliceLine(slices, report, held) as line:
        while targets and (piece := slices.take(_slice_size(most, used, len(targets)))) is not None:
            shared = SharedCreates(profile)  # a contact's create is the same for every target of the slice
            recreate = _recreator(profile, piece.desired)
            works: list[TargetWork] = []
            for target in targets:
                records = piece.records(store, name, target.mailbox)
                actions = plan_target(target.mailbox, piece.desired, piece.previous, records, profile, shared)
                works.append(TargetWork(target.mailbox, target.folder_id or "", actions, records, recreate))
            writes = sum(_write_count(w.actions) for w in works)
            if most is not None and used and used + writes > most:
                return
            line.send(piece, lambda held, works=works: execute(rt.client, store, profile, works, rt.now_iso, held,
                                                               counter))
            used += writes
            if most is not None and used >= most:
                return


class _SliceLine:
    """Slices sent one behind the other: the next slice's writes start while the previous slice's last
    `$batch` calls are still out and its answers are being recorded.

    Sent strictly one after another, every slice waited for its slowest mailbox and then for its records
    before the next went, and the mailboxes stood idle in between (a fill took 1.2x the naive script's time).
    Here at most two slices are out at once, and a slice goes only once the one before it went: each
    mailbox's calls still go in order (the client's limiter queues them first come, first served), every
    wave still asks the lease before it goes and has its in-flight records written first, and a slice counts
    as done (the point a follow-on message resumes after) only once it and every slice before it are
    recorded. So a push that loses its lease or is killed leaves at most the two slices it had out in doubt,
    which the next push recovers by their in-flight records (executor.py).
    """

    def __init__(self, slices: KeySlices | _WholeSlice, report: ExecReport, held: Callable[[], bool]) -> None:
        self.slices, self.report, self.held = slices, report, held
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="push-slice")
        self._out: list[tuple[KeySlice, Future[ExecReport], threading.Event]] = []

    def send(self, piece: KeySlice, run: Callable[[Callable[[], bool]], ExecReport]) -> None:
        """Start the slice's writes (`run` with the lease check it must ask before each wave), once the slice
        before it went; then wait until the slice before it is done."""
        if self._out:
            self._out[-1][2].wait()
        gone = threading.Event()

        def held() -> bool:
            try:
                return self.held()
            finally:
                gone.set()

        def sending() -> ExecReport:
            try:
                with role(PLAN):  # as on the push's own thread: records and Graph calls mark their own roles
                    return run(held)
            finally:
                gone.set()  # a slice with nothing to write never asks

        self._out.append((piece, self._pool.submit(sending), gone))
        if len(self._out) > 1:
            self._settle(keep=1)

    def _settle(self, keep: int) -> None:
        """Wait for the slices out, oldest first, until `keep` are left; a failed one fails the push once
        every slice still out has ended (nothing is written after the push returns)."""
        while len(self._out) > keep:
            piece, future, _ = self._out[0]
            try:
                done = future.result()
            except BaseException:
                wait([f for _, f, _ in self._out])
                self._out.clear()
                raise
            self._out.pop(0)
            self.report.merge(done)
            self.slices.done(piece)

    def __enter__(self) -> _SliceLine:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if kind is None:
                self._settle(keep=0)
            else:
                wait([f for _, f, _ in self._out])
        finally:
            self._pool.shutdown()


def _slice_size(most: int | None, used: int, targets: int) -> int:
    """Keys in the next slice: a wave's worth (WAVE_PER_MAILBOX), fewer when the writes left allow fewer."""
    if most is None:
        return WAVE_PER_MAILBOX
    return max(1, min(WAVE_PER_MAILBOX, (most - used) // max(targets, 1)))


def _write_count(actions: Sequence[Action]) -> int:
    """The Graph writes among the actions (a Record or a Forget only changes the state store)."""
    return sum(1 for a in actions if not isinstance(a, Record | Forget))


class _Foretold:
    """A sliced push's writes told at its start (every key to every target: what a fill writes), so a progress
    bar has its total before the first slice; the slices' own announcements count against it, and what was
    told and not planned is taken back at the end. Two slices are out at once (_SliceLine), so it hands their
    threads' news on one at a time."""

    def __init__(self, counter: WriteCounter, writes: int) -> None:
        self.counter, self.left = counter, writes
        self._lock = threading.Lock()
        counter.planned(writes)

    def planned(self, writes: int) -> None:
        with self._lock:
            beyond = max(0, writes - self.left)
            self.left = max(0, self.left - writes)
            if beyond:
                self.counter.planned(beyond)

    def written(self, writes: int) -> None:
        with self._lock:
            self.counter.written(writes)

    def close(self) -> None:
        with self._lock:
            if self.left:
                self.counter.planned(-self.left)
                self.left = 0


class _WholeSlice:
    """Every key as one slice: the desired contacts of a profile with several sources are merged across all
    of them (a later source may win a contact), so they are not cut into key ranges."""

    def __init__(self, desired: dict[str, DesiredContact], previous: Mapping[str, SourceRecord],
                 wanted: set[str] | None) -> None:
        want = desired if wanted is None else {k: d for k, d in desired.items() if k in wanted}
        self._slice: KeySlice | None = KeySlice(want, previous, None if wanted is None else tuple(sorted(wanted)))
        self.finished = False

    def keys_left(self) -> int:
        return 0 if self._slice is None else len(self._slice.desired)

    def take(self, n: int) -> KeySlice | None:
        piece, self._slice = self._slice, None
        return piece

    def done(self, piece: KeySlice) -> None:
        self.finished = True

    def rest(self) -> tuple[tuple[str, ...] | None, str | None]:
        return None, None


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
    multi = _multi_source(profile)
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
    """Every desired contact of the profile, read from the store at most once, and only if a target that
    moves, a fill that adopts, or a move to finish needs it."""

    def __init__(self, store: StateStore, profile: Profile) -> None:
        self.store, self.profile = store, profile
        self.known: dict[str, DesiredContact] | None = None

    def get(self) -> dict[str, DesiredContact]:
        if self.known is None:
            self.known = _desired(self.store, self.profile, None)[0]
        return self.known


def _multi_source(profile: Profile) -> bool:
    return len(profile.sources) > 1


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
    still hold this profile's contacts: under "delete" they are found by their tag (tagged_removal.py). One
    that leaves in the middle of a move holds them in two places: the old place is cleared too."""
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
    report.merge(_clear_old_places(rt, profile, [*leaving, *(Target(m, "") for m in unknown)], checks, held))
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


def _clear_old_places(rt: Runtime, profile: Profile, leavers: list[Target], checks: MailboxChecks,
                      held: Callable[[], bool]) -> ExecReport:
    """The old place of leavers whose move was not finished (moves.py): under "delete" every contact of this
    profile there goes; under "keep" only those whose copy is in the new place, so the phone keeps one of each.

    Runs before a "keep" removal forgets the records, which tell which contacts have their copy. A move is
    forgotten once its old place is cleared; a mailbox that refuses keeps it, and is emptied again next run.
    """
    report = ExecReport()
    keep = profile.policies.removed_target == "keep"
    by_mailbox = {t.mailbox: t for t in leavers}
    for mailbox, move in pending_moves(rt.store, profile, list(by_mailbox)).items():
        try:
            done = finish_moves(rt.client, rt.store, profile, {mailbox: move}, lambda _key: keep, rt.now_iso, held)
        except GraphError as exc:
            checks.removal_failed(by_mailbox[mailbox], exc)
            continue
        report.merge(done)
        if keep and not done.counts["failed"] and held():
            docs.delete(rt.store, docs.Move, docs.move_key(profile.name, mailbox))  # what has no copy is kept
    return report
