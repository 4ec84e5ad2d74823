"""`galsync sync` and `galsync reconcile`: run the use cases here, in this process, with a progress bar.

Pushes run inline (the function app queues them instead); each profile is one line of the result table.
A profile that fails is reported and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from sync_core.core.records import Target
from sync_core.service.adoption import MATCHED
from sync_core.service.reconcile import ReconcileReport, reconcile_profile
from sync_core.service.runtime import PushMessage, Runtime
from sync_core.service.sync import InlineFanOut, SyncReport, sync_profile
from sync_core.service.target_work import ExecReport

from .advice import BAD_USAGE, FAILURES, OK
from .context import JsonFlag, options, output
from .errors import CliProblem, advice_for, advised
from .mailbox_names import MailboxNames
from .output import Output, table
from .profile_choice import chosen_profiles
from .progress import WorkProgress

ProfileOption = Annotated[list[str] | None, typer.Option(
    "--profile", "-p", help="Profile to run (repeatable); default: every profile in the configuration.")]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="Read and plan, but write nothing (no Graph write, no state change).")]
ResetStateOption = Annotated[bool, typer.Option(
    "--reset-state", help="First empty the state store and stamp it for the configured tenant and Graph endpoint "
    "(for a store made for another one). Safe: galsync re-adopts its contacts from the mailboxes instead of "
    "creating them again; the run reads the directory and each managed folder once.")]


class ProgressFanOut:
    """Runs each push inline, as InlineFanOut does, and tells the progress what each one did."""

    def __init__(self, rt: Runtime, progress: WorkProgress | None = None) -> None:
        self._inline = InlineFanOut(rt)
        self._progress = progress

    @property
    def report(self) -> ExecReport:
        return self._inline.report

    def push(self, message: PushMessage) -> ExecReport:
        result = self._inline.push(message)
        self._advance(len(message.mailboxes), result.writes)
        return result

    def early_push(self, message: PushMessage, targets: Mapping[str, Target]) -> ExecReport:
        """A page of the directory written to this run's new targets while the read goes on: its contacts
        count now, its mailboxes once the early fill says which are in step."""
        if self._progress is not None and self._progress.total is None:
            self._progress.set_total(len(message.mailboxes))
        result = self._inline.early_push(message, targets)
        self._advance(0, result.writes)
        return result

    def add_early(self, report: ExecReport, in_step: int) -> None:
        self._inline.add_early(report, in_step)
        self._advance(in_step, 0)  # written while the directory was read: done, with no push message

    def push_all(self, messages: Sequence[PushMessage]) -> list[ExecReport]:
        if self._progress is not None:
            self._progress.set_total(self._progress.done + sum(len(m.mailboxes) for m in messages))
        return self._inline.push_all(messages, push=self.push)

    def _advance(self, mailboxes: int, contacts: int) -> None:
        if self._progress is not None:
            self._progress.advance(mailboxes, contacts)


@dataclass
class ProfileRun:
    """One profile's line in the result: the use case's report, or the advice for why it failed."""

    profile: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.data.get("outcome") in ("failed", "partial", "busy")


def run_sync(rt: Runtime, name: str, *, dry_run: bool, progress: WorkProgress | None = None) -> SyncReport:
    """One profile's sync with inline pushes; the report carries the pushes' write counts (sync_profile merges
    what an inline fan-out returns)."""
    return sync_profile(rt, name, ProgressFanOut(rt, progress), dry_run=dry_run)


def sync_json(report: SyncReport, names: MailboxNames | None = None) -> dict[str, Any]:
    """A sync report as JSON; mailboxes named by address. A dry run lists what it would write per mailbox
    and per contact."""
    names = names or MailboxNames({})
    counts = dict(report.exec.counts)
    planned: dict[str, Any] = {}
    if report.dry_run:
        planned = {
            "planned_by_mailbox": {names.name(m): dict(c) for m, c in report.planned_by_mailbox.items()},
            "planned_contacts": [{"mailbox": names.name(w.mailbox), "action": w.action, "source_key": w.source_key,
                                  "name": w.name} for w in report.planned_writes],
            "planned_contacts_complete": len(report.planned_writes) == sum(report.planned.values()),
            # Targets whose contacts move to the profile's place: creates there, deletes from the old one.
            "planned_moves": {names.name(m): move.to_json() for m, move in sorted(report.planned_moves.items())},
        }
    return {**planned,
        "profile": report.profile, "run_id": report.run_id, "outcome": report.outcome, "dry_run": report.dry_run,
        "changed": report.changed, "removed": report.removed, "targets": report.targets,
        "new_targets": report.new_targets, "removed_targets": report.removed_targets,
        "push_messages": report.messages,
        "writes": {k: counts.get(k, 0) for k in ("created", "updated", "deleted", "adopted", "photos_set", "failed")},
        "write_total": report.exec.writes,
        # Contacts galsync found already in the folders (by its tag) and took over instead of creating them.
        "adopted": counts.get("adopted", 0) + counts.get(MATCHED, 0),
        "planned": dict(report.planned), "graph_requests": dict(report.requests),
        "failing_targets": [f.to_json() for f in report.failing],
        "errors": ([f.line() for f in report.failing] + [names.text(e) for e in report.exec.errors])[:20],
        "held_by": None if report.holder is None else {
            "lease": report.holder.name, "worker": report.holder.owner,
            "until": datetime.fromtimestamp(report.holder.expires_at, UTC).isoformat(timespec="seconds")},
    }


@advised
def sync(profile: ProfileOption = None, dry_run: DryRunOption = False, reset_state: ResetStateOption = False,
         json: JsonFlag = False) -> None:
    """Read the directory (only what changed) and bring every target mailbox in step.

    Reads the Graph credentials (GALSYNC_*), the profiles file and the state store (`galsync settings`).
    Exit 1 if a profile or a mailbox failed; the others still run.

    Examples:

      galsync sync --dry-run --verbose

      galsync sync --profile "driver phones" --json
    """
    out = output(json)
    runs: list[ProfileRun] = []
    with options().runtime(reset_state=_resetting(reset_state, dry_run)) as rt:
        for name in chosen_profiles(rt.config, profile):
            if dry_run:
                progress = WorkProgress(out, f"{name}: reading the directory and planning", unit=None)
            else:
                progress = WorkProgress(out, f"{name}: mailboxes in step",
                                        until_known=f"{name}: reading what changed in the directory")
            with progress:
                runs.append(_guarded(name, functools.partial(_sync_one, rt, name, dry_run, progress)))
    _finish(out, "sync", runs, dry_run)


@advised
def reconcile(profile: ProfileOption = None, dry_run: DryRunOption = False,
              reset_state: ResetStateOption = False, json: JsonFlag = False) -> None:
    """Check every target's managed folder for drift (edited, deleted, foreign contacts) and repair per policy.

    Examples:

      galsync reconcile --dry-run

      galsync reconcile --profile Dispatch
    """
    out = output(json)
    runs: list[ProfileRun] = []
    with options().runtime(reset_state=_resetting(reset_state, dry_run)) as rt:
        for name in chosen_profiles(rt.config, profile):
            with WorkProgress(out, f"{name}: managed folders read", contacts=False) as progress:
                runs.append(_guarded(name, functools.partial(_reconcile_one, rt, name, dry_run, progress)))
    _finish(out, "reconcile", runs, dry_run)


def _resetting(reset_state: bool, dry_run: bool) -> bool:
    if reset_state and dry_run:
        raise CliProblem("--reset-state empties the state store, which a --dry-run never does; use one of them",
                         code=BAD_USAGE)
    return reset_state


def _sync_one(rt: Runtime, name: str, dry_run: bool, progress: WorkProgress) -> dict[str, Any]:
    report = run_sync(rt, name, dry_run=dry_run, progress=progress)
    return sync_json(report, MailboxNames.of(rt.store, [name]))


def _reconcile_one(rt: Runtime, name: str, dry_run: bool, progress: WorkProgress) -> dict[str, Any]:
    def heard(done: int, total: int) -> None:
        progress.set_total(total)
        progress.advance(done - progress.done)

    report = reconcile_profile(rt, name, dry_run=dry_run, progress=heard)
    return reconcile_json(report, MailboxNames.of(rt.store, [name]))


def _guarded(name: str, work: Callable[[], dict[str, Any]]) -> ProfileRun:
    """Run one profile; a failure of that profile alone (a Graph error) is reported, anything else stops."""
    try:
        return ProfileRun(name, work())
    except Exception as error:
        advice = advice_for(error)
        if advice is None or advice.code != FAILURES:
            raise
        return ProfileRun(name, error=advice.message + (f" ({advice.hint})" if advice.hint else ""))


def reconcile_json(report: ReconcileReport, names: MailboxNames | None = None) -> dict[str, Any]:
    """A reconcile report as JSON, mailboxes named by address. Counts only: the foreign contacts' names are
    for `galsync doctor`."""
    names = names or MailboxNames({})
    writes = dict(report.exec.counts)
    named = {f.line() for f in report.failing}  # failing targets' lines name their mailbox already
    errors = [e if e in named else names.text(e) for e in (*report.errors, *report.exec.errors)]
    return {
        "profile": report.profile, "run_id": report.run_id, "dry_run": report.dry_run,
        "outcome": "partial" if errors or writes.get("failed") else "ok",
        "targets": report.targets, "busy_targets": report.busy, "drift": dict(report.drift),
        "planned": dict(report.planned), "writes": writes,
        "write_total": report.exec.writes,
        "foreign_found": sum(len(v) for v in report.foreign.values()),
        "foreign_by_mailbox": {names.name(m): len(v) for m, v in report.foreign.items() if v},
        "graph_requests": report.requests, "failing_targets": [f.to_json() for f in report.failing],
        "errors": errors[:20],
    }


def _finish(out: Output, kind: str, runs: list[ProfileRun], dry_run: bool) -> None:
    failed = [r for r in runs if r.failed]
    data = {"command": kind, "dry_run": dry_run, "ok": not failed,
            "profiles": [{**r.data, "profile": r.profile, "error": r.error} for r in runs]}
    out.result(data, lambda console: _render(console, kind, runs, dry_run))
    raise typer.Exit(FAILURES if failed else OK)


def _render(console: Console, kind: str, runs: list[ProfileRun], dry_run: bool) -> None:
    if kind == "sync":
        rows = []
        for r in runs:
            d = r.data
            w = d.get("writes", {})
            planned = ", ".join(f"{k} {v}" for k, v in sorted(d.get("planned", {}).items())) or "nothing"
            rows.append([r.profile, r.error or d.get("outcome"), f"{d.get('changed', 0)} / {d.get('removed', 0)}",
                         f"{d.get('targets', 0)} ({d.get('new_targets', 0)} new)",
                         planned if dry_run else f"{w.get('created', 0)} / {w.get('updated', 0)} / "
                                                 f"{w.get('deleted', 0)}",
                         w.get("failed", 0), d.get("graph_requests", {}).get("http_requests")])
        columns = ["profile", "outcome", "sources changed / gone", "targets",
                   "planned" if dry_run else "contacts created / updated / deleted", "failed", "Graph requests"]
        console.print(table(f"galsync sync{' (dry run: nothing written)' if dry_run else ''}", columns, rows))
        if dry_run:
            for r in runs:
                render_plan(console, r.profile, r.data, verbose=Output.current().verbose)
                render_moves(console, r.profile, r.data.get("planned_moves", {}))
        for r in runs:
            if r.data.get("adopted"):
                console.print(f"  {r.profile}: adopted {r.data['adopted']} contact(s) galsync had written before "
                              "(found in the managed folders by its tag, not created again)")
    else:
        console.print(table(f"galsync reconcile{' (dry run: nothing written)' if dry_run else ''}",
                            ["profile", "outcome", "targets", "what the folders held", "repairs written",
                             "foreign contacts", "Graph requests"],
                            [reconcile_row(r.profile, r.data, r.error) for r in runs]))
    for r in runs:
        held = r.data.get("held_by")
        if held:
            console.print(f"  {r.profile}: busy: lease {held['lease']} is held by worker {held['worker']} until "
                          f"{held['until']}; that run includes this one", style="yellow", markup=False)
        errors = r.data.get("errors", [])
        for line in errors[:5]:
            console.print(f"  {r.profile}: {line}", style="red", markup=False)
        if len(errors) > 5:
            console.print(f"  {r.profile}: ... and {len(errors) - 5} more (--json lists up to 20)", style="red")


_ACTION_COLUMNS = ("Create", "Update", "Delete")


def render_plan(console: Console, profile: str, data: dict[str, Any], *, verbose: bool) -> None:
    """What a dry run would write: per mailbox always, per contact with --verbose."""
    by_mailbox = data.get("planned_by_mailbox", {})
    busy = {m: c for m, c in by_mailbox.items() if any(c.values())}
    if not busy:
        return
    rows = [[mailbox, *(counts.get(k, 0) for k in _ACTION_COLUMNS),
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in _ACTION_COLUMNS) or "-"]
            for mailbox, counts in sorted(busy.items())]
    console.print(table(f'"{profile}": what would be written, per mailbox ({len(busy)} of {len(by_mailbox)})',
                        ["mailbox", "create", "update", "delete", "other"], rows))
    if not verbose:
        console.print("  --verbose lists each contact", style="dim")
        return
    contacts = data.get("planned_contacts", [])
    console.print(table(f'"{profile}": each contact', ["mailbox", "action", "contact", "source"],
                        [[c["mailbox"], c["action"], c["name"] or "-", c["source_key"]] for c in contacts]))
    if not data.get("planned_contacts_complete", True):
        console.print(f"  only the first {len(contacts)} are listed; --json has the same list", style="dim")


def render_moves(console: Console, profile: str, moves: dict[str, dict[str, Any]]) -> None:
    """The dry run's pending moves: per mailbox, what the push writes in the new place and removes from the old."""
    if not moves:
        return
    place = {"own_folder": "galsync's folder", "default_folder": "default Contacts folder", None: "?"}
    rows = [[mailbox, place.get(m["from"], m["from"]), place.get(m["to"], m["to"]),
             m["create"] if not m["error"] else "-", m["delete"] if not m["error"] else "-",
             m["waiting"] if not m["error"] else "-",
             m["error"] or ("galsync's folder made first" if m["folder_created"] else "-")]
            for mailbox, m in sorted(moves.items())]
    console.print(table(f'"{profile}": contacts that move to the profile\'s place ({len(moves)} mailbox(es))',
                        ["mailbox", "from", "to", "created in the new place", "deleted from the old place",
                         "left until copied", "note"],
                        rows))


def reconcile_row(profile: str, data: dict[str, Any], error: str | None = None) -> list[Any]:
    drift = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(data.get("drift", {}).items()) if v)
    planned = ", ".join(f"{k} {v}" for k, v in sorted(data.get("planned", {}).items()) if v)
    repairs = (planned or "none") if data.get("dry_run") else data.get("write_total", 0)
    return [profile, error or data.get("outcome"), data.get("targets"), drift or "-", repairs,
            data.get("foreign_found", 0), data.get("graph_requests")]
