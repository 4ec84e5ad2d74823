"""Which settings each command reads, for its `--help`: one table of commands and the parts of the settings
they use (sync_core/settings.py says which part each setting configures).

A command's help lists the names of its parts' settings, so a setting added to a part shows in the help of
every command that reads that part; a test checks that every command of `galsync` has its line here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sync_core.settings import (
    FAN_OUT,
    GRAPH,
    LOGGING,
    PROFILES,
    RECONCILE_GROUPS,
    SCHEDULES,
    SPECS,
    STATE,
    WEBHOOK,
)


@dataclass(frozen=True)
class Reads:
    """The parts of the settings a command reads; `only_with`: a part read only with an option (part -> option)."""

    parts: tuple[str, ...]
    only_with: tuple[tuple[str, str], ...] = ()
    note: str = ""  # why a command reads nothing

RUNS = (PROFILES, GRAPH, STATE)  # a command that works on the profiles with Graph and the state store

# Command (its words after `galsync`) -> what it reads.
READS: dict[str, Reads] = {
    "demo": Reads((), note="its own local Graph, profiles and state, in a temporary folder"),
    "sync": Reads((*RUNS, FAN_OUT)),
    "reconcile": Reads(RUNS),
    "doctor": Reads(RUNS),
    "explain": Reads(RUNS),
    "status": Reads((PROFILES, STATE)),
    "targets": Reads((PROFILES, STATE)),
    "settings": Reads((PROFILES, GRAPH, STATE, WEBHOOK, FAN_OUT, RECONCILE_GROUPS, SCHEDULES, LOGGING)),
    "subscriptions list": Reads(RUNS),
    "subscriptions ensure": Reads((*RUNS, WEBHOOK)),
    "subscriptions delete": Reads(RUNS),
    "config validate": Reads((PROFILES, GRAPH), only_with=((GRAPH, "--online"),)),
    "emulator": Reads((), note="it serves a local Graph; `--env` prints the settings that point galsync at it"),
    "functions": Reads(RUNS, note="its webhook's address and key are its own"),
}


def names_of(part: str) -> list[str]:
    """The settings of one part, in the order of settings.py (and of `galsync settings`)."""
    return [spec.name for spec in SPECS if spec.part == part]


def settings_help(command: Sequence[str]) -> str:
    """The paragraphs a command's help ends with: the settings it reads, by part ("" for an unknown command).

    One line per part; a line never wraps into the next.
    """
    reads = READS.get(" ".join(command))
    if reads is None:
        return ""
    if not reads.parts:
        return f"Settings read: none ({reads.note})."
    only_with = dict(reads.only_with)
    lines = ["Settings read (`galsync settings` shows their values and where each comes from):"]
    for part in reads.parts:
        condition = f", with {only_with[part]} only" if part in only_with else ""
        lines.append(f"{part}{condition}: {', '.join(names_of(part))}")
    if reads.note:
        lines.append(f"({reads.note})")
    return "\n".join(lines)
