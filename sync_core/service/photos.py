"""Contact photos, part one: notice a changed directory photo cheaply, and fetch it once.

Graph keeps photo changes out of the users delta (docs/graph-facts.md), so galsync asks, one metadata request
per user: `GET /users/{id}/photo` answers the photo's `@odata.mediaEtag` without its bytes, or 404 for a
user without a photo (one cheap check, no download). The etag is compared with the one on the user's
SourceRecord; only a difference is a change. Who is checked:
- in a sync, the users whose delta item arrived (`arrived_photo_changes`);
- at the nightly reconcile, every user of the profile (`refresh_profile_photos`).
Both only change `SourceRecord.photo_etag`; the planner and drift then yield SetPhoto per target contact,
which contact_photos.py writes after the contact's fields.

Only a changed photo is downloaded, in the profile's size (`/users/{id}/photos/{size}/$value`). A photo
smaller than that size has no such variant (404; Microsoft 365 keeps no size larger than the upload) and is
taken whole from `/photo/$value`, which is then smaller than the size anyway. Downloads go through a small
process-wide cache keyed by the photo's etag, so one photo is fetched once however many target mailboxes,
push messages and reconciled targets need it; the cache is only a saving, never state (a restarted worker
downloads again). A photo Graph refused as a contact photo is remembered there too, so it is not sent to
every other contact to be refused again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from sync_core.core.profile import Profile
from sync_core.core.records import SourceRecord
from sync_core.core.sources import Mapped, SourceChange
from sync_core.graph import GraphClient, GraphError, NotFound
from sync_core.settings import LEASE_SECONDS
from sync_core.state.leases import Heartbeat

from .queue_messages import sync_lease
from .runtime import Runtime

log = logging.getLogger("galsync.photos")

USER_PREFIX = "user:"
CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PhotoChecks:
    """What one round of photo checks found: changed source records carry the new etag (None: removed)."""

    checked: int = 0
    changed: dict[str, SourceRecord] = field(default_factory=dict)
    failed: int = 0  # checks that got no answer we can trust; the recorded etag stays


@dataclass(frozen=True)
class UserPhoto:
    """A user's photo as downloaded for contacts; `refused` says why Graph would not take it (then never resent)."""

    user_id: str
    etag: str
    data: bytes
    refused: str | None = None


def user_id_of(source_key: str) -> str | None:
    """The directory user id of a `user:` source key; None for org contacts and folder contacts (no photo)."""
    return source_key[len(USER_PREFIX):] if source_key.startswith(USER_PREFIX) else None


# --- checks -------------------------------------------------------------------------------------------------


def photo_etag(client: GraphClient, user_id: str) -> str | None:
    """The media etag of a user's photo, or None when the user has none (one metadata request, no bytes)."""
    try:
        meta = client.get(f"/users/{user_id}/photo")
    except NotFound:
        return None
    etag = meta.get("@odata.mediaEtag")
    return etag if isinstance(etag, str) and etag else None


def check_photos(client: GraphClient, profile: Profile, records: Iterable[SourceRecord]) -> PhotoChecks:
    """One metadata request per user record (in parallel); the records whose photo etag changed.

    A check that fails (throttled past the retry bound, a missing ProfilePhoto.Read.All) keeps the recorded
    etag: photo trouble never stops a sync. Failures are logged once, with a count and one example.
    """
    users = [r for r in records if user_id_of(r.source_key) is not None]
    if not profile.photos.enabled or not users:
        return PhotoChecks()

    def check(record: SourceRecord) -> str | None | GraphError:
        try:
            return photo_etag(client, user_id_of(record.source_key) or "")
        except GraphError as exc:
            return exc

    answers = list(client.workers().map(check, users)) if len(users) > 1 else [check(users[0])]
    changed: dict[str, SourceRecord] = {}
    failures = [a for a in answers if isinstance(a, GraphError)]
    for record, answer in zip(users, answers, strict=True):
        if not isinstance(answer, GraphError) and answer != record.photo_etag:
            changed[record.source_key] = replace(record, photo_etag=answer)
    if failures:
        log.warning("profile %s: %d of %d user photo checks failed; their photos are checked again later. "
                    "First: %s", profile.name, len(failures), len(users), failures[0])
    log.info("profile %s: checked %d user photos, %d changed", profile.name, len(users), len(changed))
    return PhotoChecks(len(users), changed, len(failures))


def arrived_photo_changes(client: GraphClient, profile: Profile, changes: Mapping[str, SourceChange],
                          new_records: Mapping[str, SourceRecord], stored: Mapping[str, SourceRecord]
                          ) -> dict[str, SourceRecord]:
    """Sync hook: users whose delta item arrived get one photo check; records to store for changed photos.

    `new_records` are this run's changed records (their fields changed), `stored` the records as stored
    before this run. A user whose fields did not change but whose photo did becomes a change of its own.
    """
    current: list[SourceRecord] = []
    for key, change in changes.items():
        if isinstance(change, Mapped) and user_id_of(key) is not None:
            record = new_records.get(key) or stored.get(key)
            if record is not None:
                current.append(record)
    return check_photos(client, profile, current).changed


def refresh_profile_photos(rt: Runtime, profile: Profile) -> PhotoChecks:
    """Nightly hook: check every user of the profile and store the changed etags.

    Runs under the profile's sync lease, because sync writes the same source records; when a sync holds it,
    the check waits for the next night (the recorded etags stay valid, nothing is lost).
    """
    if not profile.photos.enabled:
        return PhotoChecks()
    with Heartbeat(rt.store, rt.owner, LEASE_SECONDS, clock=rt.clock) as beat:
        if not beat.take(sync_lease(profile.name)):
            log.info("profile %s: a sync is running; user photos are checked at the next reconcile", profile.name)
            return PhotoChecks()
        checks = check_photos(rt.client, profile, rt.store.iter_source_records(profile.name))
        if checks.changed and not beat.held():  # a sync took the lease over: it writes these records now
            log.warning("profile %s: lost the sync lease; user photos are checked again at the next reconcile",
                        profile.name)
            return PhotoChecks(checks.checked, {}, checks.failed)
        if checks.changed:
            rt.store.put_source_records(profile.name, checks.changed.values())
    return checks


# --- downloads ----------------------------------------------------------------------------------------------


class PhotoCache:
    """Photos by (Graph root, user id, size, etag); least recently used ones go beyond `max_bytes`."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, str, str], UserPhoto] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str, str, str]) -> UserPhoto | None:
        with self._lock:
            photo = self._items.get(key)
            if photo is not None:
                self._items.move_to_end(key)
            return photo

    def put(self, key: tuple[str, str, str, str], photo: UserPhoto) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= len(old.data) if old is not None else 0
            if len(photo.data) > self.max_bytes:
                return
            self._items[key] = photo
            self._bytes += len(photo.data)
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE = PhotoCache()


_FETCHING_LOCK = threading.Lock()
_FETCHING: dict[tuple[str, str, str, str], threading.Lock] = {}  # photo key -> held while it is downloaded


def fetch_photo(client: GraphClient, user_id: str, etag: str, size: str) -> tuple[UserPhoto | None, bool]:
    """The user's photo in `size` (or whole, when smaller), and whether it was downloaded now (not cached).

    None when the user has no photo any more: the next check records that, and the contacts follow.
    Other failures raise GraphError (the caller makes them per-contact errors).
    """
    key = (client.base_url, user_id, size, etag)
    cached = CACHE.get(key)
    if cached is not None:
        return cached, False
    # Targets written side by side want the same photo at once: one downloads it, the others wait and read it.
    with _FETCHING_LOCK:
        fetching = _FETCHING.setdefault(key, threading.Lock())
    with fetching:
        cached = CACHE.get(key)
        if cached is not None:
            return cached, False
        try:
            return _download(client, key)
        finally:
            with _FETCHING_LOCK:
                _FETCHING.pop(key, None)


def _download(client: GraphClient, key: tuple[str, str, str, str]) -> tuple[UserPhoto | None, bool]:
    _, user_id, size, etag = key
    data: bytes | None = None
    for path in (f"/users/{user_id}/photos/{size}/$value", f"/users/{user_id}/photo/$value"):
        try:
            data = client.request("GET", path).content
            break
        except NotFound:
            continue
    if data is None:
        return None, True
    photo = UserPhoto(user_id, etag, data)
    CACHE.put(key, photo)
    return photo, True


def remember_refusal(client: GraphClient, photo: UserPhoto, size: str, reason: str) -> UserPhoto:
    """Graph refused `photo` as a contact photo: keep only that fact, so no other contact is sent it."""
    refused = UserPhoto(photo.user_id, photo.etag, b"", refused=reason)
    CACHE.put((client.base_url, photo.user_id, size, photo.etag), refused)
    return refused
