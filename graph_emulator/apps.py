"""App registrations: what an app may call (roles) and which mailboxes it may touch (RBAC for Applications)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Graph's answer when RBAC for Applications (or an application access policy) keeps the app out of a mailbox.
SCOPE_DENIED = (
    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
)


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
