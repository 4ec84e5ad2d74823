"""The managed contact folder in each target mailbox: found by galsync's hidden tag, created and tagged once.

A folder with the configured name that galsync did not create is never taken over (I1): the admin gets a
clear error naming the mailbox and the folder, and can configure another name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from sync_core.core.profile import Profile
from sync_core.core.tags import FOLDER_TAG_EXPAND, folder_tag_properties, read_folder_tag
from sync_core.graph import Conflict, GraphClient

log = logging.getLogger("galsync.folders")


class FolderConflict(RuntimeError):
    """A folder with the managed folder's name exists in a target mailbox and is not galsync's."""


def find_folder(client: GraphClient, profile: Profile, mailbox: str) -> str | None:
    """The id of this profile's managed folder in `mailbox`, or None; FolderConflict for a foreign namesake."""
    same_named = list(_same_named(client, profile, mailbox))
    for folder in same_named:
        if read_folder_tag(folder) == profile.name:
            return str(folder["id"])
    if same_named:
        raise FolderConflict(
            f'mailbox {mailbox}: a contact folder named "{profile.folder}" exists and galsync did not create it; '
            f'galsync will not take it over. Rename that folder, or set folder = "..." in profile "{profile.name}".'
        )
    return None


def ensure_folder(client: GraphClient, profile: Profile, mailbox: str) -> str:
    """The managed folder's id, creating and tagging the folder on first use."""
    existing = find_folder(client, profile, mailbox)
    if existing is not None:
        return existing
    body = {"displayName": profile.folder, "singleValueExtendedProperties": folder_tag_properties(profile.name)}
    try:
        created = client.request("POST", f"/users/{mailbox}/contactFolders", json=body).json()
    except Conflict:
        # Created meanwhile (another worker, or our own earlier attempt whose answer was lost): look again.
        found = find_folder(client, profile, mailbox)
        if found is None:
            raise
        return found
    log.info("profile %s: created managed folder in mailbox %s", profile.name, mailbox)
    return str(created["id"])


def _same_named(client: GraphClient, profile: Profile, mailbox: str) -> Iterator[dict[str, Any]]:
    name = profile.folder.replace("'", "''")
    return client.iter_pages(
        f"/users/{mailbox}/contactFolders",
        params={"$filter": f"displayName eq '{name}'", "$expand": FOLDER_TAG_EXPAND},
    )
