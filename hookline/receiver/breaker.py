"""Circuit breakers, one per (Webhook, destination) (issue 5).

A destination that keeps failing is left alone for a while instead of being sent every
due row, each of which would burn an attempt of its retry budget for nothing:

    closed ──N consecutive failures──► open ──cool-down passed──► half_open
      ▲                                  ▲                           │ one probe
      └──────────── probe succeeded ─────┼───────────────────────────┤
                                         └────── probe failed ───────┘

While open, rows of that destination are not claimed (`Breakers.blocked`), so they
wait with their attempts untouched. After the cool-down exactly one request, the probe,
is let through; its success closes the breaker, its failure re-opens it with the
cool-down doubled, up to `max_cooldown` (default 5 min), so a destination that is down
for hours is probed every few minutes, not every 30 s. A success resets the cool-down.

Only the probe changes an open breaker: results of requests that were already in
flight when it opened are counted (failures, last error) but neither close it nor
lengthen the cool-down. The first result recorded in half-open is taken as the probe's.
A probe whose result never comes (its worker died) stops blocking after
`probe_timeout`, when another probe is allowed.

The state is per process: with several receiver replicas, each keeps its own breakers,
so a down destination gets at most one probe per replica per cool-down.

Times come from an injected monotonic clock (seconds), so tests move time by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

__all__ = ["BreakerStats", "Breakers", "CircuitBreaker", "Clock", "State"]

Clock = Callable[[], float]
State = Literal["closed", "open", "half_open"]

DEFAULT_THRESHOLD = 5
DEFAULT_COOLDOWN = 30.0
DEFAULT_MAX_COOLDOWN = 300.0
DEFAULT_PROBE_TIMEOUT = 60.0


@dataclass(frozen=True)
class BreakerStats:
    """One breaker as /api/v1/stats shows it."""

    state: State
    consecutive_failures: int
    last_error: str
    opened_at: float | None  # clock time the breaker last opened; None while closed
    cooldown: float  # the current cool-down, seconds


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown: float = DEFAULT_COOLDOWN,
        max_cooldown: float = DEFAULT_MAX_COOLDOWN,
        clock: Clock = time.monotonic,
        *,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if cooldown <= 0 or max_cooldown < cooldown:
            raise ValueError("need 0 < cooldown <= max_cooldown")
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._state: State = "closed"
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at: float | None = None
        self._probe_started: float | None = None
        self.last_error = ""

    @property
    def state(self) -> State:
        return self._state

    @property
    def opened_at(self) -> float | None:
        return self._opened_at

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def cooldown(self) -> float:
        return self._cooldown

    def probe_due_at(self) -> float | None:
        """When the next probe may go (clock time), or None while closed. A caller that
        meets a blocked destination defers its rows to about then."""
        if self._state == "open" and self._opened_at is not None:
            return self._opened_at + self._cooldown
        if self._state == "half_open" and self._probe_started is not None:
            return self._probe_started + self.probe_timeout
        return None

    def seconds_until_probe(self) -> float | None:
        """How long until the next probe may go, or None while closed."""
        due = self.probe_due_at()
        return None if due is None else max(0.0, due - self._clock())

    def would_allow(self) -> bool:
        """What `allow()` would answer now, without taking the probe."""
        if self._state == "closed":
            return True
        due = self.probe_due_at()
        return due is not None and self._clock() >= due

    def allow(self) -> bool:
        """May a request go to the destination now? In half-open, True for exactly one
        caller (the probe) until its result is recorded or it times out."""
        if not self.would_allow():
            return False
        if self._state != "closed":
            self._state = "half_open"
            self._probe_started = self._clock()
        return True

    def record_success(self) -> None:
        if self._state == "open":
            return  # a late answer; only the probe closes an open breaker
        self._state = "closed"
        self._failures = 0
        self._cooldown = self.base_cooldown
        self._opened_at = None
        self._probe_started = None

    def record_failure(self, error: str = "") -> None:
        self._failures += 1
        if error:
            self.last_error = error
        if self._state == "half_open":
            self._open(min(self._cooldown * 2, self.max_cooldown))
        elif self._state == "closed" and self._failures >= self.threshold:
            self._open(self.base_cooldown)

    def _open(self, cooldown: float) -> None:
        self._state = "open"
        self._cooldown = cooldown
        self._opened_at = self._clock()
        self._probe_started = None

    def stats(self) -> BreakerStats:
        return BreakerStats(
            state=self._state,
            consecutive_failures=self._failures,
            last_error=self.last_error,
            opened_at=self._opened_at,
            cooldown=self._cooldown,
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._state} failures={self._failures}>"


Key = tuple[str, str]  # (webhook "<namespace>/<name>", destination name)


class Breakers:
    """The breakers of every (Webhook, destination), made on first use."""

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown: float = DEFAULT_COOLDOWN,
        max_cooldown: float = DEFAULT_MAX_COOLDOWN,
        clock: Clock = time.monotonic,
        *,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    ) -> None:
        self._settings = (threshold, cooldown, max_cooldown, clock, probe_timeout)
        self._breakers: dict[Key, CircuitBreaker] = {}

    def get(self, webhook: str, destination: str) -> CircuitBreaker:
        key = (webhook, destination)
        breaker = self._breakers.get(key)
        if breaker is None:
            threshold, cooldown, max_cooldown, clock, probe_timeout = self._settings
            breaker = CircuitBreaker(
                threshold, cooldown, max_cooldown, clock, probe_timeout=probe_timeout
            )
            self._breakers[key] = breaker
        return breaker

    def blocked(self) -> set[Key]:
        """Keys whose rows should not be claimed now: open and not yet due for a probe,
        or half-open with the probe still out."""
        return {key for key, breaker in self._breakers.items() if not breaker.would_allow()}

    def snapshot(self) -> dict[Key, BreakerStats]:
        return {key: breaker.stats() for key, breaker in self._breakers.items()}

    def retain(self, keys: Collection[Key]) -> None:
        """Forget the breakers of destinations no longer configured."""
        for key in [k for k in self._breakers if k not in keys]:
            del self._breakers[key]
