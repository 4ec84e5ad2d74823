"""`galsync doctor`: is galsync able to work, and is anything around it causing trouble?

Per profile it checks, cheapest first:
- permissions: one cheap GET per Graph permission galsync needs (a 403 names the permission and the
  script that grants it), on a real target mailbox for the mailbox permissions;
- names: every group, mailbox and source folder the profiles name, resolved in the directory (name_check.py);
- mailbox scoping: a mailbox outside the targets answering 403 ErrorAccessDenied means Exchange RBAC for
  Applications limits galsync to its targets (good); 200 means galsync could touch every mailbox (warning);
- subscriptions (state docs "subscription", compared with Graph's own list) and their expiry;
- delta link ages (directory delta tokens last 7 days; an older link costs a full re-read);
- failed runs, target mailboxes that fail alone (since when, and why), and poison work (the queues gave up
  on a message);
- targets that are shared mailboxes, and the foreign contacts the nightly reconcile found in them
  (state docs "foreign", written by reconcile): the "Maman" diagnosis;
- with place = "default_folder": how many of the users' own contacts share the default Contacts folder with
  galsync's (the reconcile's counts, summed per profile: a mailbox may hold thousands, none is listed).

The report (doctor_report.py) holds facts and verdicts; the command line renders it. Contact names appear in
the report (the admin asked) but are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sync_core.core.drift import ForeignContact
from sync_core.core.profile import Profile
from sync_core.core.records import Run, Target
from sync_core.graph import Forbidden, GraphClient, GraphError, NotFound
from sync_core.state.leases import describe_lease

from .doctor_report import (
    INFO,
    OK,
    PROBLEM,
    SEVERITY_ORDER,
    WARNING,
    DeltaLinkAge,
    DoctorReport,
    Finding,
    OwnerContacts,
    PermissionCheck,
    ProfileHealth,
    ScopingCheck,
    TargetHealth,
    where_found,
)
from .failing_targets import GRANT_SCRIPT, SCOPE_SCRIPT, load_all
from .name_check import check_names
from .poison import list_poison
from .runtime import Runtime
from .state_identity import state_problem
from .status import SubscriptionState, iso, parse_time, subscriptions, when_text

log = logging.getLogger("galsync.doctor")

FOREIGN_DOC = "foreign"  # key "profile|mailbox id": {"checked_at", "contacts": [{id, displayName, ...}]}
DELTA_TIMES_DOC = "delta-times"  # key profile: {source name: ISO time the link was stored}
DIRECTORY_TOKEN_DAYS = 7  # directory delta tokens expire after 7 days (docs/graph-facts.md)
SUBSCRIPTION_WARN_HOURS = 12.0  # the subscriptions timer renews every 4 h: less than this left is a bad sign
MAX_PURPOSE_LOOKUPS = 50
MAX_SCOPE_CANDIDATES = 3

SHARED_WARNING = (
    "Every phone signed in to a shared mailbox shares ONE address book with the other phones signed in to it, "
    "so a contact that any of those phones saves appears on all of them, and nobody can tell from the contact "
    "which phone saved it."
)
SHARED_ADVICE = (
    "Give each phone its own licensed mailbox (a kiosk/frontline licence costs about 2 USD per mailbox per "
    "month) and make those mailboxes the profile's targets instead of the shared mailbox; galsync then fills "
    "each phone's address book separately and a contact saved on one phone stays on that phone."
)


# --- the checks -------------------------------------------------------------------------------------------------


def doctor(rt: Runtime, profile_names: Sequence[str] | None = None, *, now: datetime | None = None) -> DoctorReport:
    """Run every check for the named profiles (default: all) and return the report (see the module doc)."""
    now = now or datetime.fromtimestamp(rt.clock(), UTC)
    profiles = [rt.config.profile(n) for n in profile_names] if profile_names else list(rt.config)
    client, store = rt.client, rt.store
    mismatch = state_problem(rt)
    if mismatch is not None:  # what the store holds is someone else's: one problem says it all
        return DoctorReport(iso(now), tuple(_app_permissions(client, profiles)[0]), ScopingCheck(
            "unknown", None, "not checked: the state store is another tenant's or endpoint's"), (), None, (), (),
            (Finding(PROBLEM, "state", str(mismatch), mismatch.advice),))
    findings: list[Finding] = []

    stored_targets = {p.name: store.get_targets(p.name) for p in profiles}
    all_target_ids = {m for targets in stored_targets.values() for m in targets}
    permissions, users = _app_permissions(client, profiles)
    failing = load_all(store, [p.name for p in profiles])
    for p in profiles:
        # Probed on a target that works, if any: a failing one's 403 is its own (out of scope), not a permission.
        down = {f.key for f in failing if f.profile == p.name}
        working = {m: t for m, t in stored_targets[p.name].items() if m not in down}
        permissions += _mailbox_permissions(client, p, working or stored_targets[p.name])
    permissions = list(_dedupe(permissions))
    for check in permissions:
        if check.outcome == "missing":
            findings.append(Finding(
                PROBLEM, "permission", f"{check.permission} is missing ({check.needed_for}): {check.detail}",
                f"grant it with {GRANT_SCRIPT} (or in Entra: API permissions > Microsoft Graph > "
                f"Application > {check.permission}, then grant admin consent)"))
        elif check.outcome == "unknown":
            findings.append(Finding(INFO, "permission", f"{check.permission} could not be checked: {check.detail}"))

    for unknown in check_names(client, profiles):  # every unknown name at once, before a sync trips on one
        findings.append(Finding(PROBLEM, "name", unknown.message(),
                                f"{unknown.advice()} Fix it in the profiles file; `galsync config validate "
                                "--online` checks the names again", profile=unknown.profile))

    contacts_ok = not any(c.outcome == "missing" and c.permission.startswith("Contacts") for c in permissions)
    scoping = _scoping(client, users, all_target_ids, _configured_addresses(profiles), contacts_ok)
    if scoping.outcome == "not-scoped":
        findings.append(Finding(
            WARNING, "scoping", f"galsync can open mailboxes that are not its targets ({scoping.detail})",
            f"limit it to the target mailboxes with Exchange RBAC for Applications: run {SCOPE_SCRIPT}, then "
            f"{GRANT_SCRIPT} --mailbox-access scoped"))
    elif scoping.outcome == "scoped":
        findings.append(Finding(OK, "scoping", f"mailbox access is limited to the targets ({scoping.detail})"))

    subs = tuple(subscriptions(store))
    live = _live_subscriptions(client)
    findings += _subscription_findings(subs, live, now)

    poison = tuple(list_poison(store))
    for record in poison:
        findings.append(Finding(
            PROBLEM, "poison", f"a {record.queue} message was given up on ({record.recorded_at}): {record.reason}",
            "fix the cause, then run the work by hand (`galsync sync --profile P`); the record stays until it "
            "is deleted from the state store", profile=record.profile))

    for failure in failing:
        findings.append(Finding(PROBLEM, "target", f"{failure.what()}, failing since {when_text(failure.since)} "
                                "(the other targets are still served)", failure.hint, profile=failure.profile))
    findings += [Finding(INFO, "lease", f"{describe_lease(lease)} (a worker is running, or died and its lease "
                         "runs out then)") for lease in store.list_leases()]

    foreign_docs = _foreign_docs(store.list_docs(FOREIGN_DOC))
    health: list[ProfileHealth] = []
    for p in profiles:
        ph = _profile_health(rt, p, stored_targets[p.name], foreign_docs.get(p.name, {}), now)
        health.append(ph)
        findings += _profile_findings(p, ph)

    findings.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    report = DoctorReport(iso(now), tuple(permissions), scoping, subs, live, tuple(health), poison, tuple(findings))
    log.info("doctor: %d problem(s), %d warning(s), %d permission(s) missing, %d shared target(s)",
             report.problems, report.warnings, len(report.missing_permissions), len(report.shared_targets))
    return report


def _app_permissions(client: GraphClient, profiles: Sequence[Profile]
                     ) -> tuple[list[PermissionCheck], list[dict[str, Any]]]:
    """Directory permissions, each with one cheap GET; also returns the users read (for the scoping probe)."""
    checks: list[PermissionCheck] = []
    users: list[dict[str, Any]] = []
    check, body = _probe(client, "User.Read.All", "users, user delta, user subscriptions", "/users",
                         {"$top": "999", "$select": "id,displayName,mail,userPrincipalName"})
    checks.append(check)
    if body is not None:
        users = [u for u in body.get("value") or [] if isinstance(u, dict)]
    kinds = {s.kind for p in profiles for s in p.sources}
    if "org_contacts" in kinds:
        checks.append(_probe(client, "OrgContact.Read.All", "the org_contacts source", "/contacts",
                             {"$top": "1", "$select": "id"})[0])
    if any(p.targets.groups or p.group_refs for p in profiles):
        checks.append(_probe(client, "GroupMember.Read.All", "target groups and group filters", "/groups",
                             {"$top": "1", "$select": "id"})[0])
    if any(p.photos.enabled for p in profiles) and "users" in kinds:
        if users:
            checks.append(_probe(client, "ProfilePhoto.Read.All", "contact photos",
                                 f"/users/{users[0]['id']}/photo", None, absent_ok=True,
                                 label="GET /users/{id}/photo")[0])
        else:
            checks.append(PermissionCheck("ProfilePhoto.Read.All", "contact photos", "GET /users/{id}/photo",
                                          "unknown", "no user could be read to try it on"))
    return checks, users


def _mailbox_permissions(client: GraphClient, profile: Profile, targets: Mapping[str, Target]
                         ) -> list[PermissionCheck]:
    """Contacts and MailboxSettings, probed on one of the profile's target mailboxes."""
    active = [t for t in targets.values() if t.active]
    mailbox = active[0].mailbox if active else (profile.targets.mailboxes[0] if profile.targets.mailboxes else None)
    need = f'the target mailboxes of "{profile.name}"'
    if mailbox is None:
        detail = "no target mailbox is known yet (run `galsync sync` once)"
        return [PermissionCheck("Contacts.ReadWrite", need, "GET /users/{target}/contactFolders", "unknown", detail),
                PermissionCheck("MailboxSettings.Read", need, "GET /users/{target}/mailboxSettings/userPurpose",
                                "unknown", detail)]
    return [
        _probe(client, "Contacts.ReadWrite", need, f"/users/{mailbox}/contactFolders", {"$top": "1"},
               label="GET /users/{target}/contactFolders")[0],
        _probe(client, "MailboxSettings.Read", need, f"/users/{mailbox}/mailboxSettings/userPurpose", None,
               label="GET /users/{target}/mailboxSettings/userPurpose")[0],
    ]


def _probe(client: GraphClient, permission: str, needed_for: str, path: str, params: Mapping[str, str] | None,
           *, absent_ok: bool = False, label: str | None = None) -> tuple[PermissionCheck, dict[str, Any] | None]:
    shown = label or f"GET {path}"
    try:
        response = client.request("GET", path, params=params)
    except Forbidden as e:
        mailbox_call = "/contactFolders" in path or "/mailboxSettings" in path
        detail = f"Graph answered 403 {e.code}"
        if mailbox_call:
            detail += " (the permission is not granted, or this mailbox is outside galsync's Exchange scope)"
        return PermissionCheck(permission, needed_for, shown, "missing", detail, e.request_id), None
    except NotFound as e:
        if absent_ok:
            return PermissionCheck(permission, needed_for, shown, "granted",
                                   "allowed (the object has none: 404)", e.request_id), None
        return PermissionCheck(permission, needed_for, shown, "unknown", f"404 {e.code}", e.request_id), None
    except GraphError as e:
        return PermissionCheck(permission, needed_for, shown, "unknown", str(e), e.request_id), None
    body = response.json()
    return (PermissionCheck(permission, needed_for, shown, "granted", "allowed", response.request_id),
            body if isinstance(body, dict) else None)


def _dedupe(checks: Sequence[PermissionCheck]) -> Iterable[PermissionCheck]:
    """One line per (permission, outcome), and no "unknown" line for a permission another probe settled.

    Granted for one profile's targets but missing for another's is kept: the Exchange scope may leave some out.
    """
    settled = {c.permission for c in checks if c.outcome in ("granted", "missing")}
    seen: set[tuple[str, str]] = set()
    for c in checks:
        if (c.permission, c.outcome) in seen or (c.outcome == "unknown" and c.permission in settled):
            continue
        seen.add((c.permission, c.outcome))
        yield c


def _configured_addresses(profiles: Iterable[Profile]) -> set[str]:
    return {m.lower() for p in profiles for m in (*p.targets.mailboxes, *p.targets.exclude)}


def _scoping(client: GraphClient, users: Sequence[Mapping[str, Any]], targets: set[str], addresses: set[str],
             contacts_ok: bool) -> ScopingCheck:
    """Try a mailbox that is not a target: 403 ErrorAccessDenied means galsync is scoped to its targets."""
    if not contacts_ok:
        return ScopingCheck("unknown", None, "Contacts permission missing: cannot tell")
    tried = 0
    for user in users:
        uid = str(user.get("id", "")).lower()
        mail = str(user.get("mail") or "").lower()
        if not uid or not mail or uid in targets or mail in addresses:
            continue
        tried += 1
        who = str(user.get("mail"))
        try:
            client.request("GET", f"/users/{uid}/contactFolders", params={"$top": "1"})
        except Forbidden as e:
            if e.code == "ErrorAccessDenied":
                return ScopingCheck("scoped", who, f"{who}, not a target, answered 403 ErrorAccessDenied")
            return ScopingCheck("unknown", who, f"{who} answered 403 {e.code}")
        except NotFound:
            if tried >= MAX_SCOPE_CANDIDATES:
                break
            continue  # no mailbox there; try another
        except GraphError as e:
            return ScopingCheck("unknown", who, str(e))
        else:
            return ScopingCheck("not-scoped", who, f"{who}, not a target, answered 200")
        if tried >= MAX_SCOPE_CANDIDATES:
            break
    return ScopingCheck("unknown", None, "no mailbox outside the targets was found to try")


def _live_subscriptions(client: GraphClient) -> tuple[str, ...] | None:
    try:
        return tuple(str(s.get("id")) for s in client.iter_pages("/subscriptions"))
    except GraphError as e:
        log.info("doctor: cannot list subscriptions: %s", e)
        return None


def _subscription_findings(subs: Sequence[SubscriptionState], live: tuple[str, ...] | None, now: datetime
                           ) -> list[Finding]:
    out: list[Finding] = []
    if not subs:
        out.append(Finding(INFO, "subscription", "no Graph subscriptions are recorded: directory changes reach "
                           "the phones only with the safety-net sync (GALSYNC_SYNC_SCHEDULE)",
                           "in Azure the subscriptions timer creates them; from here: `galsync subscriptions "
                           "ensure` (needs GALSYNC_WEBHOOK_BASE_URL)"))
        return out
    for s in subs:
        left = s.hours_left(now)
        where = f"subscription {s.subscription_id} on {s.resource}"
        if s.expired(now):
            out.append(Finding(PROBLEM, "subscription", f"{where} expired at {s.expires_at}",
                               "run `galsync subscriptions ensure`; check that the subscriptions timer runs"))
        elif live is not None and s.subscription_id not in live:
            out.append(Finding(PROBLEM, "subscription", f"{where} is recorded but Graph no longer has it",
                               "run `galsync subscriptions ensure` to recreate it"))
        elif left is not None and left < SUBSCRIPTION_WARN_HOURS:
            out.append(Finding(WARNING, "subscription", f"{where} expires in {left:.1f} h",
                               "the subscriptions timer should have renewed it: check that it runs"))
    if not out:
        soonest = min((s.hours_left(now) or 0.0) for s in subs)
        out.append(Finding(OK, "subscription", f"{len(subs)} subscription(s) live; the soonest expires in "
                           f"{soonest:.0f} h"))
    return out


def _foreign_docs(docs: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """profile -> mailbox -> foreign document."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, data in docs:
        profile, sep, mailbox = key.partition("|")
        if sep:
            out.setdefault(profile, {})[mailbox.lower()] = data
    return out


def _foreign_contacts(doc: Mapping[str, Any] | None) -> tuple[ForeignContact, ...]:
    if not doc:
        return ()
    out = []
    for c in doc.get("contacts") or []:
        if isinstance(c, dict) and c.get("id"):
            out.append(ForeignContact(str(c["id"]), _text(c.get("displayName")), _text(c.get("createdDateTime")),
                                      _text(c.get("lastModifiedDateTime")), _text(c.get("otherProfile")),
                                      _text(c.get("folder")) or "managed"))
    return tuple(sorted(out, key=lambda f: (f.created or "", f.contact_id)))


def _profile_health(rt: Runtime, profile: Profile, targets: Mapping[str, Target],
                    foreign: Mapping[str, dict[str, Any]], now: datetime) -> ProfileHealth:
    client, store = rt.client, rt.store
    active = [t for t in targets.values() if t.active]
    purposes = _purposes(client, [t for t in active if not t.purpose][:MAX_PURPOSE_LOOKUPS])
    checked: list[TargetHealth] = []
    for t in sorted(active, key=lambda t: t.address or t.mailbox):
        purpose = t.purpose or purposes.get(t.mailbox)
        doc = foreign.get(t.mailbox.lower())
        seen = _foreign_contacts(doc)
        if (purpose or "").lower() != "shared" and not seen:
            continue
        name, address = _names(client, t)
        checked.append(TargetHealth(t.mailbox, address, name, purpose, seen,
                                    _text(doc.get("checked_at")) if doc else None))
    runs = store.recent_runs(profile.name, 20)
    return ProfileHealth(profile.name, len(active), tuple(checked), _delta_ages(rt, profile, runs, now),
                         _unresolved_failures(runs), _owner_contacts(active, foreign))


def _owner_contacts(active: Sequence[Target], foreign: Mapping[str, dict[str, Any]]) -> OwnerContacts | None:
    """The reconcile's counts of the users' own contacts in the active targets' default Contacts folders."""
    counts: list[int] = []
    checked: list[str] = []
    for t in active:
        doc = foreign.get(t.mailbox.lower()) or {}
        count = doc.get("owner_contacts")
        if isinstance(count, int) and not isinstance(count, bool):
            counts.append(count)
            checked.append(_text(doc.get("checked_at")) or "")
    if not counts:
        return None
    return OwnerContacts(len(counts), sum(1 for c in counts if c), sum(counts), max(checked) or None)


def _purposes(client: GraphClient, targets: Sequence[Target]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in targets:
        try:
            value = client.get(f"/users/{t.mailbox}/mailboxSettings/userPurpose").get("value")
        except GraphError:
            continue
        if isinstance(value, str):
            out[t.mailbox] = value
    return out


def _names(client: GraphClient, target: Target) -> tuple[str | None, str]:
    """Display name and address of a target worth naming in the report (one small GET)."""
    try:
        user = client.get(f"/users/{target.mailbox}", params={"$select": "displayName,mail,userPrincipalName"})
    except GraphError:
        return None, target.address
    return _text(user.get("displayName")), target.address or _text(user.get("mail")) or \
        _text(user.get("userPrincipalName")) or ""


def _delta_ages(rt: Runtime, profile: Profile, runs: Sequence[Run], now: datetime) -> tuple[DeltaLinkAge, ...]:
    recorded = rt.store.get_doc(DELTA_TIMES_DOC, profile.name)
    times = recorded[0] if recorded is not None else {}
    last_good = next((r.finished_at for r in runs if r.kind == "sync" and r.outcome in ("ok", "partial")
                      and r.finished_at), None)
    out = []
    for source in profile.sources:
        stored = rt.store.get_delta_link(profile.name, source.name) is not None
        at, basis = _text(times.get(source.name)), "recorded"
        if at is None:
            at, basis = (last_good, "last sync") if stored and last_good else (None, "unknown")
        when = parse_time(at)
        age = (now - when).total_seconds() / 3600 if when is not None else None
        out.append(DeltaLinkAge(source.name, stored, at, basis, age))
    return tuple(out)


def _unresolved_failures(runs: Sequence[Run]) -> tuple[Run, ...]:
    """Failed runs not followed by a good run of the same kind (runs are newest first)."""
    latest: dict[str, Run] = {}
    for r in runs:
        if r.outcome != "running":
            latest.setdefault(r.kind, r)
    return tuple(r for r in latest.values() if r.outcome in ("failed", "partial"))


def _profile_findings(profile: Profile, ph: ProfileHealth) -> list[Finding]:
    out: list[Finding] = []
    name = profile.name
    shared = ph.shared_targets
    if shared:
        names = ", ".join(t.label for t in shared)
        head = f"{names} is a shared mailbox." if len(shared) == 1 else \
            f"{len(shared)} target mailboxes are shared mailboxes: {names}."
        found = [f'"{f.display_name or "(no name)"}" in {t.display_name or t.address or t.mailbox} ({where_found(f)}, '
                 f"created {when_text(f.created)})" for t in shared for f in t.foreign]
        tail = (" Found there by the nightly reconcile, not created by galsync: " + "; ".join(found)
                + ". Each was saved on one of the phones and shows on all of them.") if found else ""
        out.append(Finding(WARNING, "shared-mailbox", f"{head} {SHARED_WARNING}{tail}", SHARED_ADVICE, profile=name))
    for t in ph.checked_targets:
        if t.foreign and not t.shared:
            out.append(Finding(INFO, "foreign", f"{len(t.foreign)} contact(s) galsync did not create are in the "
                               f'managed folder of {t.label}; galsync leaves them alone (policy '
                               f'"{profile.policies.foreign_contacts}")', profile=name))
    if ph.owner_contacts is not None:
        out.append(Finding(INFO, "owner-contacts", ph.owner_contacts.sentence(), profile=name))
    for d in ph.delta_links:
        if d.stored and d.age_hours is not None and d.age_hours > DIRECTORY_TOKEN_DAYS * 24 \
                and not d.source.startswith("folder:"):
            out.append(Finding(WARNING, "delta", f"the delta link of {d.source} is {d.age_hours / 24:.0f} days "
                               "old: Graph forgets directory delta state after 7 days, so the next sync re-reads "
                               "everything", "check that the sync timer runs", profile=name))
        elif not d.stored:
            out.append(Finding(INFO, "delta", f"{d.source} has no delta link yet: the next sync reads it in full",
                               profile=name))
    for r in ph.failed_runs:
        out.append(Finding(PROBLEM, "run", f"the last {r.kind} run ({r.run_id}, {r.started_at}) ended "
                           f"{r.outcome}: {r.error or 'no error recorded'}",
                           f"fix the cause above, then `galsync {r.kind if r.kind in ('sync', 'reconcile') else 'sync'}"
                           f" --profile \"{name}\"`", profile=name))
    if ph.targets == 0:
        out.append(Finding(INFO, "target", "no target mailbox is recorded yet", "run `galsync sync` once",
                           profile=name))
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
