"""The mailbox's default Contacts folder, as Graph v1.0 addresses it.

Writes and listings need no folder id: `/users/{id}/contacts` is the default folder (user-post-contacts.md,
user-list-contacts.md). Contact delta does: v1.0 documents it only as
`/users/{id}/contactFolders/{folderId}/contacts/delta` (contact-delta.md). v1.0 documents no well-known name
for the folder (`contactFolders/contacts` and `wellKnownName` are beta or undocumented), so its id is read
from what v1.0 returns: the `parentFolderId` of a contact in it, or of a folder under it (every folder
`POST /users/{id}/contactFolders` makes is one, user-post-contactfolders.md).
"""

from __future__ import annotations

from sync_core.core.records import DEFAULT_CONTACTS_FOLDER
from sync_core.graph import GraphClient

from .folder_listing import contact_url


def default_folder_id(client: GraphClient, mailbox: str) -> str | None:
    """The real id of the mailbox's default Contacts folder; None while it holds no contact and no folder.

    At most two small reads. None means the folder is empty: there is nothing in it to read with delta.
    """
    for path in (f"/users/{mailbox}/contacts", f"/users/{mailbox}/contactFolders"):
        page = client.get(path, params={"$select": "parentFolderId", "$top": "1"})
        items = page.get("value") or []
        if items and isinstance(items[0], dict) and items[0].get("parentFolderId"):
            return str(items[0]["parentFolderId"])
    return None


def delta_url(client: GraphClient, mailbox: str, folder_id: str) -> str | None:
    """The contact delta of a target's folder; None for a default Contacts folder that is still empty."""
    if folder_id == DEFAULT_CONTACTS_FOLDER:
        real = default_folder_id(client, mailbox)
        if real is None:
            return None
        folder_id = real
    return f"{contact_url(mailbox, folder_id)}/delta"
