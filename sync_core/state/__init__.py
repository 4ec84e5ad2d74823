"""galsync's memory between runs: one StateStore interface, SQLite and Azure Table Storage behind it.

`open_store(settings)` picks the store GALSYNC_STATE names:
- `sqlite:PATH`: one local SQLite file (the command line's default);
- `table:`: Azure Table Storage, from GALSYNC_STORAGE_CONNECTION_STRING (Azurite, local runs) if set, else
  from GALSYNC_TABLES_URI with the managed identity (GALSYNC_MANAGED_IDENTITY_CLIENT_ID, or the system one)
  or, when no client id is set, DefaultAzureCredential (which also covers a developer's `az login`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync_core.settings import Settings, SettingsError
from sync_core.state.base import (
    DEFAULT_CLOCK,
    Clock,
    ConcurrencyError,
    StateError,
    StateStore,
    StateValueError,
    ValueTooLargeError,
)

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

__all__ = [
    "Clock",
    "ConcurrencyError",
    "StateError",
    "StateStore",
    "StateValueError",
    "ValueTooLargeError",
    "open_store",
]


def open_store(settings: Settings, *, clock: Clock = DEFAULT_CLOCK) -> StateStore:
    """The store GALSYNC_STATE names, opened (schema or tables created if missing)."""
    state = settings.state
    if state.startswith("sqlite:"):
        from sync_core.state.sqlite_store import SqliteStore

        path = state.removeprefix("sqlite:").strip()
        if not path:
            raise SettingsError("GALSYNC_STATE is 'sqlite:' without a path; expected sqlite:PATH")
        return SqliteStore(path, clock=clock)
    if state == "table:":
        from sync_core.state.table_store import TableStore, check_prefix

        try:
            prefix = check_prefix(settings.table_prefix)
        except StateValueError as error:
            raise SettingsError(str(error)) from None
        return TableStore(_table_service(settings), prefix, clock=clock)
    raise SettingsError(f"GALSYNC_STATE is {state!r}; expected sqlite:PATH or table:")


def _table_service(settings: Settings) -> TableServiceClient:
    """The Table service client; the Azure SDK is imported here only, the SQLite CLI never needs it."""
    from azure.data.tables import TableServiceClient

    if settings.storage_connection_string:
        try:
            return TableServiceClient.from_connection_string(settings.storage_connection_string)
        except ValueError:
            raise SettingsError(
                "GALSYNC_STORAGE_CONNECTION_STRING is not a valid storage connection string"
            ) from None
    uri = settings.tables_uri
    if not uri:
        raise SettingsError(
            "GALSYNC_STATE is table: but neither GALSYNC_TABLES_URI nor "
            "GALSYNC_STORAGE_CONNECTION_STRING is set"
        )
    if not uri.startswith("https://"):
        raise SettingsError(f"GALSYNC_TABLES_URI is {uri!r}; expected https://ACCOUNT.table.core.windows.net")
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    credential = (ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
                  if settings.managed_identity_client_id else DefaultAzureCredential())
    return TableServiceClient(endpoint=uri, credential=credential)
