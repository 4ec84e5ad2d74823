"""infra/hooks/postdeploy.sh (run by `azd deploy`) leaves the function host key Graph's notification URLs
carry and Key Vault's galsync-webhook-key equal, restarts the app only when the secret changed, and never
prints the key.

Azure cannot exist here, so the hook runs against a stand-in `az` on PATH that keeps the app's host keys,
the vault's secrets and a restart count in a JSON file (the Functions host and Key Vault are mocked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_tree import INFRA

HOOK = INFRA / "hooks" / "postdeploy.sh"
GENERATED_KEY = "generated-by-the-platform-0123456789"

FAKE_AZ = r'''
import json, sys
import jmespath

STATE = __STATE__
state = json.load(open(STATE))
args = sys.argv[1:]

def opt(name):
    return args[args.index(name) + 1] if name in args else None

def answer(value):
    json.dump(state, open(STATE, "w"))
    if opt("--query"):
        value = jmespath.search(opt("--query"), value)
    if opt("--output") == "tsv" and value is not None:
        print(value)
    sys.exit(0)

target = opt("--vault-name") if args[0] == "keyvault" else opt("--name")
if target != state["names"][args[0]] or (args[0] == "functionapp" and opt("--resource-group") != "rg-prod"):
    print("ERROR: (ResourceNotFound) " + " ".join(args), file=sys.stderr)
    sys.exit(3)
if args[:3] == ["functionapp", "keys", "list"]:
    answer({"masterKey": "master", "functionKeys": state["host_keys"], "systemKeys": {}})
if args[:3] == ["functionapp", "keys", "set"]:
    assert opt("--key-type") == "functionKeys" and opt("--key-value") is None
    state["host_keys"][opt("--key-name")] = "__GENERATED__"
    answer({"name": opt("--key-name"), "value": "__GENERATED__"})
if args[:2] == ["functionapp", "restart"]:
    state["restarts"] += 1
    answer(None)
if args[:3] == ["keyvault", "secret", "show"]:
    if opt("--name") not in state["secrets"]:
        print("ERROR: (SecretNotFound) %s was not found" % opt("--name"), file=sys.stderr)
        sys.exit(3)
    answer({"value": state["secrets"][opt("--name")]})
if args[:3] == ["keyvault", "secret", "set"]:
    if not state["may_write_secrets"]:
        print("ERROR: (Forbidden) Caller is not authorized to perform action", file=sys.stderr)
        sys.exit(3)
    assert opt("--value") is None, "the key must not be passed on the command line"
    state["secrets"][opt("--name")] = open(opt("--file"), encoding="utf-8").read()
    answer({"name": opt("--name")})
print("ERROR: the stand-in az does not know: " + " ".join(args), file=sys.stderr)
sys.exit(2)
'''


class Azure:
    """The stand-in function app and vault, and the fake `az` that serves them."""

    def __init__(self, root: Path) -> None:
        self.state_path = root / "azure.json"
        bin_dir = root / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        source = FAKE_AZ.replace("__STATE__", repr(str(self.state_path)))
        source = source.replace("__GENERATED__", GENERATED_KEY)
        az.write_text(f"#!{sys.executable}\n{source}")
        az.chmod(0o755)
        self.path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        self.save({
            "names": {"functionapp": "func-galsync-abc", "keyvault": "kv-galsync-abc"},
            "host_keys": {"default": "the-default-host-key"},
            "secrets": {},
            "restarts": 0,
            "may_write_secrets": True,
        })

    def save(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def change(self, **values: Any) -> None:
        state = self.state()
        for key, value in values.items():
            state[key] = {**state[key], **value} if isinstance(value, dict) else value
        self.save(state)

    def run_hook(self) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": self.path,
            "AZURE_FUNCTION_APP_NAME": "func-galsync-abc",
            "AZURE_RESOURCE_GROUP": "rg-prod",
            "AZURE_KEY_VAULT_NAME": "kv-galsync-abc",
        }
        return subprocess.run(["sh", str(HOOK)], env=env, capture_output=True, text=True, timeout=60,
                              check=False)


@pytest.fixture
def azure(tmp_path: Path) -> Azure:
    return Azure(tmp_path)


def test_first_deploy_creates_the_key_stores_it_and_restarts_once(azure: Azure) -> None:
    result = azure.run_hook()
    assert result.returncode == 0, result.stderr
    state = azure.state()
    assert state["host_keys"]["galsync-webhook"] == GENERATED_KEY
    assert state["secrets"] == {"galsync-webhook-key": GENERATED_KEY}
    assert state["restarts"] == 1
    assert GENERATED_KEY not in result.stdout + result.stderr
    assert "created host key galsync-webhook" in result.stdout


def test_a_second_deploy_changes_nothing(azure: Azure) -> None:
    assert azure.run_hook().returncode == 0
    again = azure.run_hook()
    assert again.returncode == 0, again.stderr
    assert azure.state()["restarts"] == 1
    assert "up to date" in again.stdout


def test_a_key_rotated_in_the_portal_is_copied_to_key_vault(azure: Azure) -> None:
    assert azure.run_hook().returncode == 0
    azure.change(host_keys={"galsync-webhook": "rotated-by-an-admin-9876543210"})
    result = azure.run_hook()
    assert result.returncode == 0, result.stderr
    assert azure.state()["secrets"]["galsync-webhook-key"] == "rotated-by-an-admin-9876543210"
    assert azure.state()["restarts"] == 2
    assert "rotated-by-an-admin" not in result.stdout + result.stderr


def test_without_permission_on_the_vault_it_fails_saying_what_to_do(azure: Azure) -> None:
    azure.change(may_write_secrets=False)
    result = azure.run_hook()
    assert result.returncode != 0
    assert "azd hooks run postdeploy" in result.stderr
    assert azure.state()["restarts"] == 0


def test_outside_azd_it_names_the_missing_variable() -> None:
    result = subprocess.run(["sh", str(HOOK)], env={"PATH": os.environ["PATH"]}, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "AZURE_FUNCTION_APP_NAME" in result.stderr
