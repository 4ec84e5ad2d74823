"""Profiles: the example config loads, defaults are what docs/config.md says, and bad files fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_core.core.fields import CONTACT_FIELDS, EXTRA_FIELDS
from sync_core.core.profile import (
    DEFAULT_FOLDER,
    ConfigError,
    Policies,
    Source,
    UserFilter,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
[[profile]]
name = "Company directory"
[[profile.source]]
type = "users"
[profile.targets]
groups = ["All Staff"]
"""


def problems_of(text: str, name: str = "galsync.toml") -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, name)
    return info.value.problems


def test_example_config_loads_with_both_logistics_profiles() -> None:
    config = load_config(ROOT / "galsync.example.toml")
    assert config.names == ("Company directory", "Dispatch")
    company, dispatch = config.profiles
    assert company.targets.groups == ("All Staff",)
    assert [s.kind for s in company.sources] == ["users", "org_contacts"]
    assert company.field_policy("manager") == "if_empty"
    assert dispatch.users.in_groups == ("Drivers",)
    assert len(dispatch.targets.mailboxes) == 4
    assert dispatch.field_policy("businessAddress") == "never"
    assert dispatch.photos.enabled is False
    assert config.profile("Dispatch") is dispatch


def test_defaults_of_a_minimal_profile() -> None:
    profile = parse_config(MINIMAL).profile("Company directory")
    assert profile.folder == DEFAULT_FOLDER == "Company Directory"
    assert profile.sources == (Source("users"),)
    assert profile.users == UserFilter()
    assert profile.users.enabled_only and profile.users.members_only and profile.users.licensed_only
    assert profile.policies == Policies("delete", "delete", "recreate", "report")
    assert profile.photos.enabled is True and profile.photos.size == "240x240"
    # The fields no source fills by itself (fileAs, nickName, ...) are written only when a template fills them.
    assert profile.mapped_fields == tuple(f for f in CONTACT_FIELDS if f not in EXTRA_FIELDS)


def test_message_names_file_profile_key_expected_and_found() -> None:
    text = MINIMAL.replace('name = "Company directory"', 'name = "Dispatch"') + (
        '[profile.policy]\nforeign_contacts = "purge"\n'
    )
    assert problems_of(text) == (
        'galsync.toml: profile "Dispatch": policy.foreign_contacts: '
        'expected "report" or "delete", got "purge"',
    )


def test_several_problems_are_reported_together() -> None:
    text = """
[[profile]]
name = "Dispatch"
folder = ""
[[profile.source]]
type = "ldap"
[profile.users]
enabled_onyl = true
licensed_only = "yes"
[profile.targets]
mailboxes = ["bob"]
[profile.fields]
mobilePhone = "sometimes"
displayName = "never"
nickname = "always"
[profile.photos]
size = "1000x1000"
"""
    problems = problems_of(text, "conf/galsync.toml")
    assert all(p.startswith('conf/galsync.toml: profile "Dispatch": ') for p in problems)
    keys = [p.split(": ")[2] for p in problems]
    assert sorted(keys) == sorted([
        "folder", "source[0].type", "users.enabled_onyl", "users.licensed_only", "targets.mailboxes[0]",
        "fields.nickname", "fields.mobilePhone", "fields.displayName", "photos.size",
    ])
    typo = next(p for p in problems if "enabled_onyl" in p)
    assert 'did you mean "enabled_only"' in typo
    assert any('got "yes"' in p and "true or false" in p for p in problems)


@pytest.mark.parametrize(
    ("snippet", "key", "found"),
    [
        ('[profile.policy]\nremoved_source = "archive"\n', "policy.removed_source", 'got "archive"'),
        ('[profile.policy]\nremoved_target = 1\n', "policy.removed_target", "got the number 1"),
        ('[profile.policy]\ndeleted_on_device = "ignore"\n', "policy.deleted_on_device", 'got "ignore"'),
        ("[profile.photos]\nenabled = 1\n", "photos.enabled", "got the number 1"),
        ("[profile.users]\nin_groups = \"Drivers\"\n", "users.in_groups", 'got "Drivers"'),
        ("[profile.users]\nnot_in_groups = [\"\"]\n", "users.not_in_groups[0]", 'got ""'),
        ("[profile.targets.extra]\nx = 1\n", "targets.extra", "unknown key"),
    ],
)
def test_each_bad_value_is_named(snippet: str, key: str, found: str) -> None:
    problems = problems_of(MINIMAL + snippet)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'galsync.toml: profile "Company directory": {key}: ')
    assert found in problems[0]


def test_profile_names_are_restricted_and_unique() -> None:
    bad = MINIMAL.replace('"Company directory"', '"Company/directory"')
    (problem,) = problems_of(bad)
    assert problem.startswith('galsync.toml: profile "Company/directory": name: expected 1-40 characters')
    long = MINIMAL.replace('"Company directory"', '"' + "x" * 41 + '"')
    assert "name: expected" in problems_of(long)[0]
    twice = MINIMAL + MINIMAL.replace('"Company directory"', '"company directory"').replace(
        "[[profile]]", '[[profile]]\nfolder = "Other"')
    (dup,) = problems_of(twice)
    assert 'profile "company directory": name: expected a name no other profile uses' in dup
    assert 'same as "Company directory" ignoring case' in dup


def test_two_profiles_cannot_share_a_folder() -> None:
    text = MINIMAL + MINIMAL.replace('"Company directory"', '"Dispatch"')
    (problem,) = problems_of(text)
    assert problem.startswith(
        'galsync.toml: profile "Dispatch": folder: expected a folder no other profile uses')


def test_missing_required_parts() -> None:
    assert problems_of("") == ("galsync.toml: profile: expected at least one [[profile]] table, got none",)
    no_source = '[[profile]]\nname = "A"\n[profile.targets]\ngroups = ["g"]\n'
    assert problems_of(no_source) == (
        'galsync.toml: profile "A": source: expected at least one [[profile.source]] table, got none',
    )
    no_target = '[[profile]]\nname = "A"\n[[profile.source]]\ntype = "users"\n'
    assert "targets: expected targets.groups or targets.mailboxes" in problems_of(no_target)[0]
    nameless = '[[profile]]\n[[profile.source]]\ntype = "users"\n[profile.targets]\ngroups = ["g"]\n'
    assert problems_of(nameless) == ("galsync.toml: profile #1: name: missing (required)",)
    folder_source = MINIMAL + '[[profile.source]]\ntype = "folder"\nfolder = "Suppliers"\n'
    assert problems_of(folder_source) == (
        'galsync.toml: profile "Company directory": source[1].mailbox: missing (required)',
    )


def test_unknown_top_level_key_and_bad_toml() -> None:
    (problem,) = problems_of("profiles = 1\n" + MINIMAL)
    assert problem.startswith("galsync.toml: profiles: unknown key")
    (syntax,) = problems_of("[[profile]\nname = 1")
    assert syntax.startswith("galsync.toml: not valid TOML: ")


def test_folder_source_parses_with_mailbox_and_folder() -> None:
    text = MINIMAL + '[[profile.source]]\ntype = "folder"\nmailbox = "suppliers@northwind.example"\n' \
        'folder = "Suppliers"\n'
    profile = parse_config(text).profile("Company directory")
    assert profile.sources[1] == Source("folder", "suppliers@northwind.example", "Suppliers")
    assert profile.sources[1].name == "folder:suppliers@northwind.example:Suppliers"


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the configuration"):
        load_config(missing)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe name")
    with pytest.raises(ConfigError, match=r"bin\.toml: not UTF-8 text"):
        load_config(binary)
    good = tmp_path / "galsync.toml"
    good.write_text(MINIMAL, encoding="utf-8")
    assert load_config(good).source_name == str(good)


def test_unknown_profile_lookup_lists_known_ones() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(ConfigError, match='no profile named "Dispatch"; profiles are: "Company directory"'):
        config.profile("Dispatch")


def test_place_is_the_own_folder_unless_the_default_folder_is_chosen() -> None:
    assert parse_config(MINIMAL).profiles[0].place == "own_folder"
    in_default = MINIMAL.replace("[[profile.source]]", 'place = "default_folder"\n[[profile.source]]', 1)
    assert parse_config(in_default).profiles[0].place == "default_folder"
    # Profiles in the default folder share it (each tells its contacts by its tag); no folder name to clash.
    two = in_default + in_default.replace('"Company directory"', '"Dispatch"')
    assert [p.place for p in parse_config(two)] == ["default_folder", "default_folder"]
    (typo,) = problems_of(MINIMAL.replace("[[profile.source]]", 'place = "contacts"\n[[profile.source]]', 1))
    assert typo.endswith('place: expected "own_folder" or "default_folder", got "contacts"')


def test_the_default_folder_refuses_deleting_foreign_contacts_and_a_folder_name() -> None:
    text = MINIMAL.replace("[[profile.source]]", 'place = "default_folder"\nfolder = "Directory"\n'
                           "[[profile.source]]", 1) + '[profile.policy]\nforeign_contacts = "delete"\n'
    folder, foreign = sorted(problems_of(text))
    assert folder.startswith('galsync.toml: profile "Company directory": folder: not used with place = '
                             '"default_folder"')
    assert foreign.startswith('galsync.toml: profile "Company directory": policy.foreign_contacts: expected '
                              '"report" with place = "default_folder"')
    assert "the mailbox owner's own" in foreign
