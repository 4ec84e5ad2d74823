"""The planner: what to write to one target folder so it holds exactly the desired contacts.

Pure (style anchor: vdirsyncer's sync planner): it compares the desired contacts with the target's records
and returns actions (actions.py) for an executor to apply; it never reads the folder, so an unchanged source
costs no Graph request (I4). Its guarantees, checked by property tests:

- it only updates or deletes contacts named by a record, i.e. contacts galsync created (I1);
- at most one Create per source, and a source whose create may be in flight (record without contact id) gets
  `Create(recover=True)`, which adopts the tagged contact if the earlier create landed (I2);
- applying the plan leaves exactly the desired contacts with galsync's "always" fields as desired, and
  planning again with the same input yields nothing;
- an Update carries only the fields that changed since galsync last wrote to this target, plus displayName;
- the output order is deterministic.

Field policies: "always" fields are written on create and update; "if_empty" fields on create only (the
planner cannot see the target's value; drift can); "never" fields are never written. galsync's categories
are written on create and whenever they change (merged into the contact's own list by the executor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .actions import Action, Create, Delete, Forget, Record, SetPhoto, Update, sort_key
from .categories import CATEGORIES, categories_of
from .fields import write_value
from .notes import NOTES, merged_notes
from .profile import Profile
from .records import SourceRecord, TargetRecord
from .sources import DesiredContact
from .tags import contact_tag_properties

DesiredInput = DesiredContact | tuple[Mapping[str, Any], str]


class SharedCreates:
    """The Creates of one push, built once per source and shared by all its targets.

    A create's body (fields and hidden tag) names no mailbox, so the targets of a push would otherwise each
    build the same bodies again: a fill of 100 mailboxes built every contact's body 100 times. Only a Create
    built from the very same DesiredContact object is reused, so a cache handed a different desired set
    builds afresh instead of sending stale fields.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._built: dict[str, tuple[DesiredContact, Create]] = {}

    def create(self, key: str, want: DesiredContact) -> Create:
        built = self._built.get(key)
        if built is not None and built[0] is want:
            return built[1]
        create = create_action(key, want, self.profile)
        self._built[key] = (want, create)
        return create


def plan_target(
    mailbox: str,
    desired: Mapping[str, DesiredInput],
    previous_sources: Mapping[str, SourceRecord],
    records: Mapping[str, TargetRecord],
    profile: Profile,
    shared: SharedCreates | None = None,
) -> list[Action]:
    """Actions that bring the managed folder of `mailbox` in step with `desired`.

    desired: source key -> DesiredContact (payload, fingerprint[, photo_etag]) or (payload, fingerprint).
    previous_sources: source key -> the SourceRecord as it was before this change (its payload is what was
        last written to targets that are in step), used to send only changed fields. A target whose record
        fingerprint differs from it gets the full payload instead (with absent fields cleared).
    records: source key -> TargetRecord of this mailbox.
    shared: Creates of the other targets of the same push (for the same profile), reused where they fit.
    """
    if shared is not None and shared.profile is not profile:
        raise ValueError(f"shared creates of profile {shared.profile.name} used for profile {profile.name}")
    for key, given in records.items():
        if given.mailbox != mailbox or given.source_key != key:
            raise ValueError(f"record for {given.mailbox}/{given.source_key} given as {mailbox}/{key}")
    actions: list[Action] = []
    for key in sorted(set(desired) | set(records)):
        record = records.get(key)
        want = _desired(desired[key]) if key in desired else None
        if want is None:
            if record is not None:
                actions += _removed(record, profile)
        elif record is None:
            actions.append(create_action(key, want, profile) if shared is None else shared.create(key, want))
        else:
            actions += _kept(record, want, previous_sources.get(key), profile)
    return sorted(actions, key=sort_key)


def plan_removed_target(records: Mapping[str, TargetRecord], profile: Profile) -> list[Action]:
    """Actions for a mailbox that left the profile's targets: remove galsync's contacts, or keep them."""
    if profile.policies.removed_target == "keep":
        return []
    actions: list[Action] = []
    for key in sorted(records):
        record = records[key]
        actions.append(Forget(key) if record.deleted_on_device else Delete(key, record.contact_id))
    return sorted(actions, key=sort_key)


def create_action(key: str, want: DesiredContact, profile: Profile, recover: bool = False) -> Create:
    """The Create for `key`: every field galsync writes on create, plus the hidden tag."""
    owned = profile.mapped_fields
    body: dict[str, Any] = {name: want.payload[name] for name in owned if name in want.payload}
    if CATEGORIES in want.payload:
        body[CATEGORIES] = list(want.payload[CATEGORIES])
    if NOTES in body:
        body[NOTES] = merged_notes(None, body[NOTES])  # galsync's part, below its marker (notes.py)
    body["singleValueExtendedProperties"] = contact_tag_properties(profile.name, key)
    photo = want.photo_etag if profile.photos.enabled else None
    return Create(key, body, want.fingerprint, profile.fields_with("always", "if_empty"), photo_etag=photo,
                  recover=recover)


def update_changes(fields: tuple[str, ...], old: Mapping[str, Any] | None, new: Mapping[str, Any],
                   overwrite: tuple[str, ...] = ()) -> dict[str, Any]:
    """The PATCH body for `fields` going from `old` to `new` payload (old None: unknown, send all of them).

    Returns {} when nothing changed; otherwise the changed fields (cleared when absent from `new`) plus
    displayName, which Graph wants with every update. `overwrite` fields are sent only when `new` has a value:
    an empty source leaves the contact's own.
    """
    changed = [f for f in fields if old is None or old.get(f) != new.get(f)]
    changed += [f for f in overwrite if f in new and (old is None or old.get(f) != new.get(f))]
    if not changed:
        return {}
    changes = {f: write_value(f, new.get(f)) for f in changed}
    changes["displayName"] = new.get("displayName")
    return changes


def _desired(value: DesiredInput) -> DesiredContact:
    return value if isinstance(value, DesiredContact) else DesiredContact(*value)


def _removed(record: TargetRecord, profile: Profile) -> list[Action]:
    if profile.policies.removed_source == "keep":
        return []
    if record.deleted_on_device:
        return [Forget(record.source_key)]
    return [Delete(record.source_key, record.contact_id)]


def _kept(record: TargetRecord, want: DesiredContact, previous: SourceRecord | None, profile: Profile,
          ) -> list[Action]:
    key = record.source_key
    if record.deleted_on_device:
        if profile.policies.deleted_on_device == "respect":
            return []
        return [create_action(key, want, profile, recover=True)]
    if record.contact_id is None:
        return [create_action(key, want, profile, recover=True)]
    actions: list[Action] = []
    if record.fingerprint != want.fingerprint:
        in_step = previous is not None and previous.fingerprint == record.fingerprint
        old = previous.payload if previous is not None and in_step else None
        changes = update_changes(profile.fields_with("always"), old, want.payload, profile.fields_with("overwrite"))
        ours, before = categories_of(want.payload), categories_of(old) if old is not None else None
        if before != ours and (ours or before):
            # Only galsync's names: the executor merges them into the contact's own list (categories.py).
            changes = {**changes, CATEGORIES: ours, "displayName": want.payload.get("displayName")}
        if changes:
            actions.append(Update(key, record.contact_id, changes, want.fingerprint, tuple(ours),
                                  tuple(before or ())))
        else:
            # Only if_empty fields changed: nothing to send; remember the new state.
            actions.append(Record(key, record.contact_id, want.fingerprint, record.change_key))
    if profile.photos.enabled and want.photo_etag != record.photo_etag:
        actions.append(SetPhoto(key, record.contact_id, want.photo_etag))
    return actions
