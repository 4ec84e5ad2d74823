"""The nightly reconcile on the function app: the profile-wide part once, the targets in groups, one queue message
each, taken by any instance.

One reconcile message of a profile does what is read once for the whole profile (the photo checks, the
target list), stores a `reconcile-run` document naming how many groups there are, and returns one
reconcile-targets message per group of GALSYNC_RECONCILE_TARGETS_PER_MESSAGE targets. A group message runs
the same per-target code as the command line (reconcile.reconcile_targets: each target under its lease, side
by side), then adds what it found to the run document under its ETag, so two groups finishing together never
lose each other's counts, and a retried group is counted once. The group whose count completes the run
records it (`galsync status`, telemetry: one record per profile and night, as before) and tells the caller,
which then logs the doctor's verdict once for the night.

A group that fails on every try is recorded as poison and given up here: its targets count as not
reconciled, and the run still ends. A group of a run that is no longer the profile's latest (the next night
began before it was taken) is dropped: the newer run reconciles those targets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sync_core.core.records import Run
from sync_core.state import docs
from sync_core.state.base import ConcurrencyError

from .queue_messages import ReconcileGroupMessage
from .reconcile import ReconcileReport, active_targets, check_photos, reconcile_run, reconcile_targets
from .runtime import Runtime, new_run_id

log = logging.getLogger("galsync.reconcile")

# Tries of one group's update of the run document against other groups updating it at the same moment.
UPDATE_TRIES = 50


@dataclass(frozen=True)
class GroupOutcome:
    """How one group message ended: its findings, and the profile's run if this group finished it."""

    report: ReconcileReport | None = None  # None: dropped (a stale run) or done before (a retry)
    finished: Run | None = None


def start_reconcile(rt: Runtime, profile_name: str, group_size: int) -> tuple[list[ReconcileGroupMessage], Run | None]:
    """The profile-wide part of a reconcile; its group messages, or (no active target) the finished run."""
    profile = rt.config.profile(profile_name)
    report = ReconcileReport(profile.name, new_run_id())
    started = rt.now_iso()
    check_photos(rt, profile, report)
    mailboxes = [t.mailbox for t in active_targets(rt, profile)]
    groups = [tuple(mailboxes[i:i + group_size]) for i in range(0, len(mailboxes), group_size)]
    _end_unfinished(rt, profile.name)
    run = docs.ReconcileRun(report.run_id, started, len(groups), exec_counts=dict(report.exec.counts))
    docs.write(rt.store, profile.name, run)
    log.info("profile %s: reconcile %s: %d target(s) in %d group(s)", profile.name, report.run_id, len(mailboxes),
             len(groups))
    if not groups:
        return [], _finish(rt, profile.name, run)
    return [ReconcileGroupMessage(profile.name, report.run_id, n, len(groups), group)
            for n, group in enumerate(groups)], None


def run_group(rt: Runtime, message: ReconcileGroupMessage) -> GroupOutcome:
    """Reconcile one group of targets and count it into its run; the run too, if this group completes it."""
    found = docs.read(rt.store, docs.ReconcileRun, message.profile)
    if found is None or found.run_id != message.run_id:
        log.info("profile %s: reconcile group %d/%d of run %s dropped: the profile's latest reconcile is another",
                 message.profile, message.group + 1, message.groups, message.run_id)
        return GroupOutcome()
    if message.group in found.done:  # a retry of a group whose findings were counted before it failed
        return GroupOutcome(finished=_finish(rt, message.profile, found) if found.complete else None)
    profile = rt.config.profile(message.profile)
    targets = rt.store.get_targets(profile.name)
    # A mailbox that left the targets since the run began is not reconciled (its removal empties it).
    chosen = [targets[m] for m in message.mailboxes if m in targets and targets[m].active]
    part = ReconcileReport(profile.name, message.run_id)
    named = set(message.mailboxes)
    others = [m for m, t in targets.items() if t.active and m not in named]
    reconcile_targets(rt, profile, chosen, part, others=others)
    log.info("profile %s: reconcile %s group %d/%d: targets=%d busy=%d drift=%s writes=%d", profile.name,
             message.run_id, message.group + 1, message.groups, part.targets, part.busy, dict(part.drift),
             part.exec.writes)
    run = _count_group(rt, message, part)
    finished = _finish(rt, profile.name, run) if run is not None and run.complete else None
    return GroupOutcome(part, finished)


def give_up_group(rt: Runtime, message: ReconcileGroupMessage, reason: str) -> Run | None:
    """A group that failed on every try: its targets count as not reconciled, so the run still ends; the run,
    if this completes it."""
    part = ReconcileReport(message.profile, message.run_id)
    part.errors.append(f"group {message.group + 1} of {message.groups}: {len(message.mailboxes)} target(s) not "
                       f"reconciled: {reason}")
    run = _count_group(rt, message, part)
    return _finish(rt, message.profile, run) if run is not None and run.complete else None


def _count_group(rt: Runtime, message: ReconcileGroupMessage, part: ReconcileReport) -> docs.ReconcileRun | None:
    """Add one group's findings to its run document (once, whatever the retries); the document as written, or
    None when the run is no longer the profile's latest."""
    def count(run: docs.ReconcileRun | None) -> docs.ReconcileRun | None:
        if run is None or run.run_id != message.run_id or message.group in run.done:
            return None
        return docs.ReconcileRun(
            run.run_id, run.started_at, run.groups, (*run.done, message.group), run.targets + part.targets,
            run.busy + part.busy, _sum(run.drift, part.drift), _sum(run.exec_counts, part.exec.counts),
            (*run.errors, *part.errors)[:docs.ReconcileRun.MAX_ERRORS],
            (*run.exec_errors, *part.exec.errors)[:docs.ReconcileRun.MAX_ERRORS])

    run = docs.update(rt.store, docs.ReconcileRun, message.profile, count, tries=UPDATE_TRIES)
    return run if run is not None and run.run_id == message.run_id else None


def _finish(rt: Runtime, profile: str, run: docs.ReconcileRun) -> Run | None:
    """Record the completed run (once), as the in-process reconcile records it; None if it was recorded before."""
    found = docs.read_versioned(rt.store, docs.ReconcileRun, profile)
    if found is None or found[0].run_id != run.run_id or found[0].finished:
        return None
    current, etag = found
    try:  # marked first: of two that finish together, one records the run
        docs.write(rt.store, profile, replace(current, finished=True), etag)
    except ConcurrencyError:
        return None
    report = ReconcileReport(profile, current.run_id, targets=current.targets, busy=current.busy)
    report.drift.update(current.drift)
    report.exec.counts.update(current.exec_counts)
    report.errors += current.errors
    report.exec.errors += current.exec_errors
    record = reconcile_run(current.run_id, profile, current.started_at, rt.now_iso(), report)
    rt.store.record_run(record)
    log.info("profile %s: reconcile %s: targets=%d busy=%d drift=%s groups=%d", profile, current.run_id,
             current.targets, current.busy, dict(current.drift), current.groups)
    return record


def _end_unfinished(rt: Runtime, profile: str) -> None:
    """A run whose groups never all finished (a worker lost beyond retries) is recorded as failed before the
    next begins, so `galsync status` and the alerts see it."""
    previous = docs.read(rt.store, docs.ReconcileRun, profile)
    if previous is None or previous.finished:
        return
    missing = previous.groups - len(previous.done)
    log.warning("profile %s: reconcile %s ended with %d of %d group(s) not done", profile, previous.run_id, missing,
                previous.groups)
    rt.store.record_run(Run(previous.run_id, profile, "reconcile", previous.started_at, rt.now_iso(), "failed",
                            {**previous.drift, **previous.exec_counts, "targets": previous.targets},
                            error=f"{missing} of {previous.groups} target group(s) never finished"))


def _sum(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + int(value)
    return out
