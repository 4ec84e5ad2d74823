"""A model of one target's managed folder and its records, applying actions the way the executor must.

Not a stub of Graph: it is the specification of the executor (actions.py) written as the smallest thing
that obeys it, so the planner's and drift's properties can be checked by applying their output. Every write
it applies asserts I1: the contact written is one galsync tagged for that source or recorded as its own for
it (a phone may strip the tag), or (DeleteForeign) one it did not.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sync_core.core.actions import Action, Create, Delete, DeleteForeign, Forget, Record, SetPhoto, Update
from sync_core.core.drift import ObservedContact
from sync_core.core.mapping import normalise_contact
from sync_core.core.profile import Profile
from sync_core.core.records import SourceRecord, TargetRecord
from sync_core.core.sources import DesiredContact
from sync_core.core.tags import contact_tag_value, parse_contact_tag

MAILBOX = "mbx-1"
UNOWNED = "spouseName"  # a contact field galsync never owns: edits to it must survive repairs


@dataclass
class Contact:
    fields: dict[str, Any]
    tag: str | None
    change_key: str
    created: str
    photo: str | None = None


@dataclass
class Folder:
    profile: Profile
    contacts: dict[str, Contact] = field(default_factory=dict)
    records: dict[str, TargetRecord] = field(default_factory=dict)
    counter: Iterable[int] = field(default_factory=itertools.count)
    writes: int = 0

    # --- what Graph and devices do ---------------------------------------------------------------------------

    def _next(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter):04d}"  # type: ignore[call-overload]

    def add(self, fields: Mapping[str, Any], tag: str | None) -> str:
        contact_id = self._next("AAMk-")
        self.contacts[contact_id] = Contact(dict(fields), tag, self._next("ck-"), self._next("t-"))
        return contact_id

    def touch(self, contact_id: str) -> None:
        self.contacts[contact_id].change_key = self._next("ck-")

    def tagged(self, source_key: str) -> list[str]:
        return sorted(
            cid for cid, c in self.contacts.items() if c.tag == contact_tag_value(self.profile.name, source_key)
        )

    def observed(self) -> list[ObservedContact]:
        return [
            ObservedContact(cid, c.change_key, c.tag, dict(c.fields), created=c.created)
            for cid, c in sorted(self.contacts.items())
        ]

    # --- the executor ------------------------------------------------------------------------------------------

    def apply(self, actions: Iterable[Action]) -> None:
        for action in actions:
            getattr(self, f"_apply_{type(action).__name__.lower()}")(action)

    def _check_ours(self, contact_id: str, source_key: str) -> None:
        assert contact_id in self.contacts, f"write to a contact that is not there: {contact_id}"
        tag = parse_contact_tag(self.contacts[contact_id].tag)
        record = self.records.get(source_key)
        tagged = tag is not None and tag.profile == self.profile.name and tag.source_key == source_key
        recorded = record is not None and record.contact_id == contact_id
        assert tagged or recorded, f"I1: write to {contact_id}, which galsync did not create for {source_key}"

    def _patch(self, contact_id: str, changes: Mapping[str, Any]) -> None:
        contact = self.contacts[contact_id]
        for name, value in changes.items():
            if name == "singleValueExtendedProperties":
                contact.tag = value[0]["value"]  # galsync's tag, put back
                continue
            clean = normalise_contact({name: value})
            if name in clean:
                contact.fields[name] = clean[name]
            else:
                contact.fields.pop(name, None)
        self.touch(contact_id)
        self.writes += 1

    def _record(self, key: str, contact_id: str | None, fp: str, **kw: Any) -> None:
        old = self.records.get(key)
        base = old or TargetRecord(MAILBOX, key, None, "", None, "2024-01-01T00:00:00Z")
        change_key = self.contacts[contact_id].change_key if contact_id in self.contacts else None
        self.records[key] = replace(base, contact_id=contact_id, fingerprint=fp, change_key=change_key,
                                    deleted_on_device=False, **kw)

    def _apply_create(self, a: Create) -> None:
        found = self.tagged(a.source_key) if a.recover else []
        if found:
            contact_id = found[0]
            self._patch(contact_id, a.adoption_patch())
        else:
            tag = a.body["singleValueExtendedProperties"][0]["value"]
            contact_id = self.add(normalise_contact(a.fields), tag)
            self.writes += 1
        self._check_ours(contact_id, a.source_key)
        # A new contact gets the photo if there is one; an adopted one gets the source's photo state.
        if a.photo_etag is not None or (found and self.profile.photos.enabled):
            self.contacts[contact_id].photo = a.photo_etag
            self.touch(contact_id)
            self.writes += 1
        self._record(a.source_key, contact_id, a.fingerprint, photo_etag=a.photo_etag)

    def _apply_update(self, a: Update) -> None:
        self._check_ours(a.contact_id, a.source_key)
        assert "displayName" in a.changes
        self._patch(a.contact_id, a.changes)
        self._record(a.source_key, a.contact_id, a.fingerprint)

    def _apply_delete(self, a: Delete) -> None:
        ids = [a.contact_id] if a.contact_id is not None else self.tagged(a.source_key)
        for contact_id in ids:
            if contact_id in self.contacts:
                self._check_ours(contact_id, a.source_key)
                del self.contacts[contact_id]
                self.writes += 1
        record = self.records.get(a.source_key)
        if record is not None and (a.contact_id is None or record.contact_id in (a.contact_id, None)):
            del self.records[a.source_key]

    def _apply_record(self, a: Record) -> None:
        old = self.records.get(a.source_key)
        base = old or TargetRecord(MAILBOX, a.source_key, None, "", None, "2024-01-01T00:00:00Z")
        self.records[a.source_key] = replace(base, contact_id=a.contact_id, fingerprint=a.fingerprint,
                                             change_key=a.change_key, deleted_on_device=a.deleted_on_device)

    def _apply_forget(self, a: Forget) -> None:
        self.records.pop(a.source_key, None)

    def _apply_setphoto(self, a: SetPhoto) -> None:
        self._check_ours(a.contact_id, a.source_key)
        self.contacts[a.contact_id].photo = a.photo_etag
        self.touch(a.contact_id)
        self.writes += 1
        record = self.records[a.source_key]
        self.records[a.source_key] = replace(record, photo_etag=a.photo_etag,
                                             change_key=self.contacts[a.contact_id].change_key)

    def _apply_deleteforeign(self, a: DeleteForeign) -> None:
        tag = parse_contact_tag(self.contacts[a.contact_id].tag)
        assert tag is None or tag.profile != self.profile.name, "DeleteForeign on one of this profile's contacts"
        del self.contacts[a.contact_id]
        self.writes += 1


def source_records(desired: Mapping[str, DesiredContact]) -> dict[str, SourceRecord]:
    return {k: SourceRecord(k, d.fingerprint, d.payload, d.photo_etag) for k, d in desired.items()}


def owned_view(fields: Mapping[str, Any], profile: Profile, *policies: str) -> dict[str, Any]:
    names = profile.fields_with(*policies)  # type: ignore[arg-type]
    return {k: v for k, v in normalise_contact(fields).items() if k in names}
