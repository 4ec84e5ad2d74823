"""Drift: each category on its own, then properties over random nights of phone edits, deletions and crashes."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_core.core.actions import Create, Delete, DeleteForeign, Record, SetPhoto, Update
from sync_core.core.drift import ForeignContact, ObservedContact, adoption, classify
from sync_core.core.fingerprint import fingerprint
from sync_core.core.profile import Photos, Policies, Profile, field_policies
from sync_core.core.sources import DesiredContact
from sync_core.core.tags import CONTACT_TAG_ID, contact_tag_properties, contact_tag_value, parse_contact_tag

from .folder_model import UNOWNED, Folder, owned_view
from .strategies import KEYS, desired_sets, profiles
from .test_plan import for_profile, synced

PROFILE = Profile(name="Company directory", photos=Photos(enabled=False),
                  fields=field_policies(mobilePhone="if_empty"))
ANA = {"displayName": "Ana Costa", "jobTitle": "Driver", "mobilePhone": "+33 6 1"}
BO = {"displayName": "Bo Berg", "jobTitle": "Clerk"}


def desired_of(**payloads: dict[str, Any]) -> dict[str, DesiredContact]:
    return {f"user:{k}": DesiredContact(p, fingerprint(p)) for k, p in payloads.items()}


def night(profile: Profile = PROFILE) -> tuple[Folder, dict[str, DesiredContact]]:
    desired = desired_of(a=ANA, b=BO)
    return synced(profile, desired), desired


def test_a_night_without_drift_is_all_intact_and_writes_nothing() -> None:
    folder, desired = night()
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    assert drift.intact == ("user:a", "user:b")
    assert drift.actions() == []


def test_edited_on_a_phone_restores_always_fields_fills_empty_ones_and_leaves_the_rest() -> None:
    folder, desired = night()
    (cid,) = folder.tagged("user:a")
    folder.contacts[cid].fields.update(jobTitle="Boss", nickName="Nana")
    folder.contacts[cid].fields.pop("mobilePhone")
    folder.touch(cid)
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    assert drift.edited == (Update("user:a", cid, {"jobTitle": "Driver", "mobilePhone": "+33 6 1",
                                                   "displayName": "Ana Costa"}, desired["user:a"].fingerprint),)
    folder.contacts[cid].fields["mobilePhone"] = "+33 6 999"  # the phone's own number: if_empty keeps it
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    assert drift.edited == (Update("user:a", cid, {"jobTitle": "Driver", "displayName": "Ana Costa"},
                                   desired["user:a"].fingerprint),)
    folder.apply(drift.actions())
    assert folder.contacts[cid].fields == {"displayName": "Ana Costa", "jobTitle": "Driver",
                                           "mobilePhone": "+33 6 999", "nickName": "Nana"}
    assert classify(folder.records, folder.observed(), desired, PROFILE).actions() == []


def test_edit_of_fields_galsync_does_not_own_only_records_the_change_key() -> None:
    folder, desired = night()
    (cid,) = folder.tagged("user:b")
    folder.contacts[cid].fields[UNOWNED] = "Bobby"
    folder.touch(cid)
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    assert drift.edited == (Record("user:b", cid, desired["user:b"].fingerprint, folder.contacts[cid].change_key),)
    assert folder.writes == 2
    folder.apply(drift.actions())
    assert folder.writes == 2


def test_outdated_contact_is_brought_up_to_date_from_what_the_folder_holds() -> None:
    folder, desired = night()
    newer = dict(desired, **desired_of(b=dict(BO, jobTitle="Head clerk")))
    drift = classify(folder.records, folder.observed(), newer, PROFILE)
    (cid,) = folder.tagged("user:b")
    assert drift.outdated == (Update("user:b", cid, {"jobTitle": "Head clerk", "displayName": "Bo Berg"},
                                     newer["user:b"].fingerprint),)
    assert drift.intact == ("user:a",)


def test_deleted_on_device_is_recreated_or_respected() -> None:
    folder, desired = night()
    (cid,) = folder.tagged("user:a")
    del folder.contacts[cid]
    (create,) = classify(folder.records, folder.observed(), desired, PROFILE).deleted_on_device
    assert isinstance(create, Create) and create.source_key == "user:a" and not create.recover

    respect = dataclasses.replace(PROFILE, policies=Policies(deleted_on_device="respect"))
    drift = classify(folder.records, folder.observed(), desired, respect)
    record = folder.records["user:a"]
    assert drift.deleted_on_device == (Record("user:a", cid, record.fingerprint, record.change_key,
                                              deleted_on_device=True),)
    folder.apply(drift.actions())
    later = classify(folder.records, folder.observed(), desired, respect)
    assert later.respected == ("user:a",) and later.actions() == []


def test_duplicates_keep_the_recorded_contact() -> None:
    folder, desired = night()
    (cid,) = folder.tagged("user:a")
    twin = folder.add(folder.contacts[cid].fields, folder.contacts[cid].tag)
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    assert drift.duplicates == (Delete("user:a", twin),)
    assert drift.intact == ("user:a", "user:b")


def test_orphan_is_adopted_when_desired_and_deleted_when_not() -> None:
    folder, desired = night()
    (cid,) = folder.tagged("user:a")
    del folder.records["user:a"]
    (adopt,) = classify(folder.records, folder.observed(), desired, PROFILE).orphans
    assert adopt == Record("user:a", cid, desired["user:a"].fingerprint, folder.contacts[cid].change_key)
    (delete,) = classify(folder.records, folder.observed(), {"user:b": desired["user:b"]}, PROFILE).orphans
    assert delete == Delete("user:a", cid)


def test_a_recorded_contact_whose_tag_a_phone_stripped_is_edited_and_retagged_never_foreign() -> None:
    folder, desired = night()
    (cid,) = folder.tagged("user:a")
    folder.contacts[cid].tag = None  # a phone saved back its own copy: same contact, no hidden tag
    folder.touch(cid)
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    assert drift.foreign == () and drift.orphans == () and drift.missing == ()
    assert drift.edited == (Update("user:a", cid, {
        "singleValueExtendedProperties": contact_tag_properties(PROFILE.name, "user:a"),
        "displayName": "Ana Costa"}, desired["user:a"].fingerprint),)
    assert drift.counts()["edited"] == 1 and sum(drift.counts().values()) == 2  # user:b is intact
    folder.apply(drift.actions())
    assert folder.tagged("user:a") == [cid]
    assert classify(folder.records, folder.observed(), desired, PROFILE).actions() == []


def test_adoption_takes_over_tagged_contacts_and_never_deletes_a_foreign_one() -> None:
    folder, desired = night()
    purge = dataclasses.replace(PROFILE, policies=Policies(foreign_contacts="delete"))
    maman = folder.add({"displayName": "Maman"}, None)
    other = folder.add(dict(ANA), contact_tag_value("Dispatch", "user:a"))
    (b,) = folder.tagged("user:b")
    folder.contacts[b].fields["jobTitle"] = "Head clerk"
    folder.records.clear()  # the state store is lost
    drift = adoption(folder.observed(), desired, purge)
    assert {c.contact_id for c in drift.foreign} == {maman, other}
    assert drift.actions() == [
        Update("user:b", b, {"jobTitle": "Clerk", "displayName": "Bo Berg"}, desired["user:b"].fingerprint),
        Record("user:a", folder.tagged("user:a")[0], desired["user:a"].fingerprint,
               folder.contacts[folder.tagged("user:a")[0]].change_key),
    ]


def test_foreign_contacts_are_reported_and_deleted_only_by_policy() -> None:
    folder, desired = night()
    maman = folder.add({"displayName": "Maman", "mobilePhone": "+33 6 00"}, None)
    other = folder.add({"displayName": "X"}, contact_tag_value("Dispatch", "user:a"))
    drift = classify(folder.records, folder.observed(), desired, PROFILE)
    created = folder.contacts[maman].created
    assert drift.foreign == (
        ForeignContact(maman, "Maman", created, None),
        ForeignContact(other, "X", folder.contacts[other].created, None, other_profile="Dispatch"),
    )
    assert drift.actions() == []
    purge = dataclasses.replace(PROFILE, policies=Policies(foreign_contacts="delete"))
    drift = classify(folder.records, folder.observed(), desired, purge)
    assert drift.actions() == [DeleteForeign(maman), DeleteForeign(other)]


def test_missing_and_removed_sources_converge() -> None:
    folder, desired = night()
    more = dict(desired_of(c={"displayName": "Cy"}), **{"user:a": desired["user:a"]})
    drift = classify(folder.records, folder.observed(), more, PROFILE)
    (create,) = drift.missing
    assert isinstance(create, Create) and create.source_key == "user:c"
    assert drift.removed == (Delete("user:b", folder.records["user:b"].contact_id),)
    folder.apply(drift.actions())
    assert sorted(folder.records) == ["user:a", "user:c"]


def test_observed_contact_from_graph_json() -> None:
    item = {
        "id": "AAMk=", "changeKey": "EQ", "createdDateTime": "2024-05-01T14:02:00Z",
        "lastModifiedDateTime": "2024-05-02T08:00:00Z", "displayName": "Maman",
        "singleValueExtendedProperties": [{"id": CONTACT_TAG_ID, "value": "v1;Dispatch;user:1"}],
    }
    seen = ObservedContact.from_graph(item)
    assert (seen.contact_id, seen.change_key, seen.tag) == ("AAMk=", "EQ", "v1;Dispatch;user:1")
    assert (seen.created, seen.last_modified) == ("2024-05-01T14:02:00Z", "2024-05-02T08:00:00Z")


# --- properties ---------------------------------------------------------------------------------------------

op = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(KEYS),
              st.sampled_from(["jobTitle", "mobilePhone", "displayName", "businessPhones", UNOWNED]),
              st.sampled_from([None, "Boss", "+1 999"])),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("foreign"), st.sampled_from(["Maman", "Plumber"]), st.booleans()),
    st.tuples(st.just("duplicate"), st.sampled_from(KEYS)),
    st.tuples(st.just("in_flight"), st.sampled_from(KEYS)),
    st.tuples(st.just("lose_record"), st.sampled_from(KEYS)),
    st.tuples(st.just("strip_tag"), st.sampled_from(KEYS)),
)


def run_night(folder: Folder, ops: list[tuple[Any, ...]]) -> tuple[set[str], dict[str, str]]:
    """Apply phone edits and crash leftovers; return foreign ids and the unowned values phones set."""
    foreign: set[str] = set()
    unowned: dict[str, str] = {}
    stripped: set[str] = set()
    for kind, *args in ops:
        if kind == "foreign":
            name, other_profile = args
            tag = contact_tag_value("Dispatch", "user:0") if other_profile else None
            foreign.add(folder.add({"displayName": name, "mobilePhone": "+33 6"}, tag))
            continue
        key = args[0]
        ids = folder.tagged(key)
        if kind == "edit" and ids:
            _, field, value = args
            fields = folder.contacts[ids[0]].fields
            if value is None:
                fields.pop(field, None)
                unowned.pop(ids[0], None) if field == UNOWNED else None
            else:
                fields[field] = [value] if field == "businessPhones" else value
                if field == UNOWNED:
                    unowned[ids[0]] = value
            folder.touch(ids[0])
        elif kind == "delete" and ids:
            del folder.contacts[ids[0]]
        elif kind == "duplicate" and ids:
            source = folder.contacts[ids[0]]
            folder.add(source.fields, source.tag)
        elif kind == "in_flight" and key in folder.records:
            folder.records[key] = dataclasses.replace(folder.records[key], contact_id=None, fingerprint="")
        elif kind == "lose_record":
            folder.records.pop(key, None)
        elif kind == "strip_tag" and ids:
            folder.contacts[ids[0]].tag = None  # a phone saved back its own copy of the contact
            folder.touch(ids[0])
            stripped.add(ids[0])
    # A stripped contact galsync has no record of either can no longer be told from a foreign one.
    recorded = {r.contact_id for r in folder.records.values()}
    foreign |= {cid for cid in stripped if cid in folder.contacts and cid not in recorded}
    return foreign, {cid: v for cid, v in unowned.items() if cid in folder.contacts}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles, desired_sets(), desired_sets(), st.lists(op, max_size=12))
def test_reconcile_repairs_every_night_to_the_desired_folder(
    profile: Profile, a: dict[str, DesiredContact], b: dict[str, DesiredContact], ops: list[tuple[Any, ...]],
) -> None:
    before, after = for_profile(a, profile), for_profile(b, profile)
    folder = synced(profile, before)
    foreign, unowned = run_night(folder, ops)
    foreign_fields = {cid: dict(folder.contacts[cid].fields) for cid in foreign}
    respected = {
        k for k in after
        if profile.policies.deleted_on_device == "respect" and not folder.tagged(k)
        and k in folder.records and folder.records[k].contact_id is not None
        and folder.records[k].contact_id not in folder.contacts  # gone, not only stripped of its tag
    }

    drift = classify(folder.records, folder.observed(), after, profile)
    actions = drift.actions()
    if profile.policies.foreign_contacts == "report":
        # I1: under "report", no action names a foreign contact.
        for action in actions:
            assert not isinstance(action, DeleteForeign)
            if isinstance(action, Update | Delete | SetPhoto | Record):
                assert action.contact_id not in foreign
    folder.apply(actions)  # the model asserts I1 on every write

    for cid in foreign:
        if profile.policies.foreign_contacts == "report":
            assert folder.contacts[cid].fields == foreign_fields[cid]
        else:
            assert cid not in folder.contacts
    for key, want in after.items():
        ids = folder.tagged(key)
        if key in respected:
            assert ids == [] and folder.records[key].deleted_on_device
            continue
        (cid,) = ids
        fields = folder.contacts[cid].fields
        assert owned_view(fields, profile, "always") == owned_view(want.payload, profile, "always")
        shown = owned_view(fields, profile, "overwrite")
        assert all(shown.get(name) == value for name, value in owned_view(want.payload, profile, "overwrite").items())
        for name in profile.fields_with("if_empty"):
            assert (name in fields) or (name not in want.payload)
        assert folder.records[key].contact_id == cid
        if profile.photos.enabled:
            assert folder.records[key].photo_etag == want.photo_etag
        if cid in unowned:
            assert fields[UNOWNED] == unowned[cid]
    if profile.policies.removed_source == "delete":
        assert all(folder.tagged(k) == [] for k in set(KEYS) - set(after))
        assert set(folder.records) == set(after)
    # Nothing galsync wrote is left behind, untagged or twice: the folder holds its contacts (tagged, or recorded
    # ones a removed source left under policy "keep") and the foreign ones.
    kept = set(KEYS) if profile.policies.removed_source == "keep" else set(after)
    ours = {cid for k in kept for cid in folder.tagged(k)} | {r.contact_id for r in folder.records.values()}
    assert set(folder.contacts) == (ours | foreign) & set(folder.contacts)

    # The next night, with nothing new, is quiet.
    assert classify(folder.records, folder.observed(), after, profile).actions() == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles, desired_sets(), desired_sets(), st.lists(op, max_size=12))
def test_adoption_after_a_lost_state_converges_and_never_touches_a_foreign_contact(
    profile: Profile, a: dict[str, DesiredContact], b: dict[str, DesiredContact], ops: list[tuple[Any, ...]],
) -> None:
    """Whatever the folder went through, a push that lost every record adopts it into exactly the desired
    contacts, one each, and leaves every contact it cannot tell is its own as it was, whatever the policy."""
    before, after = for_profile(a, profile), for_profile(b, profile)
    folder = synced(profile, before)
    run_night(folder, ops)
    folder.records.clear()
    # Without records, whatever does not carry this profile's tag (a tag a phone stripped included) is foreign.
    foreign = {cid for cid, c in folder.contacts.items()
               if (tag := parse_contact_tag(c.tag)) is None or tag.profile != profile.name}
    foreign_fields = {cid: dict(folder.contacts[cid].fields) for cid in foreign}
    folder.apply(adoption(folder.observed(), after, profile).actions())  # the model asserts I1 on every write
    for cid in foreign:
        assert folder.contacts[cid].fields == foreign_fields[cid]
    for key in after:
        (cid,) = folder.tagged(key)
        assert folder.records[key].contact_id == cid
        assert owned_view(folder.contacts[cid].fields, profile, "always") == owned_view(
            after[key].payload, profile, "always")
    if profile.policies.removed_source == "delete":
        assert all(folder.tagged(k) == [] for k in set(KEYS) - set(after)) and set(folder.records) == set(after)
    # The next night finds nothing to repair; only its foreign-contact policy may still apply.
    night_after = classify(folder.records, folder.observed(), after, profile).actions()
    assert all(isinstance(a, DeleteForeign) and a.contact_id in foreign for a in night_after)
