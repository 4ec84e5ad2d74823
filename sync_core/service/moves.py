"""Moving a profile's contacts when its place changes (its own folder <-> the mailbox's default Contacts folder).

A target whose stored folder is in the other place moves in the push that finds it (a changed configuration
pushes every target in full), with exact writes: one create in the new place and one delete in the old per
contact, and no run that ends with a phone showing both, or neither:
1. `start_move`: a `move` document naming the old folder is written first, so a crash at any later point is
   finished by the next push or reconcile; then the records naming contacts in the old folder are dropped
   (a respected deletion stays respected), the old folder's delta link and foreign list are forgotten, and
   the caller stores the target with its new folder;
2. the push fills the new place as it fills a new target (creates; what a crash left there is adopted by its
   tag, never created twice);
3. `finish_moves`, in the same run, after those creates: the old folder is listed once with galsync's tag,
   and each of this profile's contacts there is deleted once its source has its copy in the new place (or is
   no longer wanted). A contact whose create failed stays where it was until its copy exists; the document
   goes when nothing of this profile is left in the old folder.
The emptied folder itself stays: it may hold contacts the mailbox owner put there. A target that leaves before
its move is finished has its old place cleared by its removal (push.py), besides its new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from sync_core.core.actions import DeleteMoved
from sync_core.core.profile import Profile
from sync_core.core.records import Target, TargetRecord
from sync_core.core.tags import read_contact_tag
from sync_core.graph import GraphClient, NotFound
from sync_core.state import docs
from sync_core.state.base import StateStore

from .executor import execute
from .folder_listing import list_tagged_contacts
from .target_work import ExecReport, TargetWork

log = logging.getLogger("galsync.moves")


def start_move(store: StateStore, profile: Profile, target: Target, now: str) -> None:
    """Remember the old folder, then forget what galsync knew about the contacts in it (see the module doc)."""
    assert target.folder_id, "a target without a folder has nothing to move"
    docs.write(store, docs.move_key(profile.name, target.mailbox), docs.Move(target.folder_id, now))
    records = store.get_target_records(profile.name, target.mailbox)
    store.delete_target_records(profile.name, target.mailbox,
                                sorted(k for k, r in records.items() if not r.deleted_on_device))
    store.set_delta_link(profile.name, f"folder:{target.mailbox}", None)
    docs.delete(store, docs.Foreign, docs.foreign_key(profile.name, target.mailbox))
    log.info("profile %s: mailbox %s moves to place %s; %d record(s) of the old place dropped", profile.name,
             target.mailbox, profile.place, len(records))


def pending_moves(store: StateStore, profile: Profile, mailboxes: Collection[str]) -> dict[str, docs.Move]:
    """The moves of `mailboxes` still to finish: one listing of the (usually empty) move documents."""
    wanted = {docs.move_key(profile.name, m): m for m in mailboxes}
    return {wanted[key]: move for key, move in docs.read_all(store, docs.Move) if key in wanted}


def finish_moves(client: GraphClient, store: StateStore, profile: Profile, moves: dict[str, docs.Move],
                 wanted: Callable[[str], bool], now: Callable[[], str], held: Callable[[], bool]) -> ExecReport:
    """Delete from each old folder the contacts whose copy is in the new place (`wanted(key)`: the source is
    still to be shown); drop each move that leaves nothing of this profile behind."""
    works: list[TargetWork] = []
    done: list[str] = []
    report = ExecReport()
    for mailbox, move in sorted(moves.items()):
        has_copy = recorded_copy(store.get_target_records(profile.name, mailbox))
        actions, waiting = old_copies(client, profile, mailbox, move.old_folder, wanted, has_copy)
        if actions:
            works.append(TargetWork(mailbox, move.old_folder, actions, {}))
        if not waiting:
            done.append(mailbox)
    report.merge(execute(client, store, profile, works, now, held))
    if not held():
        return report  # the next pass lists the old folders again and finds what is left
    for mailbox in done:
        if mailbox in report.refused:
            continue  # a delete failed there: the next pass lists its old folder again (the others are done)
        docs.delete(store, docs.Move, docs.move_key(profile.name, mailbox))
        log.info("profile %s: mailbox %s has moved to place %s", profile.name, mailbox, profile.place)
    return report


HasCopy = Callable[[str, str], bool]  # (source key, id of the old place's contact) -> its copy is in the new place


def recorded_copy(records: Mapping[str, TargetRecord]) -> HasCopy:
    """A copy is in the new place once the source's record names another contact (the records name the new
    place after start_move), or the phone's deletion of it is respected."""
    def has_copy(key: str, old_id: str) -> bool:
        record = records.get(key)
        return record is not None and (record.deleted_on_device or record.contact_id not in (None, old_id))
    return has_copy


def old_copies(client: GraphClient, profile: Profile, mailbox: str, old_folder: str, wanted: Callable[[str], bool],
               has_copy: HasCopy) -> tuple[list[DeleteMoved], int]:
    """The deletes for the old folder (one listing of it, read-only), and how many of this profile's contacts
    must wait there for a copy."""
    actions: list[DeleteMoved] = []
    waiting = 0
    try:
        for item in list_tagged_contacts(client, mailbox, old_folder, ("id",)):
            tag = read_contact_tag(item)
            if tag is None or tag.profile != profile.name:
                continue
            if has_copy(tag.source_key, str(item["id"])) or not wanted(tag.source_key):
                actions.append(DeleteMoved(tag.source_key, str(item["id"])))
            else:
                waiting += 1
    except NotFound:
        log.info("profile %s: the old folder of mailbox %s is gone; nothing left to move", profile.name, mailbox)
    return actions, waiting
