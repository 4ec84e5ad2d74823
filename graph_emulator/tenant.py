"""The emulated tenant: its id and domain, the registered apps, and the resource stores over one change history.

The stores (directory, mailboxes, subscriptions) live in their own modules and share `changes` (lock,
sequence, emission), which the tenant creates and hands to each. Tests and the demo mutate the tenant through
the stores' methods ("a phone saves Maman"), and every mutation emits its change.
"""

from __future__ import annotations

import threading
import uuid

from .apps import App
from .changes import Changes
from .directory import Directory
from .mailbox import Mailboxes
from .subscriptions import Subscriptions


class Tenant:
    def __init__(self, tenant_id: str | None = None, domain: str = "contoso.example", seed: int = 0) -> None:
        self.id = tenant_id or str(uuid.uuid4())
        self.changes = Changes(seed)
        self.apps: dict[str, App] = {}
        self.directory = Directory(self.changes, domain)
        self.mailboxes = Mailboxes(self.changes, self.directory)
        self.subscriptions = Subscriptions(self.changes, self.id, self.directory, self.mailboxes)

    @property
    def domain(self) -> str:
        """The tenant's default domain; the directory keeps it, as new users' principal names end in it."""
        return self.directory.domain

    @domain.setter
    def domain(self, domain: str) -> None:
        self.directory.domain = domain

    @property
    def lock(self) -> threading.RLock:
        """The lock every store mutation holds; a caller holding it sees and makes changes as one."""
        return self.changes.lock

    # Delta faults a test switches on (faults.py names them here): expired tokens and replayed items.

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far becomes invalid (as after Graph loses its sync state)."""
        self.changes.expire_delta_tokens()

    @property
    def delta_replay_rate(self) -> float:
        return self.changes.delta_replay_rate

    @delta_replay_rate.setter
    def delta_replay_rate(self, rate: float) -> None:
        self.changes.delta_replay_rate = rate

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
