"""The emulated tenant: one lock, one change counter, the registered apps, and the resource stores.

Stores (directory, mailboxes, subscriptions) live in their own modules; they share this object's lock and
its monotonically increasing change sequence, which is what delta tokens and notifications are built on.
Tests and the demo mutate the tenant through the stores' methods ("a phone saves Maman") and every
mutation calls `emit`, so subscriptions see exactly what a real change would produce.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class App:
    """An app registration with a client secret and/or certificate, its granted roles and mailbox scope."""

    client_id: str
    display_name: str
    secret: str | None = None
    certificate_pem: bytes | None = None  # public certificate used to verify client assertions
    roles: set[str] = field(default_factory=set)
    # Exchange RBAC for Applications: ids of the mailboxes the app may touch; None means all mailboxes.
    mailbox_scope: set[str] | None = None


@dataclass(frozen=True)
class Change:
    """One change to a resource, as subscriptions and delta see it."""

    # "users", "contacts" (org contacts), "groups", or "users/{id}/contactFolders/{fid}/contacts"
    resource: str
    change_type: str  # "created" | "updated" | "deleted"
    id: str
    seq: int


ChangeListener = Callable[[Change], None]


class Tenant:
    def __init__(self, tenant_id: str | None = None, domain: str = "contoso.example", seed: int = 0) -> None:
        from .directory import Directory
        from .mailbox import Mailboxes
        from .subscriptions import Subscriptions

        self.id = tenant_id or str(uuid.uuid4())
        self.domain = domain
        self.lock = threading.RLock()
        self._seq = 0
        # Bumped by `expire_delta_tokens`; tokens minted under an older epoch are answered as expired.
        self.delta_epoch = 0
        # Delta faults read by the directory and mailbox delta code: the share of already-sent, unchanged
        # items replayed in a later page (Graph may replay; clients must be idempotent), drawn from `rng`,
        # which is seeded so a replaying run is repeatable.
        self.delta_replay_rate: float = 0.0
        self.rng = random.Random(seed)
        self.apps: dict[str, App] = {}
        self._listeners: list[ChangeListener] = []
        self.directory = Directory(self)
        self.mailboxes = Mailboxes(self)
        self.subscriptions = Subscriptions(self)

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

    def register_app(
        self,
        display_name: str = "galsync",
        roles: set[str] | None = None,
        secret: str | None = None,
        certificate_pem: bytes | None = None,
        client_id: str | None = None,
        mailbox_scope: set[str] | None = None,
    ) -> App:
        app = App(
            client_id=client_id or str(uuid.uuid4()),
            display_name=display_name,
            secret=secret,
            certificate_pem=certificate_pem,
            roles=set(roles or ()),
            mailbox_scope=set(mailbox_scope) if mailbox_scope is not None else None,
        )
        with self.lock:
            self.apps[app.client_id] = app
        return app

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far becomes invalid (as after Graph loses its sync state)."""
        with self.lock:
            self.delta_epoch += 1
