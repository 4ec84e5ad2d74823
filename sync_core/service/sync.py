"""The sync use case: `sync_profile` reads the sources, finds what changed and fans out pushes (push.py).

sync_profile, under the profile's lease (a burst of triggers runs once more, not N times):
  1. memberships of the profile's groups (one delta request; members re-read only when a group changed);
  2. each source by delta (one request when nothing changed); fingerprints tell real changes from noise;
     each page is compared and stored as it arrives;
  3. meanwhile, the target set (new targets are filled completely, removed ones cleaned per policy), new
     targets' folders made, and, with an inline fan-out, new targets filled from the stored pages
     (early_fill.py);
  4. persist in crash-safe order: an outbox document naming the changed keys and targets first, then the
     source records, then the delta links; then fan out; then drop the outbox. A crash anywhere replays
     the outbox on the next run, and every push is idempotent, so nothing is lost and nothing duplicated.
A run that serves a change notification carries its arrival (taken before the sources, kept in the outbox)
to its push messages, which measure the propagation time (propagation.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from sync_core.core.plan import plan_removed_target, plan_target
from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.core.records import Run, Target, folder_place
from sync_core.core.sources import DesiredContact
from sync_core.cpu_roles import READ, role
from sync_core.graph import GraphError
from sync_core.settings import LEASE_SECONDS
from sync_core.state import docs
from sync_core.state.base import Lease, StateError
from sync_core.state.leases import run_exclusively

from . import failing_targets, propagation
from . import groups as group_watch
from . import targets as target_set
from .early_fill import EarlyFill
from .failing_targets import REMOVE, RESOLVE, FailingTargets, TargetFailure
from .folders import ensure_folders
from .move_plan import PlannedMove, plan_finish, plan_start
from .moves import pending_moves
from .push import push_targets
from .queue_messages import sync_lease
from .runtime import FanOut, PushMessage, Runtime, new_run_id
from .source_changes import MAX_KEYS_PER_MESSAGE, SourceChanges
from .source_reader import SourceRead, fetch_users, read_source, removed_after_full_read
from .target_work import ExecReport

log = logging.getLogger("galsync.sync")


MAX_PLANNED_WRITES = 10_000  # a dry run lists at most this many contacts one by one (the counts are all there)


@dataclass(frozen=True)
class PlannedWrite:
    """One write a dry run found: which mailbox (its address), what kind of action, and which contact."""

    mailbox: str
    action: str  # Create, Update, Delete, ...
    source_key: str
    name: str  # the contact's display name ("" when the source record has none)


@dataclass
class SyncReport:
    profile: str
    run_id: str
    outcome: str = "ok"  # ok | busy | failed
    dry_run: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    changed: int = 0
    removed: int = 0
    undialable: int = 0  # phone numbers read that could not be made dialable ([profile.phones]), kept as they were
    targets: int = 0
    new_targets: int = 0
    removed_targets: int = 0
    messages: int = 0
    planned: dict[str, int] = field(default_factory=dict)  # dry run: action kind -> count
    planned_by_mailbox: dict[str, dict[str, int]] = field(default_factory=dict)  # dry run: address -> kind -> n
    planned_writes: list[PlannedWrite] = field(default_factory=list)  # dry run: the first MAX_PLANNED_WRITES
    planned_moves: dict[str, PlannedMove] = field(default_factory=dict)  # dry run: address -> its pending move
    exec: ExecReport = field(default_factory=ExecReport)
    failing: list[TargetFailure] = field(default_factory=list)  # targets that failed in this run (they alone)
    holder: Lease | None = None  # busy: who holds the profile's sync lease, and until when

    def counts(self) -> dict[str, int]:
        return {"changed": self.changed, "removed": self.removed, "undialable": self.undialable,
                "targets": self.targets,
                "new_targets": self.new_targets, "removed_targets": self.removed_targets,
                "messages": self.messages, **dict(self.exec.counts)}


@runtime_checkable
class InProcessFanOut(FanOut, Protocol):
    """A fan-out whose pushes run in this process (the command line's), so a sync can do more with it: write
    to this run's new targets while the read goes on (early_fill.py), hand it what those early writes did,
    and run the run's pushes side by side. A queue fan-out has none of this: its pushes run elsewhere."""

    def early_push(self, message: PushMessage, targets: Mapping[str, Target]) -> ExecReport:
        """Push to targets this run found and has not stored yet (`targets` stands for the stored ones)."""
        ...

    def add_early(self, report: ExecReport, in_step: int) -> None:
        """What the early pushes wrote; `in_step` new targets were brought fully in step by them."""
        ...

    def push_all(self, messages: Sequence[PushMessage]) -> list[ExecReport]:
        """Run every push of the run and return what each wrote."""
        ...


class InlineFanOut:
    """Fan-out for the command line: the pushes run at once, in this process, several side by side.

    Each message is a disjoint chunk of mailboxes, so side by side they never contend for a target; the
    Graph client keeps every mailbox within its own limits whatever the number of pushes in flight.
    """

    def __init__(self, rt: Runtime, workers: int = 4) -> None:
        self.rt = rt
        self.workers = workers
        self.report = ExecReport()
        self._lock = threading.Lock()

    def push(self, message: PushMessage) -> ExecReport:
        result = push_targets(self.rt, message)
        with self._lock:
            self.report.merge(result)
        return result

    def early_push(self, message: PushMessage, targets: Mapping[str, Target]) -> ExecReport:
        """A push to targets this run found and has not stored yet (early_fill.py): pushes run in this process,
        as one part each (they are no queue message), still a slice of keys at a time."""
        return push_targets(self.rt, message, targets=targets, limit_writes=False)

    def add_early(self, report: ExecReport, in_step: int) -> None:
        """What the early pushes wrote, as the sync reports it; `in_step` targets need no push message."""
        with self._lock:
            self.report.merge(report)

    def push_all(self, messages: Sequence[PushMessage],
                 push: Callable[[PushMessage], ExecReport] | None = None) -> list[ExecReport]:
        """Run the pushes side by side (`push` defaults to this fan-out's own); if any fails, the others still
        finish, then the first error is raised (the sync's outbox replays the fan-out next time, and pushes are
        idempotent)."""
        push = push or self.push
        if len(messages) <= 1 or self.workers <= 1:
            return [push(m) for m in messages]
        with ThreadPoolExecutor(min(self.workers, len(messages)), thread_name_prefix="galsync-push") as pool:
            futures = [pool.submit(push, m) for m in messages]
            wait(futures)
        for future in futures:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


# --- sync_profile --------------------------------------------------------------------------------------------


def sync_profile(rt: Runtime, profile_name: str, fanout: FanOut, *, dry_run: bool = False) -> SyncReport:
    """Bring every target of one profile in step with its sources (see the module doc)."""
    profile = rt.config.profile(profile_name)
    if dry_run:
        return _sync_once(rt, profile, fanout, dry_run=True)
    reports: list[SyncReport] = []
    ran = run_exclusively(rt.store, sync_lease(profile.name), rt.owner, LEASE_SECONDS,
                          lambda: reports.append(_sync_once(rt, profile, fanout, dry_run=False)), clock=rt.clock)
    if ran == 0:
        log.info("profile %s: another worker is syncing; it will run once more for this trigger", profile.name)
        holder = rt.store.get_lease(sync_lease(profile.name))
        return SyncReport(profile.name, new_run_id(), outcome="busy", holder=holder)
    return reports[-1]


def _sync_once(rt: Runtime, profile: Profile, fanout: FanOut, *, dry_run: bool) -> SyncReport:
    store, client = rt.store, rt.client
    report = SyncReport(profile.name, new_run_id(), dry_run=dry_run)
    started = rt.now_iso()
    before = client.stats.snapshot()
    if not dry_run:
        store.record_run(Run(report.run_id, profile.name, "sync", started, None, "running"))
    try:
        _sync_steps(rt, profile, fanout, report)
    except Exception as exc:
        report.outcome = "failed"
        if not dry_run:
            store.record_run(Run(report.run_id, profile.name, "sync", started, rt.now_iso(), "failed",
                                 report.counts(), error=_describe_error(exc)))
        raise
    after = client.stats.snapshot()
    report.requests = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    if not dry_run:
        report.failing = [f for f in failing_targets.load(store, profile.name).values() if f.run_id == report.run_id]
        outcome = "partial" if report.exec.counts["failed"] or report.failing else "ok"
        report.outcome = outcome
        errors = [f.line() for f in report.failing] + report.exec.errors[:5]
        store.record_run(Run(report.run_id, profile.name, "sync", started, rt.now_iso(), outcome, report.counts(),
                             error="; ".join(errors[:5]) or None))
    log.info("profile %s: sync %s %s: changed=%d removed=%d targets=%d new_targets=%d messages=%d writes=%d",
             profile.name, report.run_id, report.outcome, report.changed, report.removed, report.targets,
             report.new_targets, report.messages, report.exec.writes)
    return report


@dataclass(frozen=True)
class Findings:
    """What a sync's read phase found: all that its persist-and-fan-out phase (or a dry run) acts on."""

    config_fp: str  # the profile's fingerprint, stored once the run is through
    memberships: group_watch.Memberships
    reads: tuple[SourceRead, ...]
    changes: SourceChanges  # this run's source changes (in a real run already stored)
    targets: target_set.TargetChanges
    fill: frozenset[str]  # mailboxes to give every contact
    removed_targets: frozenset[str]
    changed_keys: frozenset[str] | None  # None: push every key
    filled_early: frozenset[str] = frozenset()  # new targets the early fill brought fully in step
    resolved: bool = False  # the target set was looked up (not taken from the store)
    notified_at: str | None = None  # the first notification this run serves arrived then (propagation.py)


def _sync_steps(rt: Runtime, profile: Profile, fanout: FanOut, report: SyncReport) -> None:
    failing = FailingTargets(rt.store, rt.client, profile.name, report.run_id, rt.now_iso)
    found = _read(rt, profile, fanout, report, failing)
    report.changed, report.removed = found.changes.changed, found.changes.removed
    report.undialable = found.changes.undialable
    report.targets, report.new_targets = len(found.targets.active), len(found.fill)
    report.removed_targets = len(found.removed_targets)
    if report.dry_run:
        _dry_run(rt, profile, found, report)
    else:
        _persist_and_fan_out(rt, profile, fanout, found, report, failing)


def _read(rt: Runtime, profile: Profile, fanout: FanOut, report: SyncReport, failing: FailingTargets
          ) -> Findings:
    """Steps 1 to 3 (see the module doc): memberships, sources and targets; a real run stores the source
    records as they come (outbox first) and, with an inline fan-out, fills new targets early."""
    store, client, dry_run = rt.store, rt.client, report.dry_run
    config_fp = profile_fingerprint(profile)
    state = docs.read(store, docs.ProfileState, profile.name)
    config_changed = state is None or state.config != config_fp
    outbox = docs.read(store, docs.Outbox, profile.name)  # left by an earlier run that did not finish
    # Before the sources, so the notified change is read below; a dry run leaves it to the run that writes.
    arrival = None if dry_run else propagation.take_arrival(store, profile.name)
    notified_at = propagation.earliest(arrival, outbox.notified_at if outbox is not None else None)

    # 1. group memberships (targets and user filters)
    refs = group_watch.group_refs(profile)
    old_members = group_watch.load(store, profile, refs) if refs else {}
    memberships = group_watch.read_memberships(client, store, profile, force=config_changed)

    # 2. sources, a chunk at a time: compared and (in a real run) stored as they are read, outbox first;
    # 3. meanwhile the targets: they depend only on the memberships, so their look-ups (and a real run's new
    #    folders) take no time of their own when the sources take several delta pages; and when the pushes
    #    run in this process, new targets get the stored records while the read goes on (early_fill.py).
    stored_targets = store.get_targets(profile.name)
    unfinished_removal = set(outbox.remove) if outbox is not None else set()
    resolving = memberships.changed or config_changed or not stored_targets or failing.unresolved
    with ThreadPoolExecutor(1, thread_name_prefix="galsync-targets") as pool:
        resolved = pool.submit(_resolve_targets, rt, profile, memberships.members, stored_targets, dry_run) \
            if resolving else None
        inline = fanout if isinstance(fanout, InProcessFanOut) and not dry_run else None
        early = _early_fill(rt, profile, inline, resolved, report.run_id) if inline is not None else None
        changes = SourceChanges(rt, profile, report.run_id, dry_run, outbox,
                                on_stored=early.stored if early is not None else None, notified_at=notified_at)
        try:
            reads = _read_sources(rt, profile, changes, memberships, old_members, full=config_changed)
        except BaseException:
            if early is not None:
                early.cancel()
            raise
        early_report = early.finish() if early is not None else None
        tchanges = resolved.result() if resolved is not None else None
    # New targets the early fill brought fully in step need no fill push (it would plan and write nothing).
    filled_early: set[str] = set()
    if inline is not None and early is not None and early_report is not None:
        if early_report.writes:
            filled_early = early.covering([r.source_key for r in store.iter_source_records(profile.name)])
        report.exec.merge(early_report)
        inline.add_early(early_report, len(filled_early))

    back: set[str] = set()
    if tchanges is not None:
        # A mailbox an unfinished run was removing is a target again: fill it instead of emptying it.
        back = unfinished_removal & set(tchanges.active)
        unfinished_removal -= back
    else:
        # No membership change since the unfinished run: its removals stand, and nothing else goes there.
        tchanges = target_set.TargetChanges({m: t for m, t in stored_targets.items()
                                             if t.active and m not in unfinished_removal}, (), ())
    fill = set(tchanges.new) | set(outbox.fill if outbox is not None else ()) | back

    changed_keys = None if changes.keys is None else set(changes.keys)
    if outbox is not None:
        changed_keys = None if outbox.keys is None or changed_keys is None else changed_keys | set(outbox.keys)
    if config_changed or (changed_keys is not None and len(changed_keys) > MAX_KEYS_PER_MESSAGE):
        changed_keys = None
    return Findings(config_fp, memberships, tuple(reads), changes, tchanges, frozenset(fill),
                    frozenset(set(tchanges.removed) | unfinished_removal),
                    None if changed_keys is None else frozenset(changed_keys), frozenset(filled_early), resolving,
                    notified_at)


def _persist_and_fan_out(rt: Runtime, profile: Profile, fanout: FanOut, found: Findings, report: SyncReport,
                         failing: FailingTargets) -> None:
    """Step 4: persist the rest (the outbox now names exactly what changed), fan out, drop the outbox. Targets
    that failed before are filled (or emptied) again."""
    store = rt.store
    retry, unremoved = _failing_targets(failing, found.targets, resolved=found.resolved)
    found = replace(found, fill=found.fill | retry, removed_targets=found.removed_targets | unremoved)
    report.removed_targets = len(found.removed_targets)
    keys = None if found.changed_keys is None else tuple(sorted(found.changed_keys))
    docs.write(store, profile.name, docs.Outbox(report.run_id, keys, tuple(sorted(found.fill)),
                                                tuple(sorted(found.removed_targets)), found.notified_at))
    for read in found.reads:
        if read.delta_link:
            store.set_delta_link(profile.name, read.source.name, read.delta_link)
    docs.write(store, profile.name, docs.DeltaTimes({r.source.name: rt.now_iso() for r in found.reads if r.delta_link}))
    # New targets before the membership watch: once the watch is saved, the next run no longer resolves
    # targets, so a crash in between must not leave a new target unknown (it would never be filled).
    for mailbox in found.targets.new:
        store.put_target(profile.name, found.targets.active[mailbox])
    group_watch.save(store, profile, found.memberships)
    docs.write(store, profile.name, docs.ProfileState(found.config_fp))

    report.messages = _fan_out(rt, profile, fanout, found, report)
    docs.delete(store, docs.Outbox, profile.name)


def _failing_targets(failing: FailingTargets, tchanges: target_set.TargetChanges, *, resolved: bool
                     ) -> tuple[set[str], set[str]]:
    """Record the targets whose look-up failed and forget the failures that no longer apply. Returns the
    targets still listed as failing, which this run fills again (each push first asks a failing target for
    its folder, so one that still refuses costs one request), and the mailboxes that left the targets but
    refused their removal, which this run empties again."""
    for key, (address, error) in tchanges.failed.items():
        failing.fail_error(key, RESOLVE, error, address=address)
    active = set(tchanges.active)
    # A mailbox whose look-up refused and that is no longer wanted may hold galsync's contacts from before a
    # lost state store: never stored, it is known only from its failure, which stays until it is emptied.
    left = {k for k, f in failing.known.items() if f.stage == RESOLVE and resolved and looks_like_object_id(k)
            and k not in tchanges.failed and k not in active}
    for key, known in failing.known.items():
        if key not in tchanges.failed and key not in left and ((known.stage == RESOLVE and resolved) or
                                                               (known.stage == REMOVE and key in active)):
            failing.drop(key)  # looked up now, or a target again
    retry = {k for k, f in failing.known.items() if f.stage not in (RESOLVE, REMOVE) and k in active}
    # A failing mailbox that is no longer a target may still hold galsync's contacts, whatever it failed at
    # (a reconcile may have met it just before it left): it is emptied, which clears it once it answers.
    unremoved = {k for k, f in failing.known.items() if f.stage != RESOLVE and k not in active} | left
    failing.save(others_work=bool(active - retry))
    return retry, unremoved


def _read_sources(rt: Runtime, profile: Profile, found: SourceChanges, memberships: group_watch.Memberships,
                  old_members: Mapping[str, frozenset[str]] | None, *, full: bool) -> list[SourceRead]:
    """Read every source (by delta, or in full), handing each chunk to `found`; then what the walks imply:
    removals after a full read, users whose filter-group membership flipped, managers' new names."""
    client, store = rt.client, rt.store
    with role(READ):
        reads = [read_source(client, store, profile, source, memberships.members, full=full, on_chunk=found.add)
                 for source in profile.sources]
    for read in reads:
        if read.full:
            found.add(removed_after_full_read(store, profile, read))
    if memberships.changed and old_members is not None and profile.group_refs:
        flipped = _filter_flips(profile, old_members, memberships.members, [read.seen for read in reads])
        found.add(fetch_users(client, store, profile, flipped, memberships.members))
    found.apply_manager_renames()
    return reads


def _early_fill(rt: Runtime, profile: Profile, fanout: InProcessFanOut,
                targets: Future[target_set.TargetChanges] | None, run_id: str) -> EarlyFill | None:
    """Early writes to new targets (early_fill.py), when the profile has one source; None otherwise."""
    if targets is None or len(profile.sources) != 1:
        return None
    return EarlyFill(profile.name, targets, lambda keys, found: fanout.early_push(
        PushMessage(profile.name, tuple(sorted(found)), keys, "changes", run_id), found),
        lambda mailbox: not rt.store.get_target_records(profile.name, mailbox))


def _resolve_targets(rt: Runtime, profile: Profile, members: Mapping[str, Iterable[str]],
                     stored: Mapping[str, Target], dry_run: bool) -> target_set.TargetChanges:
    """The target set, with a real run's new targets given their managed folders at once (in `$batch` calls).

    Runs beside the source read. Finding or creating a folder is idempotent (the folder carries galsync's
    tag), so a crash before the new targets are stored costs nothing: the next run finds the same folders.
    A folder that cannot be had here (a foreign namesake, an error) is left to the push, which reports it.
    """
    tchanges = target_set.resolve(rt.client, rt.store, profile, members, stored)
    if dry_run or not tchanges.new:
        return tchanges
    try:
        folders = ensure_folders(rt.client, profile, list(tchanges.new), made=tchanges.new_folders)
    except GraphError as exc:
        log.info("profile %s: managed folders left to the push (%s)", profile.name, type(exc).__name__)
        return tchanges
    for mailbox, folder in folders.items():
        if isinstance(folder, str):
            tchanges.active[mailbox] = replace(tchanges.active[mailbox], folder_id=folder)
    return tchanges


def _filter_flips(profile: Profile, old: Mapping[str, frozenset[str]], new: Mapping[str, frozenset[str]],
                  seen: Sequence[Container[str]]) -> list[str]:
    """Users whose membership of a filter group changed and who are not already among this run's changes."""
    flipped: set[str] = set()
    for ref in profile.group_refs:
        flipped |= set(old.get(ref, frozenset())) ^ set(new.get(ref, frozenset()))
    return sorted(u for u in flipped if not any(f"user:{u}" in keys for keys in seen))


def _fan_out(rt: Runtime, profile: Profile, fanout: FanOut, found: Findings, report: SyncReport) -> int:
    """Send the push messages (none to the targets the early fill brought in step); an inline fan-out's
    write counts go into this run's report.

    Every message carries GALSYNC_TARGETS_PER_MESSAGE targets, however many keys it pushes: a push advances
    all its mailboxes together a slice at a time and hands on what passes GALSYNC_WRITES_PER_MESSAGE, so a
    message never needs fewer mailboxes to stay short, and each of its mailboxes keeps a call in flight.
    """
    run_id = report.run_id
    size = rt.settings.targets_per_message
    messages: list[PushMessage] = []
    active, fill = found.targets.active, found.fill
    existing = sorted(m for m in active if m not in fill)
    if found.changed_keys is None or found.changed_keys:
        keys = None if found.changed_keys is None else tuple(sorted(found.changed_keys))
        messages += [PushMessage(profile.name, tuple(c), keys, "changes", run_id) for c in _chunks(existing, size)]
    filling = sorted(m for m in fill if m in active and m not in found.filled_early)
    if filling:
        messages += [PushMessage(profile.name, tuple(c), None, "changes", run_id,
                                 new_folders=tuple(m for m in c if m in found.targets.new_folders))
                     for c in _chunks(filling, size)]
    messages += [PushMessage(profile.name, tuple(c), None, "remove", run_id)
                 for c in _chunks(sorted(found.removed_targets), size)]
    if found.notified_at is not None and messages:
        messages = [replace(m, notified_at=found.notified_at, part=i) for i, m in enumerate(messages)]
        try:
            propagation.track(rt.store, profile.name, run_id, found.notified_at, len(messages), rt.now_iso())
        except StateError as error:  # a measurement never fails a sync: its pushes then measure nothing
            log.warning("profile %s: sync %s: propagation not tracked (%s)", profile.name, run_id,
                        type(error).__name__)
    pushed = fanout.push_all(messages) if isinstance(fanout, InProcessFanOut) else [fanout.push(m) for m in messages]
    for result in pushed:
        if isinstance(result, ExecReport):
            report.exec.merge(result)
    return len(messages)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def profile_fingerprint(profile: Profile) -> str:
    """Changes when anything in the profile changes (then sources are re-read and targets re-planned)."""
    return hashlib.sha256(repr(profile).encode()).hexdigest()[:32]


# --- dry run --------------------------------------------------------------------------------------------------


def _dry_run(rt: Runtime, profile: Profile, found: Findings, report: SyncReport) -> None:
    """Plan every target as a push would, with this run's changes applied in memory; write nothing."""
    store, changes, changed_keys = rt.store, found.changes, found.changed_keys
    stored = {r.source_key: r for r in store.iter_source_records(profile.name)}
    current = {k: r for k, r in stored.items() if k not in changes.removed_keys}
    current.update(changes.new_records)
    desired = {k: DesiredContact(r.payload, r.fingerprint, r.photo_etag) for k, r in current.items()}
    names = {k: str(r.payload.get("displayName") or "") for k, r in (stored | current).items()}
    stored_targets = store.get_targets(profile.name)

    def count(mailbox: str, actions: Iterable[object], target: Target | None) -> None:
        address = (target.address if target is not None else "") or mailbox
        per_mailbox = report.planned_by_mailbox.setdefault(address, {})
        for action in actions:
            kind = type(action).__name__
            report.planned[kind] = report.planned.get(kind, 0) + 1
            per_mailbox[kind] = per_mailbox.get(kind, 0) + 1
            key = str(getattr(action, "source_key", ""))
            if len(report.planned_writes) < MAX_PLANNED_WRITES:
                report.planned_writes.append(PlannedWrite(address, kind, key, names.get(key, "")))

    moves = pending_moves(store, profile, list(found.targets.active))
    for mailbox in sorted(found.targets.active):
        target = found.targets.active[mailbox]
        if target.folder_id and folder_place(target.folder_id) != profile.place:  # the push starts its move
            actions, move = plan_start(rt.client, store, profile, target, desired)
            count(mailbox, actions, target)
            report.planned_moves[target.address or mailbox] = move
            continue
        if mailbox not in found.fill and changed_keys is not None:
            records = store.get_target_records(profile.name, mailbox, changed_keys)
            want = {k: d for k, d in desired.items() if k in changed_keys}
        else:
            records = store.get_target_records(profile.name, mailbox)
            want = desired
        actions = plan_target(mailbox, want, changes.previous, records, profile)
        count(mailbox, actions, target)
        if mailbox in moves:  # an interrupted move: its old copies go after this push's writes
            deletes, move = plan_finish(rt.client, store, profile, mailbox, moves[mailbox], actions,
                                        desired.__contains__)
            count(mailbox, deletes, target)
            report.planned_moves[target.address or mailbox] = move
    keep = profile.policies.removed_target == "keep"
    leaving_moves = pending_moves(store, profile, list(found.removed_targets))
    for mailbox in sorted(found.removed_targets):
        count(mailbox, plan_removed_target(store.get_target_records(profile.name, mailbox), profile),
              stored_targets.get(mailbox))
        if mailbox in leaving_moves:  # left in the middle of a move: its old place is emptied too
            deletes, _ = plan_finish(rt.client, store, profile, mailbox, leaving_moves[mailbox], [],
                                     lambda _key: keep)
            count(mailbox, deletes, stored_targets.get(mailbox))


def _describe_error(exc: BaseException) -> str:
    """One line for run history: the error's type and message (our errors never carry contact data)."""
    return f"{type(exc).__name__}: {exc}"[:500]
