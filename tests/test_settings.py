"""Settings read in Azure: a Key Vault reference the platform has not resolved yet counts as unset, so galsync
stops with the setting's name instead of using the reference's text (here: in Graph notification URLs)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.profile import parse_config
from sync_core.service.runtime import Runtime
from sync_core.service.subscriptions import ensure_subscriptions
from sync_core.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
# What the function app reads until infra/hooks/postdeploy.sh has stored the key in Key Vault.
WEBHOOK_KEY_REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-galsync.vault.azure.net/secrets/galsync-webhook-key/)"


def test_an_unresolved_key_vault_reference_is_unset_and_only_its_name_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="galsync.settings"):
        settings = Settings.from_env({
            "GALSYNC_AUTH_MODE": "client_secret",
            "GALSYNC_CLIENT_SECRET": " @Microsoft.KeyVault(VaultName=kv-galsync;SecretName=galsync-client-secret)",
            "GALSYNC_WEBHOOK_KEY": WEBHOOK_KEY_REFERENCE,
            "GALSYNC_TABLE_PREFIX": "@Microsoft.KeyVault(SecretUri=https://kv/secrets/prefix/)",
        })
    assert settings.client_secret == "" and settings.webhook_key == ""
    assert settings.table_prefix == "galsync"  # the setting's default, as if it were not set
    assert settings.redacted()["GALSYNC_WEBHOOK_KEY"] == "(empty)"
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3 and all("Key Vault reference" in m for m in warned)
    assert {m.split()[0] for m in warned} == {"GALSYNC_CLIENT_SECRET", "GALSYNC_WEBHOOK_KEY", "GALSYNC_TABLE_PREFIX"}
    assert not any("vault.azure.net" in m or "kv-galsync" in m for m in warned)


def test_a_resolved_value_is_used_as_it_is() -> None:
    settings = Settings.from_env({"GALSYNC_WEBHOOK_KEY": "key-with-@Microsoft.KeyVault(-inside"})
    assert settings.webhook_key == "key-with-@Microsoft.KeyVault(-inside"


def test_a_subscriptions_run_before_the_key_is_stored_registers_nothing(graph: GraphEmulator, tmp_path: Path) -> None:
    settings = Settings.from_env({
        **graph.galsync_settings(), "GALSYNC_STATE": f"sqlite:{tmp_path / 'state.db'}",
        "GALSYNC_WEBHOOK_BASE_URL": "https://func-galsync.azurewebsites.net",
        "GALSYNC_WEBHOOK_KEY": WEBHOOK_KEY_REFERENCE,
    })
    config = parse_config((ROOT / "galsync.example.toml").read_text(encoding="utf-8"), "galsync.toml")
    rt = Runtime.from_settings(settings, config=config)
    try:
        with pytest.raises(SettingsError, match="GALSYNC_WEBHOOK_KEY is empty"):
            ensure_subscriptions(rt)
    finally:
        rt.close()
    assert graph.tenant.subscriptions.list() == []


@pytest.mark.parametrize("value", ["0", "1001"])
def test_a_reconcile_group_size_outside_1_to_1000_is_refused_by_name(value: str) -> None:
    with pytest.raises(SettingsError, match="GALSYNC_RECONCILE_TARGETS_PER_MESSAGE is .*expected"):
        Settings.from_env({"GALSYNC_RECONCILE_TARGETS_PER_MESSAGE": value})
    assert Settings.from_env({}).reconcile_targets_per_message == 25
