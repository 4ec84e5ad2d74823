"""`galsync demo`: the whole story in under a minute, against a local Graph emulator, nothing to set up.

1. first fill of every target mailbox (both profiles of galsync.example.toml);
2. a new driver is hired: Graph notifies the webhook (the function app's own code, served locally over
   HTTPS), the queued sync runs, and the driver is on every phone within seconds (measured);
3. a phone on a shared truck mailbox saves "Maman": it is on all 25 phones of that depot at once;
4. the nightly reconcile finds it and leaves it alone (foreign_contacts = "report");
5. the doctor flags the shared mailboxes, and explain tells Maman's story;
then a summary table. With --json, the same facts as one JSON object and nothing else on stdout.

Everything real but the Functions host: the Graph client (msal, HTTPS), the SQLite state store, the sync
engine, subscriptions with Graph's validation handshake, the webhook and queue handlers.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule

from sync_core.core.profile import load_config
from sync_core.core.tags import read_contact_tag
from sync_core.service.doctor import doctor as run_doctor
from sync_core.service.doctor_report import DoctorReport, foreign_json
from sync_core.service.explain import explain as run_explain
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.subscriptions import ensure_subscriptions
from sync_core.settings import Settings

from .advice import BAD_USAGE, FAILURES, OK
from .context import JsonFlag, output
from .emulator_command import start_emulator
from .errors import CliProblem, advised
from .local_functions import LocalFunctions
from .output import Output, table
from .progress import WorkProgress
from .report_commands import render_explanation
from .run_commands import reconcile_json, reconcile_row, run_sync

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "galsync.example.toml"
CONTACTS_ROUTE = "/users/{user}/contactFolders/{folder}/contacts"
PROPAGATION_TIMEOUT = 30.0
NEW_DRIVER = {"givenName": "Kofi", "surname": "Mensah", "displayName": "Kofi Mensah", "jobTitle": "Driver",
              "department": "Transport", "officeLocation": "Depot North", "mobilePhone": "+44 7700 900999"}
MAMAN = {"displayName": "Maman", "givenName": "Maman", "mobilePhone": "+33 6 12 34 56 78"}
SHARED_BOX = "Trucks North"
EXAMPLE_SUPPLIER = "Liam O'Connor"  # an organizational contact of the logistics scenario


@dataclass
class DemoFacts:
    """What the demo found, for the summary table and --json."""

    targets: dict[str, int] = field(default_factory=dict)
    targets_filled: bool = False
    contacts_written: int = 0
    fill_seconds: float = 0.0
    subscriptions: int = 0
    example_contact: dict[str, Any] = field(default_factory=dict)
    new_driver: dict[str, Any] = field(default_factory=dict)
    maman: dict[str, Any] = field(default_factory=dict)
    reconcile: dict[str, Any] = field(default_factory=dict)
    foreign_contacts_found: list[dict[str, Any]] = field(default_factory=list)
    shared_mailbox_warnings: int = 0
    doctor: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, Any] = field(default_factory=dict)
    graph_requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "targets": self.targets, "targets_total": sum(self.targets.values()),
            "targets_filled": self.targets_filled, "contacts_written": self.contacts_written,
            "fill_seconds": round(self.fill_seconds, 1), "subscriptions": self.subscriptions,
            "example_contact": self.example_contact,
            "new_driver": self.new_driver, "propagation_seconds": self.new_driver.get("seconds"),
            "maman": self.maman, "reconcile": self.reconcile, "foreign_contacts_found": self.foreign_contacts_found,
            "shared_mailbox_warnings": self.shared_mailbox_warnings, "doctor": self.doctor, "explain": self.explain,
            "graph_requests": self.graph_requests, "seconds": round(self.seconds, 1),
        }

    @property
    def ok(self) -> bool:
        return (self.targets_filled and bool(self.new_driver.get("propagated"))
                and bool(self.maman.get("found_by_reconcile")) and self.maman.get("modified") is False)


@advised
def demo(
    json: JsonFlag = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary folder (state, config) afterwards.")]
    = False,
) -> None:
    """Run galsync end to end against a local Graph emulator and tell what happened (under a minute).

    Then try your own profiles: `galsync emulator` (README: "Try it on your own profiles").

    Examples:

      galsync demo

      galsync demo --json | jq .new_driver
    """
    out = output(json)
    if not EXAMPLE_CONFIG.is_file():
        raise CliProblem(f"the demo needs {EXAMPLE_CONFIG.name} next to the sources (a git checkout)",
                         code=BAD_USAGE)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="galsync-demo-"))
    facts = DemoFacts()
    try:
        with ExitStack() as stack:
            g = start_emulator("logistics")
            stack.callback(g.stop)
            story = Story(out, g, workdir, facts, stack)
            story.run()
    finally:
        if keep:
            out.note(f"state and configuration kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    facts.seconds = time.monotonic() - started
    out.result(facts.to_json(), lambda console: render_summary(console, facts))
    raise typer.Exit(OK if facts.ok else FAILURES)


class Story:
    """The demo's steps, in order; each adds what it found to `facts` and tells it to people."""

    def __init__(self, out: Output, g: Any, workdir: Path, facts: DemoFacts, stack: ExitStack) -> None:
        self.out, self.g, self.workdir, self.facts, self.stack = out, g, workdir, facts, stack
        self.info: dict[str, Any] = g.scenario or {}
        self.shared = self.info["shared_mailboxes"][SHARED_BOX]

    def run(self) -> None:
        self.rt = self._runtime()
        self.intro()
        self.first_fill()
        self.new_driver()
        self.maman()
        self.reconcile()
        self.doctor()
        self.explain()
        self.facts.graph_requests = {"http": self.g.log.round_trips(), "operations": self.g.log.count()}

    # --- set-up ------------------------------------------------------------------------------------------------

    def _runtime(self) -> Runtime:
        config_path = self.workdir / "galsync.toml"
        config_path.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
        cert, key = self.g.issue_server_cert("127.0.0.1")
        self.key = secrets.token_urlsafe(24)
        env = {**self.g.galsync_settings(), "GALSYNC_CONFIG_PATH": str(config_path),
               "GALSYNC_STATE": f"sqlite:{self.workdir / 'state.db'}", "GALSYNC_WEBHOOK_KEY": self.key,
               "GALSYNC_WEBHOOK_BASE_URL": "https://127.0.0.1:1"}  # the real port is known once it listens
        rt = self.stack.enter_context(_closing(Runtime.from_settings(Settings.from_env(env),
                                                                     config=load_config(config_path))))
        self.functions = self.stack.enter_context(LocalFunctions(rt, cert, key))
        rt.settings = Settings.from_env({**env, "GALSYNC_WEBHOOK_BASE_URL": self.functions.base_url})
        return rt

    def heading(self, text: str) -> None:
        if not self.out.json_mode:
            self.out.console.print(Rule(f"[bold]{escape(text)}[/]", align="left"))

    def tell(self, text: str) -> None:
        if not self.out.json_mode:
            self.out.console.print(Padding(text, (0, 0, 1, 2), expand=False))

    # --- the steps ---------------------------------------------------------------------------------------------

    def intro(self) -> None:
        self.heading("galsync demo")
        self.tell(
            "galsync keeps company phones' address books in step with the Microsoft 365 directory. Each phone "
            "signs in to an Exchange Online mailbox; galsync writes the company's contacts into a folder of that "
            "mailbox, and the phone shows them.")
        self.tell(
            "This run talks to a local stand-in for Microsoft Graph (nothing leaves this machine) holding "
            '"Northwind Logistics": 120 staff, 100 of them truck drivers in four depots, 5 suppliers, and four '
            'shared mailboxes "Trucks North/South/East/West", each used by the 25 driver phones of one depot.')
        self.tell(
            "The configuration is galsync.example.toml: profile \"Company directory\" puts every member of staff "
            "and the suppliers into the mailbox of everyone in \"All Staff\"; profile \"Dispatch\" puts the drivers "
            "into the four shared truck mailboxes.")

    def first_fill(self) -> None:
        self.heading("1. First fill")
        rows = []
        before = time.monotonic()
        for name in self.rt.config.names:
            t0 = time.monotonic()
            with WorkProgress(self.out, f"{name}: filling target mailboxes") as progress:
                report = run_sync(self.rt, name, dry_run=False, progress=progress)
            written = report.exec.counts.get("created", 0)
            self.facts.targets[name] = report.targets
            self.facts.contacts_written += written
            rows.append([name, report.targets, written, report.requests.get("http_requests", 0),
                         f"{time.monotonic() - t0:.1f}"])
        self.facts.fill_seconds = time.monotonic() - before
        self.facts.targets_filled = self._every_target_filled()
        if not self.out.json_mode:
            self.out.console.print(table(None, ["profile", "target mailboxes", "contacts written", "Graph requests",
                                                "seconds"], rows))
        self.tell(
            "Every target mailbox now has a galsync folder holding exactly the contacts its profile calls for"
            + (" (checked in every mailbox)." if self.facts.targets_filled else " [red]except some (see above)[/].")
            + " Each contact carries a hidden galsync tag, invisible on the phone: that is how galsync tells its "
            "own contacts from everybody else's, and why it never touches the others.")
        self._show_example_contact()

    def _show_example_contact(self) -> None:
        """One supplier's contact as a phone shows it: the profile's template and categories at work."""
        name = "Company directory"
        mailbox, target = min(self.rt.store.get_targets(name).items())
        shown = next((c for c in self.g.tenant.mailboxes.contacts(mailbox, target.folder_id)
                      if c.get("displayName") == EXAMPLE_SUPPLIER), None)
        if shown is None:
            return
        self.facts.example_contact = {k: shown.get(k) for k in ("displayName", "fileAs", "categories")}
        self.tell(
            f"A phone shows the supplier {EXAMPLE_SUPPLIER} filed as \"{shown.get('fileAs')}\" (the profile's "
            f"fileAs template \"{{surname}}, {{givenName}}\") with the categories "
            f"{', '.join(shown.get('categories') or [])} (one for the profile, one for its org-contacts source); a "
            "category a person adds on the phone stays. docs/config.md lists every such option.")

    def _every_target_filled(self) -> bool:
        for name in self.rt.config.names:
            keys = set(self.rt.store.get_source_records(name))
            for mailbox, target in self.rt.store.get_targets(name).items():
                if not target.active:
                    continue
                if not target.folder_id:
                    return False
                found = [read_contact_tag(c) for c in self.g.tenant.mailboxes.contacts(mailbox, target.folder_id)]
                if sorted(t.source_key for t in found if t is not None) != sorted(keys):
                    return False
        return True

    def new_driver(self) -> None:
        self.heading("2. A new driver is hired")
        subs = ensure_subscriptions(self.rt)
        self.facts.subscriptions = len(subs.created) + len(subs.kept) + len(subs.renewed)
        self.tell(
            f"galsync subscribed to directory changes ({self.facts.subscriptions} Graph subscriptions: users and "
            "the profiles' groups). Graph checked the webhook first (its validation handshake). The webhook is "
            "the function app's own code, served here over HTTPS; in Azure it runs in the function app.")
        existing = self._targets()
        name = NEW_DRIVER["displayName"]
        posts_before = self.g.log.count(method="POST", route=CONTACTS_ROUTE)
        t0 = time.monotonic()
        with self.g.tenant.lock:  # HR saves the account and its group membership together
            user = self.g.tenant.directory.add_user(manager_id=self.info["managers"]["North"],
                                                    companyName="Northwind Logistics", **NEW_DRIVER)
            self.g.tenant.directory.add_member(self.info["drivers_group_id"], user["id"])
        self.tell(f'HR creates the account of {name} and adds him to the "Drivers" group. Nobody runs galsync.')
        missing = self._wait_everywhere(existing, name, t0)
        seconds = time.monotonic() - t0
        self.functions.wait_idle(PROPAGATION_TIMEOUT)
        written = self.g.log.count(method="POST", route=CONTACTS_ROUTE) - posts_before
        notifications = sum(1 for p in self.functions.processed if p.queue == "sync-source")
        self.facts.new_driver = {
            "name": name, "id": user["id"], "propagated": not missing, "seconds": round(seconds, 1),
            "targets": len(existing), "missing_in": len(missing), "contacts_written": written,
            "sync_messages": notifications, "webhook_requests": self.functions.requests,
            "errors": [p.error for p in self.functions.processed if p.error],
        }
        if missing:
            self.tell(f"[red]{name} did not reach {len(missing)} of {len(existing)} mailboxes within "
                      f"{PROPAGATION_TIMEOUT:.0f} s.[/]")
            return
        own = any(user["id"].lower() in self.rt.store.get_targets(n) for n in self.rt.config.names)
        self.facts.new_driver["own_mailbox_filled"] = own
        self.tell(
            f"Graph notified the webhook, which answered at once and queued a sync; the worker read only what "
            f"changed and wrote {name} into every address book: [bold]on all {len(existing)} target mailboxes "
            f"{seconds:.1f} s after HR saved him[/] ({written} contacts written"
            + ("; his own new mailbox, as a member of All Staff, got the whole directory)." if own else ")."))

    def _targets(self) -> dict[str, str]:
        """mailbox id -> managed folder id, every active target of every profile (a mailbox may appear twice)."""
        out: dict[str, str] = {}
        for name in self.rt.config.names:
            for mailbox, t in self.rt.store.get_targets(name).items():
                if t.active and t.folder_id:
                    out[f"{name}|{mailbox}"] = t.folder_id
        return out

    def _wait_everywhere(self, targets: dict[str, str], name: str, t0: float) -> set[str]:
        missing = set(targets)
        while missing and time.monotonic() - t0 < PROPAGATION_TIMEOUT:
            for key in sorted(missing):
                mailbox = key.split("|", 1)[1]
                if any(c.get("displayName") == name for c in self.g.tenant.mailboxes.contacts(mailbox, targets[key])):
                    missing.discard(key)
            if missing:
                time.sleep(0.1)
        return missing

    def maman(self) -> None:
        self.heading(f'3. A phone on the shared mailbox "{SHARED_BOX}" saves "Maman"')
        mailbox = self.shared["id"]
        folder = None  # where a phone saves a new contact: the mailbox's own Contacts folder
        contact = self.g.tenant.mailboxes.phone_create_contact(mailbox, dict(MAMAN), folder)
        self.maman_id, self.maman_key, self.maman_folder = contact["id"], contact["changeKey"], folder
        self.facts.maman = {"mailbox": self.shared["mail"], "created": contact["createdDateTime"],
                            "phones_sharing_it": len(self.shared["phones"])}
        self.tell(
            f"The 25 driver phones of the North depot are all signed in to one shared mailbox, "
            f"{self.shared['mail']}. One driver saves his mother from the call log as \"Maman\". The phone stores "
            f"it in that mailbox, so it is now in the address book of all {len(self.shared['phones'])} North "
            "phones, and it comes back on every phone if one of them deletes it. galsync did not do this, and "
            "it cannot stop it: a shared mailbox has ONE address book.")

    def reconcile(self) -> None:
        self.heading("4. The nightly reconcile")
        rows, results = [], {}
        for name in self.rt.config.names:
            data = reconcile_json(reconcile_profile(self.rt, name))
            results[name] = data
            rows.append(reconcile_row(name, data))
        if not self.out.json_mode:
            self.out.console.print(table(None, ["profile", "outcome", "targets", "what the folders held",
                                                "repairs written", "foreign contacts", "Graph requests"], rows))
        after = _contact_or_none(self.g, self.shared["id"], self.maman_id, self.maman_folder)
        self.facts.reconcile = results
        self.facts.maman["modified"] = after is None or after.get("changeKey") != self.maman_key
        self.facts.maman["still_there"] = after is not None
        requests = sum(int(r.get("graph_requests") or 0) for r in results.values())
        mailboxes = sum(int(r.get("targets") or 0) for r in results.values())
        self.tell(
            f"Every night galsync reads each folder it manages with contact delta (here {requests} Graph requests "
            f"for {mailboxes} mailboxes; after the first night only what changed is read), repairs its own contacts "
            "that phones edited or deleted, and lists contacts it did not create. Policy foreign_contacts = "
            "\"report\": those are reported and never touched"
            + (" - \"Maman\" is still there, unmodified." if not self.facts.maman["modified"] else
               " [red]but Maman was modified![/]"))

    def doctor(self) -> None:
        self.heading("5. galsync doctor")
        report = run_doctor(self.rt)
        self.facts.shared_mailbox_warnings = len(report.shared_targets)
        self.facts.foreign_contacts_found = [
            {"profile": p.name, "mailbox": t.address or t.mailbox, "shared": t.shared, **foreign_json(f)}
            for p in report.profiles for t in p.checked_targets for f in t.foreign]
        found = [f for f in self.facts.foreign_contacts_found
                 if f["id"] == self.maman_id]
        self.facts.maman["found_by_reconcile"] = bool(found)
        self.facts.maman["shared_mailbox"] = bool(found) and bool(found[0]["shared"])
        self.facts.doctor = {"problems": report.problems, "warnings": report.warnings,
                             "missing_permissions": list(report.missing_permissions),
                             "shared_targets": [t.address for t in report.shared_targets]}
        if not self.out.json_mode:
            render_doctor_summary(self.out.console, report)

    def explain(self) -> None:
        mail = self.shared["mail"]
        self.heading(f'6. galsync explain --mailbox {mail} --contact "Maman"')
        result = run_explain(self.rt, mail, MAMAN["displayName"])
        self.facts.explain = {"found": len(result.contacts), "origins": [c.origin for c in result.contacts],
                              "story": [list(c.story) for c in result.contacts]}
        if not self.out.json_mode:
            render_explanation(self.out.console, result)
            self.out.console.print()


def render_doctor_summary(console: Console, report: DoctorReport) -> None:
    """The doctor's verdicts that matter for the story; `galsync doctor` prints the full report."""
    granted = sum(1 for p in report.permissions if p.outcome == "granted")
    missing = report.missing_permissions
    scoping = {"scoped": "limited to the target mailboxes",
               "not-scoped": "not limited: galsync could open any mailbox (Exchange RBAC for Applications fixes "
                             "that; `galsync doctor` says how)"}.get(report.scoping.outcome, "could not be checked")
    console.print(Padding(f"Permissions: {granted} probed and granted"
                          + (f", [red]missing: {', '.join(missing)}[/]" if missing else "")
                          + f". Mailbox access: {scoping}. {report.problems} problem(s), {report.warnings} "
                          "warning(s), among them:", (0, 0, 1, 2), expand=False))
    for f in report.findings:
        if f.topic == "shared-mailbox":
            body = escape(f.message) + (f"\n\n[bold]What to do:[/] {escape(f.advice)}" if f.advice else "")
            console.print(Panel(body, title=f'WARNING: shared mailboxes (profile "{escape(f.profile or "")}")',
                                title_align="left", border_style="yellow"))
            console.print()


def render_summary(console: Console, facts: DemoFacts) -> None:
    driver, maman = facts.new_driver, facts.maman
    rows: list[list[Any]] = [
        ["target mailboxes", ", ".join(f"{n}: {c}" for n, c in facts.targets.items())],
        ["every target filled", facts.targets_filled],
        ["contacts written by the first fill", f"{facts.contacts_written} in {facts.fill_seconds:.1f} s"],
        ["new driver on every phone", f"{_yes(driver.get('propagated'))}, after {driver.get('seconds', '?')} s "
                                      f"({driver.get('targets', 0)} mailboxes)"],
        ['"Maman" found by reconcile', f"{_yes(maman.get('found_by_reconcile'))}, in {maman.get('mailbox')}"
                                       f" (shared by {maman.get('phones_sharing_it', '?')} phones)"],
        ['"Maman" modified by galsync', maman.get("modified")],
        ["foreign contacts found", len(facts.foreign_contacts_found)],
        ["shared-mailbox targets flagged", facts.shared_mailbox_warnings],
        ["Graph requests", f"{facts.graph_requests.get('http', 0)} HTTP requests, "
                           f"{facts.graph_requests.get('operations', 0)} operations (inside $batch counted)"],
        ["demo took", f"{facts.seconds:.1f} s"],
    ]
    summary = table(None, ["", ""], rows)
    summary.show_header = False
    console.print(Rule("[bold]Summary[/]", align="left"))
    console.print(summary)
    console.print(Padding(
        'Why "Maman" happened: not galsync, but the shared mailbox. Every phone signed in to it shares one '
        "address book, so what one phone saves, all phones show. galsync only reports it; the fix is a mailbox "
        "per phone.", (1, 0, 0, 0), expand=False))


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _contact_or_none(g: Any, mailbox: str, contact_id: str, folder: str | None) -> dict[str, Any] | None:
    try:
        return dict(g.tenant.mailboxes.get_contact(mailbox, contact_id, folder))
    except Exception:  # gone (deleted): the emulator raises its Graph 404
        return None


@contextmanager
def _closing(rt: Runtime) -> Iterator[Runtime]:
    try:
        yield rt
    finally:
        rt.close()
