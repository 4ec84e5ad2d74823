"""The work a push hands the executor for each target folder, and the report of what it did.

Planning (sync, reconcile) builds `TargetWork`; the executor and the photo writer carry it out and add to one
`ExecReport`, which the run's report, its history and the command line read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sync_core.core.actions import Action, Create
from sync_core.core.records import TargetRecord


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
    # Per mailbox: the (status, code) of its refused writes, and the code of the first 404 it answered. They
    # tell a mailbox that refuses, or a deleted managed folder, from one contact's failure (mailbox_checks.py).
    refused: dict[str, Counter[tuple[int, str]]] = field(default_factory=dict)
    not_found: dict[str, str] = field(default_factory=dict)
    # Set on the report of the push that finished last among a notified sync's pushes: that sync's time
    # from the notification's arrival to its last write (propagation.py).
    propagation_ms: int | None = None

    @property
    def writes(self) -> int:
        return sum(self.counts[k] for k in ("created", "updated", "deleted", "adopted", "foreign_deleted"))

    @property
    def changed_phones(self) -> bool:
        """Whether anything reached a phone: a contact written, or a photo set, cleared or removed."""
        return self.writes + sum(self.counts[k] for k in ("photos_set", "photos_cleared", "photos_removed")) > 0

    def merge(self, other: ExecReport) -> None:
        self.counts.update(other.counts)
        self.errors += other.errors
        for mailbox, refused in other.refused.items():
            self.refused.setdefault(mailbox, Counter()).update(refused)
        for mailbox, code in other.not_found.items():
            self.not_found.setdefault(mailbox, code)
        if other.propagation_ms is not None:
            self.propagation_ms = max(self.propagation_ms or 0, other.propagation_ms)

    def drop_failures(self, mailbox: str) -> None:
        """Forget a mailbox's failed writes: its work was done again (its deleted folder was made and filled)."""
        self.counts["failed"] -= sum(self.refused.pop(mailbox, Counter()).values())
        self.not_found.pop(mailbox, None)
        self.errors = [e for e in self.errors if not e.startswith(f"{mailbox} ")]
