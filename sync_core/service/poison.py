"""Queue messages galsync gave up on, with the reason, kept in the state store for `galsync status`.

Two ways in: a message that can never work (it does not parse, or names a profile the configuration does
not have) is recorded at once and not retried; a message whose processing keeps failing is retried by the
Functions host up to maxDequeueCount times and then moved to `<queue>-poison`, whose trigger records it.
The host's move drops the exception, so each failed try leaves its reason in a "queue-failure" document
keyed by the message body's digest, which the poison trigger picks up (and removes).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sync_core.service.queue_messages import POISON_SUFFIX, profile_of
from sync_core.state import docs
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.poison")

MAX_BODY_CHARS = 4096  # what a poison record keeps of the message (messages carry ids, never contact data)
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class PoisonRecord:
    key: str
    queue: str
    message_id: str
    profile: str | None
    reason: str
    body: str
    dequeue_count: int
    recorded_at: str


def record_poison(store: StateStore, queue: str, message_id: str, body: bytes | str, reason: str,
                  dequeue_count: int = 0) -> PoisonRecord:
    """Keep a message that will not be processed, with why; returns what was stored."""
    queue = queue.removesuffix(POISON_SUFFIX)
    text = _text(body)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    key = docs.poison_key(now, queue, message_id or _digest(queue, text)[:16])
    stored = docs.Poison(queue, message_id, profile_of(text), reason[:MAX_REASON_CHARS], text[:MAX_BODY_CHARS],
                         dequeue_count, now)
    docs.write(store, key, stored)
    record = _record(key, stored)
    log.error("poison message on %s (id %s, profile %s, tries %d): %s", queue, message_id or "-",
              record.profile or "-", dequeue_count, record.reason)
    return record


def note_failure(store: StateStore, queue: str, body: bytes | str, error: BaseException) -> None:
    """Remember why processing `body` failed this time, for the poison record if the tries run out."""
    text = _text(body)
    reason = f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]
    key = _digest(queue, text)
    try:
        found = docs.read(store, docs.QueueFailure, key)
        tries = found.tries + 1 if found is not None else 1
        docs.write(store, key, docs.QueueFailure(queue, reason, tries))
    except Exception:  # the store may be what failed; the host's retry still happens
        log.warning("could not record the failure reason of a %s message", queue, exc_info=True)


def record_from_poison_queue(store: StateStore, poison_queue: str, message_id: str, body: bytes | str
                             ) -> PoisonRecord:
    """Record a message the host moved to `<queue>-poison`, with the last failure and the tries noted for it."""
    queue = poison_queue.removesuffix(POISON_SUFFIX)
    text = _text(body)
    digest = _digest(queue, text)
    found = _failure_note(store, digest)
    reason, tries = (found.reason, found.tries) if found is not None else ("", 0)
    record = record_poison(store, queue, message_id, text,
                           f"failed on every try; last error: {reason}" if reason else
                           "failed on every try (no reason was recorded)", tries)
    if found is not None:
        docs.delete(store, docs.QueueFailure, digest)
    return record


def list_poison(store: StateStore) -> list[PoisonRecord]:
    """Every poison record, oldest first; one that cannot be read is listed with the error as its reason."""
    out: list[PoisonRecord] = []

    def damaged(key: str, error: docs.DocumentError) -> None:
        out.append(PoisonRecord(key, "?", "", None, str(error), "", 0, docs.poison_recorded_at(key)))

    out += [_record(key, doc) for key, doc in docs.read_all(store, docs.Poison, on_damaged=damaged)]
    return sorted(out, key=lambda record: record.key)


def _record(key: str, doc: docs.Poison) -> PoisonRecord:
    return PoisonRecord(key, doc.queue, doc.message_id, doc.profile, doc.reason, doc.body, doc.dequeue_count,
                        doc.recorded_at)


def _failure_note(store: StateStore, digest: str) -> docs.QueueFailure | None:
    """The failure noted for a message; a note that cannot be read counts as one without a reason."""
    try:
        return docs.read(store, docs.QueueFailure, digest)
    except docs.DocumentError as error:
        log.warning("%s", error)
        return docs.QueueFailure()


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _digest(queue: str, text: str) -> str:
    return hashlib.sha256(f"{queue}\n{text}".encode("utf-8", errors="replace")).hexdigest()
