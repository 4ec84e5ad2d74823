"""`galsync targets [--profile P]`: each target mailbox of a profile and how it stands, from the state store.

An admin asking "which phones does this profile reach, and is each one in step?" gets one line per mailbox:
its address, what kind of mailbox it is (shared ones share one address book between phones), whether the
managed folder is there, how many of the profile's contacts galsync has written into it, when it last
wrote, and, when it is a failing target (failing_targets.py) or the latest run failed for it, the reason.
No Graph call: it works when Graph or the credentials are what is broken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from sync_core.core.profile import load_config
from sync_core.core.records import Run, Target
from sync_core.service.failing_targets import TargetFailure
from sync_core.service.failing_targets import load as load_failing
from sync_core.service.status import LATEST_WINDOW
from sync_core.state import open_store
from sync_core.state.base import StateStore

from .advice import FAILURES, OK
from .context import JsonFlag, options, output
from .errors import CliProblem, advised
from .mailbox_names import MailboxNames
from .output import short_time, table
from .preflight import check_config_file, state_path
from .profile_choice import chosen_profiles


@dataclass(frozen=True)
class TargetState:
    profile: str
    mailbox: str  # user id
    address: str
    purpose: str | None
    active: bool
    folder: bool
    written: int  # contacts galsync wrote and recorded in the managed folder
    in_flight: int  # creates recorded but not yet confirmed
    wanted: int  # contacts the profile puts in every target
    last_write: str | None
    failure: str | None  # why the latest run failed for this mailbox

    @property
    def state(self) -> str:
        if not self.active:
            return "no longer a target"
        if self.failure:
            return "failing"
        if not self.folder:
            return "not written yet"
        if self.written >= self.wanted and not self.in_flight:
            return "filled"
        return "filling"

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "mailbox": self.address or self.mailbox, "id": self.mailbox,
                "kind": self.purpose, "shared": (self.purpose or "").lower() == "shared", "active": self.active,
                "state": self.state, "folder": self.folder, "contacts_written": self.written,
                "contacts_in_flight": self.in_flight, "contacts_wanted": self.wanted,
                "last_write": self.last_write, "failure": self.failure}


def target_states(store: StateStore, profile: str) -> list[TargetState]:
    """Every target the store knows for the profile, active ones first, by address."""
    wanted = sum(1 for _ in store.iter_source_records(profile))
    targets = store.get_targets(profile)
    names = MailboxNames.of(store, [profile])
    failed = _failed_latest(store.recent_runs(profile, LATEST_WINDOW))
    failing = load_failing(store, profile)
    states = [_state(store, profile, t, wanted, failed, names, failing.get(t.mailbox))
              for t in targets.values() if t.purpose != "none"]
    return sorted(states, key=lambda s: (not s.active, s.address or s.mailbox))


def _state(store: StateStore, profile: str, target: Target, wanted: int, failed: list[Run],
           names: MailboxNames, failing: TargetFailure | None) -> TargetState:
    records = store.get_target_records(profile, target.mailbox).values()
    written = sum(1 for r in records if r.contact_id and not r.deleted_on_device)
    in_flight = sum(1 for r in records if not r.contact_id)
    last = max((r.written_at for r in records if r.written_at), default=None)
    failure = failing.line() if failing is not None else next(
        (names.text(part) for run in failed for part in (run.error or "").split("; ")
         if target.mailbox.lower() in part.lower()), None)
    return TargetState(profile, target.mailbox, target.address, target.purpose, target.active,
                       bool(target.folder_id), written, in_flight, wanted, last, failure)


def _failed_latest(runs: Iterable[Run]) -> list[Run]:
    """The latest run of each kind, when it failed (a later good run of the same kind clears a failure)."""
    latest: dict[str, Run] = {}
    for run in runs:  # newest first
        latest.setdefault(run.kind, run)
    return [r for r in latest.values() if r.outcome in ("failed", "partial") and r.error]


@advised
def targets(
    profile: Annotated[list[str] | None, typer.Option("--profile", "-p", help="Profile to list (repeatable).")]
    = None,
    json: JsonFlag = False,
) -> None:
    """List each profile's target mailboxes: filled, failing and why, shared, last write (state store only).

    Exit 1 if the latest run failed for some mailbox.

    Examples:

      galsync targets

      galsync targets --profile Dispatch --json
    """
    out = output(json)
    settings = options().settings()
    check_config_file(settings)
    config = load_config(settings.config_path)
    names = chosen_profiles(config, profile)
    path = state_path(settings)
    if path is not None and not path.exists():
        raise CliProblem(f"no state file at {path}: galsync has not run with this state yet",
                         details=("run `galsync sync` first, or point --state or GALSYNC_STATE at galsync's state",))
    store = open_store(settings)
    try:
        states = {name: target_states(store, name) for name in names}
    finally:
        store.close()
    data = {"profiles": [{"name": n, "targets": [s.to_json() for s in found]} for n, found in states.items()]}
    out.result(data, lambda console: _render(console, states))
    raise typer.Exit(FAILURES if any(s.failure for found in states.values() for s in found) else OK)


def _render(console: Console, states: dict[str, list[TargetState]]) -> None:
    for name, found in states.items():
        console.print(table(
            f'Profile "{name}": {sum(1 for s in found if s.active)} target mailbox(es)',
            ["mailbox", "kind", "state", "contacts written", "last write", "why it fails"],
            [[s.address or s.mailbox, s.purpose or "?", s.state, f"{s.written} of {s.wanted}"
              + (f" ({s.in_flight} in flight)" if s.in_flight else ""), short_time(s.last_write), s.failure]
             for s in found] or [["-", "", "no targets recorded yet: run `galsync sync`", "", "", ""]]))
        if any((s.purpose or "").lower() == "shared" for s in found):
            console.print("  shared mailboxes share one address book between every phone signed in to them "
                          "(`galsync doctor` says more)", style="dim")
