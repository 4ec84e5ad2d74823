"""Faults on demand: transient errors, dropped connections and added latency, seeded and repeatable.

Two ways to ask for them:
- `configure(seed=.., error_rate=.., statuses=(503, 504), drop_rate=.., latency_ms=.., routes=..)`: each
  Graph request draws from one `random.Random(seed)` in the order requests reach the emulator, so a
  client that sends the same requests in the same order sees the same faults. (Requests inside a $batch
  draw in their order in the batch, a dependency level at a time, before that level runs in parallel,
  so batches are repeatable too.)
- `fail_next(n, status, ...)` / `drop_next(n, ...)`: the next n matching requests fail, for exact tests.

`latency_ms` is the time every Graph request takes inside the emulator: the $batch request itself and
each request in it (up to four of which run at once), spent after throttling admitted the request, so it
holds that mailbox's concurrency slot as real work would. It holds up only the request's own connection
(a $batch waits it once per wave of up to four inner requests, on the pipeline's latency clock or in its
own thread: batch.py).

A dropped connection is closed without a response, either before the handler runs (nothing happened)
or after it (the change was made but the client never heard): the case a client must not duplicate.
Drops only apply to HTTP requests; inside a $batch there is no connection to drop.
Delta faults (expired tokens, replays) live on the tenant: `tenant.expire_delta_tokens()` and
`tenant.delta_replay_rate`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .protocol import GraphError

# Graph's codes for the transient statuses (concepts/errors.md).
_ERRORS: dict[int, tuple[str, str]] = {
    429: ("TooManyRequests", "Too many requests."),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("BadGateway", "The server received an invalid response from an upstream server."),
    503: (
        "serviceNotAvailable",
        "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request "
        "after a delay, which may be specified in a Retry-After header.",
    ),
    504: ("timeout", "The operation timed out before it could be completed."),
}

BEFORE = "before"  # drop the connection before the handler runs
AFTER = "after"  # run the handler, then drop the connection instead of answering


@dataclass(frozen=True)
class Fault:
    """What happens to one request instead of (or after) its normal handling."""

    status: int | None = None  # an error status to answer with, or None for a drop
    retry_after: float | None = None
    drop: str | None = None  # BEFORE or AFTER

    def error(self) -> GraphError:
        assert self.status is not None
        code, message = _ERRORS.get(self.status, ("generalException", "An unspecified error has occurred."))
        headers = {"Retry-After": _seconds(self.retry_after)} if self.retry_after is not None else {}
        return GraphError(self.status, code, message, headers)


@dataclass(frozen=True)
class FaultSettings:
    seed: int = 0
    error_rate: float = 0.0
    statuses: tuple[int, ...] = (503, 504)
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    routes: frozenset[str] | None = None  # route templates ("/users/{user}/contacts") or "METHOD template"


@dataclass
class _Rule:
    remaining: int
    fault: Fault
    route: str | None
    mailbox: str | None


class Faults:
    def __init__(self, seed: int = 0, resolve_mailbox: Callable[[str], str] | None = None) -> None:
        self._lock = threading.Lock()
        self._resolve = resolve_mailbox
        self.settings = FaultSettings(seed=seed)
        self._rng = random.Random(seed)
        self._rules: list[_Rule] = []

    def configure(
        self,
        seed: int | None = None,
        error_rate: float | None = None,
        statuses: Iterable[int] | None = None,
        drop_rate: float | None = None,
        latency_ms: float | None = None,
        routes: Iterable[str] | None = None,
    ) -> FaultSettings:
        """Change random faults (None keeps a setting); a given seed restarts the random sequence."""
        current = self.settings
        new = FaultSettings(
            seed=current.seed if seed is None else int(seed),
            error_rate=current.error_rate if error_rate is None else float(error_rate),
            statuses=current.statuses if statuses is None else tuple(int(s) for s in statuses),
            drop_rate=current.drop_rate if drop_rate is None else float(drop_rate),
            latency_ms=current.latency_ms if latency_ms is None else float(latency_ms),
            routes=current.routes if routes is None else frozenset(routes),
        )
        for name in ("error_rate", "drop_rate"):
            value = getattr(new, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault setting {name!r} must be between 0 and 1, got {value!r}")
        if new.latency_ms < 0:
            raise ValueError(f"fault setting 'latency_ms' must not be negative, got {new.latency_ms!r}")
        if not new.statuses or any(not 400 <= s <= 599 for s in new.statuses):
            raise ValueError(f"fault setting 'statuses' must be HTTP error statuses, got {new.statuses!r}")
        with self._lock:
            self.settings = new
            if seed is not None:
                self._rng = random.Random(new.seed)
        return new

    def fail_next(
        self,
        n: int,
        status: int,
        retry_after: float | None = None,
        route: str | None = None,
        mailbox: str | None = None,
    ) -> None:
        """The next n requests matching route (template or "METHOD template") and mailbox fail with status."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next needs an HTTP error status, got {status!r}")
        self._add_rule(n, Fault(status=status, retry_after=retry_after), route, mailbox)

    def drop_next(
        self, n: int, after_handler: bool = False, route: str | None = None, mailbox: str | None = None
    ) -> None:
        """The next n matching HTTP requests lose their connection (after the handler ran, if asked)."""
        self._add_rule(n, Fault(drop=AFTER if after_handler else BEFORE), route, mailbox)

    def clear(self) -> None:
        """No more faults: pending rules dropped, rates and latency back to zero."""
        with self._lock:
            self._rules.clear()
            self.settings = FaultSettings(seed=self.settings.seed)

    def decide(self, method: str, route: str | None, mailbox: str | None, can_drop: bool) -> Fault | None:
        """The fault for one request, if any. Draws the same amount of randomness for every request."""
        with self._lock:
            settings = self.settings
            # Always three draws, so one request's outcome never shifts the sequence for the next.
            drop_draw, error_draw, pick_draw = self._rng.random(), self._rng.random(), self._rng.random()
            for rule in self._rules:
                if _matches(rule.route, method, route) and (rule.mailbox is None or rule.mailbox == mailbox):
                    if rule.fault.drop is not None and not can_drop:
                        continue
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule.fault
            if settings.routes is not None and not any(_matches(r, method, route) for r in settings.routes):
                return None
            if can_drop and drop_draw < settings.drop_rate:
                return Fault(drop=BEFORE if pick_draw < 0.5 else AFTER)
            if error_draw < settings.error_rate:
                return Fault(status=settings.statuses[int(pick_draw * len(settings.statuses))])
            return None

    @property
    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000.0

    def _add_rule(self, n: int, fault: Fault, route: str | None, mailbox: str | None) -> None:
        if n < 1:
            raise ValueError(f"the number of requests to fail must be at least 1, got {n!r}")
        if mailbox is not None and self._resolve is not None:
            mailbox = self._resolve(mailbox)
        with self._lock:
            self._rules.append(_Rule(n, fault, route, mailbox))


def _matches(selector: str | None, method: str, route: str | None) -> bool:
    if selector is None:
        return True
    wanted_method, _, template = selector.partition(" ")
    if not template:  # a bare template
        return selector == route
    return wanted_method.upper() == method and template == route


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
