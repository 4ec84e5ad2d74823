"""Categories: galsync's names come from the profile and the source, are written once when they change, and
never take away a name a person added."""

from __future__ import annotations

from sync_core.core.actions import Create, Record, Update
from sync_core.core.categories import merged, ours_present
from sync_core.core.drift import ObservedContact, restore
from sync_core.core.fingerprint import fingerprint
from sync_core.core.plan import plan_target
from sync_core.core.profile import parse_config
from sync_core.core.records import SourceRecord, TargetRecord
from sync_core.core.sources import DesiredContact, Mapped, read_org_contact, read_user

CONFIG = """
[[profile]]
name = "Company"
categories = ["Company"]
[[profile.source]]
type = "users"
[[profile.source]]
type = "org_contacts"
categories = ["Suppliers", "company"]
[profile.targets]
groups = ["All Staff"]
"""
USER = {"id": "u1", "displayName": "Ana Costa", "mail": "ana@contoso.example", "assignedLicenses": [{"skuId": "x"}]}


def test_the_profile_and_each_source_name_their_categories_once_ignoring_case() -> None:
    profile = parse_config(CONFIG).profile("Company")
    user = read_user(USER, profile)
    org = read_org_contact({"id": "o1", "displayName": "Acme", "mail": "sales@acme.example"}, profile)
    assert isinstance(user, Mapped) and isinstance(org, Mapped)
    assert user.payload["categories"] == ["Company"]
    assert org.payload["categories"] == ["Company", "Suppliers"]
    plain = parse_config(CONFIG.replace('categories = ["Company"]\n', "", 1)).profile("Company")
    before = read_user(USER, plain)
    assert isinstance(before, Mapped) and "categories" not in before.payload
    assert before.fingerprint != user.fingerprint  # a new category reaches every contact once


def test_config_validate_names_a_bad_category() -> None:
    from sync_core.core.profile import ConfigError
    try:
        parse_config(CONFIG.replace('["Company"]', '["Company", " "]'))
    except ConfigError as error:
        (problem,) = error.problems
        assert problem.startswith('galsync.toml: profile "Company": categories[1]: expected a category name')
    else:
        raise AssertionError("a blank category must be refused")


def test_merging_keeps_a_persons_names_and_replaces_only_galsyncs() -> None:
    assert merged(["VIP", "Company"], ["Company"], ["Company", "Suppliers"]) == ["VIP", "Company", "Suppliers"]
    assert merged(["VIP", "company"], ["Company"], []) == ["VIP"]
    assert merged([], [], ["Company"]) == ["Company"]
    assert ours_present(["vip", "COMPANY"], ["Company", "Suppliers"]) == ["Company"]


def test_adding_a_category_updates_each_contact_with_only_its_categories_then_nothing() -> None:
    old = {"displayName": "Ana Costa", "mobilePhone": "+33 6 1"}
    new = {**old, "categories": ["Company"]}
    profile = parse_config(CONFIG).profile("Company")
    record = TargetRecord("m1", "user:u1", "c1", fingerprint(old), "ck1", "2026-01-01T00:00:00Z")
    previous = {"user:u1": SourceRecord("user:u1", fingerprint(old), old)}
    [update] = plan_target("m1", {"user:u1": DesiredContact(new, fingerprint(new))}, previous, {"user:u1": record},
                           profile)
    assert isinstance(update, Update)
    assert update.changes == {"categories": ["Company"], "displayName": "Ana Costa"}
    assert (update.categories, update.categories_before) == (("Company",), ())
    done = TargetRecord("m1", "user:u1", "c1", fingerprint(new), "ck2", "2026-01-01T00:00:00Z")
    assert plan_target("m1", {"user:u1": DesiredContact(new, fingerprint(new))}, previous, {"user:u1": done},
                       profile) == []
    [create] = plan_target("m2", {"user:u1": DesiredContact(new, fingerprint(new))}, {}, {}, profile)
    assert isinstance(create, Create) and create.body["categories"] == ["Company"]


def test_reconcile_leaves_a_persons_category_and_puts_back_a_removed_one_of_galsyncs() -> None:
    profile = parse_config(CONFIG).profile("Company")
    want_payload = {"displayName": "Ana Costa", "categories": ["Company"]}
    want = DesiredContact(want_payload, fingerprint(want_payload))
    with_theirs = ObservedContact("c1", "ck9", None, {"displayName": "Ana Costa", "categories": ["VIP", "company"]})
    assert isinstance(restore("user:u1", with_theirs, want, profile), Record)
    removed = ObservedContact("c1", "ck9", None, {"displayName": "Ana Costa", "categories": ["VIP"]})
    update = restore("user:u1", removed, want, profile)
    assert isinstance(update, Update) and update.changes["categories"] == ["Company"]
    assert update.categories == ("Company",) and update.categories_before == ()
