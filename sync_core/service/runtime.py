"""What every use case needs, wired once per process: settings, profiles, the Graph client, the state store.

The use cases hold no state between calls (docs/architecture.md, layer 2); the function app and the command line
each build one `Runtime` and pass it in. How work fans out differs: the command line runs a push inline,
the function app puts it on a queue. `FanOut` is that difference and nothing else.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sync_core.core.profile import Config, load_config
from sync_core.graph import GraphClient
from sync_core.settings import Settings
from sync_core.state import open_store
from sync_core.state.base import StateStore

log = logging.getLogger("galsync")

# Python's collector scans its young objects every 700 new containers, and every object from time to time.
# A fill keeps a few hundred thousand planned writes and answers alive at once; they die by reference
# counting (galsync makes almost no reference cycles), so the default spent a tenth of a fill's CPU scanning
# them again and again. Scanning less often costs only that cyclic garbage waits a little longer.
GC_THRESHOLDS = (20_000, 10, 10)


@dataclass(frozen=True)
class PushMessage:
    """One unit of fan-out: apply a profile's changes to a chunk of target mailboxes.

    `keys` None means "every source key" (a new target is filled, or too many keys changed to list).
    `mode` "remove" handles mailboxes that left the targets.
    `new_folders`: those of `mailboxes` whose managed folder the sync run made, so known empty: their fill
    plans creates without first listing the folder for contacts to adopt (adoption.py).
    `after`: with `keys` None, the source key (in the state store's order) the message before this one stopped
    after: a push does at most GALSYNC_WRITES_PER_MESSAGE writes and hands the rest on in a message like this
    one, which names a key, never a list of them (a queue message holds 64 KB).
    `notified_at`, `part`: a sync that served a change notification numbers its push messages; each push tells
    the store it is done, and the last one measures the propagation time (propagation.py).
    """

    profile: str
    mailboxes: tuple[str, ...]
    keys: tuple[str, ...] | None
    mode: str = "changes"  # "changes" | "remove"
    run_id: str = ""
    new_folders: tuple[str, ...] = ()
    after: str | None = None
    notified_at: str | None = None
    part: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "push", "profile": self.profile, "mailboxes": list(self.mailboxes),
                               "keys": None if self.keys is None else list(self.keys), "mode": self.mode,
                               "run_id": self.run_id, "new_folders": list(self.new_folders), "after": self.after}
        if self.part is not None:
            out |= {"notified_at": self.notified_at, "part": self.part}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PushMessage:
        mailboxes = data.get("mailboxes")
        keys = data.get("keys")
        if not isinstance(data.get("profile"), str) or not isinstance(mailboxes, list) or not all(
            isinstance(m, str) for m in mailboxes
        ):
            raise ValueError("push message needs 'profile' (string) and 'mailboxes' (list of strings)")
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
            raise ValueError("push message 'keys' must be null or a list of strings")
        mode = data.get("mode", "changes")
        if mode not in ("changes", "remove"):
            raise ValueError(f"push message 'mode' must be 'changes' or 'remove', got {mode!r}")
        new_folders = data.get("new_folders", [])  # absent from messages queued before it existed
        if not isinstance(new_folders, list) or not all(isinstance(m, str) for m in new_folders):
            raise ValueError("push message 'new_folders' must be a list of strings")
        after = data.get("after")  # absent from messages queued before it existed
        if after is not None and (not isinstance(after, str) or not after or keys is not None):
            raise ValueError("push message 'after' must be null, or a source key when 'keys' is null")
        notified_at, part = data.get("notified_at"), data.get("part")
        if (part is None) != (notified_at is None) or not (part is None or (
                isinstance(part, int) and not isinstance(part, bool) and part >= 0 and isinstance(notified_at, str))):
            raise ValueError("push message 'notified_at' and 'part' must both be absent, or a time and a number")
        return cls(data["profile"], tuple(mailboxes), None if keys is None else tuple(keys), mode,
                   str(data.get("run_id", "")), tuple(new_folders), after, notified_at, part)


class FanOut(Protocol):
    """Where push messages go: run inline (command line; returns what it wrote) or onto a queue."""

    def push(self, message: PushMessage) -> object: ...


@dataclass
class Runtime:
    settings: Settings
    config: Config
    store: StateStore
    client_factory: Callable[[], GraphClient]
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    clock: Callable[[], float] = time.time
    _client: GraphClient | None = None

    @property
    def client(self) -> GraphClient:
        """The Graph client, created on first use (the webhook never needs one)."""
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def now_iso(self) -> str:
        return iso_time(self.clock())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.store.close()

    @classmethod
    def from_settings(cls, settings: Settings, *, config: Config | None = None,
                      client: GraphClient | None = None, store: StateStore | None = None) -> Runtime:
        """Build from settings; pieces given explicitly (tests, the demo) are used as they are.

        The process is galsync's (the command line, a function app worker), so this is where its garbage
        collector is set to collect less often (GC_THRESHOLDS; never more often than it already does).
        """
        collect_garbage_less_often()
        cfg = config if config is not None else load_config(settings.config_path)
        st = store if store is not None else open_store(settings)
        if client is not None:
            return cls(settings, cfg, st, lambda: client)
        return cls(settings, cfg, st, lambda: GraphClient.from_settings(settings))


def collect_garbage_less_often() -> None:
    """Raise the process's collector thresholds to GC_THRESHOLDS (a higher setting is left as it is)."""
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)


def iso_time(seconds: float) -> str:
    """A time (seconds since the epoch) as galsync stores times: ISO 8601 in UTC, to the microsecond."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
