"""The per-destination circuit breaker, driven by a FakeClock: it opens after N
consecutive failures, lets exactly one probe through after the cool-down, closes on
the probe's success, and re-opens with a longer cool-down on its failure."""

from __future__ import annotations

import pytest

from hookline.receiver.breaker import Breakers, CircuitBreaker
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def state(breaker: CircuitBreaker) -> str:
    """The state, read afresh (mypy would narrow `breaker.state` across calls)."""
    return breaker.state


def trip(breaker: CircuitBreaker, n: int, error: str = "HTTP 503") -> None:
    for _ in range(n):
        assert breaker.allow()
        breaker.record_failure(error)


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 30.0, 300.0, clock)
    trip(breaker, 2)
    assert state(breaker) == "closed"
    breaker.record_success()  # consecutive: a success resets the count
    trip(breaker, 2)
    assert state(breaker) == "closed"
    trip(breaker, 1)
    assert state(breaker) == "open"
    assert breaker.opened_at == 1000.0
    assert breaker.consecutive_failures == 3
    assert breaker.last_error == "HTTP 503"
    assert not breaker.allow()


def test_defaults() -> None:
    breaker = CircuitBreaker(clock=FakeClock(0.0))
    assert (breaker.threshold, breaker.base_cooldown, breaker.max_cooldown) == (5, 30.0, 300.0)


def test_probe_after_cooldown_only_one_at_a_time(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 30.0, 300.0, clock)
    trip(breaker, 1)
    clock.advance(29.9)
    assert not breaker.allow()
    assert state(breaker) == "open"
    clock.advance(0.1)
    assert breaker.probe_due_at() == 1030.0
    assert breaker.allow()  # the probe
    assert state(breaker) == "half_open"
    assert not breaker.allow()  # a second concurrent request is not let through
    assert not breaker.allow()


def test_probe_success_closes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 30.0, 300.0, clock)
    trip(breaker, 2)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.opened_at is None
    assert breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(10))


def test_probe_failure_reopens_with_doubling_cooldown_up_to_cap(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 30.0, 100.0, clock)
    trip(breaker, 1)
    cooldowns = []
    for _ in range(4):
        clock.advance(breaker.cooldown)
        assert breaker.allow()
        breaker.record_failure("timed out after 10s")
        assert state(breaker) == "open"
        assert breaker.opened_at == clock.now
        cooldowns.append(breaker.cooldown)
    assert cooldowns == [60.0, 100.0, 100.0, 100.0]
    clock.advance(99)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    breaker.record_success()
    # after a success the next opening starts from the base cool-down again
    trip(breaker, 1)
    assert breaker.cooldown == 30.0


def test_late_results_do_not_change_an_open_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(2, 30.0, 300.0, clock)
    trip(breaker, 2)
    breaker.record_success()  # a request sent before it opened answers late
    assert state(breaker) == "open"
    clock.advance(10)
    breaker.record_failure("late")
    assert state(breaker) == "open"
    assert breaker.opened_at == 1000.0  # cool-down not restarted
    assert breaker.last_error == "late"
    assert breaker.consecutive_failures == 3


def test_a_lost_probe_stops_blocking_after_probe_timeout(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 30.0, 300.0, clock, probe_timeout=60.0)
    trip(breaker, 1)
    clock.advance(30)
    assert breaker.allow()  # the probe's worker dies; no result is recorded
    clock.advance(59)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert not breaker.allow()


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 30.0, 10.0)


def test_breakers_blocked_and_snapshot(clock: FakeClock) -> None:
    breakers = Breakers(threshold=2, cooldown=30.0, max_cooldown=300.0, clock=clock)
    a = breakers.get("ns/hook", "a")
    b = breakers.get("ns/hook", "b")
    assert breakers.get("ns/hook", "a") is a
    trip(a, 2, "HTTP 500")
    trip(b, 1, "refused")
    assert breakers.blocked() == {("ns/hook", "a")}
    clock.advance(30)
    assert breakers.blocked() == set()  # due for a probe: let one row be claimed
    assert a.allow()
    assert breakers.blocked() == {("ns/hook", "a")}  # probe out: the rest wait
    snap = breakers.snapshot()
    assert snap[("ns/hook", "a")].state == "half_open"
    assert snap[("ns/hook", "a")].consecutive_failures == 2
    assert snap[("ns/hook", "a")].last_error == "HTTP 500"
    assert snap[("ns/hook", "b")].state == "closed"
    assert snap[("ns/hook", "b")].consecutive_failures == 1
    breakers.retain({("ns/hook", "b")})
    assert set(breakers.snapshot()) == {("ns/hook", "b")}
