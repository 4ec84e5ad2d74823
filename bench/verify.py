"""Reading a target folder through Graph, and checking after the runs that every target folder holds exactly
the contacts it should (a benchmark of a run that did the wrong thing measures nothing).

The naive strategy reads folders the same way (bench/naive.py), which is all it knows about them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sync_core.core.profile import Profile
from sync_core.core.sources import user_key
from sync_core.core.tags import CONTACT_TAG_EXPAND, read_contact_tag
from sync_core.graph import GraphClient

CONTACTS_PAGE = 1000  # the most a contact list returns per page


@dataclass(frozen=True)
class Listing:
    """One target folder as read this run."""

    mailbox: str
    folder_id: str
    contacts: tuple[dict[str, Any], ...]


def find_folder(client: GraphClient, profile: Profile, mailbox: str) -> str | None:
    """The id of the folder named as the profile's folder in `mailbox`, or None."""
    name = profile.folder.replace("'", "''")
    found = client.get(f"/users/{mailbox}/contactFolders", params={"$filter": f"displayName eq '{name}'"})["value"]
    return str(found[0]["id"]) if found else None


def list_folder(client: GraphClient, profile: Profile, mailbox: str, folder_id: str) -> Listing:
    """Every contact of the folder with the profile's fields and galsync's hidden tag, largest pages."""
    params = {"$select": ",".join(profile.mapped_fields), "$expand": CONTACT_TAG_EXPAND, "$top": str(CONTACTS_PAGE)}
    contacts = tuple(client.iter_pages(f"/users/{mailbox}/contactFolders/{folder_id}/contacts", params=params))
    return Listing(mailbox, folder_id, contacts)


def check_targets(client: GraphClient, profile: Profile, mailboxes: Iterable[str], users: int,
                  changed_user: str | None = None, new_mobile: str = "") -> list[str]:
    """Problems found (empty when every folder holds one contact per user, with the latest change to
    `changed_user`'s mobile number when one is named)."""
    problems: list[str] = []
    changed = user_key(changed_user) if changed_user is not None else None
    for mailbox in mailboxes:
        folder_id = find_folder(client, profile, mailbox)
        if folder_id is None:
            problems.append(f"mailbox {mailbox}: no folder named {profile.folder!r}")
            continue
        tagged = [(tag.source_key, c) for c in list_folder(client, profile, mailbox, folder_id).contacts
                  if (tag := read_contact_tag(c)) is not None and tag.profile == profile.name]
        keys = Counter(key for key, _ in tagged)
        if len(keys) != users or any(n > 1 for n in keys.values()):
            problems.append(f"mailbox {mailbox}: {len(tagged)} contacts for {len(keys)} users, "
                            f"expected one for each of {users}")
        phones = [c.get("mobilePhone") for key, c in tagged if key == changed]
        if changed is not None and phones != [new_mobile]:
            problems.append(f"mailbox {mailbox}: the changed user's contact has {phones}, expected [{new_mobile!r}]")
    return problems
