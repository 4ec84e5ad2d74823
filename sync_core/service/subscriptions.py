"""Graph change-notification subscriptions: create what is missing, renew early, delete what is ours and unused.

What galsync subscribes to (docs/graph-facts.md, resources/subscription.md, webhooks.md):
- `users`, changeType `updated,deleted` (the only ones users support; `updated` also fires on create and
  soft delete), when a profile reads directory users;
- `groups/{id}`, changeType `updated,deleted`, for each group a profile names (target groups and user-filter
  groups): a membership change is an update of the group. Past MAX_GROUP_SUBSCRIPTIONS groups, one `groups`
  subscription replaces them (directory subscriptions are limited to 100 per app and tenant);
- `users/{id}/contacts`, changeType `created,updated,deleted`, for each mailbox a folder source reads;
- organizational contacts (`contacts`) cannot be subscribed to: the safety-net timer covers them.

Each subscription gets its own clientState, a fresh `secrets.token_urlsafe` value kept only in the state
store ("subscription" document keyed by the subscription id) and never logged. Renewal happens once half of
the resource's maximum lifetime has passed, so the every-few-hours timer has many chances before expiry.
One run at a time (a lease), because a lifecycle event and the timer can both ask for a run.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.graph import GraphError, NotFound
from sync_core.settings import LEASE_SECONDS, Settings, SettingsError
from sync_core.state import docs
from sync_core.state.leases import run_exclusively

from . import groups as group_watch
from .runtime import Runtime

log = logging.getLogger("galsync.subscriptions")

NOTIFICATION_PATH = "/api/notifications"
LIFECYCLE_PATH = "/api/lifecycle"
DIRECTORY_MAX_MINUTES = 41_760  # users, groups (resources/subscription.md)
OUTLOOK_MAX_MINUTES = 4_230  # contacts; some newer sources say 10,080: the shorter one is safe
EXPIRY_MARGIN_MINUTES = 15  # asked lifetime stays this far under the maximum (clock skew)
RENEW_AFTER_FRACTION = 0.5  # renew once this much of the maximum lifetime has passed
MAX_GROUP_SUBSCRIPTIONS = 50
LEASE = "subscriptions"
DIRECTORY_CHANGES = "updated,deleted"
CONTACT_CHANGES = "created,updated,deleted"


@dataclass(frozen=True)
class Wanted:
    """One subscription the configuration calls for."""

    resource: str
    change_type: str
    profiles: tuple[str, ...]
    max_minutes: int


@dataclass(frozen=True)
class SubscriptionsReport:
    """What one run did, by resource; `failed` pairs a resource (or profile) with the reason."""

    created: tuple[str, ...] = ()
    renewed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    busy: bool = False  # another worker held the lease; it runs once more for this request

    def counts(self) -> dict[str, int]:
        return {"created": len(self.created), "renewed": len(self.renewed), "deleted": len(self.deleted),
                "kept": len(self.kept), "failed": len(self.failed)}


@dataclass
class _Run:
    created: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def report(self) -> SubscriptionsReport:
        return SubscriptionsReport(tuple(self.created), tuple(self.renewed), tuple(self.deleted),
                                   tuple(self.kept), tuple(self.failed))


def notification_urls(settings: Settings) -> tuple[str, str]:
    """(notificationUrl, lifecycleNotificationUrl): the base URL + route, with the function key as `code`."""
    base = settings.webhook_base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(f"GALSYNC_WEBHOOK_BASE_URL is {base!r}; expected https://HOST (Graph only calls https)")
    if not settings.webhook_key:
        raise SettingsError("GALSYNC_WEBHOOK_KEY is empty; the notification routes need the function key")
    code = quote(settings.webhook_key, safe="")
    return f"{base}{NOTIFICATION_PATH}?code={code}", f"{base}{LIFECYCLE_PATH}?code={code}"


def wanted_subscriptions(rt: Runtime) -> tuple[list[Wanted], list[tuple[str, str]]]:
    """The subscriptions the profiles call for, and the profiles whose groups or mailboxes could not be resolved.

    Resolving group names and mailbox addresses may call Graph (names are remembered in the store).
    """
    problems: list[tuple[str, str]] = []
    users: list[str] = []
    groups: dict[str, list[str]] = defaultdict(list)
    mailboxes: dict[str, list[str]] = defaultdict(list)
    for profile in rt.config:
        if any(s.kind == "users" for s in profile.sources):
            users.append(profile.name)
        try:
            for gid in _group_ids(rt, profile):
                groups[gid].append(profile.name)
            for source in profile.sources:
                if source.kind == "folder" and source.mailbox:
                    mailboxes[_mailbox_id(rt, source.mailbox)].append(profile.name)
        except (group_watch.GroupConfigError, GraphError) as error:
            problems.append((f'profile "{profile.name}"', str(error)))
    wanted: list[Wanted] = []
    if users:
        wanted.append(_wanted("users", DIRECTORY_CHANGES, users))
    if len(groups) > MAX_GROUP_SUBSCRIPTIONS:
        wanted.append(_wanted("groups", DIRECTORY_CHANGES, [p for names in groups.values() for p in names]))
    else:
        wanted += [_wanted(f"groups/{gid}", DIRECTORY_CHANGES, names) for gid, names in sorted(groups.items())]
    wanted += [_wanted(f"users/{uid}/contacts", CONTACT_CHANGES, names) for uid, names in sorted(mailboxes.items())]
    return wanted, problems


def max_minutes(resource: str) -> int:
    """The longest lifetime Graph allows a subscription on `resource` (Outlook contacts: far shorter)."""
    return OUTLOOK_MAX_MINUTES if _norm(resource).endswith("/contacts") else DIRECTORY_MAX_MINUTES


def _wanted(resource: str, change_type: str, profiles: list[str]) -> Wanted:
    return Wanted(resource, change_type, tuple(dict.fromkeys(profiles)), max_minutes(resource))


def ensure_subscriptions(rt: Runtime) -> SubscriptionsReport:
    """Create missing subscriptions, renew ageing ones, delete ours that are no longer needed."""
    reports: list[SubscriptionsReport] = []
    ran = run_exclusively(rt.store, LEASE, rt.owner, LEASE_SECONDS, lambda: reports.append(_ensure(rt)),
                          clock=rt.clock)
    if ran == 0:
        log.info("subscriptions: another worker is running; it will run once more for this request")
        return SubscriptionsReport(busy=True)
    return reports[-1]


def handle_lifecycle(rt: Runtime, subscription_id: str, event: str) -> tuple[str, ...]:
    """Act on a lifecycle event (Graph calls allowed: this runs in the queue worker); return profiles to resync.

    reauthorizationRequired: renew (which also reauthorizes); if the subscription is gone, recreate it and
    resync. subscriptionRemoved: recreate, then resync. missed: resync.
    """
    try:
        found = docs.read(rt.store, docs.Subscription, subscription_id)
    except docs.DocumentError as error:  # recreated below, like a subscription galsync has no record of
        log.error("subscription %s: %s", subscription_id, error)
        found = None
    profiles = found.profiles if found is not None else rt.config.names
    profiles = tuple(p for p in profiles if p in rt.config.names)
    if event == "missed":
        return profiles
    if event == "reauthorizationRequired" and found is not None:
        try:
            _renew(rt, subscription_id, found, max_minutes(found.resource))
            log.info("subscription %s reauthorized (renewed)", subscription_id)
            return ()
        except NotFound:
            log.info("subscription %s is gone; recreating", subscription_id)
    docs.delete(rt.store, docs.Subscription, subscription_id)
    report = ensure_subscriptions(rt)
    log.info("subscription %s %s: recreated %d, failed %d", subscription_id, event, len(report.created),
             len(report.failed))
    return profiles


# --- one run -------------------------------------------------------------------------------------------------


def _ensure(rt: Runtime) -> SubscriptionsReport:
    run = _Run()
    notification_url, lifecycle_url = notification_urls(rt.settings)
    wanted, problems = wanted_subscriptions(rt)
    run.failed += problems
    by_resource = {_norm(w.resource): w for w in wanted}
    remote = {str(s["id"]): s for s in rt.client.iter_pages("/subscriptions")}
    damaged: set[str] = set()  # records that cannot be read: their subscriptions are replaced

    def unreadable(sid: str, error: docs.DocumentError) -> None:
        log.error("subscription %s: %s; it is replaced", sid, error)
        damaged.add(sid)

    recorded = dict(docs.read_all(rt.store, docs.Subscription, on_damaged=unreadable))

    for sid in sorted((set(recorded) | damaged) - set(remote)):  # expired or removed by Graph
        docs.delete(rt.store, docs.Subscription, sid)
    keep: dict[str, list[str]] = defaultdict(list)
    for sid, sub in sorted(remote.items()):
        ours = sid in recorded or sid in damaged or _same_endpoint(str(sub.get("notificationUrl") or ""),
                                                                   notification_url)
        if not ours:
            continue  # another application's webhook under the same app registration: not ours to touch
        want = by_resource.get(_norm(str(sub.get("resource", ""))))
        if want is None and problems:
            continue  # the wanted set is incomplete (a group did not resolve): delete nothing it may miss
        usable = (want is not None and sid in recorded and bool(recorded[sid].client_state)
                  and sub.get("notificationUrl") == notification_url
                  and sub.get("lifecycleNotificationUrl") == lifecycle_url
                  and _changes(sub.get("changeType")) == _changes(want.change_type))
        if usable and want is not None:
            keep[_norm(want.resource)].append(sid)
        else:
            _delete(rt, sid, str(sub.get("resource", "")), run)
    now = _now(rt)
    for want in wanted:
        sids = sorted(keep.get(_norm(want.resource), []), key=lambda s: _expiry(remote[s]), reverse=True)
        for extra in sids[1:]:  # a duplicate left by a crash between create and record
            _delete(rt, extra, want.resource, run)
        try:
            if not sids:
                _create(rt, want, notification_url, lifecycle_url, run)
                continue
            sid = sids[0]
            doc = recorded[sid]
            if doc.profiles != want.profiles:
                doc = replace(doc, profiles=want.profiles)
                docs.write(rt.store, sid, doc)
            renew_at = _expiry(remote[sid]) - timedelta(minutes=want.max_minutes * (1 - RENEW_AFTER_FRACTION))
            if now >= renew_at:
                _renew(rt, sid, doc, want.max_minutes)
                run.renewed.append(want.resource)
            else:
                run.kept.append(want.resource)
        except GraphError as error:
            run.failed.append((want.resource, str(error)))
            log.error("subscription for %s: %s", want.resource, error)
    report = run.report()
    log.info("subscriptions: %s", report.counts())
    return report


def _create(rt: Runtime, want: Wanted, notification_url: str, lifecycle_url: str, run: _Run) -> None:
    client_state = secrets.token_urlsafe(32)  # 43 characters; Graph allows 128
    expiration = _iso(_now(rt) + timedelta(minutes=want.max_minutes - EXPIRY_MARGIN_MINUTES))
    body = {"changeType": want.change_type, "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url, "resource": want.resource,
            "expirationDateTime": expiration, "clientState": client_state, "latestSupportedTlsVersion": "v1_2"}
    created = rt.client.request("POST", "/subscriptions", json=body).json() or {}
    sid = str(created["id"])
    docs.write(rt.store, sid, docs.Subscription(want.resource, want.change_type, client_state, want.profiles,
                                                str(created.get("expirationDateTime", expiration)), rt.now_iso()))
    run.created.append(want.resource)
    log.info("subscription %s created for %s (profiles %s)", sid, want.resource, ", ".join(want.profiles))


def _renew(rt: Runtime, sid: str, doc: docs.Subscription, max_minutes: int) -> None:
    expiration = _iso(_now(rt) + timedelta(minutes=max_minutes - EXPIRY_MARGIN_MINUTES))
    renewed = rt.client.request("PATCH", f"/subscriptions/{quote(sid, safe='')}",
                                json={"expirationDateTime": expiration}).json() or {}
    docs.write(rt.store, sid, replace(doc, expiration=str(renewed.get("expirationDateTime", expiration))))


def _delete(rt: Runtime, sid: str, resource: str, run: _Run) -> None:
    try:
        rt.client.request("DELETE", f"/subscriptions/{quote(sid, safe='')}")
    except NotFound:
        pass  # already gone: the goal is reached
    except GraphError as error:
        run.failed.append((resource, f"could not delete subscription {sid}: {error}"))
        return
    docs.delete(rt.store, docs.Subscription, sid)
    run.deleted.append(resource)
    log.info("subscription %s for %s deleted", sid, resource)


# --- small pieces --------------------------------------------------------------------------------------------


def _group_ids(rt: Runtime, profile: Profile) -> list[str]:
    refs = group_watch.group_refs(profile)
    if not refs:
        return []
    return sorted(set(group_watch.resolve_ids(rt.client, rt.store, profile, refs).values()))


def _mailbox_id(rt: Runtime, mailbox: str) -> str:
    if looks_like_object_id(mailbox):
        return mailbox.lower()
    user = rt.client.get(f"/users/{quote(mailbox, safe='@')}", params={"$select": "id"})
    return str(user["id"]).lower()


def _norm(resource: str) -> str:
    return resource.strip().strip("/").lower()


def _changes(value: Any) -> frozenset[str]:
    return frozenset(p.strip() for p in str(value or "").split(",") if p.strip())


def _same_endpoint(url: str, ours: str) -> bool:
    """Whether `url` is our notification route, whatever function key it carries."""
    a, b = urlsplit(url), urlsplit(ours)
    return (a.scheme.lower(), a.netloc.lower(), a.path.rstrip("/")) == (b.scheme.lower(), b.netloc.lower(),
                                                                      b.path.rstrip("/"))


def _expiry(sub: Mapping[str, Any]) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(sub.get("expirationDateTime", "")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # unreadable: renew now
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _now(rt: Runtime) -> datetime:
    return datetime.fromtimestamp(rt.clock(), UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

