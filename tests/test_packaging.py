"""What gets deployed: requirements.txt is the lock file Azure builds the app from (scripts/lock.sh makes it
from pyproject.toml). Every runtime dependency of pyproject.toml but the command line's is in it, pinned to a
version pyproject allows, every package it holds is pinned with hashes (so pip installs exactly those files),
and nothing the function app does not need is deployed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CLI_ONLY = {"typer", "rich"}  # the command line's; the function app never imports them
LOCK = ROOT / "requirements.txt"


def locked() -> dict[str, tuple[str, list[str]]]:
    """The lock file as name -> (version, hashes); a pin spans its line and the `--hash` lines after it."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text(encoding="utf-8"))
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--") else line.strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"requirements.txt: not a hashed pin: {line[:80]}"
        hashes = re.findall(r"sha256:([0-9a-f]{64})", match.group(3))
        pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


def runtime_dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(Requirement(s).name): Requirement(s) for s in project["dependencies"]}
    return {name: req for name, req in declared.items() if name not in CLI_ONLY}


def test_every_runtime_dependency_is_locked_at_a_version_pyproject_allows() -> None:
    pins = locked()
    for name, requirement in runtime_dependencies().items():
        assert name in pins, f"{name} is a runtime dependency but not in requirements.txt: run scripts/lock.sh"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"requirements.txt pins {name}=={version}, outside pyproject's {requirement.specifier}: run scripts/lock.sh"


def test_the_lock_holds_every_package_pinned_with_hashes_and_not_the_command_line() -> None:
    pins = locked()
    assert len(pins) > len(runtime_dependencies()), "transitive dependencies are locked too"
    assert all(hashes for _, hashes in pins.values())
    assert not CLI_ONLY & set(pins), "typer and rich are the command line's, never deployed"


def test_known_fixes_are_required() -> None:
    deps = runtime_dependencies()
    for name, fixed in {"requests": "2.32.4", "cryptography": "44.0.1", "urllib3": "2.5"}.items():
        assert name in deps and str(deps[name].specifier) == f">={fixed}", name


def test_the_function_app_code_does_not_import_the_cli_or_the_emulator() -> None:
    for path in [ROOT / "function_app.py", *(ROOT / "sync_core").rglob("*.py")]:
        if "cli" in path.relative_to(ROOT).parts or not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for banned in ("import typer", "from typer", "import rich", "from rich", "graph_emulator"):
            assert banned not in text, f"{path.relative_to(ROOT)} uses {banned!r}, which is not deployed"


def test_every_package_the_deployed_code_imports_is_declared() -> None:
    declared = set(runtime_dependencies()) | {"azure-functions"}
    module_of = {"azure.functions": "azure-functions", "azure.data.tables": "azure-data-tables",
                 "azure.identity": "azure-identity", "azure.core": None, "msal": "msal", "requests": "requests",
                 "urllib3": "urllib3", "orjson": "orjson", "tenacity": "tenacity", "cryptography": "cryptography"}
    imported: set[str] = set()
    for path in [ROOT / "function_app.py", *(ROOT / "sync_core").rglob("*.py")]:
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for module in re.findall(r"^\s*(?:from|import)\s+([a-z_][\w.]*)", path.read_text(encoding="utf-8"), re.M):
            for prefix, package in module_of.items():
                if (module == prefix or module.startswith(prefix + ".")) and package:
                    imported.add(package)
    assert imported - declared == set(), "imported directly but not a declared dependency"
    assert "urllib3" in imported
