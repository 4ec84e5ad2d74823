"""Retry-After parsing and the backoff used without it (pure: no HTTP)."""

from __future__ import annotations

import email.utils

import pytest

from sync_core.graph.retry import RetryPolicy, parse_retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0", 0.0), ("1.5", 1.5), (" 0.25 ", 0.25), ("-3", 0.0)],
)
def test_seconds_and_fractional_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_http_date_is_seconds_from_now() -> None:
    value = email.utils.formatdate(NOW + 42, usegmt=True)  # "Wed, 15 Jan 2027 08:00:42 GMT"
    assert parse_retry_after(value, now=NOW) == pytest.approx(42.0)


def test_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW - 60, usegmt=True), now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "inf", "nan", "Mon, 99 Foo 2026"])
def test_missing_or_unreadable_means_back_off(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # full jitter spreads over the whole range


def test_retry_after_wins_over_backoff() -> None:
    from sync_core.graph.retry import RetryableFailure

    policy = RetryPolicy(backoff_base=100.0)
    assert policy.wait_for(RetryableFailure(429, 2.5, (), "HTTP 429"), attempt=5) == 2.5
    assert policy.wait_for(RetryableFailure(503, None, (), "HTTP 503"), attempt=1) <= 100.0
