"""Nightly reconcile: find what phones did to the managed folders, repair it per policy, report foreign contacts.

Per target, the managed folder is read with contact delta (in full the first time, then only what changed),
so a night with no drift costs about one request per target. What delta shows is classified (drift.py):
- a contact galsync wrote whose changeKey is the one it recorded: our own write, intact;
- a recorded contact with another changeKey: edited on a device: read once more with galsync's hidden tag
  (a phone that saves back its own copy strips it), then galsync's fields, and the tag if it is gone, are
  put back per policy; it stays galsync's, never foreign;
- a recorded contact reported removed: deleted on a device: re-created or respected per policy;
- an unknown contact: read once with galsync's hidden tag: ours (a duplicate or an orphan from a crash) or
  foreign (saved on a phone): foreign contacts are never touched under policy "report" (I1), and are listed
  in a per-mailbox document the doctor and `explain` read.
What delta cannot see (a push that never happened, a record without its contact) is planned from state
alone, with the same planner the push uses. Each target is reconciled under the same lease as pushes.
A folder whose delta answers 404 ErrorItemNotFound was deleted: it is made again and filled the same night
(folder_heal.py). A mailbox that refuses fails alone and is listed as a failing target (failing_targets.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sync_core.core.actions import Action, Create
from sync_core.core.drift import Drift, ForeignContact, ObservedContact, classify
from sync_core.core.plan import plan_target
from sync_core.core.profile import Profile
from sync_core.core.records import DEFAULT_CONTACTS_FOLDER, Run, Target, TargetRecord, folder_place
from sync_core.core.sources import DesiredContact, merge_sources, source_key_prefix
from sync_core.core.tags import CONTACT_TAG_EXPAND, contact_tag_value, parse_contact_tag
from sync_core.graph import DeltaTokenExpired, GraphClient, GraphError, NotFound
from sync_core.state import docs
from sync_core.state.leases import Heartbeat, LeaseLost

from . import photos
from .default_folder import delta_url
from .executor import execute
from .failing_targets import RECONCILE, FailingTargets, TargetFailure
from .folder_heal import FolderGone, folder_gone, folder_link, forget_folder
from .folder_listing import contact_url, list_tagged_contacts
from .folders import FolderConflict
from .moves import finish_moves, pending_moves
from .push import TARGET_LEASE_SECONDS, target_lease, with_folder
from .runtime import Runtime, new_run_id
from .target_work import ExecReport, TargetWork

log = logging.getLogger("galsync.reconcile")

READ_FIELDS = ("displayName", "changeKey", "createdDateTime", "lastModifiedDateTime")
# Unknown contacts a reconcile reads one GET each; beyond this many, one listing of the folder is cheaper.
READ_ONE_BY_ONE = 20
# Targets reconciled side by side: a quiet target is one delta request, so one after another the run waits on
# latency; each holds at most its folder's contacts in memory.
TARGETS_AT_ONCE = 16


@dataclass
class ReconcileReport:
    profile: str
    run_id: str
    dry_run: bool = False
    targets: int = 0
    busy: int = 0
    drift: Counter[str] = field(default_factory=Counter)
    planned: Counter[str] = field(default_factory=Counter)
    exec: ExecReport = field(default_factory=ExecReport)
    foreign: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # mailbox -> foreign contacts
    # mailbox -> how many of its owner's own contacts share the default Contacts folder (counted, not listed)
    owner_contacts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    failing: list[TargetFailure] = field(default_factory=list)  # targets that failed this night (they alone)


def reconcile_profile(rt: Runtime, profile_name: str, *, dry_run: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> ReconcileReport:
    """Reconcile every active target of one profile in this process (see the module doc); `progress(done,
    total)` hears of each mailbox read (the command line's progress line). The function app runs the same two
    parts, the targets in groups of queue messages (reconcile_groups.py)."""
    profile = rt.config.profile(profile_name)
    report = ReconcileReport(profile.name, new_run_id(), dry_run=dry_run)
    started = rt.now_iso()
    before = rt.client.stats.snapshot()
    if not dry_run:
        check_photos(rt, profile, report)
    reconcile_targets(rt, profile, active_targets(rt, profile), report, progress)
    after = rt.client.stats.snapshot()
    report.requests = sum(after.values()) - sum(before.values()) if after else 0
    if not dry_run:
        rt.store.record_run(reconcile_run(report.run_id, profile.name, started, rt.now_iso(), report))
    log.info("profile %s: reconcile %s: targets=%d busy=%d drift=%s writes=%d", profile.name, report.run_id,
             report.targets, report.busy, dict(report.drift), report.exec.writes)
    return report


def check_photos(rt: Runtime, profile: Profile, report: ReconcileReport) -> None:
    """The profile-wide part before the targets: one photo metadata check per user; a changed etag makes drift
    and the planner set the photo. Done once per reconcile, however the targets are split."""
    checks = photos.refresh_profile_photos(rt, profile)
    if checks.checked:
        report.exec.counts.update({"photos_checked": checks.checked, "photos_changed": len(checks.changed)})


def active_targets(rt: Runtime, profile: Profile) -> list[Target]:
    """The profile's active targets, in mailbox order (the order reports list them in)."""
    return [t for _, t in sorted(rt.store.get_targets(profile.name).items()) if t.active]


def reconcile_targets(rt: Runtime, profile: Profile, targets: list[Target], report: ReconcileReport,
                      progress: Callable[[int, int], None] | None = None, *, others: Collection[str] = ()) -> None:
    """The per-target part: each of `targets` reconciled under its lease, side by side, into `report`; their
    failures saved as failing targets (they alone, I10). `others`: the profile's other active targets, which
    another message reconciles; one without a failing document counts as working, so a 403 here gets the same
    hint (outside the Exchange scope) as when every target is reconciled together."""
    desired = _desired(rt, profile)
    failing = FailingTargets(rt.store, rt.client, profile.name, report.run_id, rt.now_iso)

    def one(target: Target) -> TargetOutcome:
        return _reconcile_under_lease(rt, profile, target, desired, ReconcileReport(profile.name, report.run_id,
                                                                                   dry_run=report.dry_run))

    # Targets side by side, each under its own lease; their outcomes are taken in target order, so the report
    # and the failing-targets list read the same as one after another.
    pool = ThreadPoolExecutor(max(1, min(TARGETS_AT_ONCE, len(targets))), thread_name_prefix="galsync-reconcile")
    done = 0
    try:
        for target, outcome in zip(targets, pool.map(one, targets), strict=True):
            if progress is not None:
                progress(done, len(targets))
            done += 1
            report.targets += 1
            _take(report, failing, target, outcome)
    except BaseException:
        pool.shutdown(cancel_futures=True)  # what stops the run (a store failure, Ctrl-C) starts no more targets
        raise
    pool.shutdown()
    if progress is not None:
        progress(done, len(targets))
    if not report.dry_run:
        others_work = None
        if others:
            others_work = len(failing.failed) < len(targets) or any(m not in failing.known for m in others)
        report.failing = failing.save(others_work=others_work)
        report.errors += [f.line() for f in report.failing]


def reconcile_run(run_id: str, profile: str, started: str, finished: str, report: ReconcileReport) -> Run:
    """The run record of a finished reconcile (`galsync status`, telemetry): its counts, and "partial" when a
    target failed."""
    outcome = "partial" if report.errors or report.exec.counts["failed"] else "ok"
    return Run(run_id, profile, "reconcile", started, finished, outcome,
               {**dict(report.drift), **dict(report.exec.counts), "targets": report.targets},
               error="; ".join((report.errors + report.exec.errors)[:5]) or None)


def _desired(rt: Runtime, profile: Profile) -> dict[str, DesiredContact]:
    records = list(rt.store.iter_source_records(profile.name))
    if len(profile.sources) > 1:
        precedence = [source_key_prefix(s, None) if s.kind != "folder" else "folder:" for s in profile.sources]
        return merge_sources(records, precedence)
    return {r.source_key: DesiredContact(r.payload, r.fingerprint, r.photo_etag) for r in records}


@dataclass
class TargetOutcome:
    """How one target's reconcile ended: its own part of the report, and what stopped it, if anything."""

    part: ReconcileReport
    busy: bool = False
    graph_error: FolderConflict | GraphError | None = None
    error: Exception | None = None  # its stored foreign list damaged, or its lease lost


def _reconcile_under_lease(rt: Runtime, profile: Profile, target: Target, desired: Mapping[str, DesiredContact],
                           part: ReconcileReport) -> TargetOutcome:
    """One target under its lease (shared with pushes), its findings in `part`; never raises for one mailbox."""
    with Heartbeat(rt.store, rt.owner, TARGET_LEASE_SECONDS, clock=rt.clock) as beat:
        if not part.dry_run and not beat.take(target_lease(profile, target.mailbox)):
            return TargetOutcome(part, busy=True)
        try:
            _reconcile_or_heal(rt, profile, target, desired, part, beat.held)
        except (FolderConflict, GraphError) as exc:
            return TargetOutcome(part, graph_error=exc)
        except (docs.DocumentError, LeaseLost) as exc:
            return TargetOutcome(part, error=exc)
    return TargetOutcome(part)


def _take(report: ReconcileReport, failing: FailingTargets, target: Target, outcome: TargetOutcome) -> None:
    """Add one target's outcome to the profile's report (in the caller's thread: the report is not shared)."""
    mailbox, part = target.mailbox, outcome.part
    if outcome.busy:
        report.busy += 1
        return
    report.drift.update(part.drift)
    report.planned.update(part.planned)
    report.exec.merge(part.exec)
    report.foreign.update(part.foreign)
    report.owner_contacts.update(part.owner_contacts)
    if outcome.graph_error is not None:
        # One mailbox failing (out of scope, gone, throttled past the retry bounds) fails alone: the other
        # targets are still reconciled (I10), and the sync tries this one again.
        failing.fail_error(mailbox, RECONCILE, outcome.graph_error, address=target.address)
        if report.dry_run:
            report.errors.append(f"mailbox {target.address or mailbox}: {outcome.graph_error}")
    elif outcome.error is not None:
        # Its stored foreign list damaged, or its lease lost: recorded, and the other targets are still
        # reconciled (I10).
        report.errors.append(f"mailbox {mailbox}: {outcome.error}")
        log.warning("profile %s: reconcile of mailbox %s failed: %s", report.profile, mailbox, outcome.error)
    else:
        failing.fail_refused(mailbox, RECONCILE, report.exec.refused.get(mailbox), address=target.address)


def _reconcile_or_heal(rt: Runtime, profile: Profile, target: Target, desired: Mapping[str, DesiredContact],
                       report: ReconcileReport, held: Callable[[], bool]) -> None:
    """Reconcile one target; if its managed folder was deleted, forget it, make it again and fill it, now (a
    dry run counts what that would write)."""
    try:
        _reconcile_target(rt, profile, target, desired, report, held)
    except FolderGone:
        report.drift["folder_deleted"] += 1
        if report.dry_run:
            report.planned["Create"] += len(desired)
            return
        report.exec.counts["folders_recreated"] += 1
        _reconcile_target(rt, profile, forget_folder(rt.store, profile, target), desired, report, held)


def _reconcile_target(rt: Runtime, profile: Profile, target: Target, desired: Mapping[str, DesiredContact],
                      report: ReconcileReport, held: Callable[[], bool]) -> None:
    store, client = rt.store, rt.client
    if not target.folder_id:
        if report.dry_run:
            report.planned["Create"] += len(desired)
            return
        target = with_folder(rt, profile, target)
    if folder_place(target.folder_id) != profile.place:
        report.drift["moving"] += 1  # the profile's place changed: the next push moves this target (moves.py)
        return
    folder_id = target.folder_id or ""
    records = store.get_target_records(profile.name, target.mailbox)
    link_name = folder_link(target.mailbox)
    try:
        seen, removed_ids, link, full = _folder_changes(client, profile, target.mailbox, folder_id,
                                                        store.get_delta_link(profile.name, link_name))
    except NotFound as exc:
        if folder_id != DEFAULT_CONTACTS_FOLDER and folder_gone(exc):
            raise FolderGone(target.mailbox) from exc
        raise
    tags = _listed_tags(client, target.mailbox, folder_id, seen, records)
    by_id = {r.contact_id: r for r in records.values() if r.contact_id}
    if full:
        # A full read lists every contact: a recorded one that is not there was deleted (delta only says so
        # with @removed for deletions after a delta link).
        removed_ids |= set(by_id) - {str(item["id"]) for item in seen}
    observed: list[ObservedContact] = []
    for item in seen:
        contact_id = str(item["id"])
        record = by_id.get(contact_id)
        if record is not None and item.get("changeKey") == record.change_key:
            # As galsync last wrote it, tag included.
            observed.append(_observed(item, contact_tag_value(profile.name, record.source_key)))
            continue
        # Unknown, or changed outside galsync (a phone that saves back its own copy strips the tag): read it
        # again with its tag, which delta cannot expand.
        read = tags.get(contact_id) if tags is not None else _read_tagged(client, target.mailbox, folder_id,
                                                                           contact_id)
        if read is None and record is not None:  # gone since delta listed it: the next night sees it removed
            observed.append(_observed(item, contact_tag_value(profile.name, record.source_key)))
        else:
            observed.append(ObservedContact.from_graph(read or item))
    subset = _keys_in_view(profile, by_id, observed, removed_ids)
    drift = _classify(profile, records, subset, observed, removed_ids, desired)
    rest = plan_target(target.mailbox, {k: d for k, d in desired.items() if k not in subset}, {},
                       {k: r for k, r in records.items() if k not in subset}, profile)
    actions: list[Action] = [*drift.actions(), *rest]
    report.drift.update({k: v for k, v in drift.counts().items() if v})
    if rest:
        report.drift["missed_by_push"] += len(rest)
    report.planned.update(type(action).__name__ for action in actions)
    foreign_key = docs.foreign_key(profile.name, target.mailbox)
    in_default = folder_id == DEFAULT_CONTACTS_FOLDER
    owner_contacts: int | None = None
    if in_default and target.purpose != "shared":
        # The owner's own contacts share the folder: counted (one request), never listed by the thousand.
        owner_contacts = _owner_contacts(client, target.mailbox, records)
        foreign: list[dict[str, Any]] = []
    else:
        foreign = _foreign_contacts(docs.read(store, docs.Foreign, foreign_key), drift.foreign, removed_ids,
                                    "Contacts" if in_default else "managed")
    if target.purpose == "shared" and not in_default:
        foreign += _default_folder_contacts(client, target.mailbox)
    report.foreign[target.mailbox] = foreign
    if owner_contacts is not None:
        report.owner_contacts[target.mailbox] = owner_contacts
    if report.dry_run:
        return
    if any(isinstance(a, Create) and a.source_key not in records for a in actions) and \
            not _still_a_target(rt, profile, target.mailbox):
        return  # removed since this reconcile read the targets: its removal has emptied it, nothing to fill
    repairs = execute(client, store, profile, [TargetWork(target.mailbox, folder_id, actions, records, None)],
                      rt.now_iso, held) if actions else ExecReport()
    report.exec.merge(repairs)
    docs.write(store, foreign_key, docs.Foreign(rt.now_iso(), target.purpose, tuple(foreign), owner_contacts))
    # A move whose end a crash interrupted ends here (moves.py).
    if moves := pending_moves(store, profile, [target.mailbox]):
        report.exec.merge(finish_moves(client, store, profile, moves, desired.__contains__, rt.now_iso, held))
    # A repair that failed keeps the old link: the next reconcile sees that drift again (found by the chaos
    # suite: with the link moved on, a contact whose repair failed looked intact forever).
    if link and not repairs.counts["failed"]:
        store.set_delta_link(profile.name, link_name, link)


def _still_a_target(rt: Runtime, profile: Profile, mailbox: str) -> bool:
    """Whether the mailbox is still an active target. Read again before the reconcile writes contacts nothing
    records (a fill): a sync may have removed the target since this reconcile listed the targets."""
    target = rt.store.get_targets(profile.name).get(mailbox)
    return target is not None and target.active


def _folder_changes(client: GraphClient, profile: Profile, mailbox: str, folder_id: str, link: str | None
                    ) -> tuple[list[dict[str, Any]], set[str], str | None, bool]:
    """Contacts changed in the folder since `link` (all on a full read), ids removed, the new link, and
    whether this was a full read."""
    if link is not None:
        try:
            return (*_walk(client.delta(link)), False)
        except DeltaTokenExpired:
            log.info("profile %s: folder delta token of mailbox %s expired; reading the folder in full",
                     profile.name, mailbox)
    select = ",".join(dict.fromkeys((*READ_FIELDS, *profile.written_fields)))
    url = delta_url(client, mailbox, folder_id)
    if url is None:  # an empty default Contacts folder: nothing to read, and no link to keep
        return [], set(), None, True
    return (*_walk(client.delta(url, params={"$select": select})), True)


def _listed_tags(client: GraphClient, mailbox: str, folder_id: str, seen: list[dict[str, Any]],
                 records: Mapping[str, TargetRecord]) -> dict[str, dict[str, Any]] | None:
    """Delta's items with their tags, from one listing of the folder, when there are too many unknown ones to
    read one by one (the first night in a default Contacts folder: the owner's own contacts); else None."""
    known = {r.contact_id: r.change_key for r in records.values() if r.contact_id}
    unknown = [i for i in seen if str(i["id"]) not in known or known[str(i["id"])] != i.get("changeKey")]
    if len(unknown) <= READ_ONE_BY_ONE:
        return None
    by_id = {str(i["id"]): i for i in unknown}
    out: dict[str, dict[str, Any]] = {}
    for listed in list_tagged_contacts(client, mailbox, folder_id, ("id",)):
        item = by_id.get(str(listed["id"]))
        if item is not None:
            tagged = listed.get("singleValueExtendedProperties")
            out[str(listed["id"])] = {**item, "singleValueExtendedProperties": tagged} if tagged else item
    return out


def _owner_contacts(client: GraphClient, mailbox: str, records: Mapping[str, TargetRecord]) -> int:
    """How many contacts of the default Contacts folder this profile did not write ($count, one request)."""
    page = client.get(f"/users/{mailbox}/contacts", params={"$count": "true", "$top": "1", "$select": "id"})
    total = page.get("@odata.count")
    ours = sum(1 for r in records.values() if r.contact_id and not r.deleted_on_device)
    return max(int(total) - ours, 0) if isinstance(total, int) else 0


def _walk(delta: Any) -> tuple[list[dict[str, Any]], set[str], str | None]:
    seen: dict[str, dict[str, Any]] = {}
    removed: set[str] = set()
    for item in delta:
        item_id = str(item.get("id"))
        if "@removed" in item:
            removed.add(item_id)
            seen.pop(item_id, None)
        else:
            seen[item_id] = item
            removed.discard(item_id)
    return list(seen.values()), removed, delta.delta_link


def _default_folder_contacts(client: GraphClient, mailbox: str) -> list[dict[str, Any]]:
    """Contacts in a shared mailbox's own Contacts folder: what its phones saved (galsync never writes there).

    Only shared mailboxes are read this way: there, every phone's saved contacts reach every other phone,
    which is what the doctor explains. Read-only, always.
    """
    items = client.iter_pages(f"/users/{mailbox}/contacts",
                              params={"$select": "displayName,createdDateTime,lastModifiedDateTime", "$top": "1000"})
    return [{"id": str(c["id"]), "displayName": c.get("displayName"), "createdDateTime": c.get("createdDateTime"),
             "lastModifiedDateTime": c.get("lastModifiedDateTime"), "folder": "Contacts"} for c in items]


def _read_tagged(client: GraphClient, mailbox: str, folder_id: str, contact_id: str) -> dict[str, Any] | None:
    """A contact galsync has no record of, read with its tag (delta cannot expand extended properties)."""
    try:
        return client.get(contact_url(mailbox, folder_id, contact_id), params={"$expand": CONTACT_TAG_EXPAND})
    except NotFound:
        return None


def _observed(item: Mapping[str, Any], tag: str | None) -> ObservedContact:
    return ObservedContact(str(item["id"]), item.get("changeKey"), tag, item, item.get("createdDateTime"),
                           item.get("lastModifiedDateTime"))


def _keys_in_view(profile: Profile, by_id: Mapping[str, TargetRecord], observed: list[ObservedContact],
                  removed_ids: set[str]) -> set[str]:
    """Source keys that delta showed something about this night (classified by drift, not by the planner)."""
    keys = {by_id[i].source_key for i in removed_ids if i in by_id}
    for contact in observed:
        tag = parse_contact_tag(contact.tag)
        if contact.contact_id in by_id:
            keys.add(by_id[contact.contact_id].source_key)  # galsync's by its record, whatever its tag says
        elif tag is not None and tag.profile == profile.name:
            keys.add(tag.source_key)
    return keys


def _classify(profile: Profile, records: Mapping[str, TargetRecord], keys: set[str],
              observed: list[ObservedContact], removed_ids: set[str], desired: Mapping[str, DesiredContact]
              ) -> Drift:
    """Drift of the keys delta showed; recorded contacts delta did not show are still as galsync left them."""
    view = list(observed)
    shown = {o.contact_id for o in observed} | removed_ids
    for key in keys:
        record = records.get(key)
        if record is not None and record.contact_id and record.contact_id not in shown:
            # Unchanged since galsync's last write (delta would show it otherwise): seen as recorded.
            view.append(ObservedContact(record.contact_id, record.change_key,
                                        contact_tag_value(profile.name, key), {}))
    return classify({k: r for k, r in records.items() if k in keys}, view,
                    {k: d for k, d in desired.items() if k in keys}, profile)


def _foreign_contacts(previous: docs.Foreign | None, found: tuple[ForeignContact, ...], removed_ids: set[str],
                      folder: str = "managed") -> list[dict[str, Any]]:
    """Foreign contacts of the mailbox: last night's list, minus what is gone, plus what delta showed.

    `folder` is where galsync writes: "managed" (its own folder) or "Contacts" (the default folder).
    """
    known: dict[str, dict[str, Any]] = {}
    if previous is not None:
        known = {c["id"]: dict(c) for c in previous.contacts if c.get("folder") == folder}
    for contact_id in removed_ids:
        known.pop(contact_id, None)
    for contact in found:
        known[contact.contact_id] = {"id": contact.contact_id, "displayName": contact.display_name,
                                     "createdDateTime": contact.created,
                                     "lastModifiedDateTime": contact.last_modified,
                                     "otherProfile": contact.other_profile, "folder": folder}
    return sorted(known.values(), key=lambda c: (c.get("createdDateTime") or "", c["id"]))
