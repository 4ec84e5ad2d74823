"""A managed folder its owner deleted: tell it from a mailbox that is gone, and forget it so it is made again.

Writes into a deleted folder answer 404 ErrorItemNotFound, and so does a write to one contact deleted on a
phone; a mailbox that is gone answers 404 with its own codes (failing_targets.MAILBOX_GONE). One GET of the
folder tells them apart. Forgetting the folder drops its id, the mailbox's records, the folder's delta link
and its list of foreign contacts; the caller then finds the folder by its tag or makes it, and fills it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from sync_core.core.profile import Profile
from sync_core.core.records import DEFAULT_CONTACTS_FOLDER, Target
from sync_core.graph import BatchRequest, GraphClient, GraphError
from sync_core.state import docs
from sync_core.state.base import StateStore

from .folder_listing import contact_url

log = logging.getLogger("galsync.folders")

FOLDER_GONE = "ErrorItemNotFound"


class FolderGone(Exception):
    """The target's managed folder no longer exists (its contact delta answered 404 ErrorItemNotFound)."""


def folder_gone(error: GraphError) -> bool:
    """True for the answer to a request addressed to the folder itself (no contact id) when it is gone."""
    return error.status == 404 and error.code == FOLDER_GONE


def folder_link(mailbox: str) -> str:
    """The name reconcile stores a target folder's contact delta link under."""
    return f"folder:{mailbox}"


def probe_folders(client: GraphClient, targets: Sequence[Target]) -> dict[str, GraphError | None]:
    """Ask for each target's managed folder once (in `$batch` calls): None where it answered, else the error.
    The default Contacts folder cannot be deleted: there the mailbox is asked for one contact id."""
    results = client.batch([BatchRequest("GET", _probe_url(t)) for t in targets])
    out: dict[str, GraphError | None] = {}
    for target, result in zip(targets, results, strict=True):
        out[target.mailbox] = None if result.ok else (
            result.error or GraphError(result.status, f"HTTP{result.status}", "no usable answer"))
    return out


def _probe_url(target: Target) -> str:
    if target.folder_id == DEFAULT_CONTACTS_FOLDER:
        return contact_url(target.mailbox, DEFAULT_CONTACTS_FOLDER) + "?$top=1&$select=id"
    return f"/users/{target.mailbox}/contactFolders/{target.folder_id}?$select=id"


def forget_folder(store: StateStore, profile: Profile, target: Target) -> Target:
    """Forget a deleted managed folder and everything galsync knew of its contacts; the target, folderless."""
    store.delete_target_records(profile.name, target.mailbox, list(store.get_target_records(profile.name,
                                                                                             target.mailbox)))
    store.set_delta_link(profile.name, folder_link(target.mailbox), None)
    docs.delete(store, docs.Foreign, docs.foreign_key(profile.name, target.mailbox))
    forgotten = replace(target, folder_id=None)
    store.put_target(profile.name, forgotten)
    log.warning("profile %s: the managed folder of mailbox %s was deleted; making it again", profile.name,
                target.mailbox)
    return forgotten
