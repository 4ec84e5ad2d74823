"""What `galsync doctor` reports: findings with a severity, and the facts they were drawn from.

Plain data, kept apart from the probes (doctor.py) that fill it, so the command line, the queue worker and
the tests read one shape; `to_json` is the --json output. Contact names appear here (the admin asked) but
are never logged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync_core.core.drift import ForeignContact
from sync_core.core.records import Run

from .poison import PoisonRecord
from .status import SubscriptionState, parse_time, poison_json, run_json

# Severity of a finding, worst first. "problem" makes `galsync doctor` exit 1.
PROBLEM, WARNING, INFO, OK = "problem", "warning", "info", "ok"
SEVERITY_ORDER = {PROBLEM: 0, WARNING: 1, INFO: 2, OK: 3}


@dataclass(frozen=True)
class Finding:
    severity: str  # problem | warning | info | ok
    topic: str  # permission, scoping, subscription, delta, run, poison, shared-mailbox, foreign,
    # owner-contacts, target
    profile: str | None = field(default=None, kw_only=True)  # the profile it concerns; None: all of galsync
    message: str
    advice: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PermissionCheck:
    permission: str
    needed_for: str
    probe: str  # the request, as people read it: "GET /users?$top=1"
    outcome: str  # granted | missing | unknown | skipped
    detail: str
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScopingCheck:
    outcome: str  # scoped | not-scoped | unknown
    mailbox: str | None  # the mailbox outside the targets that was tried
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TargetHealth:
    mailbox: str
    address: str
    display_name: str | None
    purpose: str | None
    foreign: tuple[ForeignContact, ...]  # found by the nightly reconcile, in galsync's folder or the mailbox's
    foreign_checked_at: str | None

    @property
    def shared(self) -> bool:
        return (self.purpose or "").lower() == "shared"

    @property
    def label(self) -> str:
        name = self.display_name or self.address or self.mailbox
        return f"{name} ({self.address})" if self.display_name and self.address else name

    def to_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "address": self.address, "displayName": self.display_name,
                "purpose": self.purpose, "shared": self.shared, "foreign_checked_at": self.foreign_checked_at,
                "foreign": [foreign_json(f) for f in self.foreign]}


def foreign_json(contact: ForeignContact) -> dict[str, Any]:
    """A foreign contact in the report, named as Graph names its fields."""
    return {"id": contact.contact_id, "displayName": contact.display_name, "createdDateTime": contact.created,
            "lastModifiedDateTime": contact.last_modified, "folder": contact.folder}


def where_found(contact: ForeignContact) -> str:
    """The folder a foreign contact is in, as people read it."""
    return "galsync's folder" if contact.folder == "managed" else f'the mailbox\'s own "{contact.folder}" folder'


@dataclass(frozen=True)
class OwnerContacts:
    """The users' own contacts beside galsync's in the default Contacts folders of one profile's targets
    (place = "default_folder"), as the nightly reconcile counted them: a summary, never a list."""

    mailboxes_counted: int  # targets the reconcile counted in
    mailboxes: int  # of which hold at least one contact of their user's own
    contacts: int
    checked_at: str | None  # the latest count

    def sentence(self) -> str:
        """The summary as people read it: "12 mailboxes hold 3,400 contacts of their users' own, ..."."""
        mailboxes = f"{self.mailboxes:,} mailbox" + ("es hold" if self.mailboxes != 1 else " holds")
        contacts = f"{self.contacts:,} contact" + ("s" if self.contacts != 1 else "")
        return (f"{mailboxes} {contacts} of their users' own in the default Contacts folder, beside galsync's; "
                f"galsync leaves them alone (counted by the nightly reconcile in {self.mailboxes_counted:,} "
                "target mailbox" + ("es" if self.mailboxes_counted != 1 else "") + ")")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeltaLinkAge:
    source: str
    stored: bool
    stored_at: str | None  # when the link was stored (or the last good sync, see `basis`)
    basis: str  # "recorded" | "last sync" | "unknown"
    age_hours: float | None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "age_hours": None if self.age_hours is None else round(self.age_hours, 1)}


@dataclass(frozen=True)
class ProfileHealth:
    name: str
    targets: int
    checked_targets: tuple[TargetHealth, ...]  # shared targets, and targets with foreign contacts
    delta_links: tuple[DeltaLinkAge, ...]
    failed_runs: tuple[Run, ...]
    owner_contacts: OwnerContacts | None = None  # None: no reconcile counted any (galsync's own folder)

    @property
    def shared_targets(self) -> tuple[TargetHealth, ...]:
        return tuple(t for t in self.checked_targets if t.shared)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "targets": self.targets,
                "shared_targets": [t.to_json() for t in self.shared_targets],
                "targets_with_foreign_contacts": [t.to_json() for t in self.checked_targets if t.foreign],
                "owner_contacts": None if self.owner_contacts is None else self.owner_contacts.to_json(),
                "delta_links": [d.to_json() for d in self.delta_links],
                "failed_runs": [run_json(r) for r in self.failed_runs]}


@dataclass(frozen=True)
class DoctorReport:
    checked_at: str
    permissions: tuple[PermissionCheck, ...]
    scoping: ScopingCheck
    subscriptions: tuple[SubscriptionState, ...]
    live_subscriptions: tuple[str, ...] | None  # ids Graph lists for galsync's app; None if it could not say
    profiles: tuple[ProfileHealth, ...]
    poison: tuple[PoisonRecord, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def problems(self) -> int:
        return sum(1 for f in self.findings if f.severity == PROBLEM)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == WARNING)

    @property
    def missing_permissions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.permission for p in self.permissions if p.outcome == "missing"))

    @property
    def shared_targets(self) -> tuple[TargetHealth, ...]:
        return tuple(t for p in self.profiles for t in p.shared_targets)

    def to_json(self) -> dict[str, Any]:
        now = parse_time(self.checked_at) or datetime.now(UTC)
        return {
            "checked_at": self.checked_at, "ok": self.problems == 0, "problems": self.problems,
            "warnings": self.warnings, "missing_permissions": list(self.missing_permissions),
            "permissions": [p.to_json() for p in self.permissions], "scoping": self.scoping.to_json(),
            "subscriptions": [s.to_json(now) for s in self.subscriptions],
            "live_subscriptions": None if self.live_subscriptions is None else list(self.live_subscriptions),
            "profiles": [p.to_json() for p in self.profiles],
            "poison": [poison_json(p) for p in self.poison],
            "findings": [f.to_json() for f in self.findings],
        }
