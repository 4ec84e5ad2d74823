"""The sync use cases: `sync_profile` (read sources, find what changed, fan out) and `push_targets` (plan + write).

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
push_targets, per chunk of target mailboxes: plan each target against its records (pure planner) and apply
all plans in one `$batch` stream (executor). An unchanged contact costs nothing (I4). A fill of a target with
no records, into a folder this run did not make, first adopts what galsync's tag marks as its own there
(adoption.py), so a lost state store never doubles a phone's contacts (I9).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from sync_core.core.actions import Create
from sync_core.core.plan import SharedCreates, create_action, plan_removed_target, plan_target
from sync_core.core.profile import Profile
from sync_core.core.records import Run, SourceRecord, Target
from sync_core.core.sources import DesiredContact, merge_sources, source_key_prefix
from sync_core.graph import GraphError
from sync_core.state.leases import run_exclusively

from . import groups as group_watch
from . import targets as target_set
from .adoption import adopt
from .early_fill import EarlyFill
from .executor import ExecReport, TargetWork, execute
from .folders import FolderConflict, ensure_folder, ensure_folders
from .runtime import FanOut, PushMessage, Runtime, new_run_id
from .source_changes import MAX_KEYS_PER_MESSAGE, SourceChanges
from .source_reader import SourceRead, fetch_users, read_source, removed_after_full_read

log = logging.getLogger("galsync.sync")

LEASE_SECONDS = 15 * 60
TARGET_LEASE_SECONDS = 10 * 60


class TargetsBusy(RuntimeError):
    """Another worker is writing to these target mailboxes; the push must be retried later (queue retry)."""

    def __init__(self, profile: str, mailboxes: list[str]) -> None:
        super().__init__(f"profile {profile}: {len(mailboxes)} target mailbox(es) are being written by another "
                         f"worker ({', '.join(mailboxes[:3])}{', ...' if len(mailboxes) > 3 else ''}); retry later")
        self.mailboxes = mailboxes


@dataclass
class SyncReport:
    profile: str
    run_id: str
    outcome: str = "ok"  # ok | busy | failed
    dry_run: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    changed: int = 0
    removed: int = 0
    targets: int = 0
    new_targets: int = 0
    removed_targets: int = 0
    messages: int = 0
    planned: dict[str, int] = field(default_factory=dict)  # dry run: action kind -> count
    exec: ExecReport = field(default_factory=ExecReport)

    def counts(self) -> dict[str, int]:
        return {"changed": self.changed, "removed": self.removed, "targets": self.targets,
                "new_targets": self.new_targets, "removed_targets": self.removed_targets,
                "messages": self.messages, **dict(self.exec.counts)}


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
        """A push to targets this run found and has not stored yet (early_fill.py): pushes run in this process."""
        return push_targets(self.rt, message, targets=targets)

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
    ran = run_exclusively(rt.store, f"sync:{profile.name}", rt.owner, LEASE_SECONDS,
                          lambda: reports.append(_sync_once(rt, profile, fanout, dry_run=False)))
    if ran == 0:
        log.info("profile %s: another worker is syncing; it will run once more for this trigger", profile.name)
        return SyncReport(profile.name, new_run_id(), outcome="busy")
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
        outcome = "partial" if report.exec.counts["failed"] else "ok"
        report.outcome = outcome
        store.record_run(Run(report.run_id, profile.name, "sync", started, rt.now_iso(), outcome, report.counts(),
                             error="; ".join(report.exec.errors[:5]) or None))
    log.info("profile %s: sync %s %s: changed=%d removed=%d targets=%d new_targets=%d messages=%d writes=%d",
             profile.name, report.run_id, report.outcome, report.changed, report.removed, report.targets,
             report.new_targets, report.messages, report.exec.writes)
    return report


def _sync_steps(rt: Runtime, profile: Profile, fanout: FanOut, report: SyncReport) -> None:
    store, client, dry_run = rt.store, rt.client, report.dry_run
    config_fp = profile_fingerprint(profile)
    state = store.get_doc("profile-state", profile.name)
    config_changed = state is None or state[0].get("config") != config_fp
    outbox_doc = store.get_doc("outbox", profile.name)
    outbox = outbox_doc[0] if outbox_doc is not None else None

    # 1. group memberships (targets and user filters)
    refs = group_watch.group_refs(profile)
    old_members = group_watch.load(store, profile, refs) if refs else {}
    memberships = group_watch.read_memberships(client, store, profile, force=config_changed)

    # 2. sources, a chunk at a time: compared and (in a real run) stored as they are read, outbox first;
    # 3. meanwhile the targets: they depend only on the memberships, so their look-ups (and a real run's new
    #    folders) take no time of their own when the sources take several delta pages; and when the pushes
    #    run in this process, new targets get the stored records while the read goes on (early_fill.py).
    stored_targets = store.get_targets(profile.name)
    unfinished_removal = set((outbox or {}).get("remove", []))
    resolving = memberships.changed or config_changed or not stored_targets
    with ThreadPoolExecutor(1, thread_name_prefix="galsync-targets") as pool:
        resolved = pool.submit(_resolve_targets, rt, profile, memberships.members, stored_targets, dry_run) \
            if resolving else None
        early = _early_fill(rt, profile, fanout, resolved, report.run_id) if not dry_run else None
        found = SourceChanges(rt, profile, report.run_id, dry_run, outbox,
                              on_stored=early.stored if early is not None else None)
        try:
            reads = _read_sources(rt, profile, found, memberships, old_members, full=config_changed)
        except BaseException:
            if early is not None:
                early.cancel()
            raise
        early_report = early.finish() if early is not None else None
        tchanges = resolved.result() if resolved is not None else None
    # New targets the early fill brought fully in step need no fill push (it would plan and write nothing).
    filled_early: set[str] = set()
    if early is not None and early_report is not None:
        if early_report.writes:
            filled_early = early.covering([r.source_key for r in store.iter_source_records(profile.name)])
        report.exec.merge(early_report)
        fanout.add_early(early_report, len(filled_early))  # type: ignore[attr-defined]
    report.changed, report.removed = found.changed, found.removed

    back: set[str] = set()
    if tchanges is not None:
        # A mailbox an unfinished run was removing is a target again: fill it instead of emptying it.
        back = unfinished_removal & set(tchanges.active)
        unfinished_removal -= back
    else:
        # No membership change since the unfinished run: its removals stand, and nothing else goes there.
        tchanges = target_set.TargetChanges({m: t for m, t in stored_targets.items()
                                             if t.active and m not in unfinished_removal}, (), ())
    fill = set(tchanges.new) | set((outbox or {}).get("fill", [])) | back
    removed_targets = set(tchanges.removed) | unfinished_removal
    report.targets, report.new_targets, report.removed_targets = len(tchanges.active), len(fill), len(removed_targets)

    changed_keys = None if found.keys is None else set(found.keys)
    if outbox is not None:
        changed_keys = None if outbox.get("keys") is None or changed_keys is None else \
            changed_keys | set(outbox["keys"])
    if config_changed or (changed_keys is not None and len(changed_keys) > MAX_KEYS_PER_MESSAGE):
        changed_keys = None

    if dry_run:
        _dry_run(rt, profile, tchanges, fill, removed_targets, found.new_records, found.removed_keys,
                 found.previous, changed_keys, report)
        return

    # 4. persist the rest (the outbox now names exactly what changed), fan out, drop the outbox
    store.put_doc("outbox", profile.name, {
        "run_id": report.run_id, "keys": None if changed_keys is None else sorted(changed_keys),
        "fill": sorted(fill), "remove": sorted(removed_targets)})
    for read in reads:
        if read.delta_link:
            store.set_delta_link(profile.name, read.source.name, read.delta_link)
    store.put_doc("delta-times", profile.name, {r.source.name: rt.now_iso() for r in reads if r.delta_link})
    # New targets before the membership watch: once the watch is saved, the next run no longer resolves
    # targets, so a crash in between must not leave a new target unknown (it would never be filled).
    for mailbox in tchanges.new:
        store.put_target(profile.name, tchanges.active[mailbox])
    group_watch.save(store, profile, memberships)
    store.put_doc("profile-state", profile.name, {"config": config_fp})

    report.messages = _fan_out(rt, profile, fanout, tchanges, fill, removed_targets, changed_keys, report,
                               filled_early)
    store.delete_doc("outbox", profile.name)


def _read_sources(rt: Runtime, profile: Profile, found: SourceChanges, memberships: group_watch.Memberships,
                  old_members: Mapping[str, frozenset[str]] | None, *, full: bool) -> list[SourceRead]:
    """Read every source (by delta, or in full), handing each chunk to `found`; then what the walks imply:
    removals after a full read, users whose filter-group membership flipped, managers' new names."""
    client, store = rt.client, rt.store
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


def _early_fill(rt: Runtime, profile: Profile, fanout: FanOut, targets: Future[target_set.TargetChanges] | None,
                run_id: str) -> EarlyFill | None:
    """Early writes to new targets (early_fill.py), when the pushes run in this process and the profile has one
    source; None otherwise."""
    early_push = getattr(fanout, "early_push", None)
    if targets is None or early_push is None or len(profile.sources) != 1:
        return None
    return EarlyFill(profile.name, targets, lambda keys, found: early_push(
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


def _fan_out(rt: Runtime, profile: Profile, fanout: FanOut, tchanges: target_set.TargetChanges, fill: set[str],
             removed_targets: set[str], changed_keys: set[str] | None, report: SyncReport,
             filled_early: Collection[str] = ()) -> int:
    """Send the push messages (none to the targets the early fill brought in step, `filled_early`); an inline
    fan-out's write counts go into this run's report."""
    size = rt.settings.targets_per_message
    run_id = report.run_id
    messages: list[PushMessage] = []
    existing = sorted(m for m in tchanges.active if m not in fill)
    if changed_keys is None or changed_keys:
        keys = None if changed_keys is None else tuple(sorted(changed_keys))
        messages += [PushMessage(profile.name, tuple(c), keys, "changes", run_id) for c in _chunks(existing, size)]
    messages += [PushMessage(profile.name, tuple(c), None, "changes", run_id,
                             new_folders=tuple(m for m in c if m in tchanges.new_folders))
                 for c in _chunks(sorted(m for m in fill if m in tchanges.active and m not in filled_early), size)]
    messages += [PushMessage(profile.name, tuple(c), None, "remove", run_id)
                 for c in _chunks(sorted(removed_targets), size)]
    push_all = getattr(fanout, "push_all", None)
    pushed = push_all(messages) if push_all is not None else [fanout.push(m) for m in messages]
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


# --- push_targets ---------------------------------------------------------------------------------------------


def push_targets(rt: Runtime, message: PushMessage, *, targets: Mapping[str, Target] | None = None) -> ExecReport:
    """Plan and apply a profile's contacts to a chunk of target mailboxes (`targets`: instead of the stored
    ones, for targets this run found and has not stored yet).

    Each mailbox is written under its own lease, so two pushes that overlap (two quick changes fanned out
    to the same targets, handled by two instances) never both create the same contact (I2). Mailboxes held
    by another worker are skipped and reported with TargetsBusy once the others are done: the queue retries
    the message, and a retried push of an up-to-date mailbox writes nothing.
    """
    profile = rt.config.profile(message.profile)
    store = rt.store
    held: list[str] = []
    busy: list[str] = []
    for mailbox in message.mailboxes:
        (held if store.acquire_lease(_target_lease(profile, mailbox), rt.owner, TARGET_LEASE_SECONDS)
         else busy).append(mailbox)
    try:
        report = _push_held(rt, profile, replace(message, mailboxes=tuple(held)), targets)
    finally:
        for mailbox in held:
            store.release_lease(_target_lease(profile, mailbox), rt.owner)
    if busy:
        raise TargetsBusy(profile.name, busy)
    return report


def _target_lease(profile: Profile, mailbox: str) -> str:
    return f"push:{profile.name}:{mailbox}"


def _push_held(rt: Runtime, profile: Profile, message: PushMessage, targets: Mapping[str, Target] | None
               ) -> ExecReport:
    store, client = rt.store, rt.client
    if targets is None:
        targets = store.get_targets(profile.name)
    if message.mode == "remove":
        return _remove_targets(rt, profile, message, targets)
    desired, previous, wanted_keys = _desired(store, profile, message.keys)
    want = desired if wanted_keys is None else {k: d for k, d in desired.items() if k in wanted_keys}
    recreate = _recreator(profile, want)
    works: list[TargetWork] = []
    report = ExecReport()
    active = [targets[m] for m in message.mailboxes if m in targets and targets[m].active]
    shared = SharedCreates(profile)  # a contact's create is the same for every target of the push
    known_empty = set(message.new_folders)  # folders made in this run
    for target in _with_folders(rt, profile, active, report, made=known_empty):
        mailbox = target.mailbox
        records = store.get_target_records(profile.name, mailbox, wanted_keys)
        if wanted_keys is None and not records and mailbox not in known_empty:
            # A fill with nothing recorded, into a folder that may hold galsync's contacts (lost state).
            actions = adopt(client, profile, mailbox, target.folder_id or "", want, report)
        else:
            actions = plan_target(mailbox, want, previous, records, profile, shared)
        works.append(TargetWork(mailbox, target.folder_id or "", actions, records, recreate))
    report.merge(execute(client, store, profile, works, rt.now_iso))
    log.info("profile %s: push %s to %d mailbox(es): %s", profile.name, message.run_id, len(works),
             dict(report.counts))
    return report


def _desired(store: Any, profile: Profile, keys: tuple[str, ...] | None
             ) -> tuple[dict[str, DesiredContact], dict[str, SourceRecord], set[str] | None]:
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
    previous: dict[str, SourceRecord] = {}
    for key in sorted(wanted or ()):
        doc = store.get_doc("prev", f"{profile.name}|{key}")
        if doc is not None:
            previous[key] = SourceRecord(key, str(doc[0]["fingerprint"]), doc[0]["payload"])
    return desired, previous, wanted


def _same_person(records: list[SourceRecord], keys: set[str]) -> set[str]:
    """Keys that may win or lose a merge because one of `keys` changed (same first email address)."""
    def email(r: SourceRecord) -> str | None:
        emails = r.payload.get("emailAddresses") or []
        return str(emails[0].get("address", "")).casefold() if emails else None
    identities = {email(r) for r in records if r.source_key in keys} - {None}
    return {r.source_key for r in records if email(r) in identities}


def _recreator(profile: Profile, desired: Mapping[str, DesiredContact]) -> Any:
    def recreate(key: str) -> Create | None:
        want = desired.get(key)
        return create_action(key, want, profile) if want is not None else None
    return recreate


def _with_folders(rt: Runtime, profile: Profile, targets: list[Target], report: ExecReport,
                  made: set[str] | None = None) -> list[Target]:
    """The targets with their managed folder, found or created in `$batch` calls for those that have none yet
    (`made` collects the mailboxes whose folder was created here); a target whose folder name is taken by a
    foreign folder is reported and left out."""
    missing = [t for t in targets if not t.folder_id]
    found = ensure_folders(rt.client, profile, [t.mailbox for t in missing], made=made) if missing else {}
    out: list[Target] = []
    for target in targets:
        folder = found.get(target.mailbox, target.folder_id)
        if isinstance(folder, FolderConflict):
            report.counts["failed"] += 1
            report.errors.append(str(folder))
            log.error("profile %s: %s", profile.name, folder)
            continue
        if folder != target.folder_id:
            target = Target(target.mailbox, target.address, folder, target.purpose, target.active)
            rt.store.put_target(profile.name, target)
        out.append(target)
    return out


def _with_folder(rt: Runtime, profile: Profile, target: Target) -> Target:
    if target.folder_id:
        return target
    folder_id = ensure_folder(rt.client, profile, target.mailbox)
    updated = Target(target.mailbox, target.address, folder_id, target.purpose, target.active)
    rt.store.put_target(profile.name, updated)
    return updated


def _remove_targets(rt: Runtime, profile: Profile, message: PushMessage, targets: Mapping[str, Target]
                    ) -> ExecReport:
    """Mailboxes that left the profile: delete galsync's contacts (or keep them), then forget the target."""
    store = rt.store
    works: list[TargetWork] = []
    for mailbox in message.mailboxes:
        target = targets.get(mailbox)
        records = store.get_target_records(profile.name, mailbox)
        if target is not None and target.folder_id and records:
            works.append(TargetWork(mailbox, target.folder_id, plan_removed_target(records, profile), records))
    report = execute(rt.client, store, profile, works, rt.now_iso)
    for mailbox in message.mailboxes:
        if profile.policies.removed_target == "keep":
            store.delete_target_records(profile.name, mailbox, list(store.get_target_records(profile.name, mailbox)))
        target = targets.get(mailbox)
        if target is not None:
            store.put_target(profile.name, Target(mailbox, target.address, target.folder_id, target.purpose,
                                                  active=False))
    return report


# --- dry run --------------------------------------------------------------------------------------------------


def _dry_run(rt: Runtime, profile: Profile, tchanges: target_set.TargetChanges, fill: set[str],
             removed_targets: set[str], new_records: Mapping[str, SourceRecord], removed_keys: set[str],
             previous: Mapping[str, SourceRecord], changed_keys: set[str] | None, report: SyncReport) -> None:
    """Plan every target as a push would, with this run's changes applied in memory; write nothing."""
    store = rt.store
    current = {r.source_key: r for r in store.iter_source_records(profile.name) if r.source_key not in removed_keys}
    current.update(new_records)
    desired = {k: DesiredContact(r.payload, r.fingerprint, r.photo_etag) for k, r in current.items()}
    planned: dict[str, int] = {}
    for mailbox in sorted(tchanges.active):
        if mailbox not in fill and changed_keys is not None:
            records = store.get_target_records(profile.name, mailbox, changed_keys)
            want = {k: d for k, d in desired.items() if k in changed_keys}
        else:
            records = store.get_target_records(profile.name, mailbox)
            want = desired
        for action in plan_target(mailbox, want, previous, records, profile):
            planned[type(action).__name__] = planned.get(type(action).__name__, 0) + 1
    for mailbox in sorted(removed_targets):
        for action in plan_removed_target(store.get_target_records(profile.name, mailbox), profile):
            planned[type(action).__name__] = planned.get(type(action).__name__, 0) + 1
    report.planned = planned


def _describe_error(exc: BaseException) -> str:
    """One line for run history: the error's type and message (our errors never carry contact data)."""
    return f"{type(exc).__name__}: {exc}"[:500]
