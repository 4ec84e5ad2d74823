"""What gets deployed: requirements.txt (Azure installs it) must match pyproject.toml's runtime dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_ONLY = {"typer", "rich"}  # the command line's; the function app never imports them


def _names(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        spec = line.split("#")[0].strip()
        if spec:
            name = spec.split(">")[0].split("=")[0].split("<")[0].strip().lower()
            out[name] = spec
    return out


def test_requirements_are_the_runtime_dependencies_without_the_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = _names(project["dependencies"])
    deployed = _names((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    assert deployed == {k: v for k, v in declared.items() if k not in CLI_ONLY}


def test_the_function_app_code_does_not_import_the_cli_or_the_emulator() -> None:
    for path in [ROOT / "function_app.py", *(ROOT / "sync_core").rglob("*.py")]:
        if "cli" in path.relative_to(ROOT).parts or not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for banned in ("import typer", "from typer", "import rich", "from rich", "graph_emulator"):
            assert banned not in text, f"{path.relative_to(ROOT)} uses {banned!r}, which is not deployed"
