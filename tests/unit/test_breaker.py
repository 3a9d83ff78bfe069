"""The per-destination circuit breaker (issue 11 §2), driven by a FakeClock: it trips on
a failure rate over a window of at least minRequests, or on a run of network errors;
after the cool-down it lets several probes through, closes on a share of successes,
and opens again with a doubled, capped cool-down otherwise."""

from __future__ import annotations

import random

import pytest

from hookline.api.webhook import CircuitBreaker as CircuitBreakerSpec
from hookline.receiver.breaker import Breakers, BreakerSettings, CircuitBreaker, Permit
from tests.support.clock import FakeClock

# Small numbers, so each rule is visible: trip at >= 90 % of >= 10 requests, or 3
# network errors in a row; 4 probes, 2 of which must succeed.
SMALL = BreakerSettings(
    failure_rate=0.9,
    min_requests=10,
    window=60.0,
    consecutive_network_errors=3,
    cooldown=30.0,
    max_cooldown=200.0,
    half_open_probes=4,
    success_rate=0.5,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def state(breaker: CircuitBreaker) -> str:
    """The state, read afresh (mypy would narrow `breaker.state` across calls)."""
    return breaker.state


def permit(breaker: CircuitBreaker) -> Permit:
    given = breaker.allow()
    assert given is not None
    return given


def fail(breaker: CircuitBreaker, n: int, error: str = "HTTP 503", network: bool = False) -> None:
    for _ in range(n):
        breaker.record_failure(permit(breaker), error, network=network)


def succeed(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        breaker.record_success(permit(breaker))


def test_defaults_are_the_specs() -> None:
    assert BreakerSettings.from_spec(CircuitBreakerSpec()) == BreakerSettings()
    spec = CircuitBreakerSpec.model_validate(
        {"failureRate": 0.5, "window": "2m", "coolDown": "1s", "maxCoolDown": "1m30s"}
    )
    settings = BreakerSettings.from_spec(spec)
    assert (settings.failure_rate, settings.window) == (0.5, 120.0)
    assert (settings.cooldown, settings.max_cooldown) == (1.0, 90.0)


def test_half_the_requests_failing_never_trips(clock: FakeClock) -> None:
    # The destination: a pool with one of two pods down, 503 to half at random.
    breaker = CircuitBreaker(BreakerSettings(), clock)
    rng = random.Random(11)
    for _ in range(5000):
        given = permit(breaker)
        if rng.random() < 0.5:
            breaker.record_failure(given, "HTTP 503")
        else:
            breaker.record_success(given)
        clock.advance(0.01)
    assert state(breaker) == "closed"
    assert breaker.trips == 0
    stats = breaker.stats()
    assert stats.window_requests > 1000
    assert stats.failure_rate is not None and 0.4 < stats.failure_rate < 0.6


def test_trips_on_the_rate_once_the_window_holds_min_requests(clock: FakeClock) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    fail(breaker, 9)
    assert state(breaker) == "closed"  # 100 % of 9: fewer than minRequests
    fail(breaker, 1)
    assert state(breaker) == "open"
    assert breaker.trips == 1 and breaker.opened_at == 1000.0
    assert breaker.allow() is None

    below = CircuitBreaker(SMALL, clock)
    succeed(below, 2)
    fail(below, 17)  # 17 of 19: 89 %
    assert state(below) == "closed"
    fail(below, 1)  # 18 of 20: 90 %
    assert state(below) == "open"


def test_the_window_forgets_old_requests(clock: FakeClock) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    succeed(breaker, 1)
    fail(breaker, 8)
    clock.advance(61)  # all of that is out of the window
    fail(breaker, 9)
    assert state(breaker) == "closed"
    assert (breaker.stats().window_requests, breaker.stats().window_failures) == (9, 9)
    fail(breaker, 1)
    assert state(breaker) == "open"


def test_a_run_of_network_errors_trips_however_few_requests(clock: FakeClock) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    fail(breaker, 2, "connection refused", network=True)
    fail(breaker, 1, "HTTP 503")  # an answer: the run starts again
    fail(breaker, 2, "connection refused", network=True)
    assert state(breaker) == "closed"
    assert breaker.stats().consecutive_network_errors == 2
    fail(breaker, 1, "timed out after 10s", network=True)
    assert state(breaker) == "open"
    assert breaker.last_error == "timed out after 10s"

    off = CircuitBreaker(BreakerSettings(consecutive_network_errors=0, min_requests=50), clock)
    fail(off, 49, "connection refused", network=True)
    assert state(off) == "closed"


def test_half_open_admits_several_probes_and_closes_on_a_share_of_successes(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    fail(breaker, 10)
    clock.advance(29)
    assert breaker.allow() is None
    clock.advance(1)
    probes = [permit(breaker) for _ in range(4)]
    assert state(breaker) == "half_open"
    assert all(p.probe for p in probes)
    assert breaker.allow() is None  # the round's four probes are out
    breaker.record_failure(probes[0], "HTTP 503")
    breaker.record_success(probes[1])
    breaker.record_failure(probes[2], "HTTP 503")
    assert state(breaker) == "half_open"  # 1 of 3 so far; one more success would do
    breaker.record_success(probes[3])
    assert state(breaker) == "closed"  # 2 of 4 = successRate 0.5
    assert breaker.opened_at is None
    assert breaker.stats().window_requests == 0  # the tripping failures are judged
    assert not permit(breaker).probe


def test_probes_that_cannot_close_it_reopen_with_the_cool_down_doubled_and_capped(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    fail(breaker, 10)
    cooldowns = []
    for _ in range(5):
        clock.advance(breaker.cooldown)
        probes = [permit(breaker) for _ in range(4)]
        breaker.record_failure(probes[0])
        breaker.record_failure(probes[1])
        assert state(breaker) == "half_open"
        breaker.record_failure(probes[2])  # 3 of 4 failed: 2 successes are out of reach
        assert state(breaker) == "open"
        assert breaker.opened_at == clock.now
        breaker.record_success(probes[3])  # after the verdict: changes nothing
        assert state(breaker) == "open"
        cooldowns.append(breaker.cooldown)
    assert cooldowns == [60.0, 120.0, 200.0, 200.0, 200.0]
    assert breaker.trips == 1  # re-opening is not a new trip


def test_a_fully_down_destination_gets_at_most_the_probes_per_cool_down(
    clock: FakeClock,
) -> None:
    # A dispatcher's view: every second, up to 16 rows of the destination want to go.
    breaker = CircuitBreaker(BreakerSettings(), clock)
    sends = 0
    per_phase = [0]  # requests before the first opening, then between openings
    for _ in range(3600):
        for _ in range(16):
            given = breaker.allow()
            if given is None:
                break
            sends += 1
            per_phase[-1] += 1
            before = breaker.opened_at
            breaker.record_failure(given, "connection refused", network=True)
            if breaker.opened_at != before:
                per_phase.append(0)
        clock.advance(1)
    assert breaker.trips == 1
    assert per_phase[0] == 5  # the run of network errors that tripped it
    # Between one opening and the next: one round's probes, no more; each round ends
    # at its third failure (3 of 5 probes can no longer succeed).
    assert all(n <= BreakerSettings().half_open_probes for n in per_phase[1:])
    assert per_phase[1:-1] == [3] * (len(per_phase) - 2)
    # Cool-downs of 30 s, 60 s, 120 s, 240 s, then 300 s: 15 openings in an hour.
    assert len(per_phase) - 1 == 15
    assert sends == 5 + 14 * 3


def test_results_from_an_earlier_phase_change_nothing(clock: FakeClock) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    in_flight = permit(breaker)
    fail(breaker, 10)
    breaker.record_success(in_flight)  # sent before it opened, answers late
    assert state(breaker) == "open"
    clock.advance(30)
    probe = permit(breaker)
    breaker.record_failure(in_flight, "late")
    assert state(breaker) == "half_open"
    assert breaker.stats().probe_failures == 0
    assert breaker.last_error == "late"  # the error is kept all the same
    breaker.record_success(probe)
    assert state(breaker) == "half_open"  # 1 of the 2 successes needed


def test_lost_probes_stop_blocking_after_probe_timeout(clock: FakeClock) -> None:
    settings = BreakerSettings(half_open_probes=2, probe_timeout=60.0, min_requests=1)
    breaker = CircuitBreaker(settings, clock)
    fail(breaker, 1)
    clock.advance(30)
    lost = [permit(breaker), permit(breaker)]  # their workers die: no result
    clock.advance(59)
    assert breaker.allow() is None
    clock.advance(1)
    fresh = permit(breaker)  # a new round
    assert breaker.stats().probes_sent == 1
    breaker.record_success(lost[0])  # from the old round: not counted
    assert state(breaker) == "half_open"
    breaker.record_success(fresh)
    assert state(breaker) == "closed"


def test_an_unused_probe_goes_back_to_the_round(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(half_open_probes=1, min_requests=1), clock)
    fail(breaker, 1)
    clock.advance(30)
    unused = permit(breaker)
    assert breaker.allow() is None
    breaker.release(unused)  # e.g. its row was purged before it could be sent
    breaker.record_success(permit(breaker))
    assert state(breaker) == "closed"


def test_a_breaker_that_trips_again_soon_after_closing_keeps_its_longer_cool_down(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(SMALL, clock)
    fail(breaker, 10)
    clock.advance(30)
    succeed(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker, 10)  # within a window of closing: flapping
    assert breaker.cooldown == 60.0
    clock.advance(60)
    succeed(breaker, 2)
    clock.advance(61)  # a whole window closed
    fail(breaker, 10)
    assert breaker.cooldown == 30.0
    assert breaker.trips == 3


def test_invalid_settings() -> None:
    for bad in (
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"success_rate": 0.0},
        {"min_requests": 0},
        {"half_open_probes": 0},
        {"consecutive_network_errors": -1},
        {"window": 0.0},
        {"cooldown": 60.0, "max_cooldown": 30.0},
    ):
        with pytest.raises(ValueError):
            BreakerSettings(**bad)
    assert BreakerSettings(success_rate=0.6, half_open_probes=5).successes_to_close == 3
    assert BreakerSettings(success_rate=0.01, half_open_probes=5).successes_to_close == 1


def test_breakers_take_their_destinations_settings(clock: FakeClock) -> None:
    a_key, b_key = ("ns/hook", "a"), ("ns/hook", "b")
    breakers = Breakers(clock=clock)
    breakers.configure({a_key: SMALL, b_key: BreakerSettings()})
    a, b = breakers.get(*a_key), breakers.get(*b_key)
    assert breakers.get(*a_key) is a
    assert (a.settings, b.settings) == (SMALL, BreakerSettings())
    fail(a, 10, "HTTP 500")
    fail(b, 10, "HTTP 500")
    assert breakers.blocked() == {a_key}  # b needs 20 requests
    clock.advance(30)
    assert breakers.blocked() == set()  # due for probes: let rows be claimed
    for _ in range(4):
        permit(a)
    assert breakers.blocked() == {a_key}  # every probe out: the rest wait
    snap = breakers.snapshot()
    assert snap[a_key].state == "half_open" and snap[a_key].probes_sent == 4
    assert snap[a_key].last_error == "HTTP 500"
    assert (snap[b_key].state, snap[b_key].window_failures) == ("closed", 10)

    # A changed Webhook: b's new settings apply to its breaker, which keeps its
    # window; a's breaker stays half-open; a destination that went is forgotten.
    breakers.configure({a_key: SMALL, b_key: BreakerSettings(min_requests=11)})
    assert breakers.get(*b_key) is b
    fail(b, 1)
    assert state(b) == "open"
    breakers.configure({b_key: BreakerSettings(min_requests=11)})
    assert set(breakers.snapshot()) == {b_key}
    assert state(breakers.get(*b_key)) == "open"
