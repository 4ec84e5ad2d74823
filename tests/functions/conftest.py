"""Fixtures of the function app tests: the Functions host stand-in over Azurite, and app settings per test.

The function app builds its one Runtime per process from the environment (`function_app.process`); each test
sets the environment with monkeypatch and resets the process before and after, so every test starts as a
freshly started worker would. State lives in Azure Table Storage (Azurite) under a fresh table prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import function_app
from graph_emulator import GraphEmulator
from sync_core.service.runtime import Runtime
from sync_core.service.telemetry import with_run_telemetry
from sync_core.state import open_store
from tests.azurite import Azurite
from tests.functions.functions_host import FunctionsHost, HttpsFront

# Two profiles, no Graph needed to load them: what the webhook and queue tests run with.
PLAIN_CONFIG = """
[[profile]]
name = "Company directory"
[[profile.source]]
type = "users"
[profile.targets]
mailboxes = ["reception@northwind.example"]

[[profile]]
name = "Dispatch"
folder = "Dispatch"
[[profile.source]]
type = "users"
[profile.targets]
mailboxes = ["trucks.north@northwind.example"]
"""

Configure = Callable[..., Runtime]


@pytest.fixture
def host(azurite: Azurite) -> Iterator[FunctionsHost]:
    h = FunctionsHost(azurite.connection_string)
    yield h
    h.close()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, azurite: Azurite,
              host: FunctionsHost) -> Iterator[Configure]:
    """Set the app settings (a fresh state store unless `keep_state`), restart the process, return its Runtime."""
    prefix = f"t{uuid.uuid4().hex[:12]}"

    def configure(config_text: str = PLAIN_CONFIG, **env: str) -> Runtime:
        config = tmp_path / f"galsync-{uuid.uuid4().hex[:6]}.toml"
        config.write_text(config_text, encoding="utf-8")
        values = {
            "GALSYNC_CONFIG_PATH": str(config),
            "GALSYNC_TENANT_ID": "7f3a1c2e-0000-4000-8000-00000000aaaa",
            "GALSYNC_STATE": "table:",
            "GALSYNC_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "GALSYNC_TABLE_PREFIX": prefix,
            "GALSYNC_WEBHOOK_BASE_URL": "https://galsync-test.example",
            "GALSYNC_WEBHOOK_KEY": host.function_key,
            **env,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        function_app.process.reset()
        return function_app.process.runtime()

    yield configure
    function_app.process.reset()


def use_store_clock(rt: Runtime, clock: Callable[[], float]) -> None:
    """Give the process's Runtime a state store (on the same tables) that reads `clock`: leases expire and
    pending flags age only when the test moves it. Call before the first request, which builds the webhook."""
    rt.store.close()
    rt.store = with_run_telemetry(open_store(rt.settings, clock=clock), lambda: rt.client.stats.snapshot())


def emulator_settings(g: GraphEmulator) -> dict[str, str]:
    """The settings that point galsync at the emulator, as an admin would set them."""
    return {**g.galsync_settings(), "GALSYNC_RETRY_MAX_SECONDS": "20"}


@pytest.fixture
def front(graph: GraphEmulator, host: FunctionsHost) -> Iterator[HttpsFront]:
    """The HTTP functions on a local HTTPS port the emulator trusts (its CA issued the certificate)."""
    f = HttpsFront(host, *graph.issue_server_cert("127.0.0.1"))
    yield f
    f.close()
    graph.tenant.subscriptions.close()
