"""The managed contact folder in each target mailbox: found by galsync's hidden tag, created and tagged once.

A folder with the configured name that galsync did not create is never taken over (I1): the admin gets a
clear error naming the mailbox and the folder, and can configure another name. A profile with place =
"default_folder" has no folder of its own: its "folder" is the mailbox's default Contacts folder, which always
exists (records.DEFAULT_CONTACTS_FOLDER), and nothing is looked up or created for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from sync_core.core.profile import Profile
from sync_core.core.records import DEFAULT_CONTACTS_FOLDER
from sync_core.core.tags import FOLDER_TAG_EXPAND, folder_tag_properties, read_folder_tag
from sync_core.graph import AuthError, BatchRequest, Conflict, GraphClient, GraphError

log = logging.getLogger("galsync.folders")


class FolderConflict(RuntimeError):
    """A folder with the managed folder's name exists in a target mailbox and is not galsync's."""

    def __init__(self, profile: Profile, mailbox: str) -> None:
        self.advice = (f'a contact folder named "{profile.folder}" exists and galsync did not create it; galsync '
                       f'will not take it over. Rename that folder, or set folder = "..." in profile "{profile.name}".')
        super().__init__(f"mailbox {mailbox}: {self.advice}")


def find_folder(client: GraphClient, profile: Profile, mailbox: str) -> str | None:
    """The id of this profile's managed folder in `mailbox`, or None; FolderConflict for a foreign namesake."""
    if profile.place == "default_folder":
        return DEFAULT_CONTACTS_FOLDER
    same_named = list(_same_named(client, profile, mailbox))
    for folder in same_named:
        if read_folder_tag(folder) == profile.name:
            return str(folder["id"])
    if same_named:
        raise FolderConflict(profile, mailbox)
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


def ensure_folders(client: GraphClient, profile: Profile, mailboxes: Sequence[str], *,
                   made: set[str] | None = None) -> dict[str, str | FolderConflict | GraphError]:
    """`ensure_folder` for many mailboxes at once: one `$batch` of look-ups, then one of creates.

    A new profile's first fill needs a folder in every target; one round trip per 20 mailboxes instead of two
    per mailbox. The result maps each mailbox to its folder id, or to what stops it there (a FolderConflict, or
    the Graph error of a mailbox that refuses: each mailbox fails alone). `made` collects the mailboxes whose
    folder this call created: known empty, so their fill has nothing to adopt (adoption.py) and reads nothing.
    """
    out: dict[str, str | FolderConflict | GraphError] = {}
    if profile.place == "default_folder":
        return dict.fromkeys(mailboxes, DEFAULT_CONTACTS_FOLDER)
    name = profile.folder.replace("'", "''")
    params = urlencode({"$filter": f"displayName eq '{name}'", "$expand": FOLDER_TAG_EXPAND}, quote_via=quote)
    looked = client.batch([BatchRequest("GET", f"/users/{m}/contactFolders?{params}") for m in mailboxes])
    missing: list[str] = []
    for mailbox, result in zip(mailboxes, looked, strict=True):
        body = result.body if isinstance(result.body, dict) else {}
        if result.error is not None and result.status in (403, 404):
            out[mailbox] = result.error  # out of scope, or no mailbox: asking again would say no more
            continue
        if not result.ok or "@odata.nextLink" in body:
            out[mailbox] = _one(client, profile, mailbox)  # an error or several pages: the plain path says why
            continue
        folders = [f for f in body.get("value", []) if isinstance(f, dict)]
        ours = [str(f["id"]) for f in folders if read_folder_tag(f) == profile.name]
        if ours:
            out[mailbox] = ours[0]
        elif folders:
            out[mailbox] = FolderConflict(profile, mailbox)
        else:
            missing.append(mailbox)
    body = {"displayName": profile.folder, "singleValueExtendedProperties": folder_tag_properties(profile.name)}
    created = client.batch([BatchRequest("POST", f"/users/{m}/contactFolders", body=body) for m in missing])
    for mailbox, result in zip(missing, created, strict=True):
        if result.ok and isinstance(result.body, dict):
            log.info("profile %s: created managed folder in mailbox %s", profile.name, mailbox)
            out[mailbox] = str(result.body["id"])
            if made is not None:
                made.add(mailbox)
        else:
            out[mailbox] = _one(client, profile, mailbox)  # e.g. created meanwhile (409): look again
    return out


def _one(client: GraphClient, profile: Profile, mailbox: str) -> str | FolderConflict | GraphError:
    try:
        return ensure_folder(client, profile, mailbox)
    except AuthError:
        raise  # no token: no mailbox can be had, the run stops
    except (FolderConflict, GraphError) as exc:
        return exc


def _same_named(client: GraphClient, profile: Profile, mailbox: str) -> Iterator[dict[str, Any]]:
    name = profile.folder.replace("'", "''")
    return client.iter_pages(
        f"/users/{mailbox}/contactFolders",
        params={"$filter": f"displayName eq '{name}'", "$expand": FOLDER_TAG_EXPAND},
    )
