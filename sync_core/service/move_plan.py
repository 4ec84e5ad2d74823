"""What a dry run shows of the moves a push would make (moves.py): per target, the creates in the new place and
the deletes from the old one, counted as the push would make them, with reads only.

Two kinds of pending move:
- a target stored in the profile's other place (its `place` changed since the last sync): the push starts the
  move: it fills the new place (every desired contact; galsync's folder is made first if the mailbox has none,
  and adopted from if it holds galsync's contacts already), then deletes the old copies;
- a target with a `move` document (a move that a refused delete or a crash interrupted): the push plans its
  changes as usual, then deletes the old copies that have their copy by then; if the target leaves, its
  removal deletes them all (or, under removed_target = "keep", those that have their copy).
The counts are exact because they come from the mailbox, as the push's do: the old place is listed once, and
a new place that exists is listed as adoption lists it. Cost: one or two listings (a request per 1,000
contacts) per moving target, and only while a move is pending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_core.core.actions import Action, Create, DeleteMoved, Record, Update
from sync_core.core.plan import plan_target
from sync_core.core.profile import Profile
from sync_core.core.records import Target, folder_place
from sync_core.core.sources import DesiredContact
from sync_core.graph import GraphClient, GraphError
from sync_core.state import docs
from sync_core.state.base import StateStore

from .adoption import adopt
from .folders import FolderConflict, find_folder
from .moves import old_copies, recorded_copy
from .target_work import ExecReport


@dataclass(frozen=True)
class PlannedMove:
    """One target's pending move, as counts: what the next push writes in each place."""

    old_place: str | None  # "own_folder" | "default_folder"
    new_place: str
    creates: int  # contacts created in the new place
    deletes: int  # galsync's copies deleted from the old place
    waiting: int  # copies that stay in the old place until their new copy exists
    folder_created: bool = False  # the new place is galsync's folder, which the push makes first
    error: str | None = None  # the mailbox could not be read: nothing counted

    def to_json(self) -> dict[str, Any]:
        return {"from": self.old_place, "to": self.new_place, "create": self.creates, "delete": self.deletes,
                "waiting": self.waiting, "folder_created": self.folder_created, "error": self.error}


def plan_start(client: GraphClient, store: StateStore, profile: Profile, target: Target,
               desired: Mapping[str, DesiredContact]) -> tuple[list[Action], PlannedMove]:
    """The writes of a move the push would start for `target` (stored in the other place): the new place's
    fill, then the old copies' deletes."""
    mailbox, old_folder = target.mailbox, target.folder_id or ""
    # start_move keeps only the records of respected deletions; the others name contacts in the old place.
    kept = {k: r for k, r in store.get_target_records(profile.name, mailbox).items() if r.deleted_on_device}
    try:
        folder = find_folder(client, profile, mailbox)
        if folder is None or kept:
            fill = plan_target(mailbox, desired, {}, kept, profile)
        else:
            fill = adopt(client, profile, mailbox, folder, desired, ExecReport())
        copied = {a.source_key for a in fill if isinstance(a, Create | Record | Update)} | set(kept)
        deletes, waiting = old_copies(client, profile, mailbox, old_folder, desired.__contains__,
                                      lambda key, _old_id: key in copied)
    except (GraphError, FolderConflict) as exc:
        return [], PlannedMove(folder_place(old_folder), profile.place, 0, 0, 0, error=str(exc))
    creates = sum(isinstance(a, Create) for a in fill)
    return [*fill, *deletes], PlannedMove(folder_place(old_folder), profile.place, creates, len(deletes), waiting,
                                          folder_created=folder is None)


def plan_finish(client: GraphClient, store: StateStore, profile: Profile, mailbox: str, move: docs.Move,
                planned: Sequence[Action], wanted: Callable[[str], bool]) -> tuple[list[DeleteMoved], PlannedMove]:
    """The old copies' deletes of an interrupted move, after the push's `planned` writes to the new place
    (`wanted(key)`: the source is still to be shown there; never, for a target that leaves under "delete")."""
    creating = {a.source_key for a in planned if isinstance(a, Create)}
    recorded = recorded_copy(store.get_target_records(profile.name, mailbox))
    try:
        deletes, waiting = old_copies(client, profile, mailbox, move.old_folder, wanted,
                                      lambda key, old_id: key in creating or recorded(key, old_id))
    except GraphError as exc:
        return [], PlannedMove(folder_place(move.old_folder), profile.place, 0, 0, 0, error=str(exc))
    return deletes, PlannedMove(folder_place(move.old_folder), profile.place, len(creating), len(deletes), waiting)
