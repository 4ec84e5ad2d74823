"""Mailboxes named by address in everything the command line shows, not by their directory GUIDs.

The engine keys mailboxes by user id (stable across renames) and its error lines carry those ids; an admin
recognises `trucks.north@northwind.example`, not `2ee66e21-...`. The addresses come from the state store's
targets, so naming costs no Graph call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sync_core.state import docs
from sync_core.state.base import StateStore

_GUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


class MailboxNames:
    """Mailbox id -> address, for the profiles' targets (current and former)."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self._addresses = {k.lower(): v for k, v in addresses.items() if v}

    @classmethod
    def of(cls, store: StateStore, profiles: Iterable[str]) -> MailboxNames:
        """From the profiles' targets, and the addresses profiles name mailboxes by (known before a mailbox
        becomes a target, so a failure on the way is named too)."""
        addresses = {doc.id: key for key, doc in docs.read_all(store, docs.MailboxId, on_damaged=_skip)}
        for profile in profiles:
            addresses.update({m: t.address for m, t in store.get_targets(profile).items()})
        return cls(addresses)

    def name(self, mailbox: str) -> str:
        return self._addresses.get(mailbox.lower(), mailbox)

    def text(self, line: str) -> str:
        """The line with each known mailbox id replaced by its address (a user's id in `user:<id>` is kept:
        it names a source, not a mailbox)."""
        def swap(match: re.Match[str]) -> str:
            start = match.start()
            if line[max(0, start - 5):start] == "user:":
                return match.group(0)
            return self.name(match.group(0))

        return _GUID.sub(swap, line)


def _skip(_key: str, _error: docs.DocumentError) -> None:
    """A damaged look-up document only costs its address here."""
