"""Apply planned actions to target folders through Graph `$batch`, then record what was written.

Order of writes is what makes a crash harmless (I2): before a contact is created, its target record is
written with no contact id ("create in flight"). If the process dies after Graph created the contact but
before the record names it, the next plan sees the in-flight record and yields `Create(recover=True)`,
which looks for the contact carrying this source's hidden tag and adopts it instead of creating another.
A create that Graph definitely refused drops its in-flight record again, so it costs no lookup later.

All targets of one push go into one `client.batch` call, so the client can keep every mailbox busy up to
Graph's per-mailbox limit at once; under a lease, that call is cut into waves (waves.py), each recorded as
soon as it is answered (its creates' in-flight records written just before it goes), and once the lease is
lost the rest is not sent. An `execute` killed mid-way leaves only the wave it was sending in doubt (a push
has at most two of them out at once, one slice of keys each: push.py).

Each kind of action has its effect in one place: `_prepare` matches it once, and its section below says what it
writes before the batch and, through the function its `_Write` carries, what its answer records.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, assert_never

from sync_core.core.actions import (
    Action,
    Create,
    Delete,
    DeleteForeign,
    DeleteMoved,
    Forget,
    Record,
    SetPhoto,
    Update,
)
from sync_core.core.categories import CATEGORIES, categories_of, ours_present
from sync_core.core.fingerprint import fingerprint
from sync_core.core.mapping import observed_fields
from sync_core.core.profile import Profile
from sync_core.core.records import TargetRecord
from sync_core.core.tags import read_contact_tag
from sync_core.cpu_roles import PLAN, RECORD, role
from sync_core.graph import BatchRequest, BatchResult, GraphClient, NotFound
from sync_core.state.base import StateStore
from sync_core.state.leases import LeaseLost

from .contact_photos import write_photos
from .folder_listing import contact_url, list_tagged_contacts
from .owner_parts import SHARED, OwnerParts, adoption_body, read_owner_parts, update_body
from .target_work import ExecReport, TargetWork, WriteCounter
from .waves import run_in_waves

log = logging.getLogger("galsync.executor")


# What the executor reads from the answer to a create or an adoption; the rest of the contact is not kept.
CREATED_FIELDS = ("id", "changeKey")

A = TypeVar("A", bound=Action)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Write(BatchRequest, Generic[A]):
    """A batch request for one action, and the function its answer goes to (the action's own, below).

    One object per write: a push holds one slice of them at a time (key_slices.py).
    """

    work: TargetWork
    action: A
    answered: Callable[[_Recorder, _Write[A], BatchResult], list[_Write[Any]]]
    in_flight: bool = False  # a create whose in-flight record is written just before it is sent


def execute(client: GraphClient, store: StateStore, profile: Profile, works: Sequence[TargetWork],
            now: Callable[[], str], held: Callable[[], bool] | None = None,
            counter: WriteCounter | None = None) -> ExecReport:
    """Apply each target's actions; record results in the state store; never raise for one contact's failure.

    `held` (the lease heartbeat's) is asked between write waves: once it is False nothing more is sent, what
    was sent is recorded, and LeaseLost is raised. `counter` hears of the writes wave by wave.
    """
    report = ExecReport()
    works = [w for w in works if w.actions]
    if not works:
        return report
    found = _find_tagged(client, profile, [w for w in works if _needs_lookup(w.actions)])
    parts = read_owner_parts(client, works)
    pending: list[_Write[Any]] = []
    # Records written together carry one time (written_at is for people: "last written at").
    written_at = now()
    with role(PLAN):
        for work in works:
            pending += _prepare(store, profile, work, found.get(work.mailbox, {}), parts, written_at, report)
    recorder = _Recorder(profile, report)
    retry = _send(client, store, recorder, pending, now, held, counter)
    if retry:
        # Contacts deleted on a phone whose write came back 404, recreated per policy.
        _send(client, store, recorder, retry, now, held, counter)
    if held is not None and (report.counts["not_sent"] or not held()):
        raise LeaseLost(f"profile {profile.name}: the lease on the target mailboxes was lost, so "
                        f"{report.counts['not_sent']} write(s) were not sent, nor any planned after them; the "
                        "next run sends them")
    # SetPhoto and Create.photo_etag, after every field write is recorded, so a photo never holds a field back
    # and a photo failure is a per-contact error (contact_photos.py).
    write_photos(client, store, profile, works, now, report)
    return report


def _send(client: GraphClient, store: StateStore, recorder: _Recorder, writes: Sequence[_Write[Any]],
          now: Callable[[], str], held: Callable[[], bool] | None, counter: WriteCounter | None
          ) -> list[_Write[Any]]:
    """Send the writes, hand each answer to its action's function, store what they recorded; return the
    writes those functions asked for next.

    Under a lease the writes go in waves, and each wave is recorded as soon as it is answered, with the
    in-flight records of its creates written just before it is sent: a push killed mid-way leaves its
    finished waves recorded and only the wave it was sending in doubt, so the next push resumes there.
    """
    follow_up: list[_Write[Any]] = []

    def sending(wave: Sequence[_Write[Any]]) -> None:
        with role(RECORD):
            _put_in_flight(store, recorder.profile, wave, now())

    def answered(pairs: Sequence[tuple[_Write[Any], BatchResult]]) -> None:
        with role(RECORD):
            recorder.written_at = now()
            before = recorder.report.writes
            for item, result in pairs:
                if result.status == 404:  # a contact deleted on a phone, or its folder or mailbox gone
                    recorder.report.not_found.setdefault(item.work.mailbox, getattr(result.error, "code", ""))
                follow_up.extend(item.answered(recorder, item, result))
            recorder.flush(store)
        if counter is not None:
            counter.written(recorder.report.writes - before)

    if not writes:
        return follow_up
    if counter is not None:
        counter.planned(len(writes))
    if held is None:
        sending(writes)
        answered(list(zip(writes, client.batch(writes), strict=True)))
        return follow_up
    for item in run_in_waves(client, writes, held, lambda write: write.work.mailbox, sending, answered):
        recorder.not_sent(item)
    return follow_up


def _put_in_flight(store: StateStore, profile: Profile, writes: Sequence[_Write[Any]], written_at: str) -> None:
    """Before creates are sent: a record with no contact id for each (the next plan looks for it by its tag)."""
    by_mailbox: dict[str, list[TargetRecord]] = {}
    for item in writes:
        if item.in_flight:
            by_mailbox.setdefault(item.work.mailbox, []).append(
                TargetRecord(item.work.mailbox, item.action.source_key, None, "", None, written_at))
    for mailbox, records in by_mailbox.items():
        store.put_target_records(profile.name, mailbox, records)


def _needs_lookup(actions: Sequence[Action]) -> bool:
    return any((isinstance(a, Create) and a.recover) or (isinstance(a, Delete) and a.contact_id is None)
               for a in actions)


def _find_tagged(client: GraphClient, profile: Profile, works: Sequence[TargetWork]
                 ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """For targets with a create in doubt: source key -> contacts in the folder carrying that key's tag."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for work in works:
        by_key: dict[str, list[dict[str, Any]]] = {}
        items = list_tagged_contacts(client, work.mailbox, work.folder_id, ("id", "changeKey", *SHARED))
        try:
            for item in items:
                tag = read_contact_tag(item)
                if tag is not None and tag.profile == profile.name:
                    by_key.setdefault(tag.source_key, []).append(item)
        except NotFound:
            # The mailbox (a deleted user's) or the folder is gone, and with it every contact of ours: nothing
            # to adopt or delete. Raising would fail this push, and the replayed push, forever.
            log.info("profile %s: mailbox %s or its managed folder no longer exists", profile.name, work.mailbox)
            by_key = {}
        out[work.mailbox] = by_key
        log.info("profile %s: looked up %d tagged contacts in mailbox %s to recover in-flight writes",
                 profile.name, sum(len(v) for v in by_key.values()), work.mailbox)
    return out


class _Prepared:
    """One target's actions as batch requests, and the records of state-only actions to write first."""

    def __init__(self, work: TargetWork, found: Mapping[str, list[dict[str, Any]]], written_at: str,
                 report: ExecReport) -> None:
        self.work, self.found, self.written_at, self.report = work, found, written_at, report
        self.url = contact_url(work.mailbox, work.folder_id)  # the folder's contacts, shared by its creates
        self.writes: list[_Write[Any]] = []
        self.records: list[TargetRecord] = []
        self.forgotten: list[str] = []

    def write(self, method: str, contact_id: str, action: A,
              answered: Callable[[_Recorder, _Write[A], BatchResult], list[_Write[Any]]], *,
              body: Any = None, keep: tuple[str, ...] | None = None) -> None:
        url = contact_url(self.work.mailbox, self.work.folder_id, contact_id)
        self.writes.append(_Write(method, url, body=body, keep=keep, work=self.work, action=action, answered=answered))

    def forget(self, key: str) -> None:
        self.forgotten.append(key)
        self.report.counts["forgotten"] += 1

    def store(self, store: StateStore, profile: Profile) -> None:
        mailbox = self.work.mailbox
        if self.records:
            store.put_target_records(profile.name, mailbox, self.records)
        if self.forgotten:
            store.delete_target_records(profile.name, mailbox, self.forgotten)


def _prepare(store: StateStore, profile: Profile, work: TargetWork, found: Mapping[str, list[dict[str, Any]]],
             parts: OwnerParts, written_at: str, report: ExecReport) -> list[_Write[Any]]:
    """Turn actions into batch requests; write the records of state-only actions first."""
    prep = _Prepared(work, found, written_at, report)
    for action in work.actions:
        match action:
            case Create():
                _create(prep, action)
            case Update():
                body = update_body(action, parts.get((work.mailbox, action.contact_id)))
                prep.write("PATCH", action.contact_id, action, _updated, body=body)
            case Delete():
                _delete(prep, action)
            case DeleteForeign():
                prep.write("DELETE", action.contact_id, action, _foreign_deleted)
            case DeleteMoved():
                prep.write("DELETE", action.contact_id, action, _moved_deleted)
            case Record():
                _record(prep, action)
            case Forget():
                prep.forget(action.source_key)
            case SetPhoto():
                pass  # written after the field writes: see write_photos in execute()
            case _:
                assert_never(action)
    prep.store(store, profile)
    return prep.writes


class _Recorder:
    """What the answers to a push's writes change: target records, flushed per mailbox, and the report."""

    def __init__(self, profile: Profile, report: ExecReport) -> None:
        self.profile, self.report = profile, report
        self.written_at = ""
        self.put: dict[str, dict[str, TargetRecord]] = {}
        self.drop: dict[str, set[str]] = {}

    def record(self, record: TargetRecord) -> None:
        dropped = self.drop.get(record.mailbox)
        if dropped:
            dropped.discard(record.source_key)
        put = self.put.get(record.mailbox)
        if put is None:
            put = self.put[record.mailbox] = {}
        put[record.source_key] = record

    def forget(self, mailbox: str, key: str) -> None:
        self.put.get(mailbox, {}).pop(key, None)
        self.drop.setdefault(mailbox, set()).add(key)

    def failed(self, item: _Write[Any], result: BatchResult, *, in_flight: bool = False) -> None:
        """A write that did not succeed. `in_flight`: a create whose in-flight record goes, unless the create
        may have happened (then the next plan looks for the contact by its tag)."""
        error = result.error
        code = getattr(error, "code", "") or str(result.status)
        key = getattr(item.action, "source_key", getattr(item.action, "contact_id", "?"))
        if in_flight and not result.in_doubt:
            self.forget(item.work.mailbox, key)
        self.report.counts["failed"] += 1
        self.report.refused.setdefault(item.work.mailbox, Counter())[(result.status, code)] += 1
        self.report.errors.append(f"{item.work.mailbox} {key}: {result.status} {code} (request-id {result.request_id})")
        log.warning("profile %s: %s to mailbox %s failed: %s %s (request-id %s)", self.profile.name,
                    item.method, item.work.mailbox, result.status, code, result.request_id)

    def not_sent(self, item: _Write[Any]) -> None:
        """A write never sent (the lease was lost): its wave wrote no in-flight record, nothing was created."""
        self.report.counts["not_sent"] += 1

    def flush(self, store: StateStore) -> None:
        for mailbox, records in self.put.items():
            if records:
                store.put_target_records(self.profile.name, mailbox, records.values())
        for mailbox, keys in self.drop.items():
            if keys:
                store.delete_target_records(self.profile.name, mailbox, sorted(keys))
        self.put, self.drop = {}, {}


# ---- one section per action: what it writes, and what its answer records (actions.py says what each means) ----


def _create(prep: _Prepared, action: Create) -> None:
    """An in-flight record, then POST; a recovering create adopts the contact found by its tag instead."""
    existing = prep.found.get(action.source_key, []) if action.recover else []
    if existing:
        body = adoption_body(action.adoption_patch(), existing[0], categories_of(action.body))
        prep.write("PATCH", str(existing[0]["id"]), action, _adopted, body=body, keep=CREATED_FIELDS)
        return
    prep.writes.append(_create_write(prep.work, prep.url, action, in_flight=True))


def _create_write(work: TargetWork, url: str, create: Create, *, in_flight: bool = False) -> _Write[Create]:
    body = create.body if type(create.body) is dict else dict(create.body)  # the planner's dict, not copied
    return _Write("POST", url, body=body, keep=CREATED_FIELDS, work=work, action=create, answered=_created,
                  in_flight=in_flight)


def _created(rec: _Recorder, item: _Write[Create], result: BatchResult) -> list[_Write[Any]]:
    if not result.ok:
        rec.failed(item, result, in_flight=True)
        return []
    action, body = item.action, _body(result)
    rec.record(TargetRecord(item.work.mailbox, action.source_key, str(body.get("id")), action.fingerprint,
                            body.get("changeKey"), rec.written_at))
    rec.report.counts["created"] += 1
    return []


def _adopted(rec: _Recorder, item: _Write[Create], result: BatchResult) -> list[_Write[Any]]:
    action = item.action
    if result.status == 404:
        return _deleted_on_device(rec, item.work, action.source_key, replace(action, recover=False))
    if not result.ok:
        rec.failed(item, result)
        return []
    body = _body(result)
    rec.record(TargetRecord(item.work.mailbox, action.source_key, str(body.get("id")), action.fingerprint,
                            body.get("changeKey"), rec.written_at))
    rec.report.counts["adopted"] += 1
    return []


def _updated(rec: _Recorder, item: _Write[Update], result: BatchResult) -> list[_Write[Any]]:
    work, action = item.work, item.action
    if result.status == 404:
        create = work.recreate(action.source_key) if work.recreate is not None else None
        return _deleted_on_device(rec, work, action.source_key, create)
    if not result.ok:
        rec.failed(item, result)
        return []
    old = work.records.get(action.source_key)
    rec.record(TargetRecord(work.mailbox, action.source_key, action.contact_id, action.fingerprint,
                            _change_key_if_as_desired(rec.profile, action, _body(result)), rec.written_at,
                            old.photo_etag if old is not None else None))
    rec.report.counts["updated"] += 1
    return []


def _change_key_if_as_desired(profile: Profile, action: Update, body: Mapping[str, Any]) -> str | None:
    """The changeKey to record after an update, or None when the contact Graph returned is not as desired.

    An update sends only the fields that changed at the source. If a phone had edited another of galsync's
    fields since galsync's last write, recording the new changeKey would hide that edit from the nightly
    reconcile forever. Without a changeKey the reconcile sees the contact as edited on a device and puts
    galsync's fields back (I3); an if_empty field the user filled costs a record, no write.
    """
    shown = {k: v for k, v in observed_fields(body).items() if k in profile.mapped_fields}
    if present := ours_present(categories_of(body), action.categories):
        shown[CATEGORIES] = present  # the names a person added are theirs, not a difference
    change_key = body.get("changeKey")
    return str(change_key) if change_key and fingerprint(shown) == action.fingerprint else None


def _deleted_on_device(rec: _Recorder, work: TargetWork, key: str, create: Create | None) -> list[_Write[Any]]:
    """The contact was deleted outside galsync (on a phone) since galsync last wrote it: respect that, per
    policy, or create it again (`create`; None: the source is no longer wanted, so forget it)."""
    if rec.profile.policies.deleted_on_device == "respect":
        old = work.records.get(key)
        fp = old.fingerprint if old is not None else ""
        rec.record(TargetRecord(work.mailbox, key, None, fp, None, rec.written_at, deleted_on_device=True))
        rec.report.counts["deletion_respected"] += 1
        return []
    if create is None:
        rec.forget(work.mailbox, key)
        rec.report.counts["forgotten"] += 1
        return []
    rec.record(TargetRecord(work.mailbox, key, None, "", None, rec.written_at))
    rec.report.counts["recreated"] += 1
    return [_create_write(work, contact_url(work.mailbox, work.folder_id), create)]


def _delete(prep: _Prepared, action: Delete) -> None:
    """DELETE the contact; without a contact id, every contact carrying the source's tag (none: forget it)."""
    if action.contact_id:
        prep.write("DELETE", action.contact_id, action, _deleted)
        return
    ids = [str(c["id"]) for c in prep.found.get(action.source_key, [])]
    if not ids:
        prep.forget(action.source_key)
    for contact_id in ids:
        prep.write("DELETE", contact_id, replace(action, contact_id=contact_id), _deleted)


def _deleted(rec: _Recorder, item: _Write[Delete], result: BatchResult) -> list[_Write[Any]]:
    if not result.ok and result.status != 404:
        rec.failed(item, result)
        return []
    # Deleted, or already gone: the goal is reached. A record naming another contact stays (this was a duplicate).
    work, action = item.work, item.action
    record = work.records.get(action.source_key)
    if record is None or record.contact_id in (None, action.contact_id):
        rec.forget(work.mailbox, action.source_key)
    rec.report.counts["deleted" if result.ok else "already_deleted"] += 1
    return []


def _foreign_deleted(rec: _Recorder, item: _Write[DeleteForeign], result: BatchResult) -> list[_Write[Any]]:
    if result.ok:
        rec.report.counts["foreign_deleted"] += 1
    else:
        rec.failed(item, result)
    return []


def _moved_deleted(rec: _Recorder, item: _Write[DeleteMoved], result: BatchResult) -> list[_Write[Any]]:
    """The old place's copy is gone (or was already): no record changes, it names the new copy."""
    if not result.ok and result.status != 404:
        rec.failed(item, result)
        return []
    rec.report.counts["deleted" if result.ok else "already_deleted"] += 1
    return []


def _record(prep: _Prepared, action: Record) -> None:
    """No Graph call: the record as the plan says, keeping when it was written and its photo."""
    old = prep.work.records.get(action.source_key)
    prep.records.append(TargetRecord(
        prep.work.mailbox, action.source_key, action.contact_id, action.fingerprint, action.change_key,
        old.written_at if old is not None else prep.written_at, old.photo_etag if old is not None else None,
        deleted_on_device=action.deleted_on_device))
    prep.report.counts["recorded"] += 1


def _body(result: BatchResult) -> dict[str, Any]:
    return result.body if isinstance(result.body, dict) else {}
