"""Emptying a mailbox that left the targets when galsync has no records of what it wrote there.

The records are a cache (I9): a target whose first contact failed (its look-up or its first push refused),
after a state store was lost, may still hold this profile's contacts from before, and its records name none of
them. So under policy.removed_target = "delete" its managed folder is found by its tag (folders.find_folder)
and listed once with galsync's tag expanded (folder_listing.py), and every contact tagged for this profile is
deleted. An untagged contact, or one tagged by another profile, is never touched (I1). Cost: one folder
look-up and one listing (a request per 1,000 contacts) per such mailbox, never a request per contact to find.
"""

from __future__ import annotations

import logging

from sync_core.core.actions import Delete
from sync_core.core.profile import Profile
from sync_core.core.tags import read_contact_tag
from sync_core.graph import GraphClient, NotFound

from .folder_listing import list_tagged_contacts
from .folders import FolderConflict, find_folder
from .target_work import TargetWork

log = logging.getLogger("galsync.removal")


def tagged_removal(client: GraphClient, profile: Profile, mailbox: str) -> TargetWork | None:
    """The deletes of this profile's tagged contacts in the mailbox's managed folder; None when the mailbox has
    no managed folder of this profile (none at all, or only a foreign namesake), or it is gone.

    Raises GraphError when the mailbox refuses (403, 507, ...): the caller records it, to empty it again later.
    """
    try:
        folder_id = find_folder(client, profile, mailbox)
        if folder_id is None:
            return None
        deletes: list[Delete] = []
        for item in list_tagged_contacts(client, mailbox, folder_id, ("changeKey",)):
            tag = read_contact_tag(item)
            if tag is not None and tag.profile == profile.name:
                deletes.append(Delete(tag.source_key, str(item["id"])))
    except (FolderConflict, NotFound):
        return None
    log.info("profile %s: mailbox %s left with no records: %d tagged contact(s) to delete", profile.name, mailbox,
             len(deletes))
    return TargetWork(mailbox, folder_id, sorted(deletes, key=lambda d: (d.source_key, d.contact_id or "")), {})
