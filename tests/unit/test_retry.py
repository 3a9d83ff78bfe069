"""The retry policy: full-jitter backoff, schedules, caps, maxAge and maxAttempts,
Retry-After within bounds, and how each answer is classified. Times are explicit and
randomness seeded: no clock, no sleeps."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from hookline.api.webhook import Retry
from hookline.receiver.retry import RetryPolicy, classify, parse_retry_after

T0 = datetime(2027, 1, 15, 12, 0, 0, tzinfo=UTC)


def policy(**spec: object) -> RetryPolicy:
    return RetryPolicy.from_spec(Retry.model_validate(spec))


def waits(p: RetryPolicy, attempts: int, seed: int = 7) -> list[float]:
    """Seconds waited after tries 1..attempts, each retry happening when due."""
    rng = random.Random(seed)
    now, result = T0, []
    for n in range(1, attempts + 1):
        at = p.next_attempt(n, T0, now, None, rng)
        assert at is not None
        result.append((at - now).total_seconds())
        now = at
    return result


def test_defaults_from_spec() -> None:
    p = policy()
    assert p == RetryPolicy(1.0, 2.0, 3600.0, 72 * 3600.0, None, None)
    assert p.deadline(T0) == T0 + timedelta(hours=72)


def test_full_jitter_sequence_is_uniform_below_the_growing_cap() -> None:
    p = policy()
    seq = waits(p, 15)
    rng = random.Random(7)
    expected = [rng.uniform(0, min(3600.0, 2.0 ** (n - 1))) for n in range(1, 16)]
    assert seq == pytest.approx(expected, abs=1e-6)  # timedelta keeps microseconds
    for n, wait in enumerate(seq, start=1):
        assert 0 <= wait <= min(3600.0, 2.0 ** (n - 1))


def test_caps_grow_then_stop_at_max_backoff() -> None:
    p = policy(initialBackoff="2s", multiplier=3, maxBackoff="1m")
    assert [p.backoff_cap(n) for n in range(1, 6)] == [2, 6, 18, 54, 60]
    assert p.backoff_cap(10_000) == 60  # no overflow however many attempts


def test_jitter_spreads_rows_that_failed_together() -> None:
    p = policy()
    rng = random.Random(1)
    times = {p.next_attempt(10, T0, T0, None, rng) for _ in range(100)}
    assert len(times) == 100  # no thundering herd at the same instant
    spread = sorted((t - T0).total_seconds() for t in times if t is not None)
    assert spread[0] < 100 and spread[-1] > 400  # over most of [0, 512]


def test_max_age_dead_letters() -> None:
    p = policy(maxAge="10m")
    rng = random.Random(3)
    assert p.next_attempt(1, T0, T0 + timedelta(minutes=10), None, rng) is None  # any wait > 0
    # a wait that would land after created_at + maxAge: None even though attempts remain
    late = T0 + timedelta(minutes=9, seconds=59)
    results = {p.next_attempt(20, T0, late, None, random.Random(s)) for s in range(20)}
    assert results == {None}
    assert p.next_attempt(1, T0, T0, None, rng) is not None


def test_max_attempts_caps_tries_in_all() -> None:
    p = policy(maxAttempts=3)
    rng = random.Random(0)
    assert p.next_attempt(1, T0, T0, None, rng) is not None
    assert p.next_attempt(2, T0, T0, None, rng) is not None
    assert p.next_attempt(3, T0, T0, None, rng) is None  # 3 tries made: dead-letter


def test_schedule_is_exact_and_bounded_by_its_length() -> None:
    p = policy(schedule=["5s", "1m", "10m"])
    assert p.schedule == (5.0, 60.0, 600.0)
    assert waits(p, 3) == [5.0, 60.0, 600.0]  # no jitter on an explicit schedule
    assert p.next_attempt(4, T0, T0, None, random.Random(0)) is None  # 1 + 3 retries


def test_schedule_still_bounded_by_max_age() -> None:
    p = policy(schedule=["1h", "2h"], maxAge="90m")
    assert p.next_attempt(1, T0, T0, None, random.Random(0)) == T0 + timedelta(hours=1)
    assert p.next_attempt(2, T0, T0 + timedelta(hours=1), None, random.Random(0)) is None


def test_retry_after_lengthens_the_wait_up_to_max_backoff() -> None:
    p = policy(maxBackoff="10m")
    rng = random.Random(5)
    # first retry's own cap is 1 s: Retry-After 120 s wins
    assert p.next_attempt(1, T0, T0, 120.0, rng) == T0 + timedelta(seconds=120)
    # a day: clamped to maxBackoff
    assert p.next_attempt(1, T0, T0, 86400.0, rng) == T0 + timedelta(minutes=10)
    # never shortens the backoff; negative and NaN are ignored
    for advice in (0.0, -5.0, float("nan")):
        at = p.next_attempt(1, T0, T0, advice, random.Random(9))
        assert at == T0 + timedelta(seconds=random.Random(9).uniform(0, 1))


def test_retry_after_never_past_max_age() -> None:
    p = policy(maxAge="1h")
    assert p.next_attempt(1, T0, T0 + timedelta(minutes=50), 900.0, random.Random(0)) is None


def test_retry_after_with_a_schedule_never_shortens_it() -> None:
    p = policy(schedule=["2h"], maxBackoff="1h")
    assert p.next_attempt(1, T0, T0, 60.0, random.Random(0)) == T0 + timedelta(hours=2)
    p = policy(schedule=["1m"], maxBackoff="1h")
    assert p.next_attempt(1, T0, T0, 600.0, random.Random(0)) == T0 + timedelta(minutes=10)


def test_attempts_made_must_count_the_failed_try() -> None:
    with pytest.raises(ValueError):
        policy().next_attempt(0, T0, T0, None, random.Random(0))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (599, "retry"),
        (410, "suspend"),
        (400, "failed"),
        (401, "failed"),
        (403, "failed"),
        (404, "failed"),
        (422, "failed"),
        (301, "failed"),
        (302, "failed"),
        (307, "failed"),
        (308, "failed"),
        (100, "failed"),
        (600, "failed"),
    ],
)
def test_classify_status(status: int, kind: str) -> None:
    verdict = classify(status, None)
    assert verdict.kind == kind
    assert str(status) in verdict.reason


def test_classify_network_errors_retry_and_refusals_fail() -> None:
    assert classify(None, "timed out after 10s").kind == "retry"
    assert classify(None, "timed out after 10s").reason == "timed out after 10s"
    assert classify(None, None).kind == "retry"
    refused = classify(None, "refused: 169.254.169.254 is ...", refused=True)
    assert refused.kind == "failed"
    assert "redirects are not followed" in classify(302, None).reason


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("١٢", None),  # non-ASCII digits are not delay-seconds (RFC 9110 5.6.1 DIGIT)
        # the three HTTP-date forms of RFC 9110 5.6.7, all 90 s after T0
        ("Fri, 15 Jan 2027 12:01:30 GMT", 90.0),
        ("Friday, 15-Jan-27 12:01:30 GMT", 90.0),
        ("Fri Jan 15 12:01:30 2027", 90.0),
        ("Fri Jan  5 12:00:00 2027", 0.0),  # asctime, space-padded day, in the past
        ("Thu, 01 Jan 2026 00:00:00 GMT", 0.0),  # past: retry now
        ("Fri, 31 Feb 2027 12:00:00 GMT", None),  # no such day
        ("Fri, 15 Foo 2027 12:00:00 GMT", None),
        ("Fri, 15 Jan 2027 12:01:30 +0000", None),  # not GMT: not an HTTP-date
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, T0) == seconds


def test_rfc850_two_digit_year_is_within_fifty_years() -> None:
    # RFC 9110 5.6.7: "99" seen in 2027 is 1999, not 2099
    assert parse_retry_after("Thursday, 31-Dec-99 23:59:59 GMT", T0) == 0.0
    assert parse_retry_after("Sunday, 15-Jan-73 12:00:00 GMT", T0) == pytest.approx(
        (datetime(2073, 1, 15, 12, tzinfo=UTC) - T0).total_seconds()
    )
