"""When to try a Graph request again, and how long to wait first (docs/graph-facts.md, "Throttling").

Graph says how long to wait in `Retry-After` (seconds, fractional seconds, or an HTTP date); waiting
exactly that long is both the fastest and the politest choice. Without it we back off exponentially with
full jitter. Every request is bounded by attempts and by total seconds (including the wait about to
start), so a throttled mailbox surfaces as a clear error instead of a hung worker (invariant I5).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value, or None when absent or unreadable (then: back off)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isnan(seconds):
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryableFailure(Exception):
    """One attempt that Graph (or the network) asks us to repeat later; raised inside the retry loop."""

    def __init__(self, status: int, retry_after: float | None, mailboxes: tuple[str, ...], detail: str) -> None:
        super().__init__(detail)
        self.status = status  # 0 for a connection fault
        self.retry_after = retry_after
        self.mailboxes = mailboxes
        self.detail = detail
        self.response: object | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds from GALSYNC_RETRY_MAX_ATTEMPTS / _MAX_SECONDS; the backoff is used without Retry-After."""

    max_attempts: int = 6
    max_seconds: float = 120.0
    backoff_base: float = 0.5  # first backoff is uniform in [0, base], then doubles
    backoff_max: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the attempt that just failed (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** max(attempt - 1, 0))
        return random.uniform(0.0, ceiling)

    def wait_for(self, failure: BaseException | None, attempt: int) -> float:
        if isinstance(failure, RetryableFailure) and failure.retry_after is not None:
            return failure.retry_after
        return self.backoff(attempt)

    def retrying(self, before_sleep: Callable[[tenacity.RetryCallState], None]) -> tenacity.Retrying:
        """A tenacity loop: repeats RetryableFailure only, waits Retry-After or backs off, stops at bounds."""

        def wait(state: tenacity.RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            return self.wait_for(failure, state.attempt_number)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableFailure),
            wait=wait,
            stop=tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_before_delay(self.max_seconds),
            before_sleep=before_sleep,
            reraise=False,
        )
