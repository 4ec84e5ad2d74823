"""Propagation time: from a change notification's arrival at the webhook to the last write it caused on the phones.

Measured once per sync run that served a notification, through the queue hops and across instances:
- the webhook notes when the first notification not yet served arrived (a `notified` document per profile,
  written only when there is none: the notifications after it are served by the same sync, and the first one
  is the one that waited longest);
- the sync takes that document before it reads the sources (so the notified change is among what it reads,
  and a notification arriving while it reads is noted afresh for the next sync), carries the arrival in its
  outbox (a crash after that replays it) and in every push message, numbered (`part`), and records the
  numbers still to finish (`propagation` document per profile) before it sends them;
- each push, once done, removes its number, and notes its end if it wrote (an ETag-checked update: pushes on
  several instances never lose each other's);
- the push that removes the last number measures: the end of the latest push that wrote, minus the arrival.
  A run whose pushes wrote nothing caused no write on a phone and has no propagation time.

Why per run and not per notification: one sync serves a whole burst, so per notification would store and
update a document per notification for the same one write time, and the burst's first arrival already is
its worst case. It costs the webhook one read (and one write per run) when it consults the store anyway,
the sync one read and one delete, each push one read and one write; runs that no notification started
(timers) cost nothing. Measurements are kept a day, in 24 hourly documents per profile (a ring that never
needs pruning); `galsync status` reads p50 and p95 from them, and the last push's telemetry record carries
its run's measurement.

Not measured: a change whose notification the webhook's one-second memo swallowed just after a sync took the
`notified` document (it waits for the next notification or the safety-net timer, which measures only what
it was notified of); a sync that crashed between taking the document and storing its outbox (its retry is
not measured); a run one of whose pushes never finishes (poison): its entry is dropped after a day.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_core.state import docs
from sync_core.state.base import StateStore

from .runtime import PushMessage

log = logging.getLogger("galsync.propagation")

WINDOW = timedelta(days=1)  # status shows the last day; an entry whose pushes never finished is dropped then
MAX_SAMPLES_PER_HOUR = 1000  # keeps one hour's document far below Table Storage's 32K characters
MAX_TRIES = 20  # ETag-checked updates: each retry means another push of the profile just wrote


@dataclass(frozen=True)
class PropagationStats:
    """A profile's propagation times over the last day."""

    samples: int
    p50_ms: int | None
    p95_ms: int | None

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms}


def note_arrival(store: StateStore, profile: str, arrived_at: str) -> None:
    """The webhook accepted a change notification for `profile` at `arrived_at`: noted unless an earlier one
    still waits for its sync."""
    if docs.read(store, docs.Notified, profile) is None:
        docs.write(store, profile, docs.Notified(arrived_at))


def take_arrival(store: StateStore, profile: str) -> str | None:
    """When the first notification not yet served arrived (None: no notification waits), taken by the sync
    about to read the sources: a notification from now on is noted for the next sync."""
    found = docs.read(store, docs.Notified, profile)
    if found is None:
        return None
    docs.delete(store, docs.Notified, profile)
    return found.arrived_at


def earliest(*times: str | None) -> str | None:
    """The earliest of ISO times (None ones left out)."""
    known = [t for t in times if t]
    return min(known, key=_when) if known else None


def track(store: StateStore, profile: str, run_id: str, notified_at: str, parts: int, now: str) -> None:
    """Before a notified sync sends its `parts` push messages: each is waited for."""
    def add(current: docs.Propagation | None) -> docs.Propagation:
        runs = _recent(current, now)
        runs[run_id] = docs.PushesLeft(notified_at, tuple(range(parts)))
        return docs.Propagation(runs)

    docs.update(store, docs.Propagation, profile, add, tries=MAX_TRIES)


def push_finished(store: StateStore, message: PushMessage, wrote: bool, ended_at: str) -> int | None:
    """A push of a notified sync is done (`wrote`: it wrote at least once); if it was the last of its run's
    pushes, the run's propagation time in milliseconds (None when no push wrote), stored for `galsync status`."""
    if message.part is None or message.notified_at is None:
        return None
    finished: list[docs.PushesLeft] = []

    def done(current: docs.Propagation | None) -> docs.Propagation | None:
        finished.clear()
        runs = _recent(current, ended_at)
        run = runs.get(message.run_id)
        if run is None or message.part not in run.left:
            return None  # a push delivered again, or a run dropped after a day: nothing to note
        wrote_at = run.wrote_at
        if wrote and (wrote_at is None or _when(ended_at) > _when(wrote_at)):
            wrote_at = ended_at
        run = replace(run, left=tuple(p for p in run.left if p != message.part), wrote_at=wrote_at)
        if run.left:
            runs[message.run_id] = run
        else:
            del runs[message.run_id]
            finished.append(run)
        return docs.Propagation(runs)

    docs.update(store, docs.Propagation, message.profile, done, tries=MAX_TRIES)
    if not finished or finished[0].wrote_at is None:
        return None
    measured = max(0, round((_when(finished[0].wrote_at) - _when(finished[0].notified_at)).total_seconds() * 1000))
    _add_sample(store, message.profile, _when(ended_at), measured)
    log.info("propagation: profile %s run %s: %d ms from notification to last write", message.profile,
             message.run_id, measured)
    return measured


def stats(store: StateStore, profiles: Iterable[str], now: datetime) -> dict[str, PropagationStats]:
    """Each profile's propagation p50 and p95 over the day before `now` (one listing for all profiles)."""
    wanted = set(profiles)
    found: dict[str, list[int]] = {name: [] for name in wanted}
    since = now - WINDOW
    for key, doc in docs.read_all(store, docs.PropagationSamples, on_damaged=_skip_damaged):
        profile = key.rsplit("|", 1)[0]
        if profile not in wanted:
            continue
        try:
            hour = datetime.strptime(doc.hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        except ValueError:
            continue
        found[profile] += [ms for second, ms in doc.samples if since < hour + timedelta(seconds=second) <= now]
    return {name: PropagationStats(len(values), percentile(values, 50), percentile(values, 95))
            for name, values in found.items()}


def percentile(values: Sequence[int], pct: float) -> int | None:
    """The nearest-rank percentile: a value that was measured (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _add_sample(store: StateStore, profile: str, at: datetime, measured: int) -> None:
    hour = at.strftime("%Y-%m-%dT%H")

    def add(current: docs.PropagationSamples | None) -> docs.PropagationSamples | None:
        kept = current.samples if current is not None and current.hour == hour else ()
        if len(kept) >= MAX_SAMPLES_PER_HOUR:
            return None
        return docs.PropagationSamples(hour, (*kept, (at.minute * 60 + at.second, measured)))

    docs.update(store, docs.PropagationSamples, docs.propagation_samples_key(profile, at.strftime("%H")), add,
                tries=MAX_TRIES)


def _recent(current: docs.Propagation | None, now: str) -> dict[str, docs.PushesLeft]:
    """The runs still waited for, without those a day old (a push that never finished)."""
    oldest = _when(now) - WINDOW
    return {run_id: run for run_id, run in (current.runs.items() if current is not None else ())
            if _when(run.notified_at) > oldest}


def _skip_damaged(key: str, error: docs.DocumentError) -> None:
    log.warning("propagation samples %s left out: %s", key, error)


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
