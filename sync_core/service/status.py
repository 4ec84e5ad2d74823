"""`galsync status`: what galsync has been doing, read from the state store alone (no Graph call).

It answers "is it working?" the way an admin asks it: the last runs with their counts, the failures among
them, target mailboxes that fail alone and since when, work the queues gave up on (poison messages), the
Graph subscriptions with their expiry, the leases workers hold now (who is running what, until when), and
how long a notified change took to reach the phones over the last day (p50, p95; propagation.py).
Being store-only, it works when Graph or the credentials are what is broken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sync_core.core.records import Run, Target
from sync_core.state import docs
from sync_core.state.base import Lease, StateStore

from .failing_targets import TargetFailure, load_all
from .poison import PoisonRecord, list_poison
from .propagation import PropagationStats
from .propagation import stats as propagation_stats

DAMAGED = "(damaged record)"  # the resource shown for a subscription record that cannot be read
LATEST_WINDOW = 500  # recent runs read to find each kind's latest run, whatever --limit lists


@dataclass(frozen=True)
class SubscriptionState:
    """A Graph subscription galsync recorded (the clientState secret is never read into this)."""

    subscription_id: str
    resource: str
    expires_at: str | None
    profiles: tuple[str, ...]

    def expired(self, now: datetime) -> bool:
        when = parse_time(self.expires_at)
        return when is not None and when <= now

    def hours_left(self, now: datetime) -> float | None:
        when = parse_time(self.expires_at)
        return None if when is None else (when - now).total_seconds() / 3600

    def to_json(self, now: datetime) -> dict[str, Any]:
        left = self.hours_left(now)
        return {"id": self.subscription_id, "resource": self.resource, "expires_at": self.expires_at,
                "hours_left": None if left is None else round(left, 1), "profiles": list(self.profiles)}


@dataclass(frozen=True)
class ProfileStatus:
    name: str
    targets: int
    shared_targets: int
    last_sync: Run | None
    last_reconcile: Run | None
    propagation: PropagationStats = PropagationStats(0, None, None)  # over the last day


@dataclass(frozen=True)
class StatusReport:
    checked_at: str
    profiles: tuple[ProfileStatus, ...]
    runs: tuple[Run, ...]
    poison: tuple[PoisonRecord, ...]
    subscriptions: tuple[SubscriptionState, ...]
    leases: tuple[Lease, ...] = ()
    latest: tuple[Run, ...] = ()  # the latest run of each (profile, kind), however few runs are listed
    failing_targets: tuple[TargetFailure, ...] = ()  # target mailboxes failing alone, oldest first

    @property
    def failures(self) -> tuple[Run, ...]:
        """Runs that failed (or partly failed) and were not followed by a good run of the same work; read
        from each kind's latest run, so listing fewer runs (--limit) never hides one."""
        return tuple(r for r in self.latest if r.outcome in ("failed", "partial"))

    @property
    def healthy(self) -> bool:
        now = parse_time(self.checked_at) or datetime.now(UTC)
        return not self.failures and not self.poison and not self.failing_targets and \
            not any(s.expired(now) for s in self.subscriptions)

    def to_json(self) -> dict[str, Any]:
        now = parse_time(self.checked_at) or datetime.now(UTC)
        return {
            "checked_at": self.checked_at,
            "healthy": self.healthy,
            "profiles": [{
                "name": p.name, "targets": p.targets, "shared_targets": p.shared_targets,
                "last_sync": run_json(p.last_sync) if p.last_sync else None,
                "last_reconcile": run_json(p.last_reconcile) if p.last_reconcile else None,
                "propagation": p.propagation.to_json(),
            } for p in self.profiles],
            "runs": [run_json(r) for r in self.runs],
            "failures": [run_json(r) for r in self.failures],
            "poison": [poison_json(p) for p in self.poison],
            "subscriptions": [s.to_json(now) for s in self.subscriptions],
            "leases": [lease_json(lease) for lease in self.leases],
            "failing_targets": [f.to_json() for f in self.failing_targets],
        }


def status(store: StateStore, profiles: Iterable[str], *, limit: int = 20, now: datetime | None = None
           ) -> StatusReport:
    """The status report; `profiles` are the configured profile names (their targets are counted)."""
    now = now or datetime.now(UTC)
    window = store.recent_runs(None, max(limit, LATEST_WINDOW))
    latest = _latest_by_kind(window)
    profiles = list(profiles)
    propagation = propagation_stats(store, profiles, now)
    per_profile = []
    for name in profiles:
        targets = [t for t in store.get_targets(name).values() if t.active]
        if not any(profile == name for profile, _kind in latest):  # other profiles' runs filled the window
            latest.update(_latest_by_kind(store.recent_runs(name, LATEST_WINDOW)))
        per_profile.append(ProfileStatus(
            name, len(targets), sum(1 for t in targets if is_shared(t)),
            latest.get((name, "sync")), latest.get((name, "reconcile")), propagation[name],
        ))
    return StatusReport(iso(now), tuple(per_profile), tuple(window[:limit]), tuple(list_poison(store)),
                        tuple(subscriptions(store)), tuple(store.list_leases()), tuple(latest.values()),
                        tuple(load_all(store, [p.name for p in per_profile])))


def _latest_by_kind(runs: Iterable[Run]) -> dict[tuple[str, str], Run]:
    latest: dict[tuple[str, str], Run] = {}
    for run in runs:  # newest first
        latest.setdefault((run.profile, run.kind), run)
    return latest


def subscriptions(store: StateStore) -> list[SubscriptionState]:
    """Recorded subscriptions, soonest expiry first. A record that cannot be read is listed too (resource
    DAMAGED, expiry unknown): it is what the admin has to look at, and `galsync subscriptions delete` finds it."""
    out: list[SubscriptionState] = []

    def damaged(key: str, _error: docs.DocumentError) -> None:
        out.append(SubscriptionState(key, DAMAGED, None, ()))

    out += [SubscriptionState(key, sub.resource or "?", sub.expiration or None, sub.profiles)
            for key, sub in docs.read_all(store, docs.Subscription, on_damaged=damaged)]
    return sorted(out, key=lambda s: (s.expires_at or "", s.subscription_id))


def is_shared(target: Target) -> bool:
    return (target.purpose or "").lower() == "shared"


def run_json(run: Run) -> dict[str, Any]:
    return {"run_id": run.run_id, "profile": run.profile, "kind": run.kind, "started_at": run.started_at,
            "finished_at": run.finished_at, "outcome": run.outcome, "counts": dict(run.counts),
            "error": run.error}


def lease_json(lease: Lease) -> dict[str, Any]:
    return {"name": lease.name, "worker": lease.owner,
            "until": iso(datetime.fromtimestamp(lease.expires_at, UTC))}


def poison_json(p: PoisonRecord) -> dict[str, Any]:
    return {"key": p.key, "queue": p.queue, "message_id": p.message_id, "profile": p.profile,
            "reason": p.reason, "tries": p.dequeue_count, "recorded_at": p.recorded_at}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def when_text(value: str | None) -> str:
    """An ISO time as people read it in a sentence: "2026-03-02 14:02 UTC" ("an unknown time" if missing)."""
    when = parse_time(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when is not None else "an unknown time"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
