"""`galsync subscriptions ensure|list|delete`: real subscriptions, with Graph's validation handshake answered by
the function app's webhook code served over HTTPS (sync_core/cli/local_functions.py, as the demo does)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from graph_emulator import GraphEmulator
from sync_core.cli.local_functions import LocalFunctions
from sync_core.service.runtime import Runtime
from sync_core.settings import Settings

from .conftest import Cli


@pytest.fixture
def webhook(graph: GraphEmulator, cli: Cli) -> Iterator[LocalFunctions]:
    key = secrets.token_urlsafe(16)
    cli.env["GALSYNC_WEBHOOK_KEY"] = key
    settings = Settings.from_env({**cli.env, "GALSYNC_WEBHOOK_BASE_URL": "https://127.0.0.1:1"})
    rt = Runtime.from_settings(settings)
    cert, private_key = graph.issue_server_cert("127.0.0.1")
    with LocalFunctions(rt, cert, private_key) as functions:
        cli.env["GALSYNC_WEBHOOK_BASE_URL"] = functions.base_url
        yield functions
    rt.close()


def test_ensure_list_and_delete(graph: GraphEmulator, cli: Cli, webhook: LocalFunctions) -> None:
    drivers = graph.scenario["drivers_group_id"]  # type: ignore[index]
    created = cli.json("subscriptions", "ensure")
    assert sorted(created["created"]) == sorted(["users", f"groups/{drivers}"]) and created["failed"] == []
    assert len(graph.tenant.subscriptions.list()) == 2
    assert webhook.requests == 4  # Graph validated the notification and the lifecycle URL of each

    listed = cli("subscriptions", "list", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)["subscriptions"]
    assert sorted(r["resource"] for r in rows) == sorted(["users", f"groups/{drivers}"])
    assert all(r["recorded"] and r["in_graph"] and r["profiles"] == ["Dispatch"] for r in rows)
    assert all(r["notification_url"] == f"{webhook.base_url}/api/notifications" for r in rows)
    assert cli.env["GALSYNC_WEBHOOK_KEY"] not in listed.stdout  # the function key is a secret
    for sub in graph.tenant.subscriptions.list():
        assert sub["clientState"] not in listed.stdout

    again = cli.json("subscriptions", "ensure")
    assert again["created"] == [] and sorted(again["kept"]) == sorted(["users", f"groups/{drivers}"])

    deleted = cli.json("subscriptions", "delete")
    assert len(deleted["deleted"]) == 2 and deleted["failed"] == []
    assert graph.tenant.subscriptions.list() == []
    assert cli.json("subscriptions", "list")["subscriptions"] == []


def test_ensure_without_a_webhook_url_names_the_setting(cli: Cli) -> None:
    result = cli("subscriptions", "ensure")
    assert result.exit_code == 2
    assert "GALSYNC_WEBHOOK_BASE_URL" in result.stderr and "Traceback" not in result.output
