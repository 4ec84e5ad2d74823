"""Personal notes galsync shares with the contact's owner: its own part, below a marker line.

A template may give contacts a note (e.g. "Employee ID: {employeeId}"). The notes are one string in Graph,
replaced whole by a write, and people write their own notes on phones. So galsync owns only the text after
its marker line; what comes before it is the owner's and is kept on every write. A comparison looks only at
galsync's part, so a person's own note never makes a contact look edited.
"""

from __future__ import annotations

from typing import Any

NOTES = "personalNotes"
MARK = "--- galsync ---"


def our_part(notes: Any) -> str | None:
    """galsync's part of a contact's notes: the text after its last marker line; None without a marker."""
    if not isinstance(notes, str):
        return None
    lines = notes.replace("\r\n", "\n").split("\n")
    marks = [i for i, line in enumerate(lines) if line.strip() == MARK]
    if not marks:
        return None
    return "\n".join(lines[marks[-1] + 1:]).strip() or None


def their_part(notes: Any) -> str:
    """The owner's part of a contact's notes: everything before galsync's marker line (all of it without one)."""
    if not isinstance(notes, str):
        return ""
    lines = notes.replace("\r\n", "\n").split("\n")
    marks = [i for i, line in enumerate(lines) if line.strip() == MARK]
    return "\n".join(lines[:marks[0]] if marks else lines).rstrip()


def merged_notes(current: Any, ours: str | None) -> str | None:
    """The notes to write: the owner's part, then galsync's marker and part (None: galsync has nothing to say)."""
    theirs = their_part(current)
    if not ours:
        return theirs or None
    return f"{theirs}\n\n{MARK}\n{ours}" if theirs else f"{MARK}\n{ours}"
