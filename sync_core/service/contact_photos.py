"""Contact photos, part two: put each source's directory photo on its target contacts, after their fields.

The executor calls `write_photos` once the field writes of a push (or a nightly repair) are done and recorded,
so a photo never holds up a field, and a photo that fails is one contact's error, never a failed push. What a
contact needs follows from its actions (actions.py):
- SetPhoto(etag), or a Create with a photo: PUT the photo (photos.fetch_photo: downloaded once) to
  `.../contacts/{id}/photo/$value` as image/jpeg, and read the contact's changeKey right after it in the same
  $batch: a photo write changes the contact, and recording the new changeKey keeps the nightly drift from
  taking galsync's own photo for an edit made on a phone.
- SetPhoto(None) (the user's photo was removed), or an adopted contact whose photo is unknown: Graph cannot
  delete a contact's photo (profilephoto-delete.md: "not Outlook contact" photos; PUT needs a JPEG), so
  galsync first asks (GET .../photo: 404, nothing to remove) and otherwise replaces the contact with a copy
  of itself without the photo: read it, mark the record "create in flight", DELETE the original, POST the
  copy (same fields, phone edits included, same hidden tag; in the same $batch, run only once the DELETE
  succeeded), record the copy. Deleting first means there is never a second tagged contact: a crash at any
  point leaves either the original (adopted again by the recovering create, which lists the folder) or the
  copy (adopted the same way, or by the nightly drift), or neither (created again from the source).

Photos up to BATCH_PHOTO_BYTES travel in $batch (ten of them stay under Graph's 4 MB request limit); larger
ones are PUT on their own. Each photo written is recorded (TargetRecord.photo_etag), so a fill cut short by a
crash or by a mailbox's 150 MB / 5 min upload budget (429 past the client's retry bound: "deferred") goes on
where it stopped at the next push or reconcile.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sync_core.core.actions import Create, SetPhoto
from sync_core.core.profile import Profile
from sync_core.core.records import TargetRecord
from sync_core.core.tags import contact_tag_properties
from sync_core.graph import BatchRequest, BatchResult, GraphClient, GraphError
from sync_core.state.base import StateStore

from .folder_listing import contact_url
from .photos import UserPhoto, fetch_photo, remember_refusal, user_id_of
from .target_work import ExecReport, TargetWork

log = logging.getLogger("galsync.photos")

BATCH_PHOTO_BYTES = 256 * 1024
# Graph refuses these photos whatever the contact: too large, not a JPEG. Not sent to other contacts again.
REFUSED_PHOTO_CODES = frozenset({"ErrorRequestEntityTooLarge", "ErrorInvalidImage", "UnsupportedMediaType"})
# Writable properties of microsoft.graph.contact (PersonalContacts.yml; resources/contact.md), copied when a
# contact is replaced to drop its photo. Read-only ones (id, changeKey, dates, parentFolderId) are not sent.
WRITABLE_CONTACT_PROPERTIES = (
    "assistantName", "birthday", "businessAddress", "businessHomePage", "businessPhones", "categories",
    "children", "companyName", "department", "displayName", "emailAddresses", "fileAs", "generation",
    "givenName", "homeAddress", "homePhones", "imAddresses", "initials", "jobTitle", "manager", "middleName",
    "mobilePhone", "nickName", "officeLocation", "otherAddress", "personalNotes", "profession", "spouseName",
    "surname", "title", "yomiCompanyName", "yomiGivenName", "yomiSurname",
)


@dataclass(frozen=True)
class PhotoJob:
    """One target contact and the photo it should have (None: no photo)."""

    mailbox: str
    folder_id: str
    record: TargetRecord  # as recorded once the field writes are done
    etag: str | None

    @property
    def url(self) -> str:
        return contact_url(self.mailbox, self.folder_id, self.record.contact_id)

    @property
    def name(self) -> str:
        return f"{self.mailbox} {self.record.source_key}"


def write_photos(client: GraphClient, store: StateStore, profile: Profile, works: Sequence[TargetWork],
                 now: Callable[[], str], report: ExecReport) -> None:
    """Bring each contact named by a SetPhoto or a Create of `works` to its photo; record what was written."""
    if not profile.photos.enabled:
        return
    jobs = photo_jobs(store, profile, works)
    if not jobs:
        return
    writer = _Writer(client, store, profile, now, report)
    writer.upload([j for j in jobs if j.etag is not None])
    writer.remove([j for j in jobs if j.etag is None])
    writer.flush()
    counts = {k: v for k, v in report.counts.items() if k.startswith("photo")}
    log.info("profile %s: photos for %d contact(s) in %d mailbox(es): %s", profile.name, len(jobs),
             len({j.mailbox for j in jobs}), counts)


def photo_jobs(store: StateStore, profile: Profile, works: Sequence[TargetWork]) -> list[PhotoJob]:
    """The contacts whose photo to bring in step, read from the records the field writes left."""
    jobs: list[PhotoJob] = []
    for work in works:
        wanted: dict[str, tuple[str | None, str | None]] = {}  # key -> (etag, contact id the plan named)
        for action in work.actions:
            if isinstance(action, SetPhoto):
                wanted[action.source_key] = (action.photo_etag, action.contact_id)
            elif isinstance(action, Create) and (action.photo_etag is not None or action.recover):
                # A new contact has no photo; one adopted by a recovering create has an unknown one.
                wanted[action.source_key] = (action.photo_etag, None)
        if not wanted:
            continue
        current = store.get_target_records(profile.name, work.mailbox, wanted)
        for key, (etag, planned_id) in sorted(wanted.items()):
            record = current.get(key)
            if record is None or record.contact_id is None or record.deleted_on_device:
                continue  # not written (its error is reported), or deleted on a phone
            if planned_id is not None and record.contact_id != planned_id:
                continue  # replaced since planning (recreated after a phone deleted it): planned again later
            old = work.records.get(key)
            known = planned_id is not None and old is not None and old.contact_id == planned_id
            if etag is None and known and record.photo_etag is None:
                continue
            jobs.append(PhotoJob(work.mailbox, work.folder_id, record, etag))
    return jobs


class _Writer:
    def __init__(self, client: GraphClient, store: StateStore, profile: Profile, now: Callable[[], str],
                 report: ExecReport) -> None:
        self.client, self.store, self.profile, self.now, self.report = client, store, profile, now, report
        self.records: dict[str, dict[str, TargetRecord]] = {}  # mailbox -> source key -> record to write

    # --- uploads ----------------------------------------------------------------------------------------

    def upload(self, jobs: list[PhotoJob]) -> None:
        photos: dict[tuple[str, str], UserPhoto | None] = {}
        ready: list[tuple[PhotoJob, UserPhoto]] = []
        for job in jobs:
            photo = self._photo(job, photos)
            if photo is not None:
                ready.append((job, photo))
        small = [(j, p) for j, p in ready if len(p.data) <= BATCH_PHOTO_BYTES]
        requests: list[BatchRequest] = []
        for i, (job, photo) in enumerate(small):
            requests.append(BatchRequest("PUT", f"{job.url}/photo/$value",
                                         body=base64.b64encode(photo.data).decode("ascii"),
                                         headers={"Content-Type": "image/jpeg"}, id=f"put{i}"))
            requests.append(BatchRequest("GET", f"{job.url}?$select=changeKey", id=f"read{i}",
                                         depends_on=(f"put{i}",)))
        results = self.client.batch(requests) if requests else []
        for i, (job, photo) in enumerate(small):
            put, read = results[2 * i], results[2 * i + 1]
            if put.ok:
                self._written(job, job.etag, _change_key(read))
            else:
                self._upload_failed(job, photo, put.status, put.error, photos)
        for job, photo in ready:
            if len(photo.data) > BATCH_PHOTO_BYTES:
                self._upload_alone(job, photo, photos)

    def _photo(self, job: PhotoJob, photos: dict[tuple[str, str], UserPhoto | None]) -> UserPhoto | None:
        """The photo for `job`, fetched once per (user, etag); None (reported) when it cannot be sent."""
        user_id, etag = user_id_of(job.record.source_key), job.etag
        if user_id is None or etag is None:
            self._error(job, "only directory users have photos")
            return None
        if (user_id, etag) not in photos:
            try:
                photo, downloaded = fetch_photo(self.client, user_id, etag, self.profile.photos.size)
            except GraphError as exc:
                photos[(user_id, etag)] = None
                self._error(job, f"photo download failed: {_describe(exc.status, exc)}")
                return None
            photos[(user_id, etag)] = photo
            if downloaded:
                self.report.counts["photos_downloaded"] += 1
        photo = photos[(user_id, etag)]
        if photo is None:
            # Removed from the directory since the check: the next check records that, then the contacts.
            self.report.counts["photos_gone"] += 1
            return None
        if photo.refused is not None:
            self._error(job, f"photo refused by Graph: {photo.refused}")
            return None
        return photo

    def _upload_alone(self, job: PhotoJob, photo: UserPhoto,
                      photos: dict[tuple[str, str], UserPhoto | None]) -> None:
        """A photo too large for $batch: its own PUT (refused ones are not sent to the next contact)."""
        known = photos.get((photo.user_id, photo.etag))
        if known is not None and known.refused is not None:
            self._error(job, f"photo refused by Graph: {known.refused}")
            return
        try:
            self.client.request("PUT", f"{job.url}/photo/$value", data=photo.data,
                                headers={"Content-Type": "image/jpeg"})
        except GraphError as exc:
            self._upload_failed(job, photo, exc.status, exc, photos)
            return
        try:
            change_key = self.client.get(job.url, params={"$select": "changeKey"}).get("changeKey")
        except GraphError:
            change_key = None
        self._written(job, job.etag, change_key if isinstance(change_key, str) else None)

    def _upload_failed(self, job: PhotoJob, photo: UserPhoto, status: int, error: GraphError | None,
                       photos: dict[tuple[str, str], UserPhoto | None]) -> None:
        code = getattr(error, "code", "")
        if status == 429:
            # The mailbox is over its upload budget past the retry bound: the record keeps the old etag,
            # so the next push or reconcile writes this photo (resumable, not an error).
            self.report.counts["photos_deferred"] += 1
            return
        if status == 413 or code in REFUSED_PHOTO_CODES:
            refusal = f"{_describe(status, error)}; the photo is {len(photo.data)} bytes (Graph takes JPEGs under 4 MB)"
            photos[(photo.user_id, photo.etag)] = remember_refusal(self.client, photo, self.profile.photos.size,
                                                                   refusal)
            self._error(job, f"photo refused by Graph: {refusal}")
            return
        self._error(job, f"photo not written: {_describe(status, error)}")

    # --- removal ----------------------------------------------------------------------------------------

    def remove(self, jobs: list[PhotoJob]) -> None:
        if not jobs:
            return
        checks = self.client.batch([BatchRequest("GET", f"{j.url}/photo") for j in jobs])
        self.report.counts["photo_checks"] += len(jobs)
        with_photo: list[PhotoJob] = []
        for job, result in zip(jobs, checks, strict=True):
            if result.ok:
                with_photo.append(job)
            elif result.status == 404:
                if job.record.photo_etag is not None:
                    self._written(job, None, job.record.change_key)
            else:
                self._error(job, f"photo check failed: {_describe(result.status, result.error)}")
        if with_photo:
            self._replace(with_photo)

    def _replace(self, jobs: list[PhotoJob]) -> None:
        """Replace each contact by a copy without its photo (see the module doc)."""
        reads = self.client.batch([BatchRequest("GET", j.url) for j in jobs])
        copies: list[tuple[PhotoJob, dict[str, Any]]] = []
        for job, result in zip(jobs, reads, strict=True):
            if result.ok and isinstance(result.body, dict):
                copies.append((job, self._copy(job, result.body)))
            else:
                self._error(job, f"contact read failed: {_describe(result.status, result.error)}")
        if not copies:
            return
        intents: dict[str, list[TargetRecord]] = {}
        for job, _ in copies:
            intents.setdefault(job.mailbox, []).append(TargetRecord(job.mailbox, job.record.source_key, None, "",
                                                                    None, self.now()))
        for mailbox, records in intents.items():
            self.store.put_target_records(self.profile.name, mailbox, records)
        requests: list[BatchRequest] = []
        for i, (job, body) in enumerate(copies):
            requests.append(BatchRequest("DELETE", job.url, id=f"drop{i}"))
            requests.append(BatchRequest("POST", job.url.rsplit("/", 1)[0], body=body, id=f"copy{i}",
                                         depends_on=(f"drop{i}",)))
        results = self.client.batch(requests)
        for i, (job, _) in enumerate(copies):
            self._replaced(job, results[2 * i], results[2 * i + 1])

    def _copy(self, job: PhotoJob, contact: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in contact.items() if k in WRITABLE_CONTACT_PROPERTIES and v not in (None, "", [], {})}
        body["singleValueExtendedProperties"] = contact_tag_properties(self.profile.name, job.record.source_key)
        return body

    def _replaced(self, job: PhotoJob, drop: BatchResult, copy: BatchResult) -> None:
        """Record the copy; after a failure keep whatever record lets the next run finish the job."""
        if copy.ok and isinstance(copy.body, dict) and copy.body.get("id"):
            self._keep(replace(job.record, contact_id=str(copy.body["id"]), change_key=copy.body.get("changeKey"),
                               written_at=self.now(), photo_etag=None))
            self.report.counts["photos_removed"] += 1
            return
        if not drop.ok:
            if not drop.in_doubt:
                # The original is still there (or was deleted on a phone meanwhile): its record stands, and
                # the nightly drift applies the profile's policy to a deletion.
                self._keep(job.record)
            if drop.status == 429:
                self.report.counts["photos_deferred"] += 1
            elif drop.status != 404:
                self._error(job, f"photo not removed (contact not replaced): {_describe(drop.status, drop.error)}")
            return
        # The original is gone and the copy is not (known to be) there: the in-flight record stays, so the
        # next run adopts the copy if it landed, or creates the contact again from the source.
        self._error(job, f"photo removed, contact not yet re-created: {_describe(copy.status, copy.error)}")

    # --- records and errors -----------------------------------------------------------------------------

    def _written(self, job: PhotoJob, etag: str | None, change_key: str | None) -> None:
        self._keep(replace(job.record, photo_etag=etag, change_key=change_key or job.record.change_key,
                           written_at=self.now()))
        self.report.counts["photos_set" if etag is not None else "photos_cleared"] += 1

    def _keep(self, record: TargetRecord) -> None:
        self.records.setdefault(record.mailbox, {})[record.source_key] = record

    def _error(self, job: PhotoJob, what: str) -> None:
        self.report.counts["photos_failed"] += 1
        self.report.errors.append(f"{job.name}: {what}")
        log.warning("profile %s: mailbox %s, %s: %s", self.profile.name, job.mailbox, job.record.source_key, what)

    def flush(self) -> None:
        for mailbox, records in self.records.items():
            self.store.put_target_records(self.profile.name, mailbox, records.values())
        self.records = {}


def _change_key(result: BatchResult) -> str | None:
    body = result.body if isinstance(result.body, dict) else {}
    value = body.get("changeKey") if result.ok else None
    return value if isinstance(value, str) else None


def _describe(status: int, error: GraphError | None) -> str:
    """Status, code and Graph's request-id (for support); never the photo or the contact's fields."""
    if error is None:
        return f"{status}"
    return f"{status} {error.code} (request-id {error.request_id})".strip()
