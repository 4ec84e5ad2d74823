"""A strict, stateful local Microsoft Graph over HTTPS, for galsync's tests, demo and benchmarks.

    from graph_emulator import GraphEmulator

    with GraphEmulator.start(scenario="logistics") as g:
        app = msal.ConfidentialClientApplication(
            g.client_id, client_credential=g.client_secret, authority=g.authority,
            instance_discovery=False, http_client=session_trusting(g.ca_file))
        ...                                    # call g.base_url ("https://127.0.0.1:PORT/v1.0")
        assert g.log.count(method="POST", route="/users/{user}/contactFolders/{folder}/contacts") == 3

For tests that do not exercise msal: `g.session()` is a requests.Session that trusts the emulator's CA and
sends a valid bearer token; `g.access_token()` is such a token.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import requests

from .apps import App
from .faults import Faults
from .identity import Identity, certificate_credentials
from .pipeline import BATCH_WORKERS, BatchWorkers
from .requestlog import RequestLog
from .server import GraphServer
from .tenant import Tenant
from .throttle import Throttle

# What galsync's app registration is granted (docs/graph-facts.md, "least privilege").
DEFAULT_ROLES = frozenset(
    {
        "User.Read.All",
        "OrgContact.Read.All",
        "GroupMember.Read.All",
        "Contacts.ReadWrite",
        "MailboxSettings.Read",
        "ProfilePhoto.Read.All",
    }
)

__all__ = ["DEFAULT_ROLES", "GraphEmulator"]


class GraphEmulator:
    """One emulated tenant behind one HTTPS server; use `GraphEmulator.start(...)` as a context manager."""

    def __init__(self, server: GraphServer, app: App, scenario: dict[str, Any] | None) -> None:
        self._server = server
        self.tenant: Tenant = server.tenant
        self.url: str = server.url  # the root: identity endpoints and /_emulator live here
        self.base_url: str = server.url + "/v1.0"
        self.tenant_id: str = self.tenant.id
        self.authority: str = f"{server.url}/{self.tenant.id}"
        self.ca_file: str = server.ca_file
        self.app: App = app
        self.client_id: str = app.client_id
        self.client_secret: str = app.secret or ""
        self.scenario: dict[str, Any] | None = scenario  # what scenarios.load returned (ids of interest)
        self.log: RequestLog = server.log
        self.throttle: Throttle = server.throttle
        self.faults: Faults = server.faults
        self.identity: Identity = server.identity
        self.batch_workers: BatchWorkers = server.pipeline.batch_workers

    @classmethod
    def start(
        cls,
        scenario: str | None = "logistics",
        seed: int = 0,
        port: int = 0,
        latency_ms: int = 0,
        batch_workers: int = BATCH_WORKERS,
        **scenario_params: Any,
    ) -> GraphEmulator:
        """Build the tenant, register galsync's app, load the scenario (None: empty tenant), serve.

        `batch_workers`: how many inner requests of $batch calls are worked on at once across all calls
        (each call runs at most 4 at a time, as Graph does); Graph itself has no such cap.
        """
        tenant = Tenant(seed=seed)
        app = tenant.register_app("galsync", roles=set(DEFAULT_ROLES), secret=_new_secret())
        server = GraphServer(tenant, port=port, seed=seed, latency_ms=latency_ms, batch_workers=batch_workers)
        try:
            tenant.subscriptions.verify = server.ca_file  # notifications trust webhooks served with our certs
            loaded = None
            if scenario is not None:
                from . import scenarios

                loaded = scenarios.load(tenant, scenario, seed=seed, **scenario_params)
            server.start()
        except BaseException:
            server.stop()
            raise
        return cls(server, app, loaded)

    def stop(self, *, delivery_grace: float | None = None) -> None:
        """Stop serving. Queued notifications go out first, while the CA file still exists; a process that
        was asked to stop (SIGTERM) passes a short `delivery_grace` instead of waiting out a dead webhook."""
        self.tenant.subscriptions.close(delivery_grace)
        self._server.stop()

    def __enter__(self) -> GraphEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def galsync_settings(self) -> dict[str, str]:
        """The GALSYNC_* settings that point galsync at this emulator, as an admin would export them.

        galsync's tests, benchmarks, demo and `galsync emulator` all start galsync this way, so each talks to
        the emulator exactly as the function app talks to Graph: client secret, authority, base URL, our CA.
        """
        return {
            "GALSYNC_AUTH_MODE": "client_secret",
            "GALSYNC_TENANT_ID": self.tenant_id,
            "GALSYNC_CLIENT_ID": self.client_id,
            "GALSYNC_CLIENT_SECRET": self.client_secret,
            "GALSYNC_AUTHORITY_HOST": self.url,
            "GALSYNC_GRAPH_BASE_URL": self.base_url,
            "GALSYNC_GRAPH_CA_BUNDLE": self.ca_file,
        }

    # --- apps and credentials -----------------------------------------------------------------------

    def register_app(
        self,
        roles: Iterable[str] = DEFAULT_ROLES,
        mailbox_scope: Iterable[str] | None = None,
        display_name: str = "test app",
    ) -> App:
        """Another app with a client secret; mailbox_scope (ids or UPNs) as RBAC for Applications sets it."""
        return self.tenant.register_app(
            display_name, roles=set(roles), secret=_new_secret(), mailbox_scope=self._scope(mailbox_scope)
        )

    def certificate_app(
        self, roles: Iterable[str] = DEFAULT_ROLES, mailbox_scope: Iterable[str] | None = None
    ) -> tuple[str, str, str, str]:
        """Register an app that authenticates with a certificate.

        Returns (client_id, private_key_pem, cert_pem, thumbprint): msal takes
        {"private_key": key, "thumbprint": thumbprint} (RS256, x5t) or
        {"private_key": key, "public_certificate": cert} (PS256, x5t#S256).
        """
        key_pem, cert_pem, thumbprint = certificate_credentials("galsync-test")
        app = self.tenant.register_app(
            "certificate app",
            roles=set(roles),
            certificate_pem=cert_pem,
            mailbox_scope=self._scope(mailbox_scope),
        )
        return app.client_id, key_pem.decode(), cert_pem.decode(), thumbprint

    def access_token(self, client_id: str | None = None, lifetime_seconds: float | None = None) -> str:
        """A valid bearer token for an app (default: galsync's), without going through the token endpoint."""
        app = self.tenant.apps[client_id or self.client_id]
        return self.identity.issue(app, lifetime_seconds)

    def session(self, client_id: str | None = None) -> requests.Session:
        """A requests.Session that trusts the emulator's CA and sends a bearer token for the app.

        `trust_env` is off because REQUESTS_CA_BUNDLE would otherwise override `verify`.
        """
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        session.headers["Authorization"] = f"Bearer {self.access_token(client_id)}"
        return session

    def issue_server_cert(self, *hostnames: str) -> tuple[str, str]:
        """(cert_path, key_path) for a server (e.g. a webhook receiver) that the emulator trusts."""
        return self._server.issue_server_cert(*hostnames)

    def _scope(self, mailboxes: Iterable[str] | None) -> set[str] | None:
        if mailboxes is None:
            return None
        return {self.tenant.directory.resolve_user(m) for m in mailboxes}


def _new_secret() -> str:
    # Shaped like an Entra client secret value: 40 characters with the "~" Entra puts in the 4th place.
    token = secrets.token_urlsafe(30)[:37]
    return token[:3] + "8Q~" + token[3:]
