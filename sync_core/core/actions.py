"""The actions the planner and drift classification yield, and the executor applies to one target folder.

Each action is a frozen value naming the source it is about; the executor (service layer) turns it into Graph
requests ($batch) and then writes the TargetRecord for `source_key`. What each action means for the executor:

- Create: first write the record with contact_id None (so a crash after the POST leaves a trace), then POST
  `body` (contact fields plus galsync's hidden tag) to the managed folder; record the new id, changeKey and
  `fingerprint`; then, if `photo_etag` is set, PUT the source's photo. With `recover=True` a
  create for this source may already have landed before a crash (its record has no contact id), or the
  contact may be somewhere we do not know: first look in the folder for the contact carrying this source's
  tag (tags.read_contact_tag); if found, adopt it: PATCH `adoption_patch()` to it, bring its photo to
  `photo_etag` when the profile has photos on (PUT it, or remove the photo when None), and record it; only
  if none is found, POST. This is what makes a crash between the write and the record harmless (I2).
- Update: PATCH `changes` (only changed fields, always with displayName); record `fingerprint` and the
  returned changeKey. Changed categories are merged into the contact's own list first (categories.py).
- Delete: DELETE the contact, then drop the record if it names this contact or no contact (a record naming
  another contact stays: the deleted one was a duplicate). `contact_id` None means a create may have landed
  before a crash: look for the contact carrying this source's tag, delete it if found, drop the record.
- Record: no Graph call; write the record with these values (adopting a contact found by its tag, accepting
  a new changeKey after an edit that touched no galsync field, or remembering a respected deletion).
- Forget: no Graph call; drop the record (its contact is already gone).
- SetPhoto: PUT the source's photo (`photo_etag` None: the source has no photo any more) and record the etag.
- DeleteForeign: DELETE a contact galsync did not create; only ever yielded when the admin set
  policy.foreign_contacts = "delete". No record is involved.
- DeleteMoved: DELETE one of galsync's contacts from the place the profile wrote to before it moved (the
  work's folder is the old one); its source's record already names the copy in the new place and stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import write_value


@dataclass(frozen=True, slots=True)
class Create:
    source_key: str
    body: Mapping[str, Any]  # contact fields + "singleValueExtendedProperties" (galsync's tag)
    fingerprint: str
    # Fields an adoption writes, cleared where empty (policy always or if_empty; an "overwrite" field is in
    # `body` when it has a value, and an empty one leaves the contact's value).
    owned_fields: tuple[str, ...]
    photo_etag: str | None = None
    recover: bool = False

    @property
    def fields(self) -> dict[str, Any]:
        """The contact fields of `body`, without the tag."""
        return {k: v for k, v in self.body.items() if k != "singleValueExtendedProperties"}

    def adoption_patch(self) -> dict[str, Any]:
        """The PATCH that makes an adopted contact (found by its tag) equal to this create's fields."""
        fields = self.fields
        patch = {name: write_value(name, value) for name, value in fields.items()}
        patch.update({name: write_value(name, fields.get(name)) for name in self.owned_fields})
        return patch


@dataclass(frozen=True, slots=True)
class Update:
    source_key: str
    contact_id: str
    changes: Mapping[str, Any]  # always contains displayName
    fingerprint: str
    # galsync's categories now, and those it wrote before (categories.py): with "categories" in `changes`, the
    # executor reads the contact's list and writes it merged, so names a person added stay.
    categories: tuple[str, ...] = ()
    categories_before: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    source_key: str
    contact_id: str | None  # None: find the contact by this source's tag first


@dataclass(frozen=True, slots=True)
class Record:
    source_key: str
    contact_id: str | None
    fingerprint: str
    change_key: str | None
    deleted_on_device: bool = False


@dataclass(frozen=True, slots=True)
class Forget:
    source_key: str


@dataclass(frozen=True, slots=True)
class SetPhoto:
    source_key: str
    contact_id: str
    photo_etag: str | None


@dataclass(frozen=True, slots=True)
class DeleteForeign:
    contact_id: str


@dataclass(frozen=True, slots=True)
class DeleteMoved:
    source_key: str
    contact_id: str


Action = Create | Update | Delete | Record | Forget | SetPhoto | DeleteForeign | DeleteMoved

# Order in which a plan lists actions (then by source key): removals first, creates last, and a photo after
# the update of the same contact, so the changeKey recorded last is the one Graph holds.
_ORDER: dict[type, int] = {
    DeleteForeign: 0, Delete: 1, Forget: 2, Update: 3, Record: 4, SetPhoto: 5, Create: 6, DeleteMoved: 7,
}


def sort_key(action: Action) -> tuple[int, str]:
    """Deterministic order of actions: by kind (see _ORDER), then source key (or contact id)."""
    key = action.contact_id if isinstance(action, DeleteForeign) else action.source_key
    return (_ORDER[type(action)], key)
