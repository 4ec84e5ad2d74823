"""What each queue message and timer of the function app does, as calls into the use cases.

A message that can never succeed (it does not parse, names a profile or group the configuration does not
resolve, or finds a state store made for another tenant or Graph endpoint) is recorded as poison at once and
not retried; nothing of its work is done. Any other failure is noted (for the poison record,
should every try fail) and raised again, so the Functions host retries the message up to maxDequeueCount
times and then moves it to `<queue>-poison`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sync_core.core.profile import ConfigError
from sync_core.settings import LEASE_SECONDS
from sync_core.state.base import StateMismatch
from sync_core.state.leases import take_over_stale_pending

from . import poison
from .doctor import doctor
from .groups import GroupConfigError
from .push import PushPart, push_part
from .queue_messages import (
    PUSH_TARGETS_QUEUE,
    RECONCILE_TARGETS_POISON_QUEUE,
    RECONCILE_TARGETS_QUEUE,
    SYNC_SOURCE_QUEUE,
    BadMessage,
    LifecycleMessage,
    ReconcileMessage,
    SourceMessage,
    SyncMessage,
    parse_push_message,
    parse_reconcile_group_message,
    parse_source_message,
    sync_lease,
)
from .reconcile_groups import GroupOutcome, give_up_group, run_group, start_reconcile
from .runtime import PushMessage, Runtime
from .state_identity import claim_state
from .subscriptions import SubscriptionsReport, ensure_subscriptions, handle_lifecycle
from .sync import sync_profile

log = logging.getLogger("galsync.queue")

# The stale-flag sweep runs every third of a lease ttl, so a change notified while a worker died waits about
# a ttl and a third at most for its sync, even when no further notification comes.
STALE_PENDING_SCHEDULE = "*/20 * * * * *"

_PERMANENT = (BadMessage, ConfigError, GroupConfigError, StateMismatch)


class QueueFanOut:
    """Fan-out for the function app: each push becomes one push-targets message (the queue output binding)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def push(self, message: PushMessage) -> None:
        self.messages.append(json.dumps(message.to_json()))


@dataclass(frozen=True)
class SourceOutcome:
    """Messages a sync-source message leads to: pushes (push-targets), resyncs (sync-source) and groups of
    targets to reconcile (reconcile-targets)."""

    push: tuple[str, ...] = ()
    resync: tuple[str, ...] = ()
    reconcile: tuple[str, ...] = ()


def run_source_message(rt: Runtime, body: bytes | str, *, message_id: str = "",
                       dequeue_count: int = 0) -> SourceOutcome:
    """Process one sync-source message: a sync, a reconcile or a lifecycle event."""
    try:
        message = parse_source_message(body)
        if not isinstance(message, LifecycleMessage):
            rt.config.profile(message.profile)  # a profile the configuration no longer has: ConfigError
        claim_state(rt)
        return _run_source(rt, message)
    except _PERMANENT as error:
        poison.record_poison(rt.store, SYNC_SOURCE_QUEUE, message_id, body, str(error), dequeue_count)
        return SourceOutcome()
    except Exception as error:
        poison.note_failure(rt.store, SYNC_SOURCE_QUEUE, body, error)
        raise


def _run_source(rt: Runtime, message: SourceMessage) -> SourceOutcome:
    if isinstance(message, SyncMessage):
        fanout = QueueFanOut()
        report = sync_profile(rt, message.profile, fanout)
        log.info("sync-source: profile %s (%s): %s, %d push message(s)", message.profile,
                 message.reason or "-", report.outcome, len(fanout.messages))
        return SourceOutcome(push=tuple(fanout.messages))
    if isinstance(message, ReconcileMessage):
        groups, finished = start_reconcile(rt, message.profile, rt.settings.reconcile_targets_per_message)
        if finished is not None:
            log_doctor_summary(rt, message.profile)
        return SourceOutcome(reconcile=tuple(g.to_json() for g in groups))
    profiles = handle_lifecycle(rt, message.subscription_id, message.event)
    return SourceOutcome(resync=tuple(SyncMessage(p, f"lifecycle:{message.event}").to_json() for p in profiles))


def log_doctor_summary(rt: Runtime, profile: str) -> None:
    """After the nightly reconcile, the doctor's verdict in the function's log: counts and topics only (its
    findings name contacts, which never go to the log at INFO, I7); `galsync doctor` shows the details.

    Logged once per profile and night, by whichever group message finishes the run: its probes (permissions,
    subscriptions, delta links) are profile-wide, so a verdict per group would repeat them and say the same.
    A verdict that cannot be made is logged as such; it never fails the reconcile that is already recorded."""
    try:
        report = doctor(rt, [profile])
    except Exception as error:
        log.warning("doctor: profile %s: no verdict: %s", profile, type(error).__name__)
        return
    foreign = sum(len(t.foreign) for p in report.profiles for t in p.checked_targets)
    topics = sorted({f.topic for f in report.findings if f.severity in ("problem", "warning")})
    log.info("doctor: profile %s: problems=%d warnings=%d missing_permissions=%s shared_targets=%d "
             "foreign_contacts=%d topics=%s", profile, report.problems, report.warnings,
             ",".join(report.missing_permissions) or "none", len(report.shared_targets), foreign,
             ",".join(topics) or "none")


def run_push_message(rt: Runtime, body: bytes | str, *, message_id: str = "",
                     dequeue_count: int = 0) -> PushPart | None:
    """Process one push-targets message: plan and write one chunk of target mailboxes, at most
    GALSYNC_WRITES_PER_MESSAGE writes; what it wrote and the message that does the rest (for the push-targets
    queue), or None for a message recorded as poison."""
    try:
        message = parse_push_message(body)
        rt.config.profile(message.profile)
        claim_state(rt)
        return push_part(rt, message)
    except _PERMANENT as error:
        poison.record_poison(rt.store, PUSH_TARGETS_QUEUE, message_id, body, str(error), dequeue_count)
        return None
    except Exception as error:
        poison.note_failure(rt.store, PUSH_TARGETS_QUEUE, body, error)
        raise


def run_reconcile_group_message(rt: Runtime, body: bytes | str, *, message_id: str = "",
                                dequeue_count: int = 0) -> GroupOutcome | None:
    """Process one reconcile-targets message: reconcile one group of a profile's targets, and when it is the
    last group, log the doctor's verdict; what it found, or None for a message recorded as poison."""
    try:
        message = parse_reconcile_group_message(body)
        rt.config.profile(message.profile)
        claim_state(rt)
        outcome = run_group(rt, message)
    except _PERMANENT as error:
        poison.record_poison(rt.store, RECONCILE_TARGETS_QUEUE, message_id, body, str(error), dequeue_count)
        return None
    except Exception as error:
        poison.note_failure(rt.store, RECONCILE_TARGETS_QUEUE, body, error)
        raise
    if outcome.finished is not None:
        log_doctor_summary(rt, message.profile)
    return outcome


def record_reconcile_poison(rt: Runtime, body: bytes | str, *, message_id: str = "") -> None:
    """A reconcile-targets message the host gave up on: recorded as poison, and its group counted as not
    reconciled, so the profile's run still ends (and the doctor's verdict is logged) when the others are done."""
    record = poison.record_from_poison_queue(rt.store, RECONCILE_TARGETS_POISON_QUEUE, message_id, body)
    try:
        message = parse_reconcile_group_message(body)
        rt.config.profile(message.profile)
    except (BadMessage, ConfigError):
        return  # nothing to count it into
    if give_up_group(rt, message, record.reason) is not None:
        log_doctor_summary(rt, message.profile)


def run_subscriptions(rt: Runtime) -> SubscriptionsReport:
    """The subscriptions timer: create, renew and clean Graph subscriptions, in a store of this tenant only."""
    claim_state(rt)
    return ensure_subscriptions(rt)


def scheduled_syncs(rt: Runtime) -> list[str]:
    """The safety net: a sync message for every profile, whatever the pending flags say (a flag whose message
    was lost would otherwise keep blocking notifications)."""
    return [SyncMessage(name, "timer").to_json() for name in rt.config.names]


def stale_pending_syncs(rt: Runtime) -> list[str]:
    """A sync message for each profile whose pending flag nobody will take (a lease ttl old, no live lease):
    its sync message found the profile's lease held, and the holder died before it ran once more for it (or
    the message sent with the flag was lost). The webhook's next notification would send it too; this sweep
    is for the change notified while the worker died when no further notification comes. Each such flag is
    raised afresh (`take_over_stale_pending`), so later sweeps and the webhook add nothing while this message
    waits; a clear flag, or one a live worker will take, costs one read and sends nothing."""
    stale = [name for name in rt.config.names if take_over_stale_pending(rt.store, sync_lease(name), LEASE_SECONDS)]
    if stale:
        log.warning("stale pending flags: %d profile(s) get their sync again", len(stale))
    return [SyncMessage(name, "stale-pending").to_json() for name in stale]


def scheduled_reconciles(rt: Runtime) -> list[str]:
    return [ReconcileMessage(name).to_json() for name in rt.config.names]
