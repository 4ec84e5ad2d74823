"""The planner: unit cases for each rule, and properties checked by applying plans to a folder model."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_core.core.actions import Create, Delete, Forget, Record, SetPhoto, Update
from sync_core.core.fields import ADDRESS_KEYS
from sync_core.core.fingerprint import fingerprint
from sync_core.core.plan import SharedCreates, plan_removed_target, plan_target
from sync_core.core.profile import Photos, Policies, Profile, field_policies
from sync_core.core.records import TargetRecord
from sync_core.core.sources import DesiredContact
from sync_core.core.tags import CONTACT_TAG_ID, contact_tag_value
from tests.emulator.schema import validate

from .folder_model import MAILBOX, Folder, owned_view, source_records
from .strategies import desired_sets, profiles

PROFILE = Profile(name="Company directory", photos=Photos(enabled=False))


def desired_of(**payloads: dict[str, Any]) -> dict[str, DesiredContact]:
    return {f"user:{k}": DesiredContact(p, fingerprint(p)) for k, p in payloads.items()}


def for_profile(desired: dict[str, DesiredContact], profile: Profile) -> dict[str, DesiredContact]:
    """What mapping would give for this profile: "never" fields are not in payloads."""
    out = {}
    for key, d in desired.items():
        payload = {k: v for k, v in d.payload.items() if k in profile.mapped_fields}
        out[key] = DesiredContact(payload, fingerprint(payload), d.photo_etag)
    return out


def synced(profile: Profile, desired: dict[str, DesiredContact]) -> Folder:
    folder = Folder(profile)
    folder.apply(plan_target(MAILBOX, desired, {}, {}, profile))
    return folder


ANA = {"displayName": "Ana Costa", "givenName": "Ana", "jobTitle": "Driver", "mobilePhone": "+33 6 1",
       "businessAddress": {"city": "Lyon", "street": "1 rue"}}


def test_first_run_creates_each_contact_with_its_tag() -> None:
    desired = desired_of(a=ANA, b={"displayName": "Bo"})
    plan = plan_target(MAILBOX, desired, {}, {}, PROFILE)
    assert [type(a) for a in plan] == [Create, Create]
    create = plan[0]
    assert isinstance(create, Create) and create.source_key == "user:a" and not create.recover
    assert create.body["singleValueExtendedProperties"] == [
        {"id": CONTACT_TAG_ID, "value": contact_tag_value("Company directory", "user:a")}]
    assert create.fields == ANA


def test_one_changed_field_sends_that_field_and_display_name_only() -> None:
    before = desired_of(a=ANA)
    folder = synced(PROFILE, before)
    after = desired_of(a=dict(ANA, jobTitle="Dispatcher"))
    plan = plan_target(MAILBOX, after, source_records(before), folder.records, PROFILE)
    assert plan == [Update("user:a", folder.records["user:a"].contact_id or "",
                           {"jobTitle": "Dispatcher", "displayName": "Ana Costa"}, after["user:a"].fingerprint)]


def test_removed_fields_are_cleared_as_graph_expects() -> None:
    before = desired_of(a=dict(ANA, businessPhones=["+33 4"]))
    folder = synced(PROFILE, before)
    stripped = {"displayName": "Ana Costa", "givenName": "Ana", "jobTitle": "Driver",
                "businessAddress": {"city": "Lyon"}}
    after = desired_of(a=stripped)
    (update,) = plan_target(MAILBOX, after, source_records(before), folder.records, PROFILE)
    assert isinstance(update, Update)
    assert update.changes == {
        "mobilePhone": None,
        "businessPhones": [],
        "businessAddress": {"street": None, "city": "Lyon", "state": None, "postalCode": None,
                            "countryOrRegion": None},
        "displayName": "Ana Costa",
    }
    assert list(update.changes["businessAddress"]) == list(ADDRESS_KEYS)


def test_update_bodies_match_the_contact_schema() -> None:
    before = desired_of(a=dict(ANA, businessPhones=["+33 4"], manager="Bo"))
    folder = synced(PROFILE, before)
    after = desired_of(a={"displayName": "Ana Costa"})
    (update,) = plan_target(MAILBOX, after, source_records(before), folder.records, PROFILE)
    assert isinstance(update, Update)
    validate(dict(update.changes), "PersonalContacts.yml", "microsoft.graph.contact")
    assert update.changes["businessAddress"] == dict.fromkeys(ADDRESS_KEYS)


def test_adoption_patch_sets_every_owned_field() -> None:
    profile = dataclasses.replace(PROFILE, fields=field_policies(manager="never", mobilePhone="if_empty"))
    (create,) = plan_target(MAILBOX, desired_of(a={"displayName": "Bo", "mobilePhone": "+1"}), {}, {}, profile)
    assert isinstance(create, Create)
    patch = create.adoption_patch()
    assert set(patch) == set(profile.mapped_fields) and "manager" not in patch
    assert patch["mobilePhone"] == "+1" and patch["jobTitle"] is None and patch["businessPhones"] == []
    validate(patch, "PersonalContacts.yml", "microsoft.graph.contact")


def test_target_out_of_step_gets_the_full_payload() -> None:
    before = desired_of(a=ANA)
    folder = synced(PROFILE, before)
    stale = {"user:a": dataclasses.replace(folder.records["user:a"], fingerprint="written-by-an-older-run")}
    after = desired_of(a=dict(ANA, jobTitle="Dispatcher"))
    (update,) = plan_target(MAILBOX, after, source_records(before), stale, PROFILE)
    assert isinstance(update, Update)
    assert set(update.changes) == set(PROFILE.fields_with("always"))
    assert update.changes["emailAddresses"] == [] and update.changes["manager"] is None


def test_if_empty_fields_are_written_on_create_only() -> None:
    profile = dataclasses.replace(PROFILE, fields=field_policies(mobilePhone="if_empty", manager="never"))
    before = desired_of(a=ANA)
    (create,) = plan_target(MAILBOX, before, {}, {}, profile)
    assert isinstance(create, Create) and create.fields["mobilePhone"] == "+33 6 1"
    folder = synced(profile, before)
    after = desired_of(a=dict(ANA, mobilePhone="+33 6 2"))
    plan = plan_target(MAILBOX, after, source_records(before), folder.records, profile)
    record = folder.records["user:a"]
    assert plan == [Record("user:a", record.contact_id, after["user:a"].fingerprint, record.change_key)]


def test_removed_source_is_deleted_or_kept_per_policy() -> None:
    before = desired_of(a=ANA, b={"displayName": "Bo"})
    folder = synced(PROFILE, before)
    after = {"user:a": before["user:a"]}
    plan = plan_target(MAILBOX, after, source_records(before), folder.records, PROFILE)
    assert plan == [Delete("user:b", folder.records["user:b"].contact_id)]
    keep = dataclasses.replace(PROFILE, policies=Policies(removed_source="keep"))
    assert plan_target(MAILBOX, after, source_records(before), folder.records, keep) == []


def test_a_removed_source_that_a_target_never_had_is_not_looked_for() -> None:
    """A target that joined after "b" was written has no record of it: nothing of it to delete there."""
    before = desired_of(a=ANA, b={"displayName": "Bo"})
    joined_later = synced(PROFILE, {"user:a": before["user:a"]})
    after = {"user:a": before["user:a"]}
    assert plan_target(MAILBOX, after, source_records(before), joined_later.records, PROFILE) == []


def test_targets_of_one_push_share_each_create_and_plan_as_alone() -> None:
    desired = desired_of(a=ANA, b={"displayName": "Bo"})
    shared = SharedCreates(PROFILE)
    first = plan_target(MAILBOX, desired, {}, {}, PROFILE, shared)
    second = plan_target("mailbox-2", desired, {}, {}, PROFILE, shared)
    assert first == second == plan_target(MAILBOX, desired, {}, {}, PROFILE)
    assert all(a is b for a, b in zip(first, second, strict=True))  # built once, not once per target


def test_shared_creates_follow_a_changed_desired_contact() -> None:
    shared = SharedCreates(PROFILE)
    (before,) = plan_target(MAILBOX, desired_of(a=ANA), {}, {}, PROFILE, shared)
    (after,) = plan_target(MAILBOX, desired_of(a={**ANA, "jobTitle": "Planner"}), {}, {}, PROFILE, shared)
    assert isinstance(after, Create) and after.fields["jobTitle"] == "Planner" and after is not before


def test_shared_creates_of_another_profile_are_refused() -> None:
    other = dataclasses.replace(PROFILE, name="Other")
    with pytest.raises(ValueError, match="Other"):
        plan_target(MAILBOX, desired_of(a=ANA), {}, {}, other, SharedCreates(PROFILE))


def test_in_flight_create_is_not_shared() -> None:
    desired = desired_of(a=ANA)
    in_flight = {"user:a": TargetRecord(MAILBOX, "user:a", None, "", None, "2024-01-01T00:00:00Z")}
    shared = SharedCreates(PROFILE)
    (fresh,) = plan_target("mailbox-2", desired, {}, {}, PROFILE, shared)
    (recover,) = plan_target(MAILBOX, desired, {}, in_flight, PROFILE, shared)
    assert isinstance(recover, Create) and recover.recover and not fresh.recover  # type: ignore[union-attr]


def test_create_in_flight_is_recovered_not_repeated() -> None:
    desired = desired_of(a=ANA)
    in_flight = {"user:a": TargetRecord(MAILBOX, "user:a", None, "", None, "2024-01-01T00:00:00Z")}
    (create,) = plan_target(MAILBOX, desired, {}, in_flight, PROFILE)
    assert isinstance(create, Create) and create.recover
    (delete,) = plan_target(MAILBOX, {}, {}, in_flight, PROFILE)
    assert delete == Delete("user:a", None)


def test_respected_deletion_stays_deleted_until_policy_changes() -> None:
    desired = desired_of(a=ANA)
    tomb = {"user:a": TargetRecord(MAILBOX, "user:a", "AAMk-0", desired["user:a"].fingerprint, "ck",
                                   "2024-01-01T00:00:00Z", deleted_on_device=True)}
    respect = dataclasses.replace(PROFILE, policies=Policies(deleted_on_device="respect"))
    assert plan_target(MAILBOX, desired_of(a=dict(ANA, jobTitle="X")), {}, tomb, respect) == []
    (create,) = plan_target(MAILBOX, desired, {}, tomb, PROFILE)
    assert isinstance(create, Create) and create.recover
    assert plan_target(MAILBOX, {}, {}, tomb, respect) == [Forget("user:a")]


def test_photos_follow_the_source_etag_when_enabled() -> None:
    profile = dataclasses.replace(PROFILE, photos=Photos(enabled=True))
    before = {"user:a": DesiredContact(ANA, fingerprint(ANA), "etag-1")}
    (create,) = plan_target(MAILBOX, before, {}, {}, profile)
    assert isinstance(create, Create) and create.photo_etag == "etag-1"
    folder = synced(profile, before)
    after = {"user:a": DesiredContact(ANA, fingerprint(ANA), "etag-2")}
    cid = folder.records["user:a"].contact_id or ""
    assert plan_target(MAILBOX, after, source_records(before), folder.records, profile) == [
        SetPhoto("user:a", cid, "etag-2")]
    assert plan_target(MAILBOX, after, source_records(before), folder.records, PROFILE) == []


def test_removed_target_policy() -> None:
    folder = synced(PROFILE, desired_of(a=ANA, b={"displayName": "Bo"}))
    plan = plan_removed_target(folder.records, PROFILE)
    assert plan == [Delete(k, r.contact_id) for k, r in sorted(folder.records.items())]
    keep = dataclasses.replace(PROFILE, policies=Policies(removed_target="keep"))
    assert plan_removed_target(folder.records, keep) == []


def test_records_of_another_mailbox_are_refused() -> None:
    folder = synced(PROFILE, desired_of(a=ANA))
    try:
        plan_target("mbx-2", {}, {}, folder.records, PROFILE)
    except ValueError as e:
        assert "mbx-1/user:a" in str(e)
    else:
        raise AssertionError("records of another mailbox were accepted")


# --- properties ---------------------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Profile, dict[str, DesiredContact], dict[str, DesiredContact],
                                        dict[str, str], random.Random]:
    profile = draw(profiles)
    before = for_profile(draw(desired_sets()), profile)
    after = for_profile(draw(desired_sets()), profile)
    # Per source: how the previous run ended for this target (crashes between the write and the record, older
    # runs), or "joined_later": the target became one after the source was written, so it never had it.
    damage = {k: draw(st.sampled_from(["none", "none", "in_flight_landed", "in_flight_lost", "out_of_step",
                                       "joined_later"]))
              for k in before}
    return profile, before, after, damage, draw(st.randoms())


def damaged(profile: Profile, before: dict[str, DesiredContact], damage: dict[str, str]) -> Folder:
    folder = synced(profile, before)
    for key, kind in damage.items():
        record = folder.records[key]
        if kind.startswith("in_flight"):
            folder.records[key] = dataclasses.replace(record, contact_id=None, fingerprint="", change_key=None)
            if kind == "in_flight_lost":
                del folder.contacts[record.contact_id or ""]
        elif kind == "out_of_step":
            folder.records[key] = dataclasses.replace(record, fingerprint="older")
            folder.contacts[record.contact_id or ""].fields = {"displayName": "stale", "jobTitle": "stale"}
        elif kind == "joined_later":
            del folder.records[key]
            del folder.contacts[record.contact_id or ""]
    return folder


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_applying_a_plan_yields_exactly_the_desired_contacts(scenario: Any) -> None:
    profile, before, after, damage, rnd = scenario
    folder = damaged(profile, before, damage)
    records_before = dict(folder.records)
    plan = plan_target(MAILBOX, after, source_records(before), folder.records, profile)

    # I1: a contact is updated or deleted only for a source this target has a record of, and only the contact
    # that record names (a Delete without a contact id only where the record has none: a create in doubt).
    for action in plan:
        if isinstance(action, Update | Delete | SetPhoto):
            record = records_before.get(action.source_key)
            assert record is not None, f"I1: {action} for a source this target has no record of"
            assert action.contact_id == record.contact_id, f"I1: {action} names another contact than {record}"
        if isinstance(action, Update):
            assert action.changes["displayName"] == after[action.source_key].payload["displayName"]
            assert set(action.changes) <= set(profile.fields_with("always", "overwrite")) | {"displayName"}
    # I2: at most one Create per source, and only where no contact is recorded.
    creates = Counter(a.source_key for a in plan if isinstance(a, Create))
    assert all(n == 1 for n in creates.values())
    assert all(records_before.get(k) is None or records_before[k].contact_id is None for k in creates)

    # Deterministic, whatever the order of the inputs.
    shuffled = list(after.items())
    rnd.shuffle(shuffled)
    assert plan_target(MAILBOX, dict(shuffled), source_records(before), folder.records, profile) == plan

    folder.apply(plan)
    kept = {k for k in before if k not in after} if profile.policies.removed_source == "keep" else set()
    for key, want in after.items():
        (contact_id,) = folder.tagged(key)
        contact = folder.contacts[contact_id]
        assert owned_view(contact.fields, profile, "always") == owned_view(want.payload, profile, "always")
        assert folder.records[key].contact_id == contact_id
        assert folder.records[key].fingerprint == want.fingerprint
        if profile.photos.enabled:
            assert contact.photo == want.photo_etag
    for key in set(before) - set(after):
        expected = 1 if key in kept and damage[key] not in ("in_flight_lost", "joined_later") else 0
        assert len(folder.tagged(key)) == expected

    # Unchanged input afterwards: nothing to do.
    assert plan_target(MAILBOX, after, source_records(after), folder.records, profile) == []


@settings(max_examples=150, deadline=None)
@given(profiles, desired_sets())
def test_plan_for_unchanged_input_is_empty(profile: Profile, desired: dict[str, DesiredContact]) -> None:
    desired = for_profile(desired, profile)
    folder = synced(profile, desired)
    assert plan_target(MAILBOX, desired, source_records(desired), folder.records, profile) == []
    # One POST per contact, one photo PUT per contact with a photo (when photos are on); nothing else.
    photos = sum(1 for d in desired.values() if profile.photos.enabled and d.photo_etag is not None)
    assert folder.writes == len(desired) + photos


@settings(max_examples=150, deadline=None)
@given(profiles, desired_sets(photos=False), desired_sets(photos=False))
def test_in_step_updates_send_exactly_the_changed_always_fields(profile: Profile, a: Any, b: Any) -> None:
    before, after = for_profile(a, profile), for_profile(b, profile)
    folder = synced(profile, before)
    for action in plan_target(MAILBOX, after, source_records(before), folder.records, profile):
        if isinstance(action, Update):
            old, new = before[action.source_key].payload, after[action.source_key].payload
            changed = {f for f in profile.fields_with("always") if old.get(f) != new.get(f)}
            changed |= {f for f in profile.fields_with("overwrite") if f in new and old.get(f) != new.get(f)}
            assert set(action.changes) == changed | {"displayName"}
