"""Helpers for the Graph client tests: mailboxes in the emulator, clients and settings pointed at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graph_emulator import GraphEmulator
from sync_core.graph import GraphClient, RetryPolicy, StaticToken
from sync_core.settings import Settings

# Small bounds keep failing-path tests fast; the backoff is short so tests without Retry-After stay quick.
FAST_RETRY = RetryPolicy(max_attempts=4, max_seconds=20.0, backoff_base=0.05, backoff_max=0.2)


@dataclass(frozen=True)
class Mailbox:
    user_id: str
    upn: str
    folder_id: str

    @property
    def contacts(self) -> str:
        return f"/users/{self.user_id}/contactFolders/{self.folder_id}/contacts"


def add_mailbox(g: GraphEmulator, name: str) -> Mailbox:
    user = g.tenant.directory.add_user(displayName=name)
    folder = g.tenant.mailboxes.create_folder(user["id"], "Company contacts")
    return Mailbox(user["id"], user["userPrincipalName"], folder["id"])


def make_client(g: GraphEmulator, retry: RetryPolicy = FAST_RETRY, **kw: Any) -> GraphClient:
    """A client with a token minted by the emulator (tests of auth itself use `settings_for`)."""
    return GraphClient(g.base_url, StaticToken(g.access_token()), ca_bundle=g.ca_file, retry=retry, **kw)


def settings_for(g: GraphEmulator, **env: str) -> Settings:
    """Settings as the function app would read them, pointed at the emulator (client secret by default)."""
    base = {
        **g.galsync_settings(),
        "GALSYNC_RETRY_MAX_ATTEMPTS": "4",
        "GALSYNC_RETRY_MAX_SECONDS": "20",
    }
    base.update(env)
    return Settings.from_env(base)
