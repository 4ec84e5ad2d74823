"""The least time Graph's limits and its latency allow for an initial fill, and why.

Filling T mailboxes with n contacts each (docs/performance.md explains each term):

- per mailbox: Graph runs at most 4 requests of one mailbox at a time (docs/graph-facts.md, "Throttling"), each
  taking the latency L, so a mailbox's n creates need ceil(n / 4) * L, plus one L for the `$batch` call
  that carries them;
- in total: the client has at most C requests in flight (GALSYNC_MAX_CONCURRENCY); a `$batch` runs at most
  4 inner requests at once, so T * n creates need ceil(T * n / (4 * C)) * L, plus one L (a fleet of worker
  processes has no one client cap: bench/fleet.py leaves this term out);
- app-wide: Graph serves one app at most 130,000 requests per 10 s across all mailboxes (docs/graph-facts.md),
  so the T * r requests sent need T * r / 13,000 s (when `app_rate` is given: the fleet bench gives it; the
  single-process bench keeps its client cap instead, which is below that rate);
- request budget: a mailbox takes B requests per W seconds (10,000 per 10 minutes); a mailbox that needs
  r > B requests waits floor((r - 1) / B) * W for the window to move on;
- reading: the directory arrives in P pages, one after another (each next link comes from the page
  before), P * L; writing can overlap reading, so this counts only when it is the longest term;
- set-up: nothing can be written before the first directory page and before the folder exists: 2 L.

bound = 2 L + max(reading, per mailbox, in total, app-wide, request budget).

`reconcile_bound` is the least time for a first reconcile, which reads every managed folder in full once:
each folder's contact delta comes in p pages one after another (each next link is in the page before), so
p * L per folder, all folders side by side (4 requests per mailbox allow one chain each); and the T * p
requests need T * p / 13,000 s at Graph's app-wide rate. bound = max(p * L, T * p / 13,000 s).

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
APP_RATE = 130_000 / 10  # Graph's app-wide limit: 130,000 requests per 10 s per app, every mailbox together


@dataclass(frozen=True)
class FillBound:
    seconds: float
    setup: float
    reading: float
    per_mailbox: float
    in_total: float
    budget: float
    app_wide: float
    batched_serial: float  # galsync's design: one $batch after another per mailbox (not part of the bound)

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def fill_bound(*, mailboxes: int, contacts: int, latency: float, client_cap: int | None, directory_pages: int,
               budget_requests: int = 10_000, budget_window: float = 600.0,
               requests_per_mailbox: int | None = None, app_rate: float | None = None) -> FillBound:
    """The bound for writing `contacts` contacts into each of `mailboxes` mailboxes (see the module doc).

    `requests_per_mailbox` is what each mailbox is sent in all (contacts plus folder set-up); default
    `contacts` + 1. `client_cap` None: no single client caps the calls in flight (a fleet of workers).
    """
    if mailboxes < 1 or contacts < 0 or latency < 0 or (client_cap is not None and client_cap < 1) \
            or directory_pages < 0 or (app_rate is not None and app_rate <= 0):
        raise ValueError("fill_bound: mailboxes and client_cap must be >= 1, app_rate > 0; the rest >= 0")
    per_mailbox = math.ceil(contacts / PER_MAILBOX_CONCURRENCY) * latency + latency
    in_total = 0.0 if client_cap is None else \
        math.ceil(mailboxes * contacts / (BATCH_PARALLEL * client_cap)) * latency + latency
    sent = requests_per_mailbox if requests_per_mailbox is not None else contacts + 1
    budget = ((sent - 1) // budget_requests) * budget_window if sent > budget_requests else 0.0
    app_wide = 0.0 if app_rate is None else mailboxes * sent / app_rate
    reading = directory_pages * latency
    setup = 2 * latency
    full, rest = divmod(contacts, BATCH_SIZE)
    last_call = 1 + math.ceil(rest / BATCH_PARALLEL) if rest else 0
    serial = (full * (1 + math.ceil(BATCH_SIZE / BATCH_PARALLEL)) + last_call) * latency
    seconds = setup + max(reading, per_mailbox, in_total, app_wide, budget)
    batched_serial = setup + max(reading, serial, in_total, app_wide, budget)
    return FillBound(seconds, setup, reading, per_mailbox, in_total, budget, app_wide, batched_serial)


@dataclass(frozen=True)
class ReconcileBound:
    seconds: float
    per_folder: float  # p pages one after another
    app_wide: float

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def reconcile_bound(*, mailboxes: int, pages_per_folder: int, latency: float, app_rate: float = APP_RATE
                    ) -> ReconcileBound:
    """The least time to read `mailboxes` folders in full, `pages_per_folder` delta pages each (module doc)."""
    if mailboxes < 1 or pages_per_folder < 1 or latency < 0 or app_rate <= 0:
        raise ValueError("reconcile_bound: mailboxes and pages_per_folder must be >= 1, app_rate > 0")
    per_folder = pages_per_folder * latency
    app_wide = mailboxes * pages_per_folder / app_rate
    return ReconcileBound(max(per_folder, app_wide), per_folder, app_wide)
