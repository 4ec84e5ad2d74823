"""What the managed folders must hold, worked out from the emulator's directory alone, and the checks.

The chaos suite must not trust galsync to say what is desired: the desired contacts and targets are computed
here from the emulator's users and the "Phones" group, with a mapping written out by hand for the few user
properties the suite changes. The checks read the emulator's mailboxes directly (no Graph request, so they
add nothing to the request log and see every contact, hidden tags included) and raise AssertionError with a
message that names the mailbox and the source key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graph_emulator import GraphEmulator
from sync_core.core.tags import read_contact_tag

PROFILE = "Chaos"
FOLDER = "Directory"
TARGET_GROUP = "Phones"

# One profile: directory users into the phones of the "Phones" group; every field galsync maps is "always"
# except the manager (the suite does not change managers); photos off (contact photos are issue 10).
CONFIG = f"""
[[profile]]
name = "{PROFILE}"
folder = "{FOLDER}"

[[profile.source]]
type = "users"

[profile.targets]
groups = ["{TARGET_GROUP}"]

[profile.fields]
manager = "never"

[profile.photos]
enabled = false

[profile.policy]
removed_source = "delete"
removed_target = "delete"
deleted_on_device = "recreate"
foreign_contacts = "report"
"""

# Contact fields galsync owns under CONFIG (every mapped field but the manager).
OWNED = ("givenName", "surname", "displayName", "emailAddresses", "businessPhones", "mobilePhone", "companyName",
         "department", "jobTitle", "officeLocation", "businessAddress")


@dataclass(frozen=True)
class Desired:
    """Target mailboxes (user ids) and, per source key, the owned fields every target must show."""

    targets: frozenset[str]
    contacts: Mapping[str, Mapping[str, Any]]


def source_key(user_id: str) -> str:
    return f"user:{user_id}"


def desired(g: GraphEmulator, group_id: str) -> Desired:
    """Who should be in every phone, and whose phone, according to the directory right now."""
    directory = g.tenant.directory
    contacts = {source_key(u["id"]): expected_fields(u) for u in directory.users() if counts_as_source(u)}
    targets = frozenset(m for m in directory.transitive_members(group_id) if mailbox_alive(g, m))
    return Desired(targets, contacts)


def counts_as_source(user: Mapping[str, Any]) -> bool:
    """The default user filter, written out: enabled, member, licensed, shown, with a phone or an email."""
    return (user.get("accountEnabled") is not False
            and str(user.get("userType") or "Member").lower() != "guest"
            and bool(user.get("assignedLicenses"))
            and user.get("showInAddressList") is not False
            and bool(user.get("mail") or user.get("mobilePhone") or user.get("businessPhones")))


def expected_fields(user: Mapping[str, Any]) -> dict[str, Any]:
    """The owned fields of a user's contact (the suite's users carry clean, trimmed values)."""
    name = user.get("displayName")
    fields = {
        "givenName": user.get("givenName"),
        "surname": user.get("surname"),
        "displayName": name,
        "emailAddresses": [{"name": name or user["mail"], "address": user["mail"]}] if user.get("mail") else [],
        "businessPhones": list(user.get("businessPhones") or []),
        "mobilePhone": user.get("mobilePhone"),
        "jobTitle": user.get("jobTitle"),
    }
    return {k: v for k, v in fields.items() if _present(v)}


def owned_view(contact: Mapping[str, Any]) -> dict[str, Any]:
    """The owned fields a contact shows, empty values left out (null, "", [] and an all-null address)."""
    out: dict[str, Any] = {}
    for name in OWNED:
        value = contact.get(name)
        if name == "emailAddresses" and isinstance(value, list):
            value = [{"name": e.get("name"), "address": e.get("address")} for e in value if isinstance(e, dict)]
        if _present(value):
            out[name] = value
    return out


def _present(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_present(v) for v in value.values())
    return value not in (None, "", [])


# --- reading the emulator's mailboxes ---------------------------------------------------------------------


def mailbox_alive(g: GraphEmulator, user_id: str) -> bool:
    """An active user with a mailbox (a deleted user's mailbox cannot be read, by Graph or by us)."""
    directory = g.tenant.directory
    return directory.get_user(user_id) is not None and directory.has_mailbox(user_id)


def alive_mailboxes(g: GraphEmulator) -> list[str]:
    return [u["id"] for u in g.tenant.directory.users() if mailbox_alive(g, u["id"])]


def managed_folders(g: GraphEmulator, mailbox: str) -> list[str]:
    return [f["id"] for f in g.tenant.mailboxes.folders(mailbox) if f["displayName"] == FOLDER]


def managed_folder(g: GraphEmulator, mailbox: str) -> str | None:
    folders = managed_folders(g, mailbox)
    return folders[0] if folders else None


def tagged(contacts: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Contacts carrying this profile's tag, by source key."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for contact in contacts:
        tag = read_contact_tag(contact)
        if tag is not None and tag.profile == PROFILE:
            out.setdefault(tag.source_key, []).append(contact)
    return out


def managed_contacts(g: GraphEmulator, mailbox: str) -> dict[str, list[Mapping[str, Any]]]:
    """Tagged contacts in the mailbox's managed folder, by source key ({} without a folder)."""
    folder = managed_folder(g, mailbox)
    return tagged(g.tenant.mailboxes.contacts(mailbox, folder)) if folder else {}


# --- invariants -----------------------------------------------------------------------------------------------


def check_no_duplicates(g: GraphEmulator) -> None:
    """I2: one managed folder per mailbox, at most one contact per source key in it, none anywhere else."""
    for mailbox in alive_mailboxes(g):
        folders = managed_folders(g, mailbox)
        assert len(folders) <= 1, f"mailbox {mailbox}: {len(folders)} managed folders"
        extra = {k: len(v) for k, v in managed_contacts(g, mailbox).items() if len(v) > 1}
        assert not extra, f"mailbox {mailbox}: duplicate managed contacts {extra}"
        stray = tagged(g.tenant.mailboxes.contacts(mailbox))
        assert not stray, f"mailbox {mailbox}: galsync contacts in the default Contacts folder: {sorted(stray)}"


def check_converged(g: GraphEmulator, group_id: str, forgotten: Collection[str] = ()) -> Desired:
    """I3: every target's folder holds exactly the desired contacts, with the desired owned fields; every
    mailbox that is no longer a target holds none of galsync's contacts (removed_target = "delete"), but for
    the `forgotten` ones: former targets whose contacts were still there when the state was lost (nothing
    tells galsync any more that it wrote to them, short of reading every mailbox of the tenant)."""
    want = desired(g, group_id)
    for mailbox in alive_mailboxes(g):
        found = managed_contacts(g, mailbox)
        if mailbox not in want.targets:
            assert not found or mailbox in forgotten, \
                f"mailbox {mailbox} is not a target but holds managed contacts {sorted(found)}"
            continue
        assert managed_folder(g, mailbox) is not None, f"target {mailbox} has no managed folder"
        counts = Counter({k: len(v) for k, v in found.items()})
        missing = sorted(set(want.contacts) - set(found))
        unwanted = sorted(set(found) - set(want.contacts))
        assert not missing and not unwanted, f"target {mailbox}: missing {missing}, not desired {unwanted}"
        assert set(counts.values()) <= {1}, f"target {mailbox}: duplicates {counts}"
        for key, [contact] in found.items():
            shown, expected = owned_view(contact), dict(want.contacts[key])
            assert shown == expected, f"target {mailbox} {key}: fields {shown} != desired {expected}"
    return want
