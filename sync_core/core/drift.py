"""Drift: what happened to a target's managed folder outside galsync, and the repairs the profile allows.

The nightly reconcile reads the whole managed folder (contact delta kept up to date, with the tag expanded)
and calls `classify` with what it saw. Pure: it returns a `Drift` listing every contact by category and the
actions (actions.py) that repair it:

- intact: a recorded contact whose changeKey is the one galsync recorded: nothing to do, no write;
- outdated: intact on the device, but the source changed since galsync wrote it (a push that did not
  happen): its fields are brought up to date, sending only what differs from what the folder holds;
- photos: with photos on, a kept contact whose recorded photo is not the source's (or an adopted one, whose
  photo is unknown) gets the source's photo;
- edited: changeKey differs: "always" fields differing from the desired payload are put back, "if_empty"
  fields are filled only if empty now, fields galsync does not own stay as the user wrote them (an edit that
  touched none of galsync's fields only records the new changeKey);
- tag stripped: a contact whose id galsync recorded is galsync's, whatever became of its hidden tag (a phone
  that saves back its own copy of a contact drops the extended properties it does not know). It is counted
  once, as edited, never as foreign, and its repair puts the tag back (an Update carrying the tag), so the
  recovery look-ups, adoption and `explain` see it as galsync's again;
- deleted on device: a recorded contact that is gone: recreated, or the deletion is remembered and respected,
  per policy.deleted_on_device;
- duplicates: several contacts tagged for one source: the recorded one (else the oldest) stays, the others
  are deleted;
- foreign: no galsync tag (or another profile's): reported; deleted only under policy.foreign_contacts =
  "delete". Under "report" no action ever names a foreign contact (I1);
- orphans: tagged for this profile but not recorded (a create that landed before a crash): adopted if the
  source is desired (or kept under policy.removed_source = "keep"), else deleted;
- missing: desired sources with no contact in the folder and no record: created;
- removed: recorded contacts whose source is no longer desired (a push that did not happen): deleted under
  policy.removed_source = "delete".

Creates here use recover=False: the folder was just read in full. Run reconcile under the same lease as the
pushes for that profile, so no create lands between the read and the repair.

`adoption` is the same decision for a folder galsync has no records of (a lost state store): every contact
tagged for this profile is an orphan to adopt or remove, and no foreign contact is ever deleted there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .actions import Action, Delete, DeleteForeign, Forget, Record, SetPhoto, Update, sort_key
from .categories import CATEGORIES, categories_of, ours_present
from .fields import write_value
from .fingerprint import fingerprint
from .mapping import clean_text, observed_fields
from .plan import create_action
from .profile import Profile
from .records import TargetRecord
from .sources import DesiredContact
from .tags import ContactTag, contact_tag_properties, contact_tag_raw, parse_contact_tag


@dataclass(frozen=True)
class ObservedContact:
    """A contact seen in the managed folder."""

    contact_id: str
    change_key: str | None
    tag: str | None  # raw value of galsync's contact tag (tags.contact_tag_raw); None when untagged
    fields: Mapping[str, Any]
    created: str | None = None  # createdDateTime
    last_modified: str | None = None  # lastModifiedDateTime

    @classmethod
    def from_graph(cls, item: Mapping[str, Any]) -> ObservedContact:
        """From Graph contact JSON read with $expand=tags.CONTACT_TAG_EXPAND."""
        return cls(
            contact_id=str(item["id"]),
            change_key=item.get("changeKey"),
            tag=contact_tag_raw(item),
            fields=item,
            created=item.get("createdDateTime"),
            last_modified=item.get("lastModifiedDateTime"),
        )


@dataclass(frozen=True)
class ForeignContact:
    """A contact galsync did not create, as the doctor and `explain` describe it (never logged at INFO)."""

    contact_id: str
    display_name: str | None
    created: str | None
    last_modified: str | None
    other_profile: str | None = None  # set when it carries galsync's tag for another profile
    folder: str = "managed"  # "managed" (galsync's folder) or "Contacts" (a shared mailbox's own folder)


@dataclass(frozen=True)
class Drift:
    intact: tuple[str, ...] = ()
    outdated: tuple[Action, ...] = ()
    photos: tuple[Action, ...] = ()
    edited: tuple[Action, ...] = ()
    deleted_on_device: tuple[Action, ...] = ()
    duplicates: tuple[Action, ...] = ()
    foreign: tuple[ForeignContact, ...] = ()
    foreign_deletes: tuple[DeleteForeign, ...] = ()
    orphans: tuple[Action, ...] = ()
    missing: tuple[Action, ...] = ()
    removed: tuple[Action, ...] = ()
    respected: tuple[str, ...] = ()  # source keys whose deletion on a device stays respected

    def actions(self) -> list[Action]:
        """Every repair, in deterministic order."""
        everything: list[Action] = [
            *self.outdated, *self.photos, *self.edited, *self.deleted_on_device, *self.duplicates,
            *self.foreign_deletes, *self.orphans, *self.missing, *self.removed,
        ]
        return sorted(everything, key=sort_key)

    def counts(self) -> dict[str, int]:
        """How many contacts fell in each category (for logs and the doctor)."""
        return {
            "intact": len(self.intact), "outdated": len(self.outdated), "photos": len(self.photos),
            "edited": len(self.edited),
            "deleted_on_device": len(self.deleted_on_device), "duplicates": len(self.duplicates),
            "foreign": len(self.foreign), "orphans": len(self.orphans), "missing": len(self.missing),
            "removed": len(self.removed), "respected": len(self.respected),
        }


def classify(
    records: Mapping[str, TargetRecord],
    observed: Sequence[ObservedContact],
    desired: Mapping[str, DesiredContact],
    profile: Profile,
) -> Drift:
    """Compare one target's records with the contacts seen in its managed folder (see the module doc)."""
    recorded_ids = {r.contact_id: key for key, r in records.items() if r.contact_id and not r.deleted_on_device}
    tagged: dict[str, list[ObservedContact]] = {}
    untagged: set[str] = set()  # recorded contacts whose tag is not (or no longer) galsync's for their source
    foreign: list[ForeignContact] = []
    for contact in observed:
        tag = parse_contact_tag(contact.tag)
        recorded_key = recorded_ids.get(contact.contact_id)
        if recorded_key is not None:
            tagged.setdefault(recorded_key, []).append(contact)
            if tag != ContactTag(profile.name, recorded_key):
                untagged.add(contact.contact_id)
        elif tag is not None and tag.profile == profile.name:
            tagged.setdefault(tag.source_key, []).append(contact)
        else:
            foreign.append(ForeignContact(
                contact.contact_id, clean_text(contact.fields.get("displayName")), contact.created,
                contact.last_modified, other_profile=tag.profile if tag is not None else None,
            ))
    by_category: dict[str, list[Any]] = {}
    for key in sorted(set(records) | set(tagged) | set(desired)):
        record, found, want = records.get(key), tagged.get(key, []), desired.get(key)
        seen = _present(key, record, found, want, profile, untagged) if found else _absent(key, record, want, profile)
        for category, item in seen:
            by_category.setdefault(category, []).append(item)
    foreign.sort(key=lambda c: c.contact_id)
    deletes = tuple(DeleteForeign(c.contact_id) for c in foreign) \
        if profile.policies.foreign_contacts == "delete" else ()
    return Drift(**{category: tuple(items) for category, items in by_category.items()},
                 foreign=tuple(foreign), foreign_deletes=deletes)


def adoption(observed: Sequence[ObservedContact], desired: Mapping[str, DesiredContact], profile: Profile
             ) -> Drift:
    """`classify` for a folder galsync has no records of: its tagged contacts are adopted (or removed) and
    what is missing is created; foreign contacts are reported, never deleted, whatever the profile's policy
    (deleting them is the nightly reconcile's to do, with the records it then has)."""
    return replace(classify({}, observed, desired, profile), foreign_deletes=())


def restore(key: str, contact: ObservedContact, want: DesiredContact, profile: Profile, *,
            retag: bool = False) -> Update | Record:
    """Put galsync's fields of `contact` back to `want` as the field policies say (see the module doc);
    `retag`: its hidden tag is gone, put it back too."""
    seen = observed_fields(contact.fields)
    changes: dict[str, Any] = {}
    for name in profile.fields_with("always"):
        if seen.get(name) != want.payload.get(name):
            changes[name] = write_value(name, want.payload.get(name))
    for name in profile.fields_with("overwrite"):
        if name in want.payload and seen.get(name) != want.payload[name]:
            changes[name] = write_value(name, want.payload[name])
    for name in profile.fields_with("if_empty"):
        if name not in seen and name in want.payload:
            changes[name] = want.payload[name]
    ours = categories_of(want.payload)
    if ours and (CATEGORIES not in contact.fields or ours_present(categories_of(contact.fields), ours) != ours):
        changes[CATEGORIES] = ours  # merged into the contact's own names by the executor
    if retag:
        changes["singleValueExtendedProperties"] = contact_tag_properties(profile.name, key)
    if not changes:
        return Record(key, contact.contact_id, want.fingerprint, contact.change_key)
    changes["displayName"] = want.payload.get("displayName")
    return Update(key, contact.contact_id, changes, want.fingerprint, tuple(ours))


# What `_present` and `_absent` find for one source key: (name of a Drift field, the action or key it lists).
Sorted = Iterator[tuple[str, Action | str]]


def _present(key: str, record: TargetRecord | None, found: list[ObservedContact], want: DesiredContact | None,
             profile: Profile, untagged: set[str]) -> Sorted:
    """Contacts of `key` (tagged for it, or recorded) are in the folder: keep one, delete extras, then check
    the kept one."""
    recorded_ids = {record.contact_id} if record is not None and not record.deleted_on_device else set()
    keep = min(found, key=lambda c: (c.contact_id not in recorded_ids, c.created or "", c.contact_id))
    for extra in sorted((c for c in found if c is not keep), key=lambda c: c.contact_id):
        yield "duplicates", Delete(key, extra.contact_id)
    recorded = record is not None and keep.contact_id in recorded_ids
    if want is None:
        if profile.policies.removed_source == "delete":
            yield ("removed" if recorded else "orphans"), Delete(key, keep.contact_id)
            if record is not None and not recorded and record.contact_id is not None:
                yield "removed", Forget(key)  # the record names a contact that is gone
        elif recorded and record is not None:
            if keep.change_key == record.change_key:
                yield "intact", key
            else:
                yield "edited", Record(key, keep.contact_id, record.fingerprint, keep.change_key)
        else:
            # Kept policy: a contact of a removed source stays; adopt it so it is not an orphan again.
            mine = observed_fields(keep.fields)
            yield "orphans", Record(key, keep.contact_id, fingerprint(mine), keep.change_key)
        return
    if recorded and record is not None:
        stripped = keep.contact_id in untagged
        if keep.change_key != record.change_key or stripped:
            yield "edited", restore(key, keep, want, profile, retag=stripped)
        elif record.fingerprint != want.fingerprint:
            yield "outdated", restore(key, keep, want, profile)
        else:
            yield "intact", key
    else:
        yield "orphans", restore(key, keep, want, profile)
    # An adopted contact's photo is unknown: set it. A recorded one's is what galsync last put.
    if profile.photos.enabled and (not recorded or record is None or want.photo_etag != record.photo_etag):
        yield "photos", SetPhoto(key, keep.contact_id, want.photo_etag)


def _absent(key: str, record: TargetRecord | None, want: DesiredContact | None, profile: Profile) -> Sorted:
    """No contact tagged for `key` is in the folder."""
    if record is None:
        if want is not None:
            yield "missing", create_action(key, want, profile)
        return
    if want is None:
        # The contact is gone (or never landed) and so is the source: nothing left to delete.
        yield "removed", Forget(key)
        return
    if record.contact_id is None:
        # A create that never landed.
        yield "missing", create_action(key, want, profile)
    elif profile.policies.deleted_on_device == "respect":
        if record.deleted_on_device:
            yield "respected", key
        else:
            yield "deleted_on_device", Record(key, record.contact_id, record.fingerprint, record.change_key,
                                              deleted_on_device=True)
    else:
        yield "deleted_on_device", create_action(key, want, profile)

