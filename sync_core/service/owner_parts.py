"""The two contact properties galsync shares with the contact's owner, read just before galsync changes its part.

Graph replaces a contact's `categories` list and its `personalNotes` whole on PATCH, and a person may have added
categories or notes of their own since galsync last wrote (categories.py, notes.py). So an update that changes
galsync's part of either first reads the contact's current values (one `$batch` of small GETs for all of a
push's such updates) and writes them merged. Only those updates pay for the read: adding a category to a
profile costs one read and one write per contact, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync_core.core.actions import Update
from sync_core.core.categories import CATEGORIES, categories_of, merged
from sync_core.core.notes import NOTES, merged_notes, our_part
from sync_core.graph import BatchRequest, GraphClient

from .folder_listing import contact_url
from .target_work import TargetWork

SHARED = (CATEGORIES, NOTES)
OwnerParts = Mapping[tuple[str, str], Mapping[str, Any]]  # (mailbox, contact id) -> its categories and notes


def read_owner_parts(client: GraphClient, works: Sequence[TargetWork]) -> OwnerParts:
    """The current categories and notes of every contact an Update of `works` changes galsync's part of."""
    wanted = [(work, action.contact_id) for work in works for action in work.actions
              if isinstance(action, Update) and any(name in action.changes for name in SHARED)]
    if not wanted:
        return {}
    select = ",".join(SHARED)
    results = client.batch([BatchRequest("GET", f"{contact_url(w.mailbox, w.folder_id, c)}?$select={select}")
                            for w, c in wanted])
    return {(work.mailbox, contact_id): result.body for (work, contact_id), result in zip(wanted, results, strict=True)
            if result.ok and isinstance(result.body, dict)}


def update_body(action: Update, current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The PATCH body of `action`, galsync's part merged into the contact's `current` categories and notes
    (None: unread, a contact that is gone or failed to read: galsync's part alone is sent, and the PATCH's
    answer says what happened)."""
    body = dict(action.changes)
    now = current or {}
    if CATEGORIES in body:
        body[CATEGORIES] = merged(categories_of(now), action.categories_before, action.categories)
    if NOTES in body:
        body[NOTES] = merged_notes(now.get(NOTES), body[NOTES])
    return body


def adoption_body(patch: dict[str, Any], found: Mapping[str, Any], categories: Sequence[str]) -> dict[str, Any]:
    """An adoption's PATCH with galsync's categories and notes merged into those of the contact `found`."""
    if categories:
        patch[CATEGORIES] = merged(categories_of(found), (), categories)
    if NOTES in patch:
        patch[NOTES] = merged_notes(found.get(NOTES), our_part(patch[NOTES]))
    return patch
