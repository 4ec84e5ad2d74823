"""The directory store (`tenant.directory`): users, organizational contacts, groups and user photos.

Every mutation takes `changes.lock`, draws one `changes.next_seq()`, stamps that sequence on each property it
changed (and on manager and membership links), appends the object to its resource's change log and calls
`changes.emit(...)`. Delta queries are answered from those stamps: "did a *selected* property change after
the token's sequence?" decides whether an object appears, which is how Graph's `$select` narrows what users
show up in `/users/delta` (api/user-delta.md). Photo changes are deliberately not stamped: Graph does not
track the `photo` navigation property in delta (concepts/delta-query-overview.md, "Navigation properties"),
and for the same reason they are not emitted as user changes.

Change types emitted ("emit the truth, let subscriptions map it"):
users: created, updated, soft delete -> "updated" (the object still exists, in deletedItems; Graph reports it
as updated too), hard delete -> "deleted", restore -> "updated"; contacts: created, updated, deleted (org
contacts are deleted permanently here); groups: created, updated (properties or membership).

Deletion follows Graph: a soft-deleted user is answered in delta as `@removed: {"reason": "changed"}`
(restorable), a permanently deleted one as `{"reason": "deleted"}`; a restored user comes back whole with no
annotation (concepts/delta-query-users.md).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from .changes import Changes
from .ids import directory_id
from .protocol import GraphError

# --- Graph's property sets ---------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# GET /users and /users/{id} without $select (api/user-list.md).
USER_DEFAULT_PROPERTIES: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

# The structural properties of microsoft.graph.user (user-schema.yml; a test keeps this list in step).
USER_PROPERTIES: frozenset[str] = _words(
    """
    id deletedDateTime aboutMe accountEnabled ageGroup assignedLicenses assignedPlans
    authorizationInfo birthday businessPhones city companyName consentProvidedForMinor country
    createdDateTime creationType customSecurityAttributes department deviceEnrollmentLimit
    displayName employeeHireDate employeeId employeeLeaveDateTime employeeOrgData employeeType
    externalUserState externalUserStateChangeDateTime faxNumber givenName hireDate identities
    imAddresses interests isManagementRestricted isResourceAccount jobTitle
    lastPasswordChangeDateTime legalAgeGroupClassification licenseAssignmentStates mail
    mailboxSettings mailNickname mobilePhone mySite officeLocation onPremisesDistinguishedName
    onPremisesDomainName onPremisesExtensionAttributes onPremisesImmutableId
    onPremisesLastSyncDateTime onPremisesProvisioningErrors onPremisesSamAccountName
    onPremisesSecurityIdentifier onPremisesSyncEnabled onPremisesUserPrincipalName otherMails
    passwordPolicies passwordProfile pastProjects postalCode preferredDataLocation preferredLanguage
    preferredName print provisionedPlans proxyAddresses responsibilities schools securityIdentifier
    serviceProvisioningErrors showInAddressList signInActivity signInSessionsValidFromDateTime
    skills state streetAddress surname usageLocation userPrincipalName userType
    """
)

# Navigation properties of microsoft.graph.user (not values; `manager` is selectable in delta).
USER_RELATIONSHIPS: frozenset[str] = _words(
    """
    activities agreementAcceptances appRoleAssignments authentication calendar calendarGroups calendars
    calendarView chats cloudClipboard contactFolders contacts createdObjects
    deviceManagementTroubleshootingEvents directReports drive drives employeeExperience events extensions
    followedSites inferenceClassification insights joinedTeams licenseDetails mailFolders
    managedAppRegistrations managedDevices manager memberOf messages oauth2PermissionGrants onenote
    onlineMeetings outlook ownedDevices ownedObjects people permissionGrants photo photos planner presence
    registeredDevices scopedRoleMemberOf settings solutions sponsors teamwork todo transitiveMemberOf
    """
)

# "Only supported when retrieving a single user" (api/user-list.md): 501 on the collection and in delta.
USER_SINGLE_ONLY: frozenset[str] = _words(
    "aboutMe birthday hireDate interests mySite pastProjects preferredName responsibilities schools skills "
    "mailboxSettings"
)

USER_COLLECTIONS = _words(
    "assignedLicenses assignedPlans businessPhones identities imAddresses interests licenseAssignmentStates "
    "onPremisesProvisioningErrors otherMails pastProjects provisionedPlans proxyAddresses responsibilities "
    "schools serviceProvisioningErrors skills"
)
_USER_BOOLEANS = _words(
    "accountEnabled isManagementRestricted isResourceAccount onPremisesSyncEnabled showInAddressList"
)
# Non-nullable user properties and what Graph answers for them when they were never set.
USER_UNSET_VALUES: dict[str, Any] = {
    "birthday": "0001-01-01T00:00:00Z",
    "hireDate": "0001-01-01T00:00:00Z",
    "deviceEnrollmentLimit": 5,
}
_USER_OBJECTS = _words(
    "authorizationInfo customSecurityAttributes employeeOrgData mailboxSettings "
    "onPremisesExtensionAttributes passwordProfile print signInActivity"
)

# microsoft.graph.orgContact (Identity.OrganizationContacts.yml); GET returns all of them by default.
ORG_CONTACT_PROPERTIES: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "addresses",
    "companyName",
    "department",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "onPremisesLastSyncDateTime",
    "onPremisesProvisioningErrors",
    "onPremisesSyncEnabled",
    "phones",
    "proxyAddresses",
    "surname",
)
ORG_CONTACT_RELATIONSHIPS = frozenset({"directReports", "manager", "memberOf", "transitiveMemberOf"})
CONTACT_COLLECTIONS = frozenset({"addresses", "onPremisesProvisioningErrors", "phones", "proxyAddresses"})
_PHONE_TYPES = _words("home business mobile other assistant homeFax businessFax otherFax pager radio")

# microsoft.graph.group: the properties this emulator keeps (no OpenAPI slice for groups is stored).
GROUP_PROPERTIES: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "proxyAddresses",
    "securityEnabled",
    "visibility",
)
GROUP_RELATIONSHIPS = frozenset({"members", "owners", "memberOf", "transitiveMembers", "transitiveMemberOf"})
GROUP_COLLECTIONS = frozenset({"groupTypes", "proxyAddresses"})
_GROUP_BOOLEANS = frozenset({"mailEnabled", "securityEnabled"})

# Microsoft 365 photo sizes (api/profilephoto-get.md); a size larger than the uploaded photo is unavailable.
PHOTO_SIZES: tuple[int, ...] = (48, 64, 96, 120, 240, 360, 432, 504, 648)

# Microsoft 365 E3; any non-empty assignedLicenses counts as licensed.
DEFAULT_SKU_ID = "05e9a617-0261-4cee-bb44-138d3ef5d965"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def not_found(what: str) -> GraphError:
    """Graph's directory wording for an object that does not exist (or is deleted)."""
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{what}' does not exist or one of its queried reference-property objects are not present.",
    )


def _bad_request(message: str) -> GraphError:
    return GraphError(400, "Request_BadRequest", message)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_copy(value: Any) -> Any:
    """A copy of a JSON-like value, so callers never share mutable state with the store."""
    kind = type(value)  # exact type checks: this runs for every property of every user a scenario makes
    if kind is str or value is None:
        return value
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if kind is list:
        return [json_copy(v) for v in value]
    return value


# --- Photos ------------------------------------------------------------------------------------------------


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment; ValueError if the bytes are not a JPEG."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG image (missing the SOI marker FFD8)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"not a JPEG image (no marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                break
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            if width == 0 or height == 0:
                raise ValueError("JPEG frame has a zero dimension")
            return width, height
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        pos += 2 + length
    raise ValueError("not a JPEG image (no start-of-frame segment)")


@dataclass(frozen=True)
class Photo:
    """One uploaded user photo: the bytes, their pixel size and the media ETag Graph reports."""

    jpeg: bytes
    width: int
    height: int
    etag: str  # quoted, e.g. "\"BA09D118\"": content-derived, so it changes exactly when the photo does

    @classmethod
    def of(cls, jpeg: bytes) -> Photo:
        width, height = jpeg_size(jpeg)
        return cls(jpeg, width, height, '"' + sha256(jpeg).hexdigest()[:8].upper() + '"')

    def sizes(self) -> list[str]:
        """The documented sizes available for this photo ("48x48" ...), smallest first."""
        edge = min(self.width, self.height)
        return [f"{s}x{s}" for s in PHOTO_SIZES if s <= edge]

    def largest(self) -> tuple[str, int, int]:
        """(id, width, height) of the largest available size; the photo itself if smaller than 48x48."""
        sizes = self.sizes()
        if not sizes:
            return f"{self.width}x{self.height}", self.width, self.height
        edge = int(sizes[-1].split("x")[0])
        return sizes[-1], edge, edge


# --- Records and the change log ----------------------------------------------------------------------------

ACTIVE, SOFT_DELETED, HARD_DELETED = "active", "soft", "hard"


class Record:
    """One directory object and the sequence at which each of its properties last changed."""

    __slots__ = ("id", "kind", "props", "seqs", "born_seq", "props_seq", "last_seq", "state", "state_seq")

    def __init__(self, object_id: str, kind: str, seq: int) -> None:
        self.id = object_id
        self.kind = kind  # "user" | "orgContact" | "group" (the @odata.type suffix)
        self.props: dict[str, Any] = {}
        self.seqs: dict[str, int] = {}  # property -> seq of its last change; absent = never set
        self.born_seq = seq  # created or restored: the whole object is new to a token older than this
        self.props_seq = seq  # last change of any property
        self.last_seq = seq  # last change of anything delta tracks (properties, manager, members, state)
        self.state = ACTIVE
        self.state_seq = seq

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    def set(self, name: str, value: Any, seq: int) -> bool:
        """Store one property; False (and no stamp) when it already had that value."""
        if name in self.seqs and self.props.get(name) == value:
            return False
        self.props[name] = value
        self.seqs[name] = seq
        self.props_seq = seq
        return True

    def odata_type(self) -> str:
        return f"#microsoft.graph.{self.kind}"


class UserRecord(Record):
    __slots__ = ("manager_id", "prev_manager_id", "manager_seq", "photo", "shared", "groups_at_delete")

    def __init__(self, object_id: str, seq: int) -> None:
        super().__init__(object_id, "user", seq)
        self.manager_id: str | None = None
        self.prev_manager_id: str | None = None
        self.manager_seq = 0
        self.photo: Photo | None = None
        self.shared = False  # created as a shared mailbox (no license, yet a mailbox)
        self.groups_at_delete: list[str] = []


class GroupRecord(Record):
    __slots__ = ("members", "removed_members", "members_seq")

    def __init__(self, object_id: str, seq: int) -> None:
        super().__init__(object_id, "group", seq)
        self.members: dict[str, int] = {}  # member id -> seq it was added (insertion order = member order)
        self.removed_members: dict[str, int] = {}  # member id -> seq it was removed
        self.members_seq = 0  # last membership change


class ChangeLog:
    """Objects of one resource in the order of their last tracked change.

    An object that changes again is appended anew; its older entry becomes dead (its seq no longer equals the
    record's `last_seq`) and is skipped, and dead entries are dropped now and then. Delta pages walk this log
    from a sequence on, so a round costs the number of changes, not the size of the directory.
    """

    def __init__(self, records: dict[str, Any]) -> None:
        self._records = records
        self._seqs: list[int] = []
        self._ids: list[str] = []

    def append(self, seq: int, object_id: str) -> None:
        self._seqs.append(seq)
        self._ids.append(object_id)
        if len(self._seqs) > 2 * len(self._records) + 1024:
            self._compact()

    def after(self, seq: int) -> Iterator[tuple[int, Record]]:
        """Live entries with a sequence greater than `seq`, oldest first (call under changes.lock)."""
        i = bisect.bisect_right(self._seqs, seq)
        while i < len(self._seqs):
            entry_seq, record = self._seqs[i], self._records[self._ids[i]]
            if record.last_seq == entry_seq:
                yield entry_seq, record
            i += 1

    def _compact(self) -> None:
        keep = [(s, i) for s, i in zip(self._seqs, self._ids, strict=True) if self._records[i].last_seq == s]
        self._seqs = [s for s, _ in keep]
        self._ids = [i for _, i in keep]


# --- The store ---------------------------------------------------------------------------------------------


class Directory:
    """Users, organizational contacts and groups of one tenant, with per-property change tracking."""

    # Items per delta page for /users/delta, /contacts/delta and /groups/delta (directory_routes.py).
    # Graph's own page size varies; 20 makes a 45-user tenant need three pages. Benchmarks may raise it.
    delta_page_size = 20

    def __init__(self, changes: Changes, domain: str) -> None:
        self.changes = changes
        self.domain = domain  # new users' principal names end in it
        self._users: dict[str, UserRecord] = {}
        self._contacts: dict[str, Record] = {}
        self._groups: dict[str, GroupRecord] = {}
        self._upn: dict[str, str] = {}  # lower-case UPN of an active user -> id
        self._user_order: list[str] = []  # creation order, for list paging
        self._contact_order: list[str] = []
        self.logs: dict[str, ChangeLog] = {
            "users": ChangeLog(self._users),
            "contacts": ChangeLog(self._contacts),
            "groups": ChangeLog(self._groups),
        }

    # -- helpers shared by every mutation ------------------------------------------------------------------

    def _commit(self, resource: str, record: Record, seq: int, change_type: str) -> None:
        record.last_seq = seq
        self.logs[resource].append(seq, record.id)
        self.changes.emit(resource, change_type, record.id, seq)

    def _new_id(self, requested: str | None, taken: Callable[[str], bool]) -> str:
        if requested is None:
            return directory_id()
        if not isinstance(requested, str) or not _GUID.match(requested):
            raise _bad_request(f"Invalid object identifier '{requested}'.")
        if taken(requested):
            raise _bad_request(
                f"Another object with the same value for property id already exists: {requested}."
            )
        return requested.lower()

    def _exists(self, object_id: str) -> bool:
        key = object_id.lower()
        return key in self._users or key in self._contacts or key in self._groups

    # -- users ---------------------------------------------------------------------------------------------

    def add_user(
        self,
        *,
        manager_id: str | None = None,
        shared_mailbox: bool = False,
        id: str | None = None,  # noqa: A002 - Graph's property name; lets scenarios be deterministic
        **props: Any,
    ) -> dict[str, Any]:
        """Create a user and return its Graph JSON.

        Defaults, as a new Microsoft 365 user gets them: `userPrincipalName` from `mailNickname` or
        `displayName` at `tenant.domain`; a license (`assignedLicenses` with one E3 SKU) and `mail` = UPN
        unless given; `accountEnabled` true, `userType` "Member", `businessPhones` []. `shared_mailbox=True`
        creates a shared mailbox instead: `accountEnabled` false, no license, `mail` set, and the mailbox's
        purpose "shared" (`created_as_shared_mailbox`). Pass `assignedLicenses=[]` and
        `mail=None` for a user without a mailbox.
        """
        _check_props("microsoft.graph.user", props, _settable_user_props())
        with self.changes.lock:
            seq = self.changes.next_seq()
            user_id = self._new_id(id, self._exists)
            rec = UserRecord(user_id, seq)
            rec.shared = shared_mailbox
            values = dict(props)
            upn = values.get("userPrincipalName")
            if upn is None:
                upn = self._unique_upn(values.get("mailNickname") or values.get("displayName") or "", user_id)
            elif upn.lower() in self._upn:
                raise _bad_request(
                    "Another object with the same value for property userPrincipalName already exists."
                )
            values["userPrincipalName"] = upn
            values.setdefault("mailNickname", upn.split("@")[0])
            values.setdefault("accountEnabled", not shared_mailbox)
            values.setdefault("userType", "Member")
            values.setdefault("businessPhones", [])
            if "assignedLicenses" not in values:
                values["assignedLicenses"] = (
                    [] if shared_mailbox else [{"disabledPlans": [], "skuId": DEFAULT_SKU_ID}]
                )
            if "mail" not in values and (values["assignedLicenses"] or shared_mailbox):
                values["mail"] = upn
            if values.get("mail") and "proxyAddresses" not in values:
                values["proxyAddresses"] = [f"SMTP:{values['mail']}"]
            values["createdDateTime"] = _now()
            for name, value in values.items():
                rec.set(name, json_copy(value), seq)
            if manager_id is not None:
                manager = self._active_user(manager_id)
                rec.manager_id, rec.manager_seq = manager.id, seq
            self._users[user_id] = rec
            self._user_order.append(user_id)
            self._upn[upn.lower()] = user_id
            self._commit("users", rec, seq, "created")
            return self._user_json(rec)

    def update_user(self, user_id: str, **props: Any) -> dict[str, Any]:
        """Change some properties; only values that really change are stamped (and make the user appear)."""
        _check_props("microsoft.graph.user", props, _settable_user_props())
        with self.changes.lock:
            rec = self._active_user(user_id)
            new_upn = props.get("userPrincipalName")
            if "userPrincipalName" in props:
                if not new_upn:
                    raise _bad_request(
                        "Invalid value specified for property 'userPrincipalName' of resource 'User'."
                    )
                owner = self._upn.get(new_upn.lower())
                if owner is not None and owner != rec.id:
                    raise _bad_request(
                        "Another object with the same value for property userPrincipalName already exists."
                    )
            seq = self.changes.next_seq()
            old_upn = rec.props["userPrincipalName"]
            changed = [name for name, value in props.items() if rec.set(name, json_copy(value), seq)]
            if not changed:
                return self._user_json(rec)
            if "userPrincipalName" in changed:
                self._upn[str(new_upn).lower()] = rec.id  # before the old one goes: see resolve_user
                if old_upn.lower() != str(new_upn).lower():
                    del self._upn[old_upn.lower()]
            self._commit("users", rec, seq, "updated")
            return self._user_json(rec)

    def delete_user(self, user_id: str, hard: bool = False) -> None:
        """Soft delete (to deletedItems, restorable) or, with `hard`, delete permanently.

        A soft-deleted user is also permanently deletable (as Graph's deletedItems DELETE). Either way the
        user leaves its groups (group delta reports the member as removed); a restore puts it back.
        """
        with self.changes.lock:
            rec = self._users.get(user_id.lower())
            if rec is None or rec.state == HARD_DELETED or (rec.state == SOFT_DELETED and not hard):
                raise not_found(user_id)
            seq = self.changes.next_seq()
            if rec.state == ACTIVE:
                self._upn.pop(rec.props["userPrincipalName"].lower(), None)
            rec.state, rec.state_seq = (HARD_DELETED if hard else SOFT_DELETED), seq
            rec.props["deletedDateTime"] = _now()
            self._commit("users", rec, seq, "deleted" if hard else "updated")
            # Knock-on changes come after, each with its own sequence (a delta cursor is one sequence).
            left = self._leave_groups(rec.id)
            rec.groups_at_delete = [] if hard else (rec.groups_at_delete or left)
            if hard:
                self._drop_as_manager(rec.id)

    def restore_user(self, user_id: str) -> dict[str, Any]:
        """Bring a soft-deleted user back whole, with its group memberships."""
        with self.changes.lock:
            rec = self._users.get(user_id.lower())
            if rec is None or rec.state != SOFT_DELETED:
                raise not_found(user_id)
            upn = rec.props["userPrincipalName"].lower()
            if upn in self._upn:
                raise _bad_request(
                    "Another object with the same value for property userPrincipalName already exists."
                )
            seq = self.changes.next_seq()
            rec.state, rec.state_seq, rec.born_seq = ACTIVE, seq, seq
            rec.props.pop("deletedDateTime", None)
            self._upn[upn] = rec.id
            self._commit("users", rec, seq, "updated")
            for group_id in rec.groups_at_delete:
                group = self._groups.get(group_id)
                if group is not None and group.active and rec.id not in group.members:
                    self._link_member(group, rec.id, self.changes.next_seq())
            rec.groups_at_delete = []
            return self._user_json(rec)

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        """Set or clear a user's manager (a relationship: delta reports it only with $select=manager)."""
        with self.changes.lock:
            rec = self._active_user(user_id)
            new = None if manager_id is None else self._active_user(manager_id).id
            if new == rec.id:
                raise _bad_request("A user cannot be their own manager.")
            if new == rec.manager_id:
                return
            seq = self.changes.next_seq()
            rec.prev_manager_id, rec.manager_id, rec.manager_seq = rec.manager_id, new, seq
            self._commit("users", rec, seq, "updated")

    def set_photo(self, user_id: str, jpeg: bytes | None) -> Photo | None:
        """Upload (or remove, with None) a user's photo; the ETag changes only when the bytes change.

        Not tracked by delta and not emitted as a user change, as in Graph (see the module docstring).
        """
        photo = None
        if jpeg is not None:
            try:
                photo = Photo.of(bytes(jpeg))
            except ValueError as exc:
                raise GraphError(
                    400, "ErrorInvalidImage", f"The photo is not a valid JPEG image: {exc}."
                ) from None
        with self.changes.lock:
            rec = self._active_user(user_id)
            rec.photo = photo
            return photo

    def get_user(self, id_or_upn: str) -> dict[str, Any] | None:
        """The full JSON of an active user (all set properties), or None."""
        with self.changes.lock:
            rec = self._find_user(id_or_upn)
            return None if rec is None else self._user_json(rec)

    def resolve_user(self, id_or_upn: str) -> str:
        """The id of an active user given its id or UPN; Graph's 404 otherwise.

        Reads without the lock: every Graph request names its mailbox and resolves it, and threads
        queueing for the lock cost more than the look-up. A dict look-up is atomic, and each mutation leaves
        the id and UPN index whole at every step (a renamed UPN is added before the old one goes), so a reader
        finds the user as it was before or after a change, never half of one.
        """
        rec = self._find_user(id_or_upn)
        if rec is None:
            raise not_found(id_or_upn)
        return rec.id

    def has_mailbox(self, user_id: str) -> bool:
        """A user with `mail` and either a license or created as a shared mailbox (Exchange gave it one)."""
        with self.changes.lock:
            rec = self._find_user(user_id)
            return rec is not None and _has_mailbox(rec)

    def created_as_shared_mailbox(self, user_id: str) -> bool:
        """Whether an active user was created as a shared mailbox (Exchange then reports its purpose "shared")."""
        with self.changes.lock:
            rec = self._find_user(user_id)
            return rec is not None and rec.shared

    def mailbox_owner(self, id_or_upn: str) -> tuple[str, bool]:
        """(id, `has_mailbox`) of an active user given its id or UPN, in one look-up; Graph's 404 otherwise."""
        with self.changes.lock:  # several properties decide: never half of an update
            rec = self._find_user(id_or_upn)
            if rec is None:
                raise not_found(id_or_upn)
            return rec.id, _has_mailbox(rec)

    def users(self) -> list[dict[str, Any]]:
        """Every active user's JSON, in creation order."""
        with self.changes.lock:
            return [self._user_json(r) for r in self.user_records()]

    def manager_of(self, user_id: str) -> str | None:
        with self.changes.lock:
            rec = self._active_user(user_id)
            manager = self._users.get(rec.manager_id) if rec.manager_id else None
            return manager.id if manager is not None and manager.active else None

    def photo(self, user_id: str) -> Photo | None:
        with self.changes.lock:
            return self._active_user(user_id).photo

    # Record-level access for the routes (call under changes.lock).

    def records(self, resource: str) -> dict[str, Any]:
        """Every record of "users", "contacts" or "groups" by id, deleted ones included (delta needs them)."""
        by_resource: dict[str, dict[str, Any]] = {
            "users": self._users,
            "contacts": self._contacts,
            "groups": self._groups,
        }
        return by_resource[resource]

    def any_record(self, object_id: str) -> Record | None:
        """A user, group or org contact by id, deleted or not."""
        key = object_id.lower()
        return self._users.get(key) or self._groups.get(key) or self._contacts.get(key)

    def user_record(self, id_or_upn: str) -> UserRecord:
        return self._active_user(id_or_upn)

    def user_records(self, start: int = 0) -> Iterator[UserRecord]:
        for i in range(start, len(self._user_order)):
            rec = self._users[self._user_order[i]]
            if rec.active:
                yield rec

    def user_position(self, index: int) -> Iterator[tuple[int, UserRecord]]:
        """(position, record) of active users from a position in creation order (for list paging)."""
        for i in range(index, len(self._user_order)):
            rec = self._users[self._user_order[i]]
            if rec.active:
                yield i, rec

    def _find_user(self, id_or_upn: str) -> UserRecord | None:
        key = id_or_upn.lower()
        rec = self._users.get(key)
        if rec is None:
            user_id = self._upn.get(key)
            rec = self._users.get(user_id) if user_id else None
        return rec if rec is not None and rec.active else None

    def _active_user(self, id_or_upn: str) -> UserRecord:
        rec = self._find_user(id_or_upn)
        if rec is None:
            raise not_found(id_or_upn)
        return rec

    def _unique_upn(self, source: str, user_id: str) -> str:
        ascii_name = unicodedata.normalize("NFKD", source).encode("ascii", "ignore").decode()
        local = re.sub(r"[^A-Za-z0-9]+", ".", ascii_name).strip(".").lower() or f"user.{user_id[:8]}"
        candidate, n = local, 1
        while f"{candidate}@{self.domain}".lower() in self._upn:
            n += 1
            candidate = f"{local}{n}"
        return f"{candidate}@{self.domain}"

    def _user_json(self, rec: UserRecord) -> dict[str, Any]:
        out = {"id": rec.id}
        out.update(json_copy(rec.props))
        return out

    def _leave_groups(self, member_id: str) -> list[str]:
        left = []
        for group in self._groups.values():
            if group.active and member_id in group.members:
                self._unlink_member(group, member_id, self.changes.next_seq())
                left.append(group.id)
        return left

    def _drop_as_manager(self, manager_id: str) -> None:
        for rec in self._users.values():
            if rec.active and rec.manager_id == manager_id:
                seq = self.changes.next_seq()
                rec.prev_manager_id, rec.manager_id, rec.manager_seq = manager_id, None, seq
                self._commit("users", rec, seq, "updated")

    # -- organizational contacts ---------------------------------------------------------------------------

    def add_org_contact(self, *, id: str | None = None, **props: Any) -> dict[str, Any]:  # noqa: A002
        """Create an organizational contact (a mail contact in the GAL, e.g. a supplier)."""
        _check_props("microsoft.graph.orgContact", props, _settable_contact_props())
        with self.changes.lock:
            seq = self.changes.next_seq()
            contact_id = self._new_id(id, self._exists)
            rec = Record(contact_id, "orgContact", seq)
            values = dict(props)
            for name in CONTACT_COLLECTIONS:
                values.setdefault(name, [])
            if values.get("mail") and not values["proxyAddresses"]:
                values["proxyAddresses"] = [f"SMTP:{values['mail']}"]
            for name, value in values.items():
                rec.set(name, json_copy(value), seq)
            self._contacts[contact_id] = rec
            self._contact_order.append(contact_id)
            self._commit("contacts", rec, seq, "created")
            return self._record_json(rec)

    def update_org_contact(self, contact_id: str, **props: Any) -> dict[str, Any]:
        _check_props("microsoft.graph.orgContact", props, _settable_contact_props())
        with self.changes.lock:
            rec = self.contact_record(contact_id)
            seq = self.changes.next_seq()
            if any([rec.set(name, json_copy(value), seq) for name, value in props.items()]):
                self._commit("contacts", rec, seq, "updated")
            return self._record_json(rec)

    def delete_org_contact(self, contact_id: str) -> None:
        """Delete permanently (delta: `@removed: {"reason": "deleted"}`)."""
        with self.changes.lock:
            rec = self.contact_record(contact_id)
            seq = self.changes.next_seq()
            rec.state, rec.state_seq = HARD_DELETED, seq
            self._commit("contacts", rec, seq, "deleted")
            self._leave_groups(rec.id)

    def get_org_contact(self, contact_id: str) -> dict[str, Any] | None:
        with self.changes.lock:
            rec = self._contacts.get(contact_id.lower())
            return self._record_json(rec) if rec is not None and rec.active else None

    def org_contacts(self) -> list[dict[str, Any]]:
        with self.changes.lock:
            return [self._record_json(r) for r in self.contact_records()]

    def contact_record(self, contact_id: str) -> Record:
        rec = self._contacts.get(contact_id.lower())
        if rec is None or not rec.active:
            raise not_found(contact_id)
        return rec

    def contact_records(self) -> Iterator[Record]:
        for contact_id in self._contact_order:
            rec = self._contacts[contact_id]
            if rec.active:
                yield rec

    @staticmethod
    def _record_json(rec: Record) -> dict[str, Any]:
        out = {"id": rec.id}
        out.update(json_copy(rec.props))
        return out

    # -- groups --------------------------------------------------------------------------------------------

    def add_group(
        self,
        display_name: str,
        members: Iterable[str] = (),
        *,
        id: str | None = None,  # noqa: A002
        **props: Any,
    ) -> dict[str, Any]:
        """Create a security group (members: user, group or org contact ids) and return its JSON."""
        if not isinstance(display_name, str) or not display_name.strip():
            raise _bad_request("Invalid value specified for property 'displayName' of resource 'Group'.")
        _check_props("microsoft.graph.group", props, _settable_group_props())
        with self.changes.lock:
            member_ids = [self._member_id(m) for m in members]
            seq = self.changes.next_seq()
            group_id = self._new_id(id, self._exists)
            rec = GroupRecord(group_id, seq)
            nickname = re.sub(r"[^A-Za-z0-9]+", "", display_name) or f"group{group_id[:8]}"
            values: dict[str, Any] = {
                "displayName": display_name,
                "description": None,
                "groupTypes": [],
                "mail": None,
                "mailEnabled": False,
                "mailNickname": nickname,
                "proxyAddresses": [],
                "securityEnabled": True,
                "visibility": None,
                "createdDateTime": _now(),
            }
            values.update(props)
            for name, value in values.items():
                rec.set(name, json_copy(value), seq)
            self._groups[group_id] = rec
            for member_id in member_ids:
                if member_id == group_id:
                    raise _bad_request("A group cannot be a member of itself.")
                if member_id not in rec.members:
                    self._link_member(rec, member_id, seq, log=False)
            self._commit("groups", rec, seq, "created")
            return self._group_json(rec)

    def add_member(self, group_id: str, member_id: str) -> None:
        with self.changes.lock:
            group = self.group_record(group_id)
            member = self._member_id(member_id)
            if member == group.id:
                raise _bad_request("A group cannot be a member of itself.")
            if member in group.members:
                raise _bad_request(
                    "One or more added object references already exist for the following modified "
                    "properties: 'members'."
                )
            seq = self.changes.next_seq()
            self._link_member(group, member, seq)

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.changes.lock:
            group = self.group_record(group_id)
            if member_id.lower() not in group.members:
                raise not_found(member_id)
            seq = self.changes.next_seq()
            self._unlink_member(group, member_id.lower(), seq)

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        with self.changes.lock:
            rec = self._groups.get(group_id.lower())
            return self._group_json(rec) if rec is not None and rec.active else None

    def members(self, group_id: str) -> list[str]:
        """Ids of the direct members that exist (deleted objects have left the group)."""
        with self.changes.lock:
            return [r.id for r in self.member_records(self.group_record(group_id))]

    def transitive_members(self, group_id: str) -> list[str]:
        """Ids of every member at any depth (nested groups included, each object once)."""
        with self.changes.lock:
            return [r.id for r in self.transitive_member_records(self.group_record(group_id))]

    def group_record(self, group_id: str) -> GroupRecord:
        rec = self._groups.get(group_id.lower())
        if rec is None or not rec.active:
            raise not_found(group_id)
        return rec

    def group_records(self) -> Iterator[GroupRecord]:
        for rec in self._groups.values():
            if rec.active:
                yield rec

    def member_records(self, group: GroupRecord) -> list[Record]:
        out = []
        for member_id in group.members:
            rec = self.object_record(member_id)
            if rec is not None:
                out.append(rec)
        return out

    def transitive_member_records(self, group: GroupRecord) -> list[Record]:
        seen: set[str] = {group.id}
        out: list[Record] = []
        queue = [group]
        while queue:
            current = queue.pop(0)
            for rec in self.member_records(current):
                if rec.id in seen:
                    continue
                seen.add(rec.id)
                out.append(rec)
                if isinstance(rec, GroupRecord):
                    queue.append(rec)
        return out

    def object_record(self, object_id: str) -> Record | None:
        """The active user, group or org contact with this id."""
        key = object_id.lower()
        rec: Record | None = self._users.get(key) or self._groups.get(key) or self._contacts.get(key)
        return rec if rec is not None and rec.active else None

    def _member_id(self, member_id: str) -> str:
        rec = self.object_record(member_id) if isinstance(member_id, str) else None
        if rec is None:
            raise not_found(str(member_id))
        return rec.id

    def _link_member(self, group: GroupRecord, member_id: str, seq: int, log: bool = True) -> None:
        group.members[member_id] = seq
        group.removed_members.pop(member_id, None)
        group.members_seq = seq
        if log:
            self._commit("groups", group, seq, "updated")

    def _unlink_member(self, group: GroupRecord, member_id: str, seq: int) -> None:
        del group.members[member_id]
        group.removed_members[member_id] = seq
        group.members_seq = seq
        self._commit("groups", group, seq, "updated")

    def _group_json(self, rec: GroupRecord) -> dict[str, Any]:
        out = self._record_json(rec)
        out["members"] = list(rec.members)
        return out


# --- Property validation -----------------------------------------------------------------------------------


def _settable_user_props() -> frozenset[str]:
    return USER_PROPERTIES - {"id", "deletedDateTime", "createdDateTime"}


def _settable_contact_props() -> frozenset[str]:
    return frozenset(ORG_CONTACT_PROPERTIES) - {"id", "deletedDateTime"}


def _settable_group_props() -> frozenset[str]:
    return frozenset(GROUP_PROPERTIES) - {"id", "deletedDateTime", "createdDateTime", "displayName"}


def _check_props(type_name: str, props: dict[str, Any], allowed: frozenset[str]) -> None:
    """Reject unknown properties and values of the wrong JSON type, naming the property (I8)."""
    collections = USER_COLLECTIONS | CONTACT_COLLECTIONS | GROUP_COLLECTIONS
    booleans = _USER_BOOLEANS | _GROUP_BOOLEANS | {"onPremisesSyncEnabled"}
    for name, value in props.items():
        if name not in allowed:
            raise _bad_request(f"Property '{name}' does not exist on type '{type_name}' or cannot be set.")
        if value is None:
            if name in collections:
                raise _bad_request(
                    f"Invalid value specified for property '{name}': a collection cannot be null."
                )
            continue
        if name in collections:
            ok = isinstance(value, list)
        elif name in booleans:
            ok = isinstance(value, bool)
        elif name in _USER_OBJECTS:
            ok = isinstance(value, dict)
        elif name == "deviceEnrollmentLimit":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise _bad_request(
                f"Invalid value specified for property '{name}' of resource '{type_name}': "
                f"{type(value).__name__} is not the property's type."
            )
        if name == "phones":
            for phone in value:
                if not isinstance(phone, dict) or phone.get("type") not in _PHONE_TYPES:
                    raise _bad_request(
                        f"Invalid phone {phone!r}: 'type' must be one of {sorted(_PHONE_TYPES)}."
                    )
        if name in (
            "businessPhones",
            "proxyAddresses",
            "otherMails",
            "imAddresses",
            "groupTypes",
        ) and not all(isinstance(v, str) for v in value):
            raise _bad_request(f"Invalid value specified for property '{name}': items must be strings.")


def _has_mailbox(rec: UserRecord) -> bool:
    return bool(rec.props.get("mail")) and (bool(rec.props.get("assignedLicenses")) or rec.shared)
