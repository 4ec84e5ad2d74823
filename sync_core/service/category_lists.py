"""The contacts' own category lists, read just before galsync changes its categories on them.

Graph replaces a contact's `categories` whole on PATCH, and a person may have added names of their own since
galsync last wrote (categories.py). So an update that changes galsync's categories first reads the contact's
list (one `$batch` of small GETs for all of a push's such updates), and writes it merged. Only updates whose
categories change pay for the read: adding a category to a profile costs one read and one write per contact,
once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync_core.core.actions import Update
from sync_core.core.categories import CATEGORIES, categories_of, merged
from sync_core.graph import BatchRequest, GraphClient

from .folder_listing import contact_url
from .target_work import TargetWork

CategoryLists = Mapping[tuple[str, str], list[str]]  # (mailbox, contact id) -> the contact's names


def read_category_lists(client: GraphClient, works: Sequence[TargetWork]) -> CategoryLists:
    """The current names of every contact an Update of `works` changes the categories of."""
    wanted = [(work, action.contact_id) for work in works for action in work.actions
              if isinstance(action, Update) and CATEGORIES in action.changes]
    if not wanted:
        return {}
    results = client.batch([BatchRequest("GET", f"{contact_url(w.mailbox, w.folder_id, c)}?$select={CATEGORIES}")
                            for w, c in wanted])
    out: dict[tuple[str, str], list[str]] = {}
    for (work, contact_id), result in zip(wanted, results, strict=True):
        if result.ok and isinstance(result.body, dict):
            out[(work.mailbox, contact_id)] = categories_of(result.body)
    return out


def update_body(action: Update, current: list[str] | None) -> dict[str, Any]:
    """The PATCH body of `action`, its categories merged into the contact's `current` ones (None: unread, a
    contact that is gone or failed to read: the PATCH sends galsync's names and its answer says what happened)."""
    body = dict(action.changes)
    if CATEGORIES in body:
        body[CATEGORIES] = merged(current or [], action.categories_before, action.categories)
    return body
