"""The tenant's change history: one lock, one change sequence, change emission and the delta faults.

Every store (directory, mailboxes, subscriptions) receives this object, not the tenant, so the stores sit
below the tenant that assembles them. A mutation takes `lock`, draws one `next_seq()`, records it on the
object it changed and calls `emit(...)`: delta tokens are built on the sequence, notifications on the
emitted changes, so subscriptions see exactly what a real change would produce.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """One change to a resource, as subscriptions and delta see it."""

    # "users", "contacts" (org contacts), "groups", or "users/{id}/contactFolders/{fid}/contacts"
    resource: str
    change_type: str  # "created" | "updated" | "deleted"
    id: str
    seq: int


ChangeListener = Callable[[Change], None]


class Changes:
    """The lock every store mutation holds, the sequence it draws, and the listeners it tells."""

    def __init__(self, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self._seq = 0
        # Bumped by `expire_delta_tokens`; tokens minted under an older epoch are answered as expired.
        self.delta_epoch = 0
        # The share of already-sent, unchanged items replayed in a later delta page (Graph may replay;
        # clients must be idempotent), drawn from `rng`, which is seeded so a replaying run is repeatable.
        self.delta_replay_rate: float = 0.0
        self.rng = random.Random(seed)
        self._listeners: list[ChangeListener] = []

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    @property
    def seq(self) -> int:
        return self._seq

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def emit(self, resource: str, change_type: str, object_id: str, seq: int) -> None:
        change = Change(resource, change_type, object_id, seq)
        for listener in list(self._listeners):
            listener(change)

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far becomes invalid (as after Graph loses its sync state)."""
        with self.lock:
            self.delta_epoch += 1
