"""infra/grant-graph-permissions.sh grants exactly galsync's Graph roles, skips what is granted, removes the
tenant-wide mailbox roles when Exchange RBAC scopes them, and says what it did.

Entra ID cannot exist here (the Graph emulator has no service principals or app role assignments), so the
script runs against a stand-in `az` on PATH: it answers the few commands the script uses from a JSON state
file, applies --query with jmespath as the real CLI does, pages app role assignments two at a time so that
the script must follow @odata.nextLink, and records every call so that the tests count writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_tree import INFRA

SCRIPT = INFRA / "grant-graph-permissions.sh"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SP = "11111111-1111-1111-1111-111111111111"
IDENTITY = "22222222-2222-2222-2222-222222222222"
APP_REGISTRATION = ("33333333-3333-3333-3333-333333333333", "44444444-4444-4444-4444-444444444444")
OTHER_API = "55555555-5555-5555-5555-555555555555"

GRAPH_ROLES = {  # value -> app role id (made up; the script must look them up, not hard-code them)
    "User.Read.All": "a0000000-0000-0000-0000-000000000001",
    "OrgContact.Read.All": "a0000000-0000-0000-0000-000000000002",
    "GroupMember.Read.All": "a0000000-0000-0000-0000-000000000003",
    "ProfilePhoto.Read.All": "a0000000-0000-0000-0000-000000000004",
    "Contacts.ReadWrite": "a0000000-0000-0000-0000-000000000005",
    "MailboxSettings.Read": "a0000000-0000-0000-0000-000000000006",
    "Mail.ReadWrite": "a0000000-0000-0000-0000-000000000007",
}
GALSYNC_ROLES = ["User.Read.All", "OrgContact.Read.All", "GroupMember.Read.All", "ProfilePhoto.Read.All",
                 "Contacts.ReadWrite", "MailboxSettings.Read"]

FAKE_AZ = r'''
import json, sys, urllib.parse
import jmespath

STATE = __STATE__
state = json.load(open(STATE))
args = sys.argv[1:]
state["calls"].append(args)

def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default

def answer(value):
    json.dump(state, open(STATE, "w"))
    query = opt("--query")
    if query:
        value = jmespath.search(query, value)
    if opt("--output") == "tsv":
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            if row is None:
                continue
            print("\t".join(map(str, row)) if isinstance(row, list) else row)
    elif opt("--output") != "none":
        print(json.dumps(value))
    sys.exit(0)

def fail(message):
    json.dump(state, open(STATE, "w"))
    print("ERROR: " + message, file=sys.stderr)
    sys.exit(3)

if args[:2] == ["cloud", "show"]:
    answer({"endpoints": {"microsoftGraphResourceId": "https://graph.microsoft.com/"}})
if args[:3] == ["ad", "sp", "show"]:
    sp = state["service_principals"].get(opt("--id"))
    if sp is None:
        fail("Service principal '%s' doesn't exist" % opt("--id"))
    answer(sp)
if args[0] == "rest":
    method, url = opt("--method"), urllib.parse.urlsplit(opt("--url"))
    if not url.path.startswith("/v1.0/servicePrincipals/"):
        fail("unexpected url " + opt("--url"))
    parts = url.path.split("/")
    principal, rest = parts[3], parts[4:]
    mine = [a for a in state["assignments"] if a["principalId"] == principal]
    if method == "get" and rest == ["appRoleAssignments"]:
        skip = int(urllib.parse.parse_qs(url.query).get("$skiptoken", ["0"])[0])
        page = {"value": mine[skip:skip + 2]}
        if skip + 2 < len(mine):
            page["@odata.nextLink"] = "https://graph.microsoft.com%s?$skiptoken=%d" % (url.path, skip + 2)
        answer(page)
    if method == "post" and rest == ["appRoleAssignments"]:
        body = json.loads(opt("--body"))
        if body["principalId"] != principal or any(
                a["appRoleId"] == body["appRoleId"] and a["resourceId"] == body["resourceId"] for a in mine):
            fail("Permission being assigned already exists on the object")
        body["id"] = "assignment-%d" % len(state["calls"])
        state["assignments"].append(body)
        answer(body)
    if method == "delete" and len(rest) == 2:
        before = len(state["assignments"])
        state["assignments"] = [a for a in state["assignments"] if a["id"] != rest[1]]
        if len(state["assignments"]) == before:
            fail("Resource does not exist")
        answer(None)
fail("the stand-in az does not know: " + " ".join(args))
'''


class Tenant:
    """The stand-in tenant: its state file, and the fake `az` that serves it."""

    def __init__(self, root: Path) -> None:
        self.state_path = root / "tenant.json"
        bin_dir = root / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        az.write_text(f"#!{sys.executable}\n" + FAKE_AZ.replace("__STATE__", repr(str(self.state_path))))
        az.chmod(0o755)
        self.path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        roles = [{"value": v, "id": i, "allowedMemberTypes": ["Application"]} for v, i in GRAPH_ROLES.items()]
        roles.append({"value": "User.Read", "id": "d0000000-0000-0000-0000-000000000001",
                      "allowedMemberTypes": ["User"]})
        self.save({
            "service_principals": {
                GRAPH_APP_ID: {"id": GRAPH_SP, "appRoles": roles},
                APP_REGISTRATION[0]: {"id": APP_REGISTRATION[1], "appRoles": []},
            },
            "assignments": [],
            "calls": [],
        })

    def save(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def grant(self, principal: str, role: str, resource: str = GRAPH_SP) -> None:
        state = self.state()
        state["assignments"].append({"id": f"pre-{len(state['assignments'])}", "principalId": principal,
                                     "resourceId": resource, "appRoleId": GRAPH_ROLES[role]})
        self.save(state)

    def graph_roles(self, principal: str) -> list[str]:
        names = {i: v for v, i in GRAPH_ROLES.items()}
        return sorted(names[a["appRoleId"]] for a in self.state()["assignments"]
                      if a["principalId"] == principal and a["resourceId"] == GRAPH_SP)

    def writes(self) -> list[str]:
        """Methods of the Graph writes made so far ('post', 'delete')."""
        return [c[c.index("--method") + 1] for c in self.state()["calls"]
                if c[0] == "rest" and c[c.index("--method") + 1] != "get"]

    def run(self, *args: str, principal_env: str | None = IDENTITY) -> subprocess.CompletedProcess[str]:
        env = {"PATH": self.path, "HOME": str(self.state_path.parent)}
        if principal_env:
            env["AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"] = principal_env
        return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)


@pytest.fixture
def tenant(tmp_path: Path) -> Tenant:
    return Tenant(tmp_path)


def test_grants_the_six_roles_then_a_second_run_changes_nothing(tenant: Tenant) -> None:
    tenant.grant(IDENTITY, "Contacts.ReadWrite", resource=OTHER_API)  # same role id, another API: not Graph's
    first = tenant.run()
    assert first.returncode == 0, first.stderr
    assert tenant.graph_roles(IDENTITY) == sorted(GALSYNC_ROLES)
    assert tenant.writes() == ["post"] * 6
    granted = [line.split()[1] for line in first.stdout.splitlines() if line.startswith("grant ")]
    assert granted == GALSYNC_ROLES
    assert "granted 6, removed 0, unchanged 0" in first.stdout

    second = tenant.run()
    assert second.returncode == 0, second.stderr
    assert tenant.writes() == ["post"] * 6, "the second run wrote to Graph"
    assert second.stdout.count("already granted") == 6
    assert "granted 0, removed 0, unchanged 6" in second.stdout


def test_skips_roles_granted_before(tenant: Tenant) -> None:
    tenant.grant(IDENTITY, "User.Read.All")
    tenant.grant(IDENTITY, "Mail.ReadWrite")  # not galsync's: left alone, the script only adds its own
    result = tenant.run()
    assert result.returncode == 0, result.stderr
    assert "skip    User.Read.All: already granted" in result.stdout
    assert tenant.writes() == ["post"] * 5
    assert tenant.graph_roles(IDENTITY) == sorted([*GALSYNC_ROLES, "Mail.ReadWrite"])


def test_scoped_mailbox_access_removes_the_tenant_wide_mailbox_roles_once(tenant: Tenant) -> None:
    for role in GALSYNC_ROLES:
        tenant.grant(IDENTITY, role)
    result = tenant.run("--mailbox-access", "scoped")
    assert result.returncode == 0, result.stderr
    assert tenant.graph_roles(IDENTITY) == sorted(GALSYNC_ROLES[:4])
    assert tenant.writes() == ["delete", "delete"]
    assert "remove  Contacts.ReadWrite" in result.stdout and "remove  MailboxSettings.Read" in result.stdout
    again = tenant.run("--mailbox-access", "scoped")
    assert again.returncode == 0, again.stderr
    assert tenant.writes() == ["delete", "delete"]
    assert "granted 0, removed 0, unchanged 6" in again.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(tenant: Tenant) -> None:
    result = tenant.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert tenant.writes() == []
    assert result.stdout.count("(dry run) grant ") == 6


def test_an_app_registration_is_granted_through_its_service_principal(tenant: Tenant) -> None:
    result = tenant.run("--app-id", APP_REGISTRATION[0], principal_env=None)
    assert result.returncode == 0, result.stderr
    assert tenant.graph_roles(APP_REGISTRATION[1]) == sorted(GALSYNC_ROLES)
    assert tenant.graph_roles(IDENTITY) == []


@pytest.mark.parametrize(
    ("args", "principal_env", "message"),
    [
        (("--mailbox-access", "everything"), IDENTITY, "--mailbox-access is 'everything'"),
        (("--app-id", "66666666-6666-6666-6666-666666666666"), None, "no service principal for app id"),
        ((), None, "no principal: run 'azd up' first"),
        (("--principal-id", "not-a-guid"), None, "'not-a-guid' is not an object id"),
        (("--principal-id", IDENTITY, "--app-id", APP_REGISTRATION[0]), None, "not both"),
    ],
)
def test_bad_input_names_the_problem_and_writes_nothing(
    tenant: Tenant, args: tuple[str, ...], principal_env: str | None, message: str,
) -> None:
    result = tenant.run(*args, principal_env=principal_env)
    assert result.returncode != 0
    assert message in result.stderr
    assert tenant.writes() == []
