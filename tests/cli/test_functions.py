"""`galsync functions`: with the emulator and this one command, a directory change reaches the phones through
the webhook path (Graph notification -> HTTP function -> queue -> sync -> push), as in Azure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from graph_emulator import GraphEmulator

from .conftest import MakeCli, truck

GALSYNC = [sys.executable, "-m", "sync_core"]
NEW_PHONE = "+44 7700 900123"


def _phones_in_trucks(g: GraphEmulator, name: str) -> list[str]:
    phones = []
    for depot in ("North", "South", "East", "West"):
        mailbox = truck(g, depot)["id"]
        folder = g.tenant.mailboxes.find_folder(mailbox, "Dispatch")
        assert folder is not None
        for contact in g.tenant.mailboxes.contacts(mailbox, folder["id"]):
            if contact.get("displayName") == name:
                phones.append(contact.get("mobilePhone"))
    return phones


def test_a_directory_change_reaches_the_phones_through_the_local_webhook(
        graph: GraphEmulator, make_cli: MakeCli, tmp_path: Path) -> None:
    cli = make_cli(graph)
    assert cli("sync").exit_code == 0  # the first fill
    driver = graph.tenant.directory.get_user(graph.scenario["drivers"][0])  # type: ignore[index]
    name = driver["displayName"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GALSYNC_")}, **cli.env}
    proc = subprocess.Popen([*GALSYNC, "functions"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "serving":
                break
        assert len(graph.tenant.subscriptions.list()) >= 1
        assert _phones_in_trucks(graph, name) == [driver.get("mobilePhone")] * 4
        patches_before = graph.log.count(method="PATCH")
        graph.tenant.directory.update_user(driver["id"], mobilePhone=NEW_PHONE)
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while _phones_in_trucks(graph, name) != [NEW_PHONE] * 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _phones_in_trucks(graph, name) == [NEW_PHONE] * 4
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert graph.log.count(method="PATCH") - patches_before >= 1
    assert "push-targets message: 4 contact write(s)" in out
    assert "deleted" in out and graph.tenant.subscriptions.list() == []  # no webhook left for a dead port


def test_functions_refuses_a_graph_that_cannot_call_this_machine(make_cli: MakeCli, graph: GraphEmulator) -> None:
    cli = make_cli(graph)
    result = cli("functions", GALSYNC_GRAPH_BASE_URL="https://graph.microsoft.com/v1.0")
    assert result.exit_code == 2
    assert "Graph cannot call a webhook on this machine" in result.stderr
    assert "azd up" in result.stderr
