"""The files beside the code that a deployment relies on: local.settings.json.example (what `func start`
reads, copied to local.settings.json) and .funcignore (what `azd deploy` leaves out of the package)."""

from __future__ import annotations

import json

import pathspec

from sync_core.settings import SPECS
from tests.infra.bicep_tree import ROOT

# Settings the Functions host reads locally, with the value the example gives them.
FUNCTIONS_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",  # Azurite
}


def test_local_settings_example_lists_every_setting_with_its_default() -> None:
    document = json.loads((ROOT / "local.settings.json.example").read_text())
    assert document["IsEncrypted"] is False
    values = document["Values"]
    assert {name: values[name] for name in FUNCTIONS_SETTINGS if name in values} == FUNCTIONS_SETTINGS
    galsync = {name: value for name, value in values.items() if name not in FUNCTIONS_SETTINGS}
    assert list(galsync) == [s.name for s in SPECS], "exactly the settings in SPECS, in their order"
    assert galsync == {s.name: s.default for s in SPECS}


def test_funcignore_keeps_development_files_out_of_the_package() -> None:
    ignore = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    left_out = [
        "tests/infra/test_bicep.py", "bench/run.py", "graph_emulator/server.py", "infra/main.bicep",
        "docs/config.md", "node_modules/azurite/package.json", ".venv/bin/python",
        ".venv-checkov/bin/checkov", "scripts/test.sh", "local.settings.json", "local.settings.json.example",
        "package.json", "package-lock.json", "pyproject.toml", "azure.yaml", "galsync-state.db",
        "sync_core/__pycache__/settings.cpython-311.pyc", ".git/HEAD", ".azure/dev/.env",
    ]
    shipped = [
        "function_app.py", "host.json", "requirements.txt", "galsync.toml", "sync_core/settings.py",
        "sync_core/graph/client.py",
    ]
    assert [path for path in left_out if not ignore.match_file(path)] == []
    assert [path for path in shipped if ignore.match_file(path)] == []
