"""The one read that lists a managed folder's contacts with galsync's hidden tag, for the readers that need it.

Which contact is galsync's, and for which source, is known only from the tag (tags.py), and contact delta
cannot expand extended properties: a reader that must see every contact's tag in one pass lists the folder
(`$expand` of the tag, pages of up to PAGE_SIZE contacts). Three readers do:
- the executor, to find the contact of a create or delete in doubt (it asks for ids and changeKeys only);
- adoption, for a target whose records are missing (it asks for galsync's fields as well, to compare them);
- tagged removal, for a mailbox that left the targets with no records (ids and changeKeys only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sync_core.core.records import DEFAULT_CONTACTS_FOLDER
from sync_core.core.tags import CONTACT_TAG_EXPAND
from sync_core.graph import GraphClient

# Contacts per page of the listing: the most Graph's mailbox API returns in one page.
PAGE_SIZE = 1000


def contact_url(mailbox: str, folder_id: str, contact_id: str | None = None) -> str:
    """The contacts of a target's folder (or one of them); the default Contacts folder is /users/{id}/contacts
    (user-post-contacts.md, user-list-contacts.md, contact-update.md), which needs no folder id."""
    if folder_id == DEFAULT_CONTACTS_FOLDER:
        base = f"/users/{mailbox}/contacts"
    else:
        base = f"/users/{mailbox}/contactFolders/{folder_id}/contacts"
    return base if contact_id is None else f"{base}/{contact_id}"


def list_tagged_contacts(client: GraphClient, mailbox: str, folder_id: str, fields: Iterable[str]
                         ) -> Iterator[dict[str, Any]]:
    """Every contact of the folder with `fields` and galsync's tag (if it has one), a page at a time.

    Iterating raises NotFound (at the first page) when the mailbox or the folder is gone.
    """
    return client.iter_pages(contact_url(mailbox, folder_id), params={
        "$select": ",".join(dict.fromkeys(fields)), "$expand": CONTACT_TAG_EXPAND, "$top": str(PAGE_SIZE)})
