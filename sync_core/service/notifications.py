"""Graph change and lifecycle notifications: parse, authenticate, coalesce. No Graph call, ever (I6).

The webhook must answer within 3 s, so it only decides *which profiles need a sync* and leaves the work to
the queue. Anything malformed is a 4xx that names the problem (a 5xx makes Graph retry for hours);
anything well formed but not ours (unknown subscription, wrong clientState, other tenant) is dropped and
logged without triggering a sync. A lifecycle event galsync does not know (Graph may add new ones) is
logged and skipped, and the events beside it in the same POST are acted on: Graph's documentation asks
for a 202 whatever the events.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sync_core.state import docs
from sync_core.state.base import StateStore, StateValueError

log = logging.getLogger("galsync.webhook")

MAX_BODY_BYTES = 1_048_576  # Graph batches notifications; a megabyte is far beyond any real payload
MAX_VALIDATION_TOKEN_CHARS = 2048
MAX_ITEMS = 1000
MAX_FIELD_CHARS = 1024
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})

_SURROGATE = re.compile(r"[\ud800-\udfff]")


class BadNotification(ValueError):
    """A request the webhook refuses with a 4xx; the message names the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KnownSubscription:
    """What galsync recorded when it created a subscription."""

    subscription_id: str
    client_state: str = ""
    profiles: tuple[str, ...] = ()
    resource: str = ""


class SubscriptionLookup(Protocol):
    def lookup(self, subscription_id: str) -> KnownSubscription | None: ...


@dataclass(frozen=True)
class Notification:
    subscription_id: str
    client_state: str
    tenant_id: str
    change_type: str
    resource: str
    lifecycle_event: str | None = None


@dataclass(frozen=True)
class Routed:
    """The outcome for one request: which profiles to sync, and what was dropped (for the log).

    `lifecycle` holds the reauthorizationRequired and subscriptionRemoved events: they need Graph calls,
    which the queue worker makes. `missed` only needs a resync, so its profiles are in `profiles`.
    """

    profiles: tuple[str, ...]
    accepted: int
    dropped_unknown: int
    dropped_secret: int
    dropped_tenant: int
    lifecycle: tuple[tuple[KnownSubscription, str], ...] = ()
    skipped_events: int = 0  # lifecycle events of one of our subscriptions that galsync does not know


def validation_answer(token: str) -> str:
    """The body Graph expects for its validation handshake: the token, as plain text.

    `token` is the query parameter as the Functions host hands it over, already URL-decoded once; decoding
    it again would change a token that holds a `%`.
    """
    if not token or len(token) > MAX_VALIDATION_TOKEN_CHARS:
        raise BadNotification(400, f"validationToken must be 1 to {MAX_VALIDATION_TOKEN_CHARS} characters")
    if any(ord(ch) < 32 and ch != "\t" for ch in token) or "\x7f" in token:
        raise BadNotification(400, "validationToken contains control characters")
    if _SURROGATE.search(token):
        raise BadNotification(400, "validationToken is not valid Unicode")
    return token


def parse(body: bytes, content_type: str | None, *, lifecycle: bool) -> list[Notification]:
    """Parse a notification POST body; raise BadNotification (4xx) for anything not in the documented shape.

    On the lifecycle endpoint every item must carry `lifecycleEvent` (any name: `route` skips the ones
    galsync does not know); on the notification endpoint an item that carries one is taken as a lifecycle
    notification too (Graph sends them there when a subscription has no lifecycle URL), every other item
    must be a change notification.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise BadNotification(415, f"Content-Type must be application/json, got {media_type[:100] or 'none'!r}")
    if len(body) > MAX_BODY_BYTES:
        raise BadNotification(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadNotification(400, "body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadNotification(400, f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        raise BadNotification(400, "body must be a JSON object with a 'value' array")
    items = doc["value"]
    if not items:
        raise BadNotification(400, "'value' is empty")
    if len(items) > MAX_ITEMS:
        raise BadNotification(413, f"'value' has {len(items)} notifications; the limit is {MAX_ITEMS}")
    return [_item(i, item, lifecycle) for i, item in enumerate(items)]


def _item(index: int, item: Any, lifecycle_endpoint: bool) -> Notification:
    if not isinstance(item, dict):
        raise BadNotification(400, f"value[{index}] must be an object")
    lifecycle = lifecycle_endpoint or "lifecycleEvent" in item
    required = ("subscriptionId", "tenantId", "lifecycleEvent") if lifecycle else (
        "subscriptionId", "tenantId", "changeType", "resource")
    fields: dict[str, str] = {}
    for name in (*required, "clientState"):
        value = item.get(name)
        if value is None and name not in required:
            value = ""
        if not isinstance(value, str) or (name in required and not value):
            raise BadNotification(400, f"value[{index}].{name} must be a non-empty string")
        if len(value) > MAX_FIELD_CHARS:
            raise BadNotification(400, f"value[{index}].{name} is longer than {MAX_FIELD_CHARS} characters")
        if _SURROGATE.search(value):
            raise BadNotification(400, f"value[{index}].{name} is not valid Unicode")
        fields[name] = value
    return Notification(
        subscription_id=fields["subscriptionId"],
        client_state=fields["clientState"],
        tenant_id=fields["tenantId"],
        change_type=fields.get("changeType", ""),
        resource=fields.get("resource", ""),
        lifecycle_event=fields.get("lifecycleEvent"),
    )


def route(notes: Iterable[Notification], subscriptions: SubscriptionLookup, tenant_id: str,
          known_profiles: Collection[str] | None = None) -> Routed:
    """Authenticate each notification and coalesce them into the set of profiles to sync.

    clientState is compared in constant time; a notification for another tenant, an unknown subscription
    or with a wrong secret is counted and dropped, never acted on. Profiles no longer in the configuration
    (`known_profiles`) are left out: the next subscriptions run drops their subscriptions.
    """
    profiles: dict[str, None] = {}
    accepted = unknown = secret = tenant = skipped = 0
    lifecycle: dict[tuple[str, str], tuple[KnownSubscription, str]] = {}
    ours = tenant_id.lower().encode()
    for note in notes:
        if not tenant_id or not hmac.compare_digest(note.tenant_id.lower().encode(), ours):
            tenant += 1
            continue
        known = subscriptions.lookup(note.subscription_id)
        if known is None:
            unknown += 1
            continue
        if not known.client_state or not hmac.compare_digest(
                note.client_state.encode(), known.client_state.encode()):
            secret += 1
            continue
        event = note.lifecycle_event
        if event is not None and event not in LIFECYCLE_EVENTS:
            skipped += 1
            log.warning("skipped lifecycle event %r of subscription %s: galsync does not know it", event[:100],
                        known.subscription_id)
            continue
        accepted += 1
        if event in ("reauthorizationRequired", "subscriptionRemoved"):
            # Renewing needs Graph; after a removal the worker recreates first and then queues the resync,
            # so that no change falls between the resync and the new subscription.
            lifecycle[(known.subscription_id, event)] = (known, event)
            continue
        for profile in known.profiles:
            if known_profiles is None or profile in known_profiles:
                profiles[profile] = None
    routed = Routed(tuple(profiles), accepted, unknown, secret, tenant, tuple(lifecycle.values()), skipped)
    if unknown or secret or tenant:
        log.warning(
            "dropped notifications: unknown_subscription=%d wrong_client_state=%d other_tenant=%d accepted=%d",
            unknown, secret, tenant, accepted,
        )
    return routed


class SubscriptionRegistry:
    """Looks subscriptions up in the state store's "subscription" documents, cached per process.

    A known id is read from storage once per `ttl_seconds` (its profiles may change); an unknown one is read
    once and then remembered as unknown for `miss_seconds`, and at most `max_misses` such ids are kept, so a
    flood of forged ids costs one storage read per id and cannot grow memory without bound. A subscription
    created by another instance is found on its first notification, by that one point read.
    """

    def __init__(self, store: StateStore, clock: Callable[[], float], *, ttl_seconds: float = 300.0,
                 miss_seconds: float = 30.0, max_misses: int = 4096) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl_seconds
        self._miss_ttl = miss_seconds
        self._max_misses = max_misses
        self._lock = threading.Lock()
        self._known: dict[str, tuple[KnownSubscription, float]] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()

    def lookup(self, subscription_id: str) -> KnownSubscription | None:
        now = self._clock()
        with self._lock:
            hit = self._known.get(subscription_id)
            if hit is not None and now - hit[1] < self._ttl:
                return hit[0]
            missed_at = self._misses.get(subscription_id)
            if missed_at is not None and now - missed_at < self._miss_ttl:
                return None
        try:
            found = docs.read(self._store, docs.Subscription, subscription_id)
        except StateValueError:
            found = None  # not even a possible key: certainly not one of ours
        except docs.DocumentError as error:
            # Its clientState cannot be trusted: dropped like an unknown one (the subscriptions timer replaces it).
            log.error("webhook: %s", error)
            found = None
        with self._lock:
            if found is None:
                self._known.pop(subscription_id, None)
                self._misses[subscription_id] = now
                self._misses.move_to_end(subscription_id)
                while len(self._misses) > self._max_misses:
                    self._misses.popitem(last=False)
                return None
            known = KnownSubscription(subscription_id, found.client_state, found.profiles, found.resource)
            self._known[subscription_id] = (known, now)
            self._misses.pop(subscription_id, None)
            return known

    def forget(self, subscription_id: str) -> None:
        with self._lock:
            self._known.pop(subscription_id, None)
            self._misses.pop(subscription_id, None)
