"""The queue messages the function app passes between its triggers, parsed strictly.

`sync-source` carries `{"type": "sync", "profile": P, "reason": R}`, `{"type": "reconcile", "profile": P}`
and `{"type": "lifecycle", "subscription_id": S, "event": E}`; `push-targets` carries `PushMessage.to_json()`;
`reconcile-targets` carries `ReconcileGroupMessage.to_json()` (one group of a profile's targets to reconcile).
A message that does not parse can never succeed, so it is not retried: the worker records it as poison with
the `BadMessage` text as its reason (I8).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sync_core.service.runtime import PushMessage

SYNC_SOURCE_QUEUE = "sync-source"
PUSH_TARGETS_QUEUE = "push-targets"
POISON_SUFFIX = "-poison"  # the Functions host moves a message here after maxDequeueCount failed tries
SYNC_SOURCE_POISON_QUEUE = SYNC_SOURCE_QUEUE + POISON_SUFFIX
PUSH_TARGETS_POISON_QUEUE = PUSH_TARGETS_QUEUE + POISON_SUFFIX
RECONCILE_TARGETS_QUEUE = "reconcile-targets"
RECONCILE_TARGETS_POISON_QUEUE = RECONCILE_TARGETS_QUEUE + POISON_SUFFIX
# Mailboxes one reconcile-targets message may name: 1,000 directory ids (36 characters each, quoted) stay well
# inside MAX_MESSAGE_CHARS.
MAX_GROUP_MAILBOXES = 1000
MAX_MESSAGE_CHARS = 64 * 1024  # Azure Storage's limit on one queue message
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # Graph subscription ids are GUIDs; they go in URLs
_MAX_TEXT = 200


class BadMessage(ValueError):
    """A queue message that cannot be processed, ever; the text says what is wrong with it."""


@dataclass(frozen=True)
class SyncMessage:
    profile: str
    reason: str = ""

    def to_json(self) -> str:
        return json.dumps({"type": "sync", "profile": self.profile, "reason": self.reason})


@dataclass(frozen=True)
class ReconcileMessage:
    profile: str

    def to_json(self) -> str:
        return json.dumps({"type": "reconcile", "profile": self.profile})


@dataclass(frozen=True)
class LifecycleMessage:
    subscription_id: str
    event: str

    def to_json(self) -> str:
        return json.dumps({"type": "lifecycle", "subscription_id": self.subscription_id, "event": self.event})


SourceMessage = SyncMessage | ReconcileMessage | LifecycleMessage


@dataclass(frozen=True)
class ReconcileGroupMessage:
    """One group of a profile's targets to reconcile: group `group` (from 0) of `groups` in run `run_id`."""

    profile: str
    run_id: str
    group: int
    groups: int
    mailboxes: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"type": "reconcile-group", "profile": self.profile, "run_id": self.run_id,
                           "group": self.group, "groups": self.groups, "mailboxes": list(self.mailboxes)})


def sync_lease(profile: str) -> str:
    """Lease and pending-flag name of a profile's sync: the webhook marks it, the sync worker takes it."""
    return f"sync:{profile}"


def parse_source_message(body: bytes | str) -> SourceMessage:
    """A sync-source message, or BadMessage naming what is wrong."""
    doc = _json_object(body)
    kind = doc.get("type")
    if kind == "sync":
        reason = doc.get("reason", "")
        if not isinstance(reason, str) or len(reason) > _MAX_TEXT:
            raise BadMessage(f"sync message 'reason' must be a string of at most {_MAX_TEXT} characters")
        return SyncMessage(_profile(doc), reason)
    if kind == "reconcile":
        return ReconcileMessage(_profile(doc))
    if kind == "lifecycle":
        sid = doc.get("subscription_id")
        if not isinstance(sid, str) or not _SUBSCRIPTION_ID.fullmatch(sid):
            raise BadMessage("lifecycle message 'subscription_id' must be a Graph subscription id (a GUID)")
        event = doc.get("event")
        if event not in LIFECYCLE_EVENTS:
            raise BadMessage(f"lifecycle message 'event' must be one of {', '.join(LIFECYCLE_EVENTS)}, "
                             f"got {_shown(event)}")
        return LifecycleMessage(sid, str(event))
    raise BadMessage(f"sync-source message 'type' must be sync, reconcile or lifecycle, got {_shown(kind)}")


def parse_push_message(body: bytes | str) -> PushMessage:
    """A push-targets message, or BadMessage naming what is wrong."""
    doc = _json_object(body)
    if doc.get("type", "push") != "push":
        raise BadMessage(f"push-targets message 'type' must be push, got {_shown(doc.get('type'))}")
    try:
        return PushMessage.from_json(doc)
    except (ValueError, TypeError) as error:
        raise BadMessage(str(error)) from None


def parse_reconcile_group_message(body: bytes | str) -> ReconcileGroupMessage:
    """A reconcile-targets message, or BadMessage naming what is wrong."""
    doc = _json_object(body)
    if doc.get("type") != "reconcile-group":
        raise BadMessage(f"reconcile-targets message 'type' must be reconcile-group, got {_shown(doc.get('type'))}")
    profile = _profile(doc)
    run_id = doc.get("run_id")
    if not isinstance(run_id, str) or not run_id.strip() or len(run_id) > _MAX_TEXT:
        raise BadMessage(f"reconcile-group message 'run_id' must be a run id, got {_shown(run_id)}")
    groups, group = doc.get("groups"), doc.get("group")
    if not _whole(groups) or groups < 1:
        raise BadMessage(f"reconcile-group message 'groups' must be a whole number of at least 1, got {_shown(groups)}")
    if not _whole(group) or not 0 <= group < groups:
        raise BadMessage(f"reconcile-group message 'group' must be a whole number from 0 to {groups - 1}, "
                         f"got {_shown(group)}")
    mailboxes = doc.get("mailboxes")
    if not isinstance(mailboxes, list) or not mailboxes or len(mailboxes) > MAX_GROUP_MAILBOXES or not all(
            isinstance(m, str) and m.strip() and len(m) <= _MAX_TEXT for m in mailboxes):
        raise BadMessage(f"reconcile-group message 'mailboxes' must be a list of 1 to {MAX_GROUP_MAILBOXES} "
                         f"mailbox ids, got {_shown(mailboxes)}")
    return ReconcileGroupMessage(profile, run_id, group, groups, tuple(mailboxes))


def profile_of(body: bytes | str) -> str | None:
    """The profile a message is about, if it has one that can be read (for poison records)."""
    try:
        profile = _json_object(body).get("profile")
    except BadMessage:
        return None
    return profile[:_MAX_TEXT] if isinstance(profile, str) else None


def _json_object(body: bytes | str) -> dict[str, Any]:
    if len(body) > MAX_MESSAGE_CHARS:
        raise BadMessage(f"message is {len(body)} characters long; at most {MAX_MESSAGE_CHARS} are allowed")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadMessage("message is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise BadMessage(f"message is not valid JSON: {str(error)[:_MAX_TEXT]}") from None
    if not isinstance(doc, dict):
        raise BadMessage("message must be a JSON object")
    return doc


def _profile(doc: dict[str, Any]) -> str:
    profile = doc.get("profile")
    if not isinstance(profile, str) or not profile.strip() or len(profile) > _MAX_TEXT:
        raise BadMessage(f"message 'profile' must be a profile name, got {_shown(profile)}")
    return profile


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str) if value is not None else "nothing"
    return text if len(text) <= 60 else text[:57] + "..."
