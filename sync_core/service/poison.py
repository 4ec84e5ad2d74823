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
from typing import Any

from sync_core.service.queue_messages import POISON_SUFFIX, profile_of
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.poison")

POISON_DOC = "poison"
FAILURE_DOC = "queue-failure"
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
    key = f"{now}|{queue}|{message_id or _digest(queue, text)[:16]}"
    record = PoisonRecord(key, queue, message_id, profile_of(text), reason[:MAX_REASON_CHARS],
                          text[:MAX_BODY_CHARS], dequeue_count, now)
    store.put_doc(POISON_DOC, key, {
        "queue": record.queue, "message_id": record.message_id, "profile": record.profile,
        "reason": record.reason, "body": record.body, "dequeue_count": record.dequeue_count,
        "recorded_at": record.recorded_at,
    })
    log.error("poison message on %s (id %s, profile %s, tries %d): %s", queue, message_id or "-",
              record.profile or "-", dequeue_count, record.reason)
    return record


def note_failure(store: StateStore, queue: str, body: bytes | str, error: BaseException) -> None:
    """Remember why processing `body` failed this time, for the poison record if the tries run out."""
    text = _text(body)
    reason = f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]
    key = _digest(queue, text)
    try:
        found = store.get_doc(FAILURE_DOC, key)
        tries = int(found[0].get("tries", 0)) + 1 if found is not None else 1
        store.put_doc(FAILURE_DOC, key, {"queue": queue, "reason": reason, "tries": tries})
    except Exception:  # the store may be what failed; the host's retry still happens
        log.warning("could not record the failure reason of a %s message", queue, exc_info=True)


def record_from_poison_queue(store: StateStore, poison_queue: str, message_id: str, body: bytes | str
                             ) -> PoisonRecord:
    """Record a message the host moved to `<queue>-poison`, with the last failure and the tries noted for it."""
    queue = poison_queue.removesuffix(POISON_SUFFIX)
    text = _text(body)
    digest = _digest(queue, text)
    found = store.get_doc(FAILURE_DOC, digest)
    reason = str(found[0].get("reason", "")) if found is not None else ""
    tries = int(found[0].get("tries", 0)) if found is not None else 0
    record = record_poison(store, queue, message_id, text,
                           f"failed on every try; last error: {reason}" if reason else
                           "failed on every try (no reason was recorded)", tries)
    if found is not None:
        store.delete_doc(FAILURE_DOC, digest)
    return record


def list_poison(store: StateStore) -> list[PoisonRecord]:
    """Every poison record, oldest first."""
    return [_record(key, data) for key, data in store.list_docs(POISON_DOC)]


def _record(key: str, data: dict[str, Any]) -> PoisonRecord:
    profile = data.get("profile")
    return PoisonRecord(key, str(data.get("queue", "")), str(data.get("message_id", "")),
                        profile if isinstance(profile, str) else None, str(data.get("reason", "")),
                        str(data.get("body", "")), int(data.get("dequeue_count", 0) or 0),
                        str(data.get("recorded_at", "")))


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _digest(queue: str, text: str) -> str:
    return hashlib.sha256(f"{queue}\n{text}".encode("utf-8", errors="replace")).hexdigest()
