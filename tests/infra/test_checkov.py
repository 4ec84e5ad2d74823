"""checkov scans infra/ offline and finds nothing: every check passes or is skipped in the Bicep itself with
a reason. scripts/test.sh installs checkov into .venv-checkov (its pinned dependencies clash with ours),
so a missing binary is a broken setup and fails the test instead of skipping it."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.infra.bicep_tree import BICEP_FILES, INFRA, ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)$")
RESOURCE = re.compile(r"^resource (\w+) '([^@']+)@")


@pytest.fixture(scope="module")
def scan() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run scripts/test.sh, which installs checkov there")
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(INFRA), "--framework", "bicep", "--skip-download",
         "--output", "json", "--compact"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert result.returncode in (0, 1), f"checkov could not run:\n{result.stderr[-2000:]}"
    return json.loads(result.stdout)


def skip_comments() -> dict[tuple[str, str, str], str]:
    """(file, resource, check id) -> reason for every `//checkov:skip=` comment under infra/, named as
    checkov names them: '/app/function-app.bicep', 'Microsoft.Web/sites.functionApp', 'CKV_AZURE_17'."""
    comments: dict[tuple[str, str, str], str] = {}
    for path in BICEP_FILES:
        file, resource = "/" + path.relative_to(INFRA).as_posix(), ""
        for line in path.read_text().splitlines():
            declaration = RESOURCE.match(line)
            if declaration:
                resource = f"{declaration.group(2)}.{declaration.group(1)}"
            if "checkov:skip" in line:
                match = SKIP_COMMENT.search(line)
                assert match and resource, f"{path.name}: skip comment outside a resource: {line.strip()}"
                comments[(file, resource, match.group(1))] = match.group(2).strip()
    return comments


def test_checkov_finds_no_failed_check(scan: dict[str, Any]) -> None:
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in scan["results"]["failed_checks"]]
    assert failed == []
    assert scan["summary"]["parsing_errors"] == 0
    assert scan["summary"]["passed"] >= 25, "checkov ran almost no check: did it see the Bicep files?"


def test_every_skip_gives_a_reason() -> None:
    comments = skip_comments()
    assert comments
    terse = [" ".join(key) for key, reason in comments.items() if len(reason.split()) < 8]
    assert terse == [], "a skip needs a reason that explains itself"


def test_every_skip_comment_matches_a_check_checkov_skipped_for_that_reason(scan: dict[str, Any]) -> None:
    skipped = {
        (c["file_path"], c["resource"], c["check_id"]): c["check_result"]["suppress_comment"]
        for c in scan["results"]["skipped_checks"]
    }
    comments = skip_comments()
    assert sorted(set(comments) - set(skipped)) == [], "stale skip comments: checkov runs no such check there"
    assert sorted(set(skipped) - set(comments)) == []
    assert skipped == comments, "checkov read other reasons than the comments say"
