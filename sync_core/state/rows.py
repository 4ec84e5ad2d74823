"""Records <-> flat rows: the one place that checks and encodes what the stores persist.

Both stores keep the same columns (SQLite as columns, Table Storage as entity properties), built here, so
a value is rejected the same way by both and reads back the same from both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from sync_core.core.records import Run, SourceRecord, Target, TargetRecord
from sync_core.state import keys
from sync_core.state.base import StateValueError
from sync_core.state.payload import MAX_STRING_UNITS, check_string, from_json, to_json

Row = dict[str, Any]
T = TypeVar("T")

# Run history is ordered by this key ascending: newest started_at first, ties by the run id's key form.
_ORDER_BASE = 10**20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def text(what: str, value: object, *, optional: bool = False) -> str | None:
    """`value` if it is a string a store can hold (or None when `optional`), else StateValueError."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StateValueError(f"{what} must be a string, got {type(value).__name__}")
    return check_string(what, value)


def flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise StateValueError(f"{what} must be true or false, got {value!r}")
    return value


def source_row(record: SourceRecord) -> Row:
    key = keys.check("source key", record.source_key)
    return {
        "source_key": key,
        "fingerprint": text(f"fingerprint of source {key}", record.fingerprint),
        "payload": to_json(f"payload of source {key}", record.payload),
        "photo_etag": text(f"photo_etag of source {key}", record.photo_etag, optional=True),
    }


def source_record(row: Mapping[str, Any]) -> SourceRecord:
    key = row["source_key"]
    return SourceRecord(
        source_key=key,
        fingerprint=row["fingerprint"],
        payload=from_json(f"payload of source {key}", row["payload"]),
        photo_etag=row.get("photo_etag"),
    )


_SHORT = MAX_STRING_UNITS // 2  # a string this short fits a Table property whatever its characters

# The columns of a target record row, in the order `target_record_values` gives them.
TARGET_RECORD_COLUMNS = ("mailbox", "source_key", "contact_id", "fingerprint", "change_key", "written_at",
                         "photo_etag", "deleted_on_device")


def target_record_values(mailbox: str, record: TargetRecord) -> tuple[Any, ...]:
    """The checked values of a target record, in TARGET_RECORD_COLUMNS order (a fill writes 100,000)."""
    key = keys.check("source key", record.source_key)
    if record.mailbox != mailbox:
        raise StateValueError(
            f"target record of source {key} is for mailbox {record.mailbox!r}, not {mailbox!r} as written"
        )
    contact_id, fp, change_key = record.contact_id, record.fingerprint, record.change_key
    written_at, photo_etag, deleted = record.written_at, record.photo_etag, record.deleted_on_device
    if not (  # the usual record passes this quick check without composing the names an error needs
        type(fp) is str and len(fp) <= _SHORT and type(written_at) is str and len(written_at) <= _SHORT
        and (contact_id is None or (type(contact_id) is str and len(contact_id) <= _SHORT))
        and (change_key is None or (type(change_key) is str and len(change_key) <= _SHORT))
        and (photo_etag is None or (type(photo_etag) is str and len(photo_etag) <= _SHORT))
        and type(deleted) is bool
    ):
        what = f"target record of source {key} in mailbox {mailbox}"  # raises naming the value that is wrong
        text(f"contact_id of {what}", contact_id, optional=True)
        text(f"fingerprint of {what}", fp)
        text(f"change_key of {what}", change_key, optional=True)
        text(f"written_at of {what}", written_at)
        text(f"photo_etag of {what}", photo_etag, optional=True)
        flag(f"deleted_on_device of {what}", deleted)
    return (mailbox, key, contact_id, fp, change_key, written_at, photo_etag, deleted)


def target_record_row(mailbox: str, record: TargetRecord) -> Row:
    return dict(zip(TARGET_RECORD_COLUMNS, target_record_values(mailbox, record), strict=True))


def target_record(row: Mapping[str, Any]) -> TargetRecord:
    return TargetRecord(
        mailbox=row["mailbox"],
        source_key=row["source_key"],
        contact_id=row.get("contact_id"),
        fingerprint=row["fingerprint"],
        change_key=row.get("change_key"),
        written_at=row["written_at"],
        photo_etag=row.get("photo_etag"),
        deleted_on_device=bool(row.get("deleted_on_device")),
    )


def target_row(target: Target) -> Row:
    mailbox = keys.check("target mailbox", target.mailbox)
    return {
        "mailbox": mailbox,
        "address": text(f"address of target {mailbox}", target.address),
        "folder_id": text(f"folder_id of target {mailbox}", target.folder_id, optional=True),
        "purpose": text(f"purpose of target {mailbox}", target.purpose, optional=True),
        "active": flag(f"active of target {mailbox}", target.active),
    }


def target(row: Mapping[str, Any]) -> Target:
    return Target(
        mailbox=row["mailbox"],
        address=row.get("address") or "",
        folder_id=row.get("folder_id"),
        purpose=row.get("purpose"),
        active=bool(row["active"]),
    )


def run_row(run: Run) -> Row:
    run_id = keys.check("run_id", run.run_id)
    what = f"run {run_id}"
    counts = dict(run.counts)
    for name, value in counts.items():
        if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, int):
            raise StateValueError(f"counts of {what} must map names to integers, got {name!r}: {value!r}")
    return {
        "run_id": run_id,
        "profile": keys.check(f"profile of {what}", run.profile),
        "kind": text(f"kind of {what}", run.kind),
        "started_at": text(f"started_at of {what}", run.started_at),
        "finished_at": text(f"finished_at of {what}", run.finished_at, optional=True),
        "outcome": text(f"outcome of {what}", run.outcome),
        "counts": to_json(f"counts of {what}", counts),
        "error": text(f"error of {what}", run.error, optional=True),
        "order_key": run_order_key(run_id, run.started_at),
    }


def run(row: Mapping[str, Any]) -> Run:
    return Run(
        run_id=row["run_id"],
        profile=row["profile"],
        kind=row["kind"],
        started_at=row["started_at"],
        finished_at=row.get("finished_at"),
        outcome=row["outcome"],
        counts=from_json(f"counts of run {row['run_id']}", row["counts"]),
        error=row.get("error"),
    )


def run_order_key(run_id: str, started_at: str) -> str:
    """Sorts ascending as newest-first: the inverted start time in microseconds, then the run id's key."""
    try:
        started = datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        raise StateValueError(f"started_at of run {run_id} is {started_at!r}; expected ISO 8601") from None
    if started.tzinfo is None:
        raise StateValueError(f"started_at of run {run_id} is {started_at!r}; it needs a time zone (e.g. Z)")
    micros = (started - _EPOCH) // timedelta(microseconds=1)
    prefix = f"{_ORDER_BASE - micros:021d}{keys.SEPARATOR}"
    return prefix + keys.table_key(run_id, max_units=keys.TABLE_KEY_MAX_UNITS - len(prefix))


def doc_data(what: str, data: object) -> str:
    if not isinstance(data, Mapping):
        raise StateValueError(f"{what} must be a JSON object (a dict), got {type(data).__name__}")
    return to_json(what, data)


def check_ttl(ttl_seconds: float) -> float:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float) or not ttl_seconds > 0:
        raise StateValueError(f"lease ttl_seconds must be a number above 0, got {ttl_seconds!r}")
    return float(ttl_seconds)


def flag_age(now: float, raised_at: float | None) -> float:
    """Seconds a pending flag has been raised; one stored without its time counts as raised at the epoch."""
    return max(0.0, now - (raised_at or 0.0))


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise StateValueError(f"limit must be a whole number of 0 or more, got {limit!r}")
    return limit


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items, consuming `items` lazily (it may be a generator)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
