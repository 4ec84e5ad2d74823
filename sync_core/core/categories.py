"""The categories galsync puts on the contacts it writes, beside the ones their owner adds.

A contact's `categories` is one list in Graph, replaced whole by a write. galsync owns only the names its
profile and the contact's source configure (the payload's "categories"): a write keeps every other name on
the contact, and a comparison looks only at galsync's names, ignoring case as Outlook compares them. So a
category a person adds on a phone or in Outlook is never removed, and never makes a contact look edited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .mapping import clean_text

CATEGORIES = "categories"


def categories_of(fields: Mapping[str, Any]) -> list[str]:
    """The category names of a contact (Graph JSON or payload), cleaned, each once."""
    raw = fields.get(CATEGORIES)
    out: list[str] = []
    seen: set[str] = set()
    for value in raw if isinstance(raw, list | tuple) else ():
        name = clean_text(value)
        if name is not None and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return out


def with_categories(payload: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The payload with galsync's categories (none: no "categories" key, as for any empty field)."""
    if names:
        payload[CATEGORIES] = list(names)
    return payload


def ours_present(seen: Iterable[str], ours: Sequence[str]) -> list[str]:
    """galsync's names (in their configured order) that the contact carries: what a comparison looks at."""
    have = {name.casefold() for name in seen}
    return [name for name in ours if name.casefold() in have]


def merged(current: Sequence[str], before: Sequence[str], now: Sequence[str]) -> list[str]:
    """The list to write: the contact's names minus galsync's old ones it no longer wants, plus its new ones.

    A name galsync used to put and the owner also chose cannot be told apart: it goes with galsync's.
    """
    dropped = {name.casefold() for name in before} - {name.casefold() for name in now}
    kept = [name for name in current if name.casefold() not in dropped]
    have = {name.casefold() for name in kept}
    return kept + [name for name in now if name.casefold() not in have]
