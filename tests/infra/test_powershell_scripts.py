"""The PowerShell scripts, read as text: no PowerShell runs on this machine, so these check what can be
checked without one. The POSIX postdeploy hook, which does the same steps, runs in test_postdeploy_hook.py."""

from __future__ import annotations

import re

from tests.infra.bicep_tree import INFRA

POSTDEPLOY_SH = (INFRA / "hooks" / "postdeploy.sh").read_text()
POSTDEPLOY_PS1 = (INFRA / "hooks" / "postdeploy.ps1").read_text()
SCOPE = (INFRA / "scope-mailboxes.ps1").read_text()


def test_the_windows_postdeploy_hook_uses_the_names_of_the_posix_one() -> None:
    key_name = re.search(r'^key_name="([^"]+)"$', POSTDEPLOY_SH, re.M)
    secret_name = re.search(r'^secret_name="([^"]+)"$', POSTDEPLOY_SH, re.M)
    assert key_name and secret_name
    assert f"$keyName = '{key_name.group(1)}'" in POSTDEPLOY_PS1
    assert f"$secretName = '{secret_name.group(1)}'" in POSTDEPLOY_PS1
    for variable in ("AZURE_FUNCTION_APP_NAME", "AZURE_RESOURCE_GROUP", "AZURE_KEY_VAULT_NAME"):
        assert variable in POSTDEPLOY_SH and f"Get-Required '{variable}'" in POSTDEPLOY_PS1


def test_the_windows_postdeploy_hook_never_shows_or_passes_the_key() -> None:
    assert "--value" not in POSTDEPLOY_PS1, "the key goes to az through a file"
    shown = [line for line in POSTDEPLOY_PS1.splitlines() if re.search(r"Write-(Host|Output|Error|Verbose)", line)]
    assert shown and not [line for line in shown if "$key" in line.replace("$keyName", "")]
    assert "Remove-Item -LiteralPath $work" in POSTDEPLOY_PS1, "the key file is deleted"
    # The same steps as the POSIX hook: create the key, compare, store, restart.
    for step in ("'keys', 'list'", "'keys', 'set'", "'secret', 'show'", "'secret', 'set'", "'functionapp', 'restart'"):
        assert step in POSTDEPLOY_PS1, step


def test_scope_mailboxes_quotes_the_group_dn_for_opath() -> None:
    built = re.search(r'^\s*\$filter = "MemberOfGroup -eq \'\$(\w+)\'"$', SCOPE, re.M)
    assert built, "the filter is built from one variable"
    assert re.search(rf"^\s*\${built.group(1)} = \$groupObject\.DistinguishedName\.Replace\(\"'\", \"''\"\)$",
                     SCOPE, re.M), "an apostrophe in the DN is doubled inside the single-quoted OPATH value"


def test_scope_mailboxes_replaces_an_assignment_held_by_another_identity() -> None:
    loop = SCOPE[SCOPE.index("foreach ($role in $Roles)"):]
    check = loop.index("$assigneeNames -notcontains")
    assert check < loop.index("Remove-ManagementRoleAssignment -Identity $name") < loop.index(
        "New-ManagementRoleAssignment -Name $name -App $ObjectId")
