"""`galsync emulator` and `galsync demo`, run as an admin runs them: separate processes, real console script.

The demo test is the README's promise: from a checkout, `galsync demo --json` fills every target, gets the new
driver onto every phone through the webhook path, and finds "Maman" in a shared mailbox without touching it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, Cli, MakeCli

GALSYNC = [sys.executable, "-m", "sync_core"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALSYNC_")}
    env.update(extra)
    return env


def test_emulator_prints_settings_that_work_and_stops_cleanly(make_cli: MakeCli, tmp_path: Path) -> None:
    proc = subprocess.Popen([*GALSYNC, "--json", "emulator"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.rstrip() == "}":
                break
        printed = json.loads("".join(lines))
        settings = printed["settings"]
        assert settings["GALSYNC_AUTH_MODE"] == "client_secret"
        assert settings["GALSYNC_CONFIG_PATH"] == str(ROOT / "galsync.example.toml")
        ca_file = Path(settings["GALSYNC_GRAPH_CA_BUNDLE"])
        assert ca_file.is_file()
        # The printed settings are all galsync needs (this process has no emulator object of its own).
        cli = Cli(g=None, env={**settings, "GALSYNC_STATE": f"sqlite:{tmp_path / 's.db'}"})  # type: ignore[arg-type]
        planned = cli.json("sync", "--profile", "Dispatch", "--dry-run")
        assert planned["profiles"][0]["planned"] == {"Create": 400}
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0
    assert not ca_file.exists()  # the emulator's temporary folder went with it


def test_a_second_shell_loads_the_emulators_settings_in_one_step(tmp_path: Path) -> None:
    """`eval "$(galsync emulator --env)"` in another shell, as the README says; SIGTERM stops the emulator
    cleanly (exit 0), and then --env says that no emulator is running instead of printing stale settings."""
    env = clean_env(TMPDIR=str(tmp_path))  # the running emulator's settings file lives in the temp folder
    proc = subprocess.Popen([*GALSYNC, "emulator"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("serving"):
                break
        shell = (f'eval "$({sys.executable} -m sync_core emulator --env)" && '
                 f"{sys.executable} -m sync_core sync --profile Dispatch --dry-run --json")
        run = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True, env=env,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["profiles"][0]["planned"] == {"Create": 400}
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)  # a hang guard, not a timing check
    assert rc == 0
    after = subprocess.run([*GALSYNC, "emulator", "--env"], cwd=tmp_path, capture_output=True, text=True, env=env,
                           timeout=60)
    assert after.returncode == 2 and after.stdout == ""
    assert "no Graph emulator is running for this user" in after.stderr and "galsync emulator" in after.stderr


def test_demo_json_tells_the_whole_story(tmp_path: Path) -> None:
    proc = subprocess.run([*GALSYNC, "demo", "--json"], cwd=tmp_path, capture_output=True, text=True,
                          env=clean_env(), timeout=240)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)  # stdout is exactly one JSON document
    assert facts["ok"] is True
    assert facts["targets"] == {"Company directory": 120, "Dispatch": 4} and facts["targets_filled"] is True
    assert facts["contacts_written"] == 120 * 125 + 4 * 100
    # galsync.example.toml's template and per-source categories, as a phone shows a supplier.
    assert facts["example_contact"] == {"displayName": "Liam O'Connor", "fileAs": "O'Connor, Liam",
                                        "categories": ["Company", "Suppliers"]}
    driver = facts["new_driver"]
    assert driver["propagated"] is True and driver["targets"] == 124 and driver["missing_in"] == 0
    assert driver["errors"] == [] and driver["sync_messages"] >= 1 and driver["seconds"] > 0
    maman = facts["maman"]
    assert maman["found_by_reconcile"] is True and maman["shared_mailbox"] is True
    assert maman["modified"] is False and maman["still_there"] is True
    assert maman["mailbox"] == "trucks.north@northwind.example"
    assert [f["displayName"] for f in facts["foreign_contacts_found"]] == ["Maman"]
    assert facts["shared_mailbox_warnings"] == 4
    assert facts["explain"]["origins"] == ["foreign"]
    assert facts["graph_requests"]["http"] > 0 and facts["propagation_seconds"] == driver["seconds"]
    assert not list(tmp_path.iterdir())  # nothing left behind in the working directory
