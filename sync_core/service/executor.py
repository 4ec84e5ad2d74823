"""Apply planned actions to target folders through Graph `$batch`, then record what was written.

Order of writes is what makes a crash harmless (I2): before a contact is created, its target record is
written with no contact id ("create in flight"). If the process dies after Graph created the contact but
before the record names it, the next plan sees the in-flight record and yields `Create(recover=True)`,
which looks for the contact carrying this source's hidden tag and adopts it instead of creating another.
A create that Graph definitely refused drops its in-flight record again, so it costs no lookup later.

All targets of one push go into one `client.batch` call, so the client can keep every mailbox busy up to
Graph's per-mailbox limit at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sync_core.core.actions import (
    Action,
    Create,
    Delete,
    DeleteForeign,
    Forget,
    Record,
    SetPhoto,
    Update,
)
from sync_core.core.fingerprint import fingerprint
from sync_core.core.mapping import normalise_contact
from sync_core.core.profile import Profile
from sync_core.core.records import TargetRecord
from sync_core.core.tags import read_contact_tag
from sync_core.graph import BatchRequest, BatchResult, GraphClient, MaybeApplied, NotFound, TransientError
from sync_core.state.base import StateStore

from .contact_photos import write_photos
from .folder_listing import contact_url, list_tagged_contacts

log = logging.getLogger("galsync.executor")


@dataclass
class TargetWork:
    """The actions for one target folder, with the records they were planned from."""

    mailbox: str
    folder_id: str
    actions: Sequence[Action]
    records: Mapping[str, TargetRecord]
    # The Create that brings back a contact deleted on a phone (for an Update that came back 404).
    recreate: Callable[[str], Create | None] | None = None


@dataclass
class ExecReport:
    """What a push did; counts only (no contact data), for logs, run history and tests."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # "mailbox key: status code (request-id)"

    @property
    def writes(self) -> int:
        return sum(self.counts[k] for k in ("created", "updated", "deleted", "adopted", "foreign_deleted"))

    def merge(self, other: ExecReport) -> None:
        self.counts.update(other.counts)
        self.errors += other.errors


# What the executor reads from the answer to a create or an adoption; the rest of the contact is not kept.
CREATED_FIELDS = ("id", "changeKey")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Write(BatchRequest):
    """A batch request with what to record when it is answered (one object per write: a fill holds 25,000)."""

    work: TargetWork
    action: Action
    intent: bool = False  # an in-flight record was written for this create


def execute(client: GraphClient, store: StateStore, profile: Profile, works: Sequence[TargetWork],
            now: Callable[[], str]) -> ExecReport:
    """Apply each target's actions; record results in the state store; never raise for one contact's failure."""
    report = ExecReport()
    works = [w for w in works if w.actions]
    if not works:
        return report
    found = _find_tagged(client, profile, [w for w in works if _needs_lookup(w.actions)])
    pending: list[_Write] = []
    # Records written together carry one time (written_at is for people: "last written at").
    written_at = now()
    for work in works:
        pending += _prepare(client, store, profile, work, found.get(work.mailbox, {}), written_at, report)
    retry: list[_Write] = []
    outcome = _Outcome()
    results = _run(client, pending)
    written_at = now()
    for item, result in zip(pending, results, strict=True):
        retry += _apply_result(outcome, profile, item, result, written_at, report)
    outcome.flush(store, profile)
    if retry:
        # Contacts deleted on a phone whose update came back 404, recreated per policy.
        results = _run(client, retry)
        written_at = now()
        for item, result in zip(retry, results, strict=True):
            _apply_result(outcome, profile, item, result, written_at, report)
        outcome.flush(store, profile)
    # Photos (issue 10): SetPhoto and Create.photo_etag, after every field write is recorded, so a photo
    # never holds a field back and a photo failure is a per-contact error (contact_photos.py).
    write_photos(client, store, profile, works, now, report)
    return report


class _Outcome:
    """Record writes and deletions collected from batch results, flushed per mailbox in transactions."""

    def __init__(self) -> None:
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

    def flush(self, store: StateStore, profile: Profile) -> None:
        for mailbox, records in self.put.items():
            if records:
                store.put_target_records(profile.name, mailbox, records.values())
        for mailbox, keys in self.drop.items():
            if keys:
                store.delete_target_records(profile.name, mailbox, sorted(keys))
        self.put, self.drop = {}, {}


def _needs_lookup(actions: Sequence[Action]) -> bool:
    return any((isinstance(a, Create) and a.recover) or (isinstance(a, Delete) and a.contact_id is None)
               for a in actions)


def _find_tagged(client: GraphClient, profile: Profile, works: Sequence[TargetWork]
                 ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """For targets with a create in doubt: source key -> contacts in the folder carrying that key's tag."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for work in works:
        by_key: dict[str, list[dict[str, Any]]] = {}
        items = list_tagged_contacts(client, work.mailbox, work.folder_id, ("id", "changeKey"))
        try:
            for item in items:
                tag = read_contact_tag(item)
                if tag is not None and tag.profile == profile.name:
                    by_key.setdefault(tag.source_key, []).append(item)
        except NotFound:
            # The mailbox (a deleted user's) or the folder is gone, and with it every contact of ours: nothing
            # to adopt or delete. Raising would fail this push, and the replayed push, forever (chaos suite).
            log.info("profile %s: mailbox %s or its managed folder no longer exists", profile.name, work.mailbox)
            by_key = {}
        out[work.mailbox] = by_key
        log.info("profile %s: looked up %d tagged contacts in mailbox %s to recover in-flight writes",
                 profile.name, sum(len(v) for v in by_key.values()), work.mailbox)
    return out


def _prepare(client: GraphClient, store: StateStore, profile: Profile, work: TargetWork,
             found: Mapping[str, list[dict[str, Any]]], written_at: str, report: ExecReport
             ) -> list[_Write]:
    """Turn actions into batch requests; write in-flight records and state-only actions first."""
    out: list[_Write] = []
    intents: list[TargetRecord] = []
    records_now: list[TargetRecord] = []
    forget: list[str] = []
    url = contact_url(work.mailbox, work.folder_id)
    for action in work.actions:
        if isinstance(action, Create):
            existing = found.get(action.source_key, []) if action.recover else []
            if existing:
                contact_id = str(existing[0]["id"])
                out.append(_Write("PATCH", contact_url(work.mailbox, work.folder_id, contact_id),
                                  body=action.adoption_patch(), keep=CREATED_FIELDS, work=work, action=action))
                continue
            intents.append(TargetRecord(work.mailbox, action.source_key, None, "", None, written_at))
            out.append(_create_write(work, url, action))
        elif isinstance(action, Update):
            out.append(_Write("PATCH", contact_url(work.mailbox, work.folder_id, action.contact_id),
                              body=dict(action.changes), work=work, action=action))
        elif isinstance(action, Delete):
            ids = [action.contact_id] if action.contact_id else [str(c["id"]) for c in found.get(action.source_key, [])]
            if not ids:
                forget.append(action.source_key)
                report.counts["forgotten"] += 1
            for contact_id in ids:
                out.append(_Write("DELETE", contact_url(work.mailbox, work.folder_id, contact_id),
                                  work=work, action=replace(action, contact_id=contact_id)))
        elif isinstance(action, DeleteForeign):
            out.append(_Write("DELETE", contact_url(work.mailbox, work.folder_id, action.contact_id),
                              work=work, action=action))
        elif isinstance(action, Record):
            old = work.records.get(action.source_key)
            records_now.append(TargetRecord(
                work.mailbox, action.source_key, action.contact_id, action.fingerprint, action.change_key,
                old.written_at if old is not None else written_at, old.photo_etag if old is not None else None,
                deleted_on_device=action.deleted_on_device))
            report.counts["recorded"] += 1
        elif isinstance(action, Forget):
            forget.append(action.source_key)
            report.counts["forgotten"] += 1
        elif isinstance(action, SetPhoto):
            pass  # written after the field writes: see write_photos in execute()
    if intents:
        store.put_target_records(profile.name, work.mailbox, intents)
    if records_now:
        store.put_target_records(profile.name, work.mailbox, records_now)
    if forget:
        store.delete_target_records(profile.name, work.mailbox, forget)
    return out


def _create_write(work: TargetWork, url: str, create: Create) -> _Write:
    body = create.body if type(create.body) is dict else dict(create.body)  # the planner's dict, not copied
    return _Write("POST", url, body=body, keep=CREATED_FIELDS, work=work, action=create, intent=True)


def _run(client: GraphClient, pending: Sequence[_Write]) -> list[BatchResult]:
    if not pending:
        return []
    return client.batch(pending)


def _apply_result(outcome: _Outcome, profile: Profile, item: _Write, result: BatchResult,
                  written_at: str, report: ExecReport) -> list[_Write]:
    """Record one write's outcome; return follow-up writes (a recreate after a 404)."""
    work, action, mailbox = item.work, item.action, item.work.mailbox
    body = result.body if isinstance(result.body, dict) else {}
    if result.ok:
        if isinstance(action, Create):
            outcome.record(TargetRecord(
                mailbox, action.source_key, str(body.get("id")), action.fingerprint, body.get("changeKey"),
                written_at))
            report.counts["created" if item.intent else "adopted"] += 1
        elif isinstance(action, Update):
            old = work.records.get(action.source_key)
            outcome.record(TargetRecord(
                mailbox, action.source_key, action.contact_id, action.fingerprint,
                _change_key_if_as_desired(profile, action, body), written_at,
                old.photo_etag if old is not None else None))
            report.counts["updated"] += 1
        elif isinstance(action, Delete):
            _drop_record(outcome, profile, work, action)
            report.counts["deleted"] += 1
        elif isinstance(action, DeleteForeign):
            report.counts["foreign_deleted"] += 1
        return []
    status = result.status
    if status == 404 and isinstance(action, Delete):
        _drop_record(outcome, profile, work, action)  # already gone: the goal is reached
        report.counts["already_deleted"] += 1
        return []
    if status == 404 and isinstance(action, Update | Create) and not item.intent:
        # The contact was deleted outside galsync (on a phone) since we last wrote it.
        return _deleted_on_device(outcome, profile, item, written_at, report)
    _failed(outcome, profile, item, result, report)
    return []


def _change_key_if_as_desired(profile: Profile, action: Update, body: Mapping[str, Any]) -> str | None:
    """The changeKey to record after an update, or None when the contact Graph returned is not as desired.

    An update sends only the fields that changed at the source. If a phone had edited another of galsync's
    fields since galsync's last write, recording the new changeKey would hide that edit from the nightly
    reconcile forever (found by the chaos suite). Without a changeKey the reconcile sees the contact as edited
    on a device and puts galsync's fields back (I3); an if_empty field the user filled costs a record, no write.
    """
    shown = {k: v for k, v in normalise_contact(body).items() if k in profile.mapped_fields}
    change_key = body.get("changeKey")
    return str(change_key) if change_key and fingerprint(shown) == action.fingerprint else None


def _deleted_on_device(outcome: _Outcome, profile: Profile, item: _Write, written_at: str,
                       report: ExecReport) -> list[_Write]:
    work, action = item.work, item.action
    key = action.source_key  # type: ignore[union-attr]
    if profile.policies.deleted_on_device == "respect":
        old = work.records.get(key)
        fp = old.fingerprint if old is not None else ""
        outcome.record(TargetRecord(work.mailbox, key, None, fp, None, written_at, deleted_on_device=True))
        report.counts["deletion_respected"] += 1
        return []
    create = replace(action, recover=False) if isinstance(action, Create) else (
        work.recreate(key) if work.recreate is not None else None)
    if create is None:
        outcome.forget(work.mailbox, key)
        report.counts["forgotten"] += 1
        return []
    outcome.record(TargetRecord(work.mailbox, key, None, "", None, written_at))
    report.counts["recreated"] += 1
    return [_create_write(work, contact_url(work.mailbox, work.folder_id), create)]


def _drop_record(outcome: _Outcome, profile: Profile, work: TargetWork, action: Delete) -> None:
    record = work.records.get(action.source_key)
    if record is None or record.contact_id in (None, action.contact_id):
        outcome.forget(work.mailbox, action.source_key)


def _failed(outcome: _Outcome, profile: Profile, item: _Write, result: BatchResult, report: ExecReport) -> None:
    """A write that did not succeed: keep an in-flight record only if the create may have happened."""
    error = result.error
    code = getattr(error, "code", "") or str(result.status)
    key = getattr(item.action, "source_key", getattr(item.action, "contact_id", "?"))
    in_doubt = result.status == 0 or isinstance(error, MaybeApplied | TransientError) or result.status >= 500
    if item.intent and not in_doubt:
        outcome.forget(item.work.mailbox, key)
    report.counts["failed"] += 1
    report.errors.append(f"{item.work.mailbox} {key}: {result.status} {code} (request-id {result.request_id})")
    log.warning("profile %s: %s to mailbox %s failed: %s %s (request-id %s)", profile.name,
                item.method, item.work.mailbox, result.status, code, result.request_id)
