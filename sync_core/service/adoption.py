"""Adopt before writing: a target galsync has no record of may already hold galsync's contacts.

The mailbox is the truth and the state store a cache (I9). A store that is empty while the phones' folders
still hold what galsync wrote (the command line run in another folder, a move from a SQLite trial to Table
Storage, a recreated storage account, a mailbox back among the targets after policy "keep") would otherwise
have every contact created a second time. So a push that fills a target with no records, into a folder that
existed before this run, first lists that folder once (folder_listing.py) and lets drift.adoption decide, as
the nightly reconcile would with no records:
- a contact tagged for a desired source of this profile is adopted: recorded as it is when galsync's fields
  are as desired (no write), else updated (only the differing fields, plus displayName);
- several tagged for one source: the oldest stays, the others are deleted;
- tagged for a source that is no longer desired: deleted, or kept, per policy.removed_source;
- a desired source with no contact: created (the listing was complete, so no create needs a recovery look-up);
- anything else (untagged, or another profile's tag) is never touched here, whatever policy.foreign_contacts
  says: the nightly reconcile reports it, and deletes it only under that policy (I1).
Cost: one listing per such target (a request per 1,000 contacts), never a request per contact. A folder made
in this very run is known empty: the caller does not adopt there, and nothing is read. With photos on, an
adopted contact's photo is unknown (a listing cannot compare photos), so the source's photo is put again.

The listing does not seed the reconcile's folder delta link: contact delta cannot expand extended properties,
which adoption needs to tell galsync's contacts apart, so the first reconcile after it reads the folder by
delta in full, as it does after any fill.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sync_core.core.actions import Action, Record, Update
from sync_core.core.drift import ObservedContact, adoption
from sync_core.core.profile import Profile
from sync_core.core.sources import DesiredContact
from sync_core.graph import GraphClient, NotFound

from .folder_listing import list_tagged_contacts
from .target_work import ExecReport

log = logging.getLogger("galsync.adoption")

# Read with galsync's fields: the change key a record keeps, and the creation time that picks, of several
# contacts tagged for one source, the one that stays.
LISTED_FIELDS = ("changeKey", "createdDateTime")
# The count, in a push's report, of contacts adopted here (recorded as found, or updated): not writes.
MATCHED = "matched"


def adopt(client: GraphClient, profile: Profile, mailbox: str, folder_id: str,
          desired: Mapping[str, DesiredContact], report: ExecReport) -> list[Action]:
    """The actions that take over this profile's contacts in the folder and write only what is missing.

    A folder that is gone (404) is one failed target in `report`, with no actions.
    """
    fields = (*LISTED_FIELDS, *profile.written_fields)
    try:
        observed = [ObservedContact.from_graph(item)
                    for item in list_tagged_contacts(client, mailbox, folder_id, fields)]
    except NotFound:
        report.counts["failed"] += 1
        report.errors.append(f"{mailbox}: the managed folder is gone (404), nothing adopted or written")
        log.warning("profile %s: managed folder of mailbox %s not found; nothing adopted", profile.name, mailbox)
        return []
    drift = adoption(observed, desired, profile)
    matched = sum(isinstance(a, Record | Update) for a in drift.orphans)
    report.counts[MATCHED] += matched
    log.info("profile %s: mailbox %s had no records: %d contact(s) listed, %d adopted, %d duplicate(s), "
             "%d missing, %d foreign left alone", profile.name, mailbox, len(observed), matched,
             len(drift.duplicates), len(drift.missing), len(drift.foreign))
    return drift.actions()
