"""The least time Graph's limits and its latency allow for an initial fill, and why.

Filling T mailboxes with n contacts each (docs/performance.md explains each term):

- per mailbox: Graph runs at most 4 requests of one mailbox at a time (docs/graph-facts.md, "Throttling"), each
  taking the latency L, so a mailbox's n creates need ceil(n / 4) * L, plus one L for the `$batch` call
  that carries them;
- in total: the client has at most C requests in flight (GALSYNC_MAX_CONCURRENCY); a `$batch` runs at most
  4 inner requests at once, so T * n creates need ceil(T * n / (4 * C)) * L, plus one L;
- request budget: a mailbox takes B requests per W seconds (10,000 per 10 minutes); a mailbox that needs
  r > B requests waits floor((r - 1) / B) * W for the window to move on;
- reading: the directory arrives in P pages, one after another (each next link comes from the page
  before), P * L; writing can overlap reading, so this counts only when it is the longest term;
- set-up: nothing can be written before the first directory page and before the folder exists: 2 L.

bound = 2 L + max(reading, per mailbox, in total, request budget).

`batched_serial` is not part of the bound: it is the same sum for a client that sends each mailbox's
`$batch` calls one after another (20 writes run 4 at a time, plus the envelope: 6 L per full call), which
is how galsync's limiter schedules them (a call holds its mailbox's slots for its whole duration).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

PER_MAILBOX_CONCURRENCY = 4  # Outlook: 4 concurrent requests per app and mailbox
BATCH_SIZE = 20  # JSON batching: at most 20 requests per $batch
BATCH_PARALLEL = 4  # Graph runs up to 4 inner requests of a $batch at once


@dataclass(frozen=True)
class FillBound:
    seconds: float
    setup: float
    reading: float
    per_mailbox: float
    in_total: float
    budget: float
    batched_serial: float  # galsync's design: one $batch after another per mailbox (not part of the bound)

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def fill_bound(*, mailboxes: int, contacts: int, latency: float, client_cap: int, directory_pages: int,
               budget_requests: int = 10_000, budget_window: float = 600.0,
               requests_per_mailbox: int | None = None) -> FillBound:
    """The bound for writing `contacts` contacts into each of `mailboxes` mailboxes (see the module doc).

    `requests_per_mailbox` is what each mailbox is sent in all (contacts plus folder set-up); default
    `contacts` + 1.
    """
    if mailboxes < 1 or contacts < 0 or latency < 0 or client_cap < 1 or directory_pages < 0:
        raise ValueError("fill_bound: mailboxes and client_cap must be >= 1; the rest >= 0")
    per_mailbox = math.ceil(contacts / PER_MAILBOX_CONCURRENCY) * latency + latency
    in_total = math.ceil(mailboxes * contacts / (BATCH_PARALLEL * client_cap)) * latency + latency
    sent = requests_per_mailbox if requests_per_mailbox is not None else contacts + 1
    budget = ((sent - 1) // budget_requests) * budget_window if sent > budget_requests else 0.0
    reading = directory_pages * latency
    setup = 2 * latency
    full, rest = divmod(contacts, BATCH_SIZE)
    last_call = 1 + math.ceil(rest / BATCH_PARALLEL) if rest else 0
    serial = (full * (1 + math.ceil(BATCH_SIZE / BATCH_PARALLEL)) + last_call) * latency
    seconds = setup + max(reading, per_mailbox, in_total, budget)
    batched_serial = setup + max(reading, serial, in_total, budget)
    return FillBound(seconds, setup, reading, per_mailbox, in_total, budget, batched_serial)
