"""`galsync doctor`, `galsync explain` and `galsync status`: reports rendered as tables (or --json)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel

from sync_core.core.profile import ConfigError, load_config
from sync_core.core.records import Run
from sync_core.service.doctor import doctor as run_doctor
from sync_core.service.doctor_report import OK as OK_FINDING
from sync_core.service.doctor_report import PROBLEM, WARNING, DoctorReport, where_found
from sync_core.service.explain import Explanation
from sync_core.service.explain import explain as run_explain
from sync_core.service.propagation import PropagationStats
from sync_core.service.status import StatusReport, lease_json, parse_time
from sync_core.service.status import status as run_status
from sync_core.state import open_store

from .advice import FAILURES, OK
from .context import JsonFlag, options, output
from .errors import CliProblem, advised
from .mailbox_names import MailboxNames
from .output import age_text, short_time, table
from .preflight import state_path
from .profile_choice import chosen_profiles

_STYLE = {PROBLEM: "bold red", WARNING: "yellow", "info": "cyan", OK_FINDING: "green"}
_MARK = {PROBLEM: "PROBLEM", WARNING: "WARNING", "info": "note", OK_FINDING: "ok"}


# --- doctor -------------------------------------------------------------------------------------------------------


@advised
def doctor(
    profile: Annotated[list[str] | None, typer.Option("--profile", "-p", help="Profile to check (repeatable).")]
    = None,
    json: JsonFlag = False,
) -> None:
    """Check permissions, mailbox scoping, names in the profiles, subscriptions, delta links, failures.

    Exit 1 if a problem needs action (each says what to do).

    Examples:

      galsync doctor

      galsync doctor --profile Dispatch --json
    """
    out = output(json)
    with options().runtime(check_state=False) as rt:  # a store of another tenant is one of its findings
        report = run_doctor(rt, chosen_profiles(rt.config, profile) if profile else None)
    out.result(report.to_json(), lambda console: render_doctor(console, report))
    raise typer.Exit(FAILURES if report.problems else OK)


def render_doctor(console: Console, report: DoctorReport) -> None:
    console.print(table("Permissions (one cheap Graph read each)", ["permission", "needed for", "probe", "result"],
                        [[p.permission, p.needed_for, p.probe,
                          p.outcome if p.outcome != "missing" else f"MISSING: {p.detail}"]
                         for p in report.permissions]))
    s = report.scoping
    console.print(f"Mailbox scoping: [bold]{escape(s.outcome)}[/] ({escape(s.detail)})")
    now = parse_time(report.checked_at)
    if report.subscriptions:
        live = set(report.live_subscriptions or ())
        console.print(table("Subscriptions", ["id", "resource", "expires", "profiles", "in Graph"],
                            [[x.subscription_id, x.resource, f"{short_time(x.expires_at)} "
                              f"({age_text(x.expires_at, now)})", ", ".join(x.profiles),
                              None if report.live_subscriptions is None else x.subscription_id in live]
                             for x in report.subscriptions]))
    for p in report.profiles:
        console.print(table(
            f'Profile "{p.name}": {p.targets} target mailbox(es), {len(p.shared_targets)} shared',
            ["source", "delta link", "stored", "age"],
            [[d.source, "yes" if d.stored else "none yet", short_time(d.stored_at),
              age_text(d.stored_at, now) + (f" ({d.basis})" if d.basis == "last sync" else "")]
             for d in p.delta_links]))
        for t in p.checked_targets:
            if not t.foreign:
                continue
            console.print(table(
                f"Contacts galsync did not create, in {t.label} (found by reconcile at "
                f"{short_time(t.foreign_checked_at)})",
                ["name", "where", "created", "last modified"],
                [[f.display_name or "(no name)", where_found(f), short_time(f.created), short_time(f.last_modified)]
                 for f in t.foreign]))
    for f in report.findings:
        if f.severity in (PROBLEM, WARNING):
            body = escape(f.message) + (f"\n\n[bold]What to do:[/] {escape(f.advice)}" if f.advice else "")
            title = f"{_MARK[f.severity]}: {f.topic}" + (f' (profile "{f.profile}")' if f.profile else "")
            console.print(Panel(body, title=escape(title), title_align="left", border_style=_STYLE[f.severity]))
        else:
            line = f"[{_STYLE[f.severity]}]{_MARK[f.severity]}[/] {escape(f.message)}"
            if f.advice:
                line += f" [dim]({escape(f.advice)})[/]"
            console.print(line)
    verdict = "no problems" if not report.problems else f"{report.problems} problem(s)"
    console.print(f"\n[bold]doctor:[/] {verdict}, {report.warnings} warning(s)",
                  style="red" if report.problems else ("yellow" if report.warnings else "green"))


# --- explain ------------------------------------------------------------------------------------------------------


@advised
def explain(
    mailbox: Annotated[str, typer.Option("--mailbox", "-m", help="The mailbox (address or user id).")],
    contact: Annotated[str, typer.Option("--contact", "-c", help="The contact's display name, as the phone shows it.")],
    json: JsonFlag = False,
) -> None:
    """Tell where a contact in a mailbox came from: galsync (which profile and source) or not (created when).

    Exit codes: 0 the contact was found and explained; 1 no contact by that name is in the mailbox (similar
    names are listed); 2 the mailbox is unknown (bad usage).

    Examples:

      galsync explain --mailbox trucks.north@northwind.example --contact "Maman"
    """
    out = output(json)
    with options().runtime() as rt:
        result = run_explain(rt, mailbox, contact)
    out.result(result.to_json(), lambda console: render_explanation(console, result))
    raise typer.Exit(OK if result.contacts else FAILURES)


def render_explanation(console: Console, result: Explanation) -> None:
    kind = f"a {result.purpose} mailbox" if result.purpose else "a mailbox"
    who = result.mailbox_name or result.address
    console.print(f'[bold]{escape(who)}[/] ({escape(result.address)}) is {escape(kind)}. Searched: '
                  + escape(", ".join(f'"{f.name}"' for f in result.folders)) + ".")
    for owners in result.owner_contacts:
        console.print(escape(owners.sentence()))
    if not result.contacts:
        console.print(f'No contact called "{escape(result.contact_name)}" is there.')
        if result.similar:
            console.print("Similar names: " + escape(", ".join(f'"{n}"' for n in result.similar)))
        return
    for c in result.contacts:
        origin = {"managed": "[green]written by galsync[/]", "foreign": "[yellow]NOT written by galsync[/]",
                  "other-profile": "[yellow]tagged for a profile that no longer exists[/]"}[c.origin]
        facts = table(None, ["", ""], [
            ["folder", c.folder.name], ["created", short_time(c.created)],
            ["last modified", short_time(c.last_modified)],
            ["written by galsync", short_time(c.written_at) if c.origin == "managed" else "never"],
            ["phones", ", ".join(c.phones) or None], ["email", ", ".join(c.emails) or None]])
        facts.show_header = False
        console.print(Panel.fit(facts, title=f'"{escape(c.display_name)}": {origin}', title_align="left"))
        for line in c.story:
            console.print(Padding(escape(line), (0, 0, 0, 2), expand=False))


# --- status -------------------------------------------------------------------------------------------------------


@advised
def status(
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="How many recent runs to list.")] = 10,
    json: JsonFlag = False,
) -> None:
    """Last runs with their counts, failures, poison work and subscriptions (state store only, no Graph).

    Reads only GALSYNC_STATE (or --state) and the profiles file. Exit 1 if the latest run of some work failed.

    Examples:

      galsync status

      galsync status --limit 50 --json
    """
    out = output(json)
    settings = options().settings()
    try:
        names: tuple[str, ...] = load_config(settings.config_path).names
        config_note = None
    except ConfigError as error:
        names, config_note = (), f"profiles not listed: {error.problems[0]}"
    path = state_path(settings)
    if path is not None and not path.exists():  # a report reads state: it never creates a state file
        raise CliProblem(f"no state file at {path}: galsync has not run with this state yet",
                         details=("run status where galsync's state is, or point --state or GALSYNC_STATE at it "
                                  "(`galsync settings` shows the one in effect)",))
    store = open_store(settings)
    try:
        report = run_status(store, names, limit=limit)
        mailboxes = MailboxNames.of(store, names)
    finally:
        store.close()
    data = report.to_json()
    for run in (*data["runs"], *data["failures"]):
        run["error"] = mailboxes.text(run["error"]) if run["error"] else None
    if config_note:
        data["config_problem"] = config_note
    out.result(data, lambda console: render_status(console, report, config_note, mailboxes))
    raise typer.Exit(OK if report.healthy else FAILURES)


def propagation_text(stats: PropagationStats) -> str:
    """"1.2 s / 4.8 s (7 syncs)", or "-" when no notified sync wrote in the last day."""
    if stats.p50_ms is None or stats.p95_ms is None:
        return "-"
    syncs = f"{stats.samples} sync" + ("s" if stats.samples > 1 else "")
    return f"{stats.p50_ms / 1000:.1f} s / {stats.p95_ms / 1000:.1f} s ({syncs})"


def counts_text(counts: Mapping[str, int]) -> str:
    """A run's counts as people read them: one "photos downloaded 3" per line, words never cut."""
    return "\n".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v) or "-"


def _run_rows(runs: Iterable[Run], mailboxes: MailboxNames) -> list[list[Any]]:
    return [[short_time(r.started_at), r.profile, r.kind, r.outcome, counts_text(r.counts),
             mailboxes.text(r.error) if r.error else None] for r in runs]


def render_status(console: Console, report: StatusReport, config_note: str | None,
                  mailboxes: MailboxNames | None = None) -> None:
    mailboxes = mailboxes or MailboxNames({})
    now = parse_time(report.checked_at)
    if config_note:
        console.print(f"[yellow]{escape(config_note)}[/]")
    if report.profiles:
        console.print(table("Profiles", ["profile", "targets", "shared", "last sync", "last reconcile",
                                         "notification to phones, last day (p50 / p95)"], [
            [p.name, p.targets, p.shared_targets,
             f"{p.last_sync.outcome}, {age_text(p.last_sync.started_at, now)}" if p.last_sync else "never",
             f"{p.last_reconcile.outcome}, {age_text(p.last_reconcile.started_at, now)}" if p.last_reconcile
             else "never", propagation_text(p.propagation)] for p in report.profiles]))
    columns = ["started", "profile", "kind", "outcome", "what it did", "error"]
    console.print(table(f"Recent runs (the last {len(report.runs)})", columns, _run_rows(report.runs, mailboxes)
                        or [["-", "no runs recorded in this state store", "", "", "", ""]]))
    unlisted = [r for r in report.failures if r not in report.runs]
    if unlisted:
        console.print(table("Latest runs that failed (older than the runs listed)", columns,
                            _run_rows(unlisted, mailboxes)))
    if report.poison:
        console.print(table("Poison work (the queues gave up on these)",
                            ["recorded", "queue", "profile", "tries", "reason"],
                            [[short_time(p.recorded_at), p.queue, p.profile, p.dequeue_count, p.reason]
                             for p in report.poison]))
    console.print(table("Subscriptions", ["id", "resource", "expires", "profiles"], [
        [s.subscription_id, s.resource, f"{short_time(s.expires_at)} ({age_text(s.expires_at, now)})",
         ", ".join(s.profiles)] for s in report.subscriptions] or [["-", "none recorded", "", ""]]))
    if report.failing_targets:
        console.print(table("Failing target mailboxes (each fails alone; tried again on every sync)",
                            ["profile", "mailbox", "failing since", "Graph answered", "what to do"],
                            [[f.profile, f.label, f"{short_time(f.since)} ({age_text(f.since, now)})",
                              f"{f.status} {f.code}" if f.status else f.code, f.hint]
                             for f in report.failing_targets]))
    if report.leases:
        console.print(table("Held leases (a worker is running, or died and its lease runs out then)",
                            ["lease", "worker", "until"],
                            [[lease["name"], lease["worker"], lease["until"]]
                             for lease in map(lease_json, report.leases)]))
    failures = report.failures
    if failures or report.poison or report.failing_targets:
        console.print(f"[bold red]{len(failures)} failed run(s), {len(report.failing_targets)} failing target "
                      f"mailbox(es), {len(report.poison)} poison message(s)[/]; `galsync doctor` says what to do")
    else:
        console.print("[green]no failures recorded[/]")
