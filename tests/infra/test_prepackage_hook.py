"""infra/hooks/prepackage.sh (run by `azd package`, `azd deploy` and `azd up` before the package is built)
stops the deployment when the profiles file is missing or invalid, with every problem listed, so that a
deployment never succeeds with an app that can only answer 503. It runs the real `galsync config validate`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.infra.bicep_tree import INFRA, ROOT

HOOK = INFRA / "hooks" / "prepackage.sh"
INVALID = """
[[profile]]
name = "Company"
folder = "Company directory"

[[profile.source]]
type = "everyone"
"""


def run_hook(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The hook as azd runs it: in the project folder, with the azd environment's variables."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # galsync is on PATH
    return subprocess.run(["sh", str(HOOK)], cwd=project, capture_output=True, text=True, timeout=120,
                          env={"PATH": path, "HOME": str(project), **env}, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "galsync.example.toml", tmp_path / "galsync.toml")
    return tmp_path


def test_a_valid_profiles_file_lets_the_deployment_go_on(project: Path) -> None:
    result = run_hook(project)
    assert result.returncode == 0, result.stderr
    assert "galsync.toml: valid" in result.stdout


def test_an_invalid_profiles_file_stops_the_deployment_with_every_problem(project: Path) -> None:
    (project / "galsync.toml").write_text(INVALID, encoding="utf-8")
    result = run_hook(project)
    assert result.returncode == 1
    assert 'source[0].type: expected "users", "org_contacts" or "folder", got "everyone"' in result.stderr
    assert "targets" in result.stderr and "run azd deploy again" in result.stderr


def test_a_missing_profiles_file_stops_the_deployment_and_says_how_to_make_one(project: Path) -> None:
    (project / "galsync.toml").unlink()
    result = run_hook(project)
    assert result.returncode == 1
    assert "no profiles file galsync.toml" in result.stderr and "galsync.example.toml" in result.stderr


def test_the_file_is_the_one_the_app_reads_GALSYNC_CONFIG_PATH(project: Path) -> None:
    (project / "profiles").mkdir()
    (project / "profiles" / "prod.toml").write_text(INVALID, encoding="utf-8")
    result = run_hook(project, GALSYNC_CONFIG_PATH="profiles/prod.toml")
    assert result.returncode == 1 and "profiles/prod.toml" in result.stderr
    shutil.copy(project / "galsync.toml", project / "profiles" / "prod.toml")
    assert run_hook(project, GALSYNC_CONFIG_PATH="profiles/prod.toml").returncode == 0


def test_an_absolute_path_is_refused_because_it_would_not_ship_with_the_app(project: Path) -> None:
    result = run_hook(project, GALSYNC_CONFIG_PATH=str(project / "galsync.toml"))
    assert result.returncode == 1 and "relative to the project folder" in result.stderr


def test_without_galsync_installed_the_hook_says_how_to_install_it(project: Path) -> None:
    bare = subprocess.run(["sh", str(HOOK)], cwd=project, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(project)}, check=False)
    assert bare.returncode == 1 and "pip install -e ." in bare.stderr


def test_azd_runs_each_hook_on_posix_and_on_windows() -> None:
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    assert set(hooks) == {"prepackage", "postdeploy"}
    for event, variants in hooks.items():
        assert set(variants) == {"posix", "windows"}, event
        posix, windows = ROOT / variants["posix"]["run"], ROOT / variants["windows"]["run"]
        assert posix.suffix == ".sh" and posix.is_file() and os.access(posix, os.X_OK), event
        assert windows.suffix == ".ps1" and windows.is_file() and windows.stem == posix.stem, event
        assert variants["windows"]["shell"] == "pwsh" and variants["posix"]["shell"] == "sh"
        assert all(v["continueOnError"] is False for v in variants.values()), event


def test_azd_is_new_enough_to_honour_funcignore() -> None:
    required = yaml.safe_load((ROOT / "azure.yaml").read_text())["requiredVersions"]["azd"]
    assert required == ">= 1.18.0"
