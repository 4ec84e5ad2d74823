"""`galsync config validate`: a bad file exits 2 with every problem named; a good one is summarised."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sync_core.cli.app import app

from .conftest import EXAMPLE_CONFIG

BAD = """
[[profile]]
name = "Dispatch"
folder = "Dispatch"
[[profile.source]]
type = "userz"
[profile.targets]
mailboxes = ["not an address"]
[profile.policy]
foreign_contact = "report"
"""


def test_the_example_configuration_is_valid_and_summarised() -> None:
    result = CliRunner().invoke(app, ["config", "validate", str(EXAMPLE_CONFIG), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [p["name"] for p in data["profiles"]] == ["Company directory", "Dispatch"]
    dispatch = data["profiles"][1]
    assert dispatch["targets"]["mailboxes"] == [f"trucks.{d}@northwind.example" for d in ("north", "south", "east",
                                                                                          "west")]
    assert dispatch["policies"]["foreign_contacts"] == "report"


def test_a_bad_configuration_exits_2_with_every_problem_and_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr
    assert "the configuration has 3 problems" in err
    assert 'profile "Dispatch": source[0].type: expected "users", "org_contacts" or "folder", got "userz"' in err
    assert "targets.mailboxes[0]" in err and '"not an address"' in err
    assert 'policy.foreign_contact: unknown key' in err and 'did you mean "foreign_contacts"?' in err
    assert "Traceback" not in result.output


def test_bad_configuration_as_json_names_the_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    result = CliRunner().invoke(app, ["--json", "config", "validate", str(path)])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "config" and len(error["details"]) == 3


def test_the_configuration_path_comes_from_the_setting_and_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = CliRunner().invoke(app, ["config", "validate"], env={"GALSYNC_CONFIG_PATH": str(missing)})
    assert result.exit_code == 2
    assert f"{missing}: cannot read the configuration" in result.stderr
