"""open_store(settings): GALSYNC_STATE picks the store; a bad setting is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from sync_core.core.records import Target
from sync_core.settings import Settings, SettingsError
from sync_core.state import _table_service as table_service_for
from sync_core.state import open_store
from sync_core.state.sqlite_store import SqliteStore
from sync_core.state.table_store import TABLES, TableStore
from tests.azurite import Azurite
from tests.state.conftest import fresh_prefix, table_service


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_sqlite_path_opens_the_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "galsync-state.db"
    with open_store(settings(GALSYNC_STATE=f"sqlite:{path}")) as store:
        assert isinstance(store, SqliteStore)
        store.put_target("Company", Target(mailbox="mbx"))
    with open_store(settings(GALSYNC_STATE=f"sqlite:{path}")) as store:
        assert list(store.get_targets("Company")) == ["mbx"]


@pytest.mark.azurite
def test_table_with_a_connection_string_opens_the_table_store(azurite: Azurite) -> None:
    prefix = fresh_prefix()
    env = {"GALSYNC_STATE": "table:", "GALSYNC_STORAGE_CONNECTION_STRING": azurite.connection_string,
           "GALSYNC_TABLE_PREFIX": prefix}
    with open_store(settings(**env)) as store:
        assert isinstance(store, TableStore)
        store.put_target("Company", Target(mailbox="mbx"))
        assert list(store.get_targets("Company")) == ["mbx"]
    with table_service(azurite) as service:
        for t in TABLES:
            service.delete_table(prefix + t)


@pytest.mark.parametrize(("env", "named"), [
    ({"GALSYNC_STATE": "sqlite:"}, "GALSYNC_STATE"),
    ({"GALSYNC_STATE": "table:"}, "GALSYNC_TABLES_URI"),
    ({"GALSYNC_STATE": "table:", "GALSYNC_TABLES_URI": "http://acct.table.core.windows.net"},
     "GALSYNC_TABLES_URI"),
    ({"GALSYNC_STATE": "table:", "GALSYNC_STORAGE_CONNECTION_STRING": "not a connection string"},
     "GALSYNC_STORAGE_CONNECTION_STRING"),
    ({"GALSYNC_STATE": "table:", "GALSYNC_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
      "GALSYNC_TABLE_PREFIX": "9-bad"}, "GALSYNC_TABLE_PREFIX"),
])
def test_a_bad_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        open_store(settings(**env))


def test_a_bad_state_value_is_named_even_when_settings_were_built_by_hand(tmp_path: Path) -> None:
    odd = settings(GALSYNC_STATE=f"sqlite:{tmp_path / 's.db'}")
    object.__setattr__(odd, "state", "postgres://x")  # bypasses Settings' own check on purpose
    with pytest.raises(SettingsError, match="GALSYNC_STATE is 'postgres://x'"):
        open_store(odd)


# Managed identity exists only inside Azure: these check which credential is chosen, without a request.

def test_tables_uri_with_a_client_id_uses_that_managed_identity() -> None:
    service = table_service_for(settings(
        GALSYNC_STATE="table:", GALSYNC_TABLES_URI="https://acct.table.core.windows.net",
        GALSYNC_MANAGED_IDENTITY_CLIENT_ID="11111111-2222-3333-4444-555555555555"))
    assert isinstance(service.credential, ManagedIdentityCredential)
    assert service.url.startswith("https://acct.table.core.windows.net")


def test_tables_uri_without_a_client_id_uses_the_default_credential_chain() -> None:
    service = table_service_for(
        settings(GALSYNC_STATE="table:", GALSYNC_TABLES_URI="https://acct.table.core.windows.net"))
    assert isinstance(service.credential, DefaultAzureCredential)
