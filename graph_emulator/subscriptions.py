"""Change-notification subscriptions: validation handshake, real HTTPS delivery, lifecycle events.

What Graph does and this store does too (change-notifications-delivery-webhooks.md,
change-notifications-lifecycle-events.md, subscription.md, subscription-post-subscriptions.md):
- creating a subscription POSTs `?validationToken=...` to `notificationUrl` (and `lifecycleNotificationUrl`)
  and refuses the subscription (400) unless the endpoint answers 200, `text/plain`, the decoded token,
  within 10 s;
- supported resources here: `users`, `users/{id}` (changeType updated,deleted; a created user is reported as
  "updated"), `groups`, `groups/{id}` (same), `users/{id}/contacts` (every contact folder of the mailbox) and
  `users/{id}/contactFolders/{id}/contacts`; `me/...` is refused for apps, and organizational contacts
  (`contacts`) are refused because the docs do not list orgContact among the resources that support change
  notifications;
- maximum lifetime 41,760 minutes for directory resources and 4,230 for Outlook contacts (the stored docs);
  an expiration under 45 minutes from now is raised to 45 minutes; quotas (docs/graph-facts.md) give 403;
- notifications are POSTed from a background worker (never under the tenant lock, never blocking the
  request that made the change) with a 3 s timeout, batched per notification URL, verified against
  `verify` (the emulator's CA file, set by the server); every attempt is in `deliveries()`;
- expired subscriptions are removed and stop delivering; `emit_lifecycle` sends reauthorizationRequired,
  subscriptionRemoved (which also removes the subscription) or missed to the lifecycle URL.
Subscriptions belong to the app that created them: another app neither sees nor changes them.
"""

from __future__ import annotations

import builtins
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import requests

from .apps import SCOPE_DENIED, App
from .changes import Change, Changes
from .directory import Directory
from .mailbox import Mailboxes
from .protocol import GraphError

VALIDATION_TIMEOUT = 10.0  # seconds an endpoint has to echo the validation token
DELIVERY_TIMEOUT = 3.0  # Graph's notification client times out after 3 s
MIN_LIFETIME = timedelta(minutes=45)
DIRECTORY_MAX_MINUTES = 41_760
OUTLOOK_MAX_MINUTES = 4_230
CLIENT_STATE_MAX = 128
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
_BODY_PROPERTIES = {
    "changeType",
    "notificationUrl",
    "lifecycleNotificationUrl",
    "resource",
    "expirationDateTime",
    "clientState",
    "latestSupportedTlsVersion",
    "includeResourceData",
    "encryptionCertificate",
    "encryptionCertificateId",
    "notificationUrlAppId",
    "notificationQueryOptions",
    "id",
    "applicationId",
    "creatorId",
}
_READ_ONLY = {"id", "applicationId", "creatorId"}

_USER_ROLES = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_GROUP_ROLES = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_CONTACT_ROLES = frozenset({"Contacts.Read", "Contacts.ReadWrite"})


def _error(status: int, code: str, message: str) -> GraphError:
    return GraphError(status, code, message)


def graph_time(value: datetime) -> str:
    """2016-11-20T18:23:45.9356913Z: Graph's subscription timestamp format (7 fraction digits)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise _error(400, "InvalidRequest", f"'{name}' must be a DateTimeOffset string.")
    text = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _error(400, "InvalidRequest", f"'{name}' is not a valid DateTimeOffset: {value!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _watches(target: Target, change: Change) -> bool:
    """Whether a subscription to `target` may be notified of `change` (`_notification` decides exactly)."""
    if target.kind in ("users", "groups"):
        return change.resource == target.kind
    return change.resource.startswith(f"users/{target.user_id}/contactFolders/")


@dataclass(frozen=True)
class Target:
    """What a subscription's resource points at."""

    kind: str  # "users" | "groups" | "contacts"
    object_id: str | None = None  # one user or group; None = all of them (contacts: unused)
    user_id: str | None = None  # contacts: the mailbox owner
    folder_id: str | None = None  # contacts: one folder; None = every folder of the mailbox

    @property
    def max_minutes(self) -> int:
        return OUTLOOK_MAX_MINUTES if self.kind == "contacts" else DIRECTORY_MAX_MINUTES

    @property
    def roles(self) -> frozenset[str]:
        return {"users": _USER_ROLES, "groups": _GROUP_ROLES}.get(self.kind, _CONTACT_ROLES)

    @property
    def change_types(self) -> tuple[str, ...]:
        return CHANGE_TYPES if self.kind == "contacts" else ("updated", "deleted")


class Delivery(NamedTuple):
    """One POST attempt to a notification or lifecycle URL (status 0: no HTTP answer, e.g. a timeout)."""

    subscription_id: str
    status: int
    elapsed: float


@dataclass
class Subscription:
    id: str
    app_id: str
    creator_id: str
    resource: str
    target: Target
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    tls_version: str
    reauthorization_required: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass(frozen=True)
class _Outgoing:
    url: str
    subscription_id: str
    item: dict[str, Any]
    lifecycle: bool = False


@dataclass
class _Quotas:
    """Subscription quotas (docs/graph-facts.md); settable so tests can reach them cheaply."""

    directory_per_tenant: int = 1000
    directory_per_app: int = 100
    outlook_per_mailbox: int = 1000


class Subscriptions:
    """The tenant's subscriptions and the worker that delivers their notifications."""

    def __init__(self, changes: Changes, tenant_id: str, directory: Directory, mailboxes: Mailboxes) -> None:
        self._changes = changes
        self._tenant_id = tenant_id  # notifications name the tenant they come from
        self._directory = directory  # subscription resources name users and groups ...
        self._mailboxes = mailboxes  # ... and mailboxes' contact folders
        self._subs: dict[str, Subscription] = {}
        # CA bundle (path) used to verify notification endpoints; the server sets its own CA file here.
        self.verify: str | bool = True
        self.validation_timeout = VALIDATION_TIMEOUT
        self.delivery_timeout = DELIVERY_TIMEOUT
        self.max_attempts = 3  # Graph retries failed deliveries for hours; three tries keep tests short
        self.retry_backoff = 0.2
        self.max_batch = 50
        self.idle_exit = 2.0  # seconds an idle delivery worker waits before its thread ends
        self.quotas = _Quotas()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._queue: queue.Queue[_Outgoing | None] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._worker: threading.Thread | None = None
        self._deliveries: list[Delivery] = []
        changes.add_listener(self._on_change)

    # --- create / read / renew / delete ------------------------------------------------------------------

    def create(self, app: App, body: dict[str, Any], roles: frozenset[str] | None = None) -> dict[str, Any]:
        """POST /subscriptions: validate like Graph, run the validation handshake, then store (201 body).

        `roles` are the calling token's roles (default: the app's registered roles).
        """
        sub = self._validated(app, body, app.roles if roles is None else roles)
        self.validate_endpoint(sub.notification_url)
        if sub.lifecycle_url:
            self.validate_endpoint(sub.lifecycle_url)
        with self._changes.lock:
            self._check_quota(app, sub.target)
            self._subs[sub.id] = sub
            return sub.to_json()

    def _validated(self, app: App, body: dict[str, Any], roles: frozenset[str] | set[str]) -> Subscription:
        for name in body:
            if name.startswith("@odata."):
                continue
            if name not in _BODY_PROPERTIES:
                raise _error(
                    400, "InvalidRequest", f"Invalid property '{name}' on microsoft.graph.subscription."
                )
            if name in _READ_ONLY:
                raise _error(400, "InvalidRequest", f"The property '{name}' is read-only.")
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if body.get(name) in (None, ""):
                raise _error(
                    400, "InvalidRequest", f"{name} is a required property for subscription creation."
                )
        if body.get("includeResourceData"):
            raise _error(
                400, "InvalidRequest", "The emulator does not send rich notifications (includeResourceData)."
            )
        resource = body["resource"]
        if not isinstance(resource, str):
            raise _error(400, "InvalidRequest", "resource must be a string.")
        target = self._target(app, resource)
        if not target.roles & roles:
            raise _error(
                403,
                "ExtensionError",
                f"Operation: Create; Exception: [Status Code: Forbidden; Reason: The app lacks one of the "
                f"permissions {sorted(target.roles)} needed to subscribe to '{resource}'.]",
            )
        change_types = self._change_types(body["changeType"], target, resource)
        notification_url = self._https_url("notificationUrl", body["notificationUrl"])
        lifecycle = body.get("lifecycleNotificationUrl")
        lifecycle_url = None if lifecycle is None else self._https_url("lifecycleNotificationUrl", lifecycle)
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > CLIENT_STATE_MAX
        ):
            raise _error(
                400,
                "InvalidRequest",
                f"clientState must be a string of at most {CLIENT_STATE_MAX} characters.",
            )
        tls = body.get("latestSupportedTlsVersion") or "v1_2"
        if tls not in TLS_VERSIONS:
            raise _error(400, "InvalidRequest", f"latestSupportedTlsVersion must be one of {TLS_VERSIONS}.")
        with self._changes.lock:
            self._check_quota(app, target)
        return Subscription(
            id=str(uuid.uuid4()),
            app_id=app.client_id,
            creator_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"servicePrincipal:{app.client_id}")),
            resource=resource,
            target=target,
            change_types=change_types,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            expiration=self._expiration(body["expirationDateTime"], target),
            client_state=client_state,
            tls_version=tls,
        )

    def _target(self, app: App, resource: str) -> Target:
        if "?" in resource:
            raise _error(400, "InvalidRequest", f"Query options are not supported on resource '{resource}'.")
        segs = [s for s in resource.strip().strip("/").split("/")]
        low = [s.lower() for s in segs]
        if low and low[0] == "me":
            raise _error(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        directory = self._directory
        if low == ["users"]:
            return Target("users")
        if len(low) == 2 and low[0] == "users":
            return Target("users", object_id=directory.resolve_user(segs[1]))
        if low == ["groups"]:
            return Target("groups")
        if len(low) == 2 and low[0] == "groups":
            group = directory.get_group(segs[1])
            if group is None:
                raise _error(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{segs[1]}' does not exist or one of its queried reference-property objects "
                    "are not present.",
                )
            return Target("groups", object_id=group["id"])
        if low[:1] == ["contacts"]:
            raise _error(
                400,
                "InvalidRequest",
                "Change notifications are not supported for organizational contacts ('contacts'); "
                "track them with GET /contacts/delta.",
            )
        is_mailbox = len(low) == 3 and low[0] == "users" and low[2] == "contacts"
        is_folder = (
            len(low) == 5 and low[0] == "users" and low[2] == "contactfolders" and low[4] == "contacts"
        )
        if is_mailbox or is_folder:
            mailboxes = self._mailboxes
            uid = mailboxes.user_id(segs[1])
            if app.mailbox_scope is not None and uid not in app.mailbox_scope:
                raise _error(403, "ErrorAccessDenied", SCOPE_DENIED)
            folder_id = mailboxes.get_folder(uid, segs[3])["id"] if is_folder else None
            if is_mailbox:
                mailboxes.default_folder(uid)  # a user without a mailbox -> MailboxNotEnabledForRESTAPI
            return Target("contacts", user_id=uid, folder_id=folder_id)
        raise _error(
            400, "InvalidRequest", f"Resource '{resource}' is not supported for change notifications."
        )

    def _change_types(self, raw: Any, target: Target, resource: str) -> tuple[str, ...]:
        if not isinstance(raw, str):
            raise _error(400, "InvalidRequest", "changeType must be a comma-separated string.")
        parts = [p.strip() for p in raw.split(",")]
        for p in parts:
            if p not in CHANGE_TYPES:
                raise _error(
                    400, "InvalidRequest", f"Invalid changeType '{p}': use created, updated, deleted."
                )
            if p not in target.change_types:
                raise _error(
                    400,
                    "InvalidRequest",
                    f"changeType '{p}' is not supported for resource '{resource}': "
                    f"use {','.join(target.change_types)}.",
                )
        if len(set(parts)) != len(parts):
            raise _error(400, "InvalidRequest", f"changeType '{raw}' repeats a value.")
        return tuple(parts)

    @staticmethod
    def _https_url(name: str, value: Any) -> str:
        if (
            not isinstance(value, str)
            or urlsplit(value).scheme.lower() != "https"
            or not urlsplit(value).netloc
        ):
            raise _error(400, "InvalidRequest", f"{name} must be an absolute HTTPS URL, not {value!r}.")
        return value

    def _expiration(self, raw: Any, target: Target) -> datetime:
        wanted = parse_time("expirationDateTime", raw)
        now = self.clock()
        if wanted <= now:
            raise _error(400, "InvalidRequest", "Subscription expiration must be in the future.")
        if wanted - now > timedelta(minutes=target.max_minutes):
            raise _error(
                400,
                "ExtensionError",
                f"Subscription expiration can only be {target.max_minutes} minutes in the future.",
            )
        return max(wanted, now + MIN_LIFETIME)

    def _check_quota(self, app: App, target: Target) -> None:
        live = self._live()
        q = self.quotas
        if target.kind == "contacts":
            used = sum(1 for s in live if s.target.kind == "contacts" and s.target.user_id == target.user_id)
            if used >= q.outlook_per_mailbox:
                raise _error(
                    403,
                    "ExtensionError",
                    f"The mailbox has reached its limit of {q.outlook_per_mailbox} subscriptions.",
                )
            return
        same_kind = [s for s in live if s.target.kind == target.kind]
        if len(same_kind) >= q.directory_per_tenant:
            raise _error(
                403,
                "ExtensionError",
                f"The tenant has reached its limit of {q.directory_per_tenant} {target.kind} subscriptions.",
            )
        if sum(1 for s in same_kind if s.app_id == app.client_id) >= q.directory_per_app:
            raise _error(
                403,
                "ExtensionError",
                f"The app has reached its limit of {q.directory_per_app} {target.kind} subscriptions here.",
            )

    def _live(self) -> list[Subscription]:
        """Subscriptions not yet expired; expired ones are removed, as Graph deletes them."""
        now = self.clock()
        for sid in [s.id for s in self._subs.values() if s.expiration <= now]:
            del self._subs[sid]
        return list(self._subs.values())

    def _own(self, app: App, subscription_id: str) -> Subscription:
        with self._changes.lock:
            sub = next((s for s in self._live() if s.id == subscription_id), None)
        if sub is None or sub.app_id != app.client_id:
            raise _error(404, "ResourceNotFound", f"The subscription '{subscription_id}' was not found.")
        return sub

    def get(self, app: App, subscription_id: str) -> dict[str, Any]:
        return self._own(app, subscription_id).to_json()

    def list(self, app: App | None = None) -> list[dict[str, Any]]:
        """The live subscriptions of one app (None: every app, for tests and the control surface)."""
        with self._changes.lock:
            return [s.to_json() for s in self._live() if app is None or s.app_id == app.client_id]

    def update(
        self, app: App, subscription_id: str, body: dict[str, Any], roles: frozenset[str] | None = None
    ) -> dict[str, Any]:
        """PATCH: renew (expirationDateTime) and/or move (notificationUrl, validated again)."""
        sub = self._own(app, subscription_id)
        unknown = [
            k
            for k in body
            if not k.startswith("@odata.") and k not in ("expirationDateTime", "notificationUrl")
        ]
        if unknown:
            raise _error(
                400,
                "InvalidRequest",
                f"Only expirationDateTime and notificationUrl can be updated, not {unknown[0]}.",
            )
        if not sub.target.roles & (app.roles if roles is None else roles):
            raise _error(
                403, "ExtensionError", "The app is no longer authorized to read the subscribed resource."
            )
        expiration = (
            self._expiration(body["expirationDateTime"], sub.target) if "expirationDateTime" in body else None
        )
        url = (
            self._https_url("notificationUrl", body["notificationUrl"]) if "notificationUrl" in body else None
        )
        if url is not None:
            self.validate_endpoint(url)
        with self._changes.lock:
            if expiration is not None:
                sub.expiration = expiration
            if url is not None:
                sub.notification_url = url
            sub.reauthorization_required = False
            return sub.to_json()

    def reauthorize(self, app: App, subscription_id: str, roles: frozenset[str] | None = None) -> None:
        sub = self._own(app, subscription_id)
        if not sub.target.roles & (app.roles if roles is None else roles):
            raise _error(
                403, "ExtensionError", "The app is no longer authorized to read the subscribed resource."
            )
        with self._changes.lock:
            sub.reauthorization_required = False

    def delete(self, app: App, subscription_id: str) -> None:
        sub = self._own(app, subscription_id)
        with self._changes.lock:
            self._subs.pop(sub.id, None)

    # --- the validation handshake -------------------------------------------------------------------------

    def validate_endpoint(self, url: str) -> None:
        """POST url?validationToken=...; the endpoint must answer 200 text/plain with the decoded token."""
        token = (
            f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        )
        target = f"{url}{'&' if urlsplit(url).query else '?'}validationToken={quote(token, safe='')}"
        failed = "Subscription validation request failed."
        try:
            resp = self._http().post(
                target,
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=self.validation_timeout,
                verify=self.verify,
            )
        except requests.Timeout:
            raise _error(400, "InvalidRequest", "Subscription validation request timed out.") from None
        except requests.RequestException as exc:
            raise _error(
                400,
                "ValidationError",
                f"{failed} Could not reach the notification endpoint: {type(exc).__name__}.",
            ) from None
        if resp.status_code != 200:
            raise _error(
                400,
                "ValidationError",
                f"{failed} Notification endpoint must respond with 200 OK to validation request.",
            )
        if not (resp.headers.get("Content-Type") or "").lower().startswith("text/plain"):
            raise _error(400, "ValidationError", f"{failed} Response must have Content-Type text/plain.")
        if resp.text != token:
            raise _error(
                400,
                "ValidationError",
                f"{failed} Response must exactly match validationToken query parameter.",
            )

    # --- change notifications -----------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        """Tenant listener: queue a notification per matching subscription; the worker sends them."""
        if not self._subs:
            return  # no subscription at all (a benchmark's fill): not even the lock (stores emit holding it)
        with self._changes.lock:
            if not any(_watches(s.target, change) for s in self._subs.values()):
                return  # the usual case (a fill writes contacts nobody subscribed to): nothing to build
            outgoing = [
                _Outgoing(s.notification_url, s.id, item)
                for s in self._live()
                if (item := self._notification(s, change)) is not None
            ]
        for out in outgoing:
            self._enqueue(out)

    def _notification(self, sub: Subscription, change: Change) -> dict[str, Any] | None:
        t = sub.target
        change_type = change.change_type
        if t.kind in ("users", "groups"):
            if change.resource != t.kind or (t.object_id is not None and change.id != t.object_id):
                return None
            change_type = "deleted" if change_type == "deleted" else "updated"
            odata_type = "#Microsoft.Graph.User" if t.kind == "users" else "#Microsoft.Graph.Group"
            path = f"{'Users' if t.kind == 'users' else 'Groups'}/{change.id}"
            resource_data: dict[str, Any] = {
                "@odata.type": odata_type,
                "@odata.id": path,
                "id": change.id,
                "organizationId": self._tenant_id,
            }
        else:
            prefix = f"users/{t.user_id}/contactFolders/"
            if not change.resource.startswith(prefix) or not change.resource.endswith("/contacts"):
                return None
            folder = change.resource[len(prefix) : -len("/contacts")]
            if t.folder_id is not None and folder != t.folder_id:
                return None
            path = f"Users/{t.user_id}/Contacts/{change.id}"
            resource_data = {"@odata.type": "#Microsoft.Graph.Contact", "@odata.id": path}
            etag = (
                self._mailboxes.etag(t.user_id or "", change.id) if change_type != "deleted" else None
            )
            if etag:
                resource_data["@odata.etag"] = etag
            resource_data["id"] = change.id
        if change_type not in sub.change_types:
            return None
        return {
            "id": str(uuid.uuid4()),
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": graph_time(sub.expiration),
            "clientState": sub.client_state,
            "changeType": change_type,
            "resource": path,
            "tenantId": self._tenant_id,
            "resourceData": resource_data,
        }

    def emit_lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle notification; subscriptionRemoved also removes the subscription."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycle event must be one of {LIFECYCLE_EVENTS}, not {event!r}")
        with self._changes.lock:
            sub = next((s for s in self._live() if s.id == subscription_id), None)
            if sub is None:
                raise _error(404, "ResourceNotFound", f"The subscription '{subscription_id}' was not found.")
            if event == "subscriptionRemoved":
                del self._subs[sub.id]
            elif event == "reauthorizationRequired":
                sub.reauthorization_required = True
        if sub.lifecycle_url:
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_time(sub.expiration),
                "tenantId": self._tenant_id,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            }
            self._enqueue(_Outgoing(sub.lifecycle_url, sub.id, item, lifecycle=True))

    # --- delivery -----------------------------------------------------------------------------------------

    def _enqueue(self, out: _Outgoing) -> None:
        with self._cond:  # under the condition, so an idle worker cannot exit between the check and put
            self._pending += 1
            self._queue.put(out)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run, name="graph-emulator-notifications", daemon=True
                )
                self._worker.start()

    @staticmethod
    def _http() -> requests.Session:
        """A session that ignores proxy and CA-bundle environment variables: `verify` decides trust."""
        session = requests.Session()
        session.trust_env = False
        return session

    def _run(self) -> None:
        session = self._http()
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._cond:  # idle: exit; the next notification starts a new worker
                    if self._queue.empty():
                        self._worker = None
                        break
                continue
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._send_batch(session, batch)
            finally:
                with self._cond:
                    self._pending -= len(batch)
                    self._cond.notify_all()
        session.close()

    def _send_batch(self, session: requests.Session, batch: builtins.list[_Outgoing]) -> None:
        with self._changes.lock:
            live = {s.id for s in self._live()}
        groups: dict[str, builtins.list[_Outgoing]] = {}
        for out in batch:
            if out.lifecycle or out.subscription_id in live:  # a removed or expired subscription stops here
                groups.setdefault(out.url, []).append(out)
        for url, outs in groups.items():
            self._post(session, url, outs)

    def _post(self, session: requests.Session, url: str, outs: builtins.list[_Outgoing]) -> None:
        payload = {"value": [o.item for o in outs]}
        sub_ids = list(dict.fromkeys(o.subscription_id for o in outs))
        for attempt in range(self.max_attempts):
            start = time.monotonic()
            try:
                resp = session.post(url, json=payload, timeout=self.delivery_timeout, verify=self.verify)
                status = resp.status_code
            except requests.RequestException:
                status = 0
            elapsed = time.monotonic() - start
            with self._cond:
                self._deliveries.extend(Delivery(sid, status, elapsed) for sid in sub_ids)
            if 200 <= status < 300 or (400 <= status < 500 and status != 429):
                return  # delivered, or refused for good
            if attempt + 1 < self.max_attempts:
                time.sleep(self.retry_backoff * (2**attempt))

    def deliveries(self) -> builtins.list[Delivery]:
        """Every delivery attempt so far: (subscription id, HTTP status or 0, seconds)."""
        with self._cond:
            return list(self._deliveries)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification has been delivered or given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop the delivery worker (queued notifications are still sent first, for at most `timeout`
        seconds: by default long enough for every attempt; the worker is a daemon thread, so a short
        timeout abandons what is left when the process exits)."""
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(timeout=self.delivery_timeout * self.max_attempts + 5 if timeout is None else timeout)
