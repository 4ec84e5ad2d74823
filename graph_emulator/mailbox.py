"""Mailboxes: contact folders, contacts, hidden extended properties, contact photos and `userPurpose`.

One `Mailboxes` store per tenant (`tenant.mailboxes`). A mailbox is keyed by its owner's user id and exists
for every user the directory says has one (`directory.has_mailbox`); every method accepts a user id or a
UPN. Each mailbox has a default Contacts folder with a real folder id: contacts created without a folder
(`POST /users/{id}/contacts`, a phone saving "Maman") land there, and folders created with
`POST /users/{id}/contactFolders` are its children, as in Exchange Online.

Writes validate their body the way Graph does (unknown property, wrong JSON type, malformed extended
property id -> 400), so a phone acting through `phone_*` and galsync acting through HTTP produce exactly
the same state, change keys, delta entries and notifications. Contact delta is answered from a per-item
change sequence plus per-folder tombstones (see `delta_page`).
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import deltatoken
from .changes import Changes
from .directory import Directory
from .ids import change_key, outlook_id
from .protocol import GraphError, not_found, utc_now_iso

# --- the contact type (resources/contact.md, PersonalContacts.yml microsoft.graph.contact) --------

STRING_FIELDS = (
    "assistantName",
    "businessHomePage",
    "companyName",
    "department",
    "displayName",
    "fileAs",
    "generation",
    "givenName",
    "initials",
    "jobTitle",
    "manager",
    "middleName",
    "mobilePhone",
    "nickName",
    "officeLocation",
    "personalNotes",
    "profession",
    "spouseName",
    "surname",
    "title",
    "yomiCompanyName",
    "yomiGivenName",
    "yomiSurname",
)
STRING_LIST_FIELDS = ("businessPhones", "homePhones", "imAddresses", "categories", "children")
ADDRESS_FIELDS = ("businessAddress", "homeAddress", "otherAddress")
ADDRESS_KEYS = ("street", "city", "state", "countryOrRegion", "postalCode")
EMAIL_KEYS = ("name", "address")
READ_ONLY_FIELDS = ("id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId")
# Navigation properties the emulator does not model; Graph accepts them, we say so instead of ignoring them.
UNSUPPORTED_FIELDS = ("multiValueExtendedProperties", "extensions", "photo")
WRITABLE_FIELDS = STRING_FIELDS + STRING_LIST_FIELDS + ADDRESS_FIELDS + ("emailAddresses", "birthday")
# Order of a contact's JSON as Graph returns it.
CONTACT_PROPERTIES = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    "birthday",
    "fileAs",
    "displayName",
    "givenName",
    "initials",
    "middleName",
    "nickName",
    "surname",
    "title",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "generation",
    "imAddresses",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "homePhones",
    "mobilePhone",
    "businessPhones",
    "spouseName",
    "personalNotes",
    "children",
    "emailAddresses",
    "homeAddress",
    "businessAddress",
    "otherAddress",
)
FOLDER_PROPERTIES = ("id", "displayName", "parentFolderId")
USER_PURPOSES = ("user", "linked", "shared", "room", "equipment", "others")
PHOTO_MAX_BYTES = (
    4 * 1024 * 1024
)  # "a limit of 4MB on the total size of each REST request" (profilephoto-update)
# Name parts Exchange rebuilds displayName from when a write does not carry displayName (contact.md).
_NAME_PARTS = ("givenName", "middleName", "surname")

_ODATA_TYPE = "Microsoft.OutlookServices.Contact"
# What validate_contact_body does with each property a body may name (any other is refused).
_STRING, _STRING_LIST, _ADDRESS, _EMAILS, _BIRTHDAY, _EXTENDED, _READ_ONLY, _UNSUPPORTED = (
    "string", "string list", "address", "email addresses", "birthday", "extended", "read-only", "unsupported"
)
_FIELD_KINDS: dict[str, str] = {
    **dict.fromkeys(STRING_FIELDS, _STRING),
    **dict.fromkeys(STRING_LIST_FIELDS, _STRING_LIST),
    **dict.fromkeys(ADDRESS_FIELDS, _ADDRESS),
    "emailAddresses": _EMAILS,
    "birthday": _BIRTHDAY,
    "singleValueExtendedProperties": _EXTENDED,
    **dict.fromkeys(READ_ONLY_FIELDS, _READ_ONLY),
    **dict.fromkeys(UNSUPPORTED_FIELDS, _UNSUPPORTED),
}


def _body_error(message: str) -> GraphError:
    return GraphError(400, "RequestBodyRead", message)


def _type_error(name: str, value: Any, expected: str) -> GraphError:
    shown = (
        "null"
        if value is None
        else repr(value)
        if not isinstance(value, dict | list)
        else type(value).__name__
    )
    return _body_error(
        f"Cannot convert the literal {shown} of property '{name}' to the expected type '{expected}'."
    )


# --- single-value extended property ids (resources/extended-properties-overview.md) ---------------

_PROP_TYPES = (
    "ApplicationTime",
    "Binary",
    "Boolean",
    "CLSID",
    "Currency",
    "Double",
    "Float",
    "Integer",
    "Long",
    "Null",
    "Object",
    "Short",
    "String",
    "SystemTime",
)
_PROP_TYPE_NAMES = frozenset(t.lower() for t in _PROP_TYPES)
_GUID = r"\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}"
_EXT_ID = re.compile(
    rf"^(?P<type>\w+) (?:(?P<guid>{_GUID}) (?:Name (?P<name>\S.*)|Id (?P<num>0x[0-9A-Fa-f]{{1,4}}))"
    r"|(?P<tag>0x[0-9A-Fa-f]{4}(?:[0-9A-Fa-f]{4})?))$"
)


def extended_property_key(prop_id: Any) -> str:
    """A canonical key for an extended property id in one of the three documented formats.

    Type names and GUIDs compare case-insensitively, the string name exactly (the docs: filtering the
    `Name` is case-sensitive). A malformed id is a 400, as Graph answers it.
    """
    if not isinstance(prop_id, str):
        raise _type_error("id", prop_id, "Edm.String")
    return _property_key(prop_id)


@functools.lru_cache(maxsize=256)
def _property_key(prop_id: str) -> str:
    """Clients send the same few ids on every write: each is parsed once (a 400 is never cached)."""
    m = _EXT_ID.match(prop_id)
    if not m or m.group("type").lower() not in _PROP_TYPE_NAMES:
        raise GraphError(
            400,
            "ErrorInvalidProperty",
            f"The extended property id '{prop_id}' is not in a supported format: "
            "'{type} {guid} Name {name}', '{type} {guid} Id {0xNNNN}' or '{type} {0xPROPTAG}'.",
        )
    kind = m.group("type").lower()
    if m.group("tag"):
        return f"{kind} {m.group('tag').lower()}"
    guid = m.group("guid").lower()
    if m.group("num"):
        return f"{kind} {guid} id {int(m.group('num'), 16):#06x}"
    return f"{kind} {guid} name {m.group('name')}"


def parse_extended_properties(value: Any) -> dict[str, tuple[str, str]]:
    """`[{id, value}]` from a request body -> {key: (id as given, value)}."""
    if not isinstance(value, list):
        raise _type_error(
            "singleValueExtendedProperties", value, "Collection(singleValueLegacyExtendedProperty)"
        )
    out: dict[str, tuple[str, str]] = {}
    for item in value:
        if not isinstance(item, dict):
            raise _type_error("singleValueExtendedProperties", item, "singleValueLegacyExtendedProperty")
        unknown = () if len(item) == 2 and "id" in item and "value" in item else set(item) - {"id", "value"}
        if unknown:
            raise _body_error(
                f"The property '{sorted(unknown)[0]}' does not exist on type "
                "'Microsoft.OutlookServices.SingleValueLegacyExtendedProperty'."
            )
        if "id" not in item:
            raise _body_error("The extended property has no 'id'.")
        key = extended_property_key(item["id"])
        prop_value = item.get("value")
        if not isinstance(prop_value, str):
            raise _type_error("value", prop_value, "Edm.String")
        out[key] = (item["id"], prop_value)
    return out


# --- contact bodies -------------------------------------------------------------------------------


def _check_datetime(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(name, value, "Edm.DateTimeOffset")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _type_error(name, value, "Edm.DateTimeOffset") from None
    return value


def validate_contact_body(body: Any) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """Writable fields and extended properties from a create/update body, or the 400 Graph gives.

    Lists come back as tuples, and objects (addresses, email addresses) as tuples of (name, value) pairs:
    the store keeps them as they are, and the garbage collector stops scanning values made only of tuples
    and strings (a benchmark's store holds hundreds of thousands of them). `_Contact.to_json` turns them
    back into lists and dicts.
    """
    if not isinstance(body, dict):
        raise _body_error("Unable to read JSON request payload. Expected an object.")
    fields: dict[str, Any] = {}
    ext: dict[str, tuple[str, str]] = {}
    for name, value in body.items():
        kind = _FIELD_KINDS.get(name)  # one look-up per property: every write checks every property
        if kind is _STRING:
            if value is not None and not isinstance(value, str):
                raise _type_error(name, value, "Edm.String")
            fields[name] = value
        elif kind is _EXTENDED:
            ext = parse_extended_properties(value)
        elif kind is _STRING_LIST:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _type_error(name, value, "Collection(Edm.String)")
            fields[name] = tuple(value)
        elif kind is _ADDRESS:
            fields[name] = _checked_pairs(name, value, ADDRESS_KEYS, "Microsoft.OutlookServices.PhysicalAddress")
        elif kind is _EMAILS:
            if not isinstance(value, list):
                raise _type_error(name, value, "Collection(Microsoft.OutlookServices.EmailAddress)")
            emails = []
            for v in value:
                emails.append(_checked_pairs(name, v, EMAIL_KEYS, "Microsoft.OutlookServices.EmailAddress"))
            fields[name] = tuple(emails)
        elif kind is _BIRTHDAY:
            fields[name] = None if value is None else _check_datetime(name, value)
        elif kind is _READ_ONLY:
            raise GraphError(400, "ErrorInvalidPropertySet", f"The property '{name}' is read-only.")
        elif kind is _UNSUPPORTED:
            raise GraphError(
                400,
                "BadRequest",
                f"The emulator does not model '{name}' on contacts; galsync must not send it.",
            )
        elif not name.startswith("@odata."):  # annotations such as @odata.type are allowed in bodies
            raise _body_error(
                f"The property '{name}' does not exist on type '{_ODATA_TYPE}'. Make sure to only use "
                "property names that are defined by the type or mark the type as open type."
            )
    return fields, ext


def _checked_pairs(name: str, value: Any, keys: tuple[str, ...], type_name: str) -> tuple[tuple[str, Any], ...]:
    """An address or email address object's (name, value) pairs, as stored; the 400 Graph gives otherwise."""
    if value is None and name in ADDRESS_FIELDS:
        return ()
    if not isinstance(value, dict):
        raise _type_error(name, value, type_name)
    out = []
    for k, v in value.items():
        if k.startswith("@odata."):
            continue
        if k not in keys:
            raise _body_error(f"The property '{k}' does not exist on type '{type_name}'.")
        if v is not None and not isinstance(v, str):
            raise _type_error(k, v, "Edm.String")
        out.append((k, v))
    return tuple(out)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, or None if the bytes are not a JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


# --- records --------------------------------------------------------------------------------------


@dataclass
class _Folder:
    id: str
    display_name: str
    parent_id: str
    ext: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "parentFolderId": self.parent_id}


@dataclass(slots=True)  # a store holds many: no per-contact __dict__
class _Contact:
    id: str
    folder_id: str
    fields: dict[str, Any]
    ext: dict[str, tuple[str, str]]
    change_key: str
    created: str
    modified: str
    seq: int  # tenant change sequence of the last change: what delta rounds are cut on
    photo: bytes | None = None
    photo_size: tuple[int, int] | None = None

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def to_json(self) -> dict[str, Any]:
        """The contact as Graph returns it, in Graph's property order; lists and addresses are copies."""
        fields = self.fields
        out = {**_UNSET_CONTACT, **fields}  # every property in Graph's order, unset ones null
        # Stored tuples become lists and dicts (empty ones when unset).
        for name in STRING_LIST_FIELDS:
            out[name] = list(fields.get(name, ()))
        for name in ADDRESS_FIELDS:
            out[name] = dict(fields.get(name, ()))
        out["emailAddresses"] = [dict(pairs) for pairs in fields.get("emailAddresses", ())]
        out["id"] = self.id
        out["createdDateTime"] = self.created
        out["lastModifiedDateTime"] = self.modified
        out["changeKey"] = self.change_key
        out["parentFolderId"] = self.folder_id
        return out


# How collections are stored (validate_contact_body): tuples of strings, tuples of (name, value) pairs, and
# a tuple of such pair tuples for the email addresses.
_UNSET_CONTACT: dict[str, Any] = dict.fromkeys(CONTACT_PROPERTIES)


@dataclass
class _Mailbox:
    user_id: str
    root_id: str
    default_folder_id: str
    folders: dict[str, _Folder] = field(default_factory=dict)
    contacts: dict[str, _Contact] = field(default_factory=dict)
    # folder id -> [(seq, contact id)] of contacts that left the folder (deleted): delta's @removed entries.
    tombstones: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # Bytes uploaded as contact photos, for the throttle's 150 MB / 5 min upload budget.
    uploaded_bytes: int = 0


@dataclass(frozen=True)
class DeltaPage:
    """One page of a contact delta round: items, and either the next skip token or the new delta token."""

    items: list[dict[str, Any]]
    skip_token: str | None
    delta_token: str | None


DELTA_MAX_PAGE = 200  # Outlook caps odata.maxpagesize for contacts at 200 and uses it when none is asked for
_DELTA_KIND = "contact-delta"


class Mailboxes:
    """Every mailbox of the tenant. Each mutation takes `changes.lock`, draws a sequence, records it, emits."""

    def __init__(self, changes: Changes, directory: Directory) -> None:
        self._changes = changes
        self._directory = directory  # a mailbox belongs to a user of the directory
        self._boxes: dict[str, _Mailbox] = {}
        self._purposes: dict[str, str] = {}

    # --- mailbox resolution -------------------------------------------------------------------------------

    def user_id(self, mailbox: str) -> str:
        """The user id for an id or UPN; Outlook answers an unknown user with 404 ErrorInvalidUser."""
        return self._owner(mailbox)[0]

    def _owner(self, mailbox: str) -> tuple[str, bool]:
        """(user id, whether the user has a mailbox) for an id or UPN; 404 ErrorInvalidUser if unknown."""
        try:
            return self._directory.mailbox_owner(mailbox)
        except GraphError as exc:
            if exc.status != 404:
                raise
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{mailbox}' is invalid.") from None

    def _box(self, mailbox: str) -> _Mailbox:
        with self._changes.lock:  # one wait for the lock; the directory's own takes are re-entrant
            uid, enabled = self._owner(mailbox)
            if not enabled:
                raise GraphError(
                    404,
                    "MailboxNotEnabledForRESTAPI",
                    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
                )
            box = self._boxes.get(uid)
            if box is None:
                root = outlook_id(b"\x00\x00\x00\x01")
                default = _Folder(outlook_id(b"\x00\x00\x00\x02"), "Contacts", root)
                box = _Mailbox(uid, root, default.id, {default.id: default})
                self._boxes[uid] = box
            return box

    # --- userPurpose ---------------------------------------------------------------------------------------

    def set_purpose(self, user_id: str, purpose: str) -> None:
        """Record the mailbox type Exchange reports (e.g. "shared" for a shared mailbox)."""
        if purpose not in USER_PURPOSES:
            raise ValueError(f"userPurpose must be one of {USER_PURPOSES}, not {purpose!r}")
        uid = self.user_id(user_id)
        with self._changes.lock:
            self._purposes[uid] = purpose

    def purpose(self, user_id: str) -> str:
        box = self._box(user_id)
        created_as = "shared" if self._directory.created_as_shared_mailbox(box.user_id) else "user"
        return self._purposes.get(box.user_id, created_as)

    # --- folders -------------------------------------------------------------------------------------------

    def default_folder(self, mailbox: str) -> dict[str, Any]:
        box = self._box(mailbox)
        return box.folders[box.default_folder_id].to_json()

    def _folder(self, box: _Mailbox, folder_id: str | None) -> _Folder:
        folder = box.folders.get(folder_id or box.default_folder_id)
        if folder is None:
            raise not_found(f"contact folder {folder_id}")
        return folder

    def get_folder(self, mailbox: str, folder_id: str) -> dict[str, Any]:
        box = self._box(mailbox)
        with self._changes.lock:
            return self._folder(box, folder_id).to_json()

    def folder_extended_properties(self, mailbox: str, folder_id: str) -> dict[str, tuple[str, str]]:
        box = self._box(mailbox)
        with self._changes.lock:
            return dict(self._folder(box, folder_id).ext)

    def create_folder(
        self,
        mailbox: str,
        display_name: str,
        parent_id: str | None = None,
        extended_properties: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """A new child of `parent_id` (default: the Contacts folder); a same-named sibling is a 409."""
        box = self._box(mailbox)
        if not isinstance(display_name, str) or not display_name.strip():
            raise GraphError(
                400, "ErrorInvalidRequest", "The folder's displayName must be a non-empty string."
            )
        with self._changes.lock:
            parent = self._folder(box, parent_id)
            self._check_unique_name(box, parent.id, display_name, None)
            folder = _Folder(
                outlook_id(b"\x00\x00\x00\x03"), display_name, parent.id, dict(extended_properties or {})
            )
            box.folders[folder.id] = folder
            self._changes.next_seq()
            return folder.to_json()

    def update_folder(
        self,
        mailbox: str,
        folder_id: str,
        display_name: str | None = None,
        extended_properties: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        box = self._box(mailbox)
        with self._changes.lock:
            folder = self._folder(box, folder_id)
            if display_name is not None:
                if folder.id == box.default_folder_id:
                    raise GraphError(403, "ErrorAccessDenied", "Distinguished folders cannot be renamed.")
                self._check_unique_name(box, folder.parent_id, display_name, folder.id)
                folder.display_name = display_name
            folder.ext.update(extended_properties or {})
            self._changes.next_seq()
            return folder.to_json()

    def _check_unique_name(self, box: _Mailbox, parent_id: str, name: str, except_id: str | None) -> None:
        for f in box.folders.values():
            if f.parent_id == parent_id and f.id != except_id and f.display_name.lower() == name.lower():
                raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")

    def delete_folder(self, mailbox: str, folder_id: str) -> None:
        """Remove a folder with its child folders and contacts (each contact reported as deleted)."""
        box = self._box(mailbox)
        with self._changes.lock:
            folder = self._folder(box, folder_id)
            if folder.id == box.default_folder_id:
                raise GraphError(
                    403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
                )
            doomed = [folder.id]
            i = 0
            while i < len(doomed):
                doomed.extend(f.id for f in box.folders.values() if f.parent_id == doomed[i])
                i += 1
            for fid in doomed:
                for cid in [c.id for c in box.contacts.values() if c.folder_id == fid]:
                    self._delete_contact(box, cid)
                del box.folders[fid]

    def folders(self, mailbox: str) -> list[dict[str, Any]]:
        """Every folder the mailbox owner created (the default Contacts folder excluded), oldest first."""
        box = self._box(mailbox)
        with self._changes.lock:
            return [f.to_json() for f in box.folders.values() if f.id != box.default_folder_id]

    def child_folders(self, mailbox: str, parent_id: str | None = None) -> list[dict[str, Any]]:
        """What GET .../contactFolders (parent None: the default folder) or .../childFolders lists."""
        box = self._box(mailbox)
        with self._changes.lock:
            parent = self._folder(box, parent_id)
            return [f.to_json() for f in box.folders.values() if f.parent_id == parent.id]

    def find_folder(self, mailbox: str, display_name: str) -> dict[str, Any] | None:
        """The folder with this name (case-insensitive, as Exchange compares), top level first."""
        box = self._box(mailbox)
        with self._changes.lock:
            matches = [f for f in box.folders.values() if f.display_name.lower() == display_name.lower()]
            matches.sort(key=lambda f: f.parent_id != box.default_folder_id)
            return matches[0].to_json() if matches else None

    # --- contacts ------------------------------------------------------------------------------------------

    def _emit(self, box: _Mailbox, folder_id: str, change_type: str, contact_id: str, seq: int) -> None:
        self._changes.emit(
            f"users/{box.user_id}/contactFolders/{folder_id}/contacts", change_type, contact_id, seq
        )

    def _contact(self, box: _Mailbox, contact_id: str, folder_id: str | None = None) -> _Contact:
        contact = box.contacts.get(contact_id)
        if contact is None or (folder_id is not None and contact.folder_id != folder_id):
            raise not_found(f"contact {contact_id}")
        return contact

    def create_contact(self, mailbox: str, body: Any, folder_id: str | None = None) -> dict[str, Any]:
        """POST .../contacts: validate like Graph, store, emit "created"; returns the contact's JSON."""
        fields, ext = validate_contact_body(body)
        if "displayName" not in fields or fields["displayName"] is None:
            fields["displayName"] = _generated_display_name(fields)
        contact_id, key = outlook_id(), change_key()  # drawn before the lock: others wait less for it
        with self._changes.lock:
            box = self._box(mailbox)
            folder = self._folder(box, folder_id)
            now = utc_now_iso()
            seq = self._changes.next_seq()
            contact = _Contact(contact_id, folder.id, fields, ext, key, now, now, seq)
            box.contacts[contact.id] = contact
            self._emit(box, folder.id, "created", contact.id, seq)
            return contact.to_json()

    def update_contact(
        self, mailbox: str, contact_id: str, body: Any, folder_id: str | None = None, *,
        drop_extended_properties: bool = False,
    ) -> dict[str, Any]:
        """PATCH: only the given properties change; a new changeKey every time, as Exchange does.

        `drop_extended_properties` (never from a Graph request): the contact loses every extended property it
        had, as when a phone saves back its own copy of the contact, which knows nothing of them.
        """
        fields, ext = validate_contact_body(body)
        with self._changes.lock:
            box = self._box(mailbox)
            contact = self._contact(box, contact_id, folder_id)
            merged = {**contact.fields, **fields}
            if "displayName" not in fields and any(k in fields for k in _NAME_PARTS):
                # Exchange regenerates displayName when a name part changes and displayName is not resent.
                merged["displayName"] = _generated_display_name(merged)
            contact.fields = merged
            if drop_extended_properties:
                contact.ext = {}
            contact.ext.update(ext)
            return self._touch(box, contact)

    def _touch(self, box: _Mailbox, contact: _Contact) -> dict[str, Any]:
        contact.change_key = change_key()
        contact.modified = utc_now_iso()
        contact.seq = self._changes.next_seq()
        self._emit(box, contact.folder_id, "updated", contact.id, contact.seq)
        return contact.to_json()

    def delete_contact(self, mailbox: str, contact_id: str, folder_id: str | None = None) -> None:
        box = self._box(mailbox)
        with self._changes.lock:
            self._contact(box, contact_id, folder_id)
            self._delete_contact(box, contact_id)

    def _delete_contact(self, box: _Mailbox, contact_id: str) -> None:
        contact = box.contacts.pop(contact_id)
        seq = self._changes.next_seq()
        box.tombstones.setdefault(contact.folder_id, []).append((seq, contact.id))
        self._emit(box, contact.folder_id, "deleted", contact.id, seq)

    def get_contact(self, mailbox: str, contact_id: str, folder_id: str | None = None) -> dict[str, Any]:
        box = self._box(mailbox)
        with self._changes.lock:
            return self._contact(box, contact_id, folder_id).to_json()

    def contact_extended_properties(
        self, mailbox: str, contact_id: str, folder_id: str | None = None
    ) -> dict[str, tuple[str, str]]:
        box = self._box(mailbox)
        with self._changes.lock:
            return dict(self._contact(box, contact_id, folder_id).ext)

    def list_contacts(self, mailbox: str, folder_id: str | None = None) -> list[tuple[dict[str, Any], dict]]:
        """(contact JSON, extended properties) of one folder, oldest first: what the list route pages over."""
        box = self._box(mailbox)
        with self._changes.lock:
            folder = self._folder(box, folder_id)
            return [(c.to_json(), dict(c.ext)) for c in box.contacts.values() if c.folder_id == folder.id]

    def contacts(self, mailbox: str, folder_id: str | None = None) -> list[dict[str, Any]]:
        """Full contact JSON of one folder (None: default Contacts), every extended property included."""
        out = []
        for contact, ext in self.list_contacts(mailbox, folder_id):
            if ext:
                contact["singleValueExtendedProperties"] = [{"id": i, "value": v} for i, v in ext.values()]
            out.append(contact)
        return out

    def etag(self, user_id: str, contact_id: str) -> str | None:
        """The contact's current @odata.etag, or None once it is gone (notifications carry it)."""
        with self._changes.lock:
            box = self._boxes.get(user_id)
            contact = box.contacts.get(contact_id) if box else None
            return contact.etag if contact else None

    # --- a person on a phone -------------------------------------------------------------------------------

    def phone_create_contact(
        self, mailbox: str, fields: dict[str, Any], folder_id: str | None = None
    ) -> dict:
        """A phone saves a contact (e.g. "Maman" from the call log): same effects as a Graph POST."""
        return self.create_contact(mailbox, fields, folder_id)

    def phone_update_contact(self, mailbox: str, contact_id: str, fields: dict[str, Any], *,
                             strips_hidden_properties: bool = False) -> dict[str, Any]:
        """A phone edits a contact; one that saves back its own copy (`strips_hidden_properties`) drops every
        extended property, galsync's hidden tag included, while the contact keeps its id."""
        return self.update_contact(mailbox, contact_id, fields, drop_extended_properties=strips_hidden_properties)

    def phone_delete_contact(self, mailbox: str, contact_id: str) -> None:
        self.delete_contact(mailbox, contact_id)

    # --- contact photos ------------------------------------------------------------------------------------

    def set_photo(self, mailbox: str, contact_id: str, data: bytes, folder_id: str | None = None) -> None:
        """PUT .../photo/$value: a JPEG under 4 MB; the contact changes (new changeKey, "updated")."""
        if len(data) >= PHOTO_MAX_BYTES:
            raise GraphError(
                413,
                "ErrorRequestEntityTooLarge",
                "The photo is too large: the request body must be under 4 MB.",
            )
        size = jpeg_size(data)
        if size is None:
            raise GraphError(400, "ErrorInvalidImage", "The photo is not a valid JPEG image.")
        box = self._box(mailbox)
        with self._changes.lock:
            contact = self._contact(box, contact_id, folder_id)
            contact.photo, contact.photo_size = bytes(data), size
            box.uploaded_bytes += len(data)
            self._touch(box, contact)

    def photo(
        self, mailbox: str, contact_id: str, folder_id: str | None = None
    ) -> tuple[bytes, tuple[int, int]]:
        box = self._box(mailbox)
        with self._changes.lock:
            contact = self._contact(box, contact_id, folder_id)
            if contact.photo is None or contact.photo_size is None:
                raise GraphError(404, "ErrorItemNotFound", "The photo wasn't found.")
            return contact.photo, contact.photo_size

    def uploaded_bytes(self, mailbox: str) -> int:
        return self._box(mailbox).uploaded_bytes

    # --- contact delta -------------------------------------------------------------------------------------

    def delta_page(
        self,
        mailbox: str,
        folder_id: str,
        token: str | None,
        token_kind: str | None,
        select: list[str] | None,
        page_size: int | None,
    ) -> tuple[DeltaPage, list[str] | None]:
        """One page of GET .../contactFolders/{id}/contacts/delta.

        A round covers the changes with seq in (since, upto], where `upto` is the tenant sequence when the
        round started; the first round (since 0) lists every contact in the folder and no removals.
        Skip tokens carry the round and a cursor (the last seq served); the delta token carries `upto` as
        the next round's `since`. Both carry the original $select (tokens keep the query, as Graph's do)
        and the tenant's delta epoch (an older epoch is answered 410 syncStateNotFound).
        Returns the page and the $select that applies.
        """
        box = self._box(mailbox)
        size = min(page_size or DELTA_MAX_PAGE, DELTA_MAX_PAGE)
        with self._changes.lock:
            folder = self._folder(box, folder_id)
            if token is None:
                state: dict[str, Any] = {"since": 0, "upto": self._changes.seq, "after": 0, "sel": select}
            else:
                state = self._decode_delta(box, folder, token, token_kind or "")
                if token_kind == "delta":
                    state = {
                        "since": state["since"],
                        "upto": self._changes.seq,
                        "after": state["since"],
                        "sel": state["sel"],
                    }
                select = state["sel"]
            since, upto, after = state["since"], state["upto"], state["after"]
            changed = [
                (c.seq, c)
                for c in box.contacts.values()
                if c.folder_id == folder.id and after < c.seq <= upto
            ]
            removed = []
            if since > 0:
                present = {c.id for c in box.contacts.values() if c.folder_id == folder.id}
                removed = [
                    (seq, cid)
                    for seq, cid in box.tombstones.get(folder.id, [])
                    if after < seq <= upto and cid not in present
                ]
            events: list[tuple[int, Any]] = sorted([*changed, *removed], key=lambda e: e[0])
            page, rest = events[:size], events[size:]
            items = [self._delta_item(e) for _, e in page]
            if rest:
                next_state = {**state, "after": page[-1][0]}
                return DeltaPage(items, self._encode_delta(box, folder, next_state, "skip"), None), select
            if since > 0:
                items.extend(self._replays(box, folder, since, size))
            next_round = {"since": upto, "upto": upto, "after": upto, "sel": select}
            return DeltaPage(items, None, self._encode_delta(box, folder, next_round, "delta")), select

    def _delta_item(self, entry: _Contact | str) -> dict[str, Any]:
        if isinstance(entry, str):
            return {"@odata.type": "#microsoft.graph.contact", "id": entry, "@removed": {"reason": "deleted"}}
        return {"@odata.type": "#microsoft.graph.contact", "@odata.etag": entry.etag, **entry.to_json()}

    def _replays(self, box: _Mailbox, folder: _Folder, since: int, room: int) -> list[dict[str, Any]]:
        """Unchanged items Graph sends again (delta replays), when the tenant asks for them."""
        rate = self._changes.delta_replay_rate
        if rate <= 0:
            return []
        rng = self._changes.rng
        old = [c for c in box.contacts.values() if c.folder_id == folder.id and c.seq <= since]
        return [self._delta_item(c) for c in old if rng.random() < rate][:room]

    def _encode_delta(self, box: _Mailbox, folder: _Folder, state: dict[str, Any], kind: str) -> str:
        return deltatoken.encode(
            {
                "k": _DELTA_KIND,
                "t": kind,
                "m": box.user_id,
                "f": folder.id,
                "e": self._changes.delta_epoch,
                **state,
            }
        )

    def _decode_delta(self, box: _Mailbox, folder: _Folder, token: str, kind: str) -> dict[str, Any]:
        state = deltatoken.decode(token)
        if (
            state is None
            or state.get("k") != _DELTA_KIND
            or state.get("t") != kind
            or state.get("m") != box.user_id
            or state.get("f") != folder.id
        ):
            raise GraphError(
                400, "ErrorInvalidSyncStateData", "The sync state data is corrupt or otherwise invalid."
            )
        if state.get("e") != self._changes.delta_epoch:
            raise GraphError(
                410, "syncStateNotFound", "The sync state was not found; start a new full synchronization."
            )
        return state


def _generated_display_name(fields: dict[str, Any]) -> str | None:
    parts = [fields.get(k) for k in _NAME_PARTS]
    name = " ".join(p for p in parts if p)
    return name or None
