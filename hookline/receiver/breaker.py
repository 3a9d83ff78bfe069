"""Circuit breakers, one per (Webhook, destination) (issue 5; rate-based since issue 11 §2).

A destination that is down is left alone for a while instead of being sent every due
row, each of which would burn an attempt of its retry budget for nothing:

    closed ──failure rate ≥ failureRate over ≥ minRequests in the window,──► open
      ▲       or consecutiveNetworkErrors network errors in a row             │
      │                                                               cool-down passed
      │                                                                        ▼
      └──── ≥ successRate of halfOpenProbes succeeded ───────────────── half_open
                                 otherwise: open again, cool-down doubled ──┘

Issue 11 §2: the breaker used to trip on 5 consecutive failures and let one probe
through per cool-down. A pool with one of two pods down answers 503 to half the
requests: it tripped within seconds, each probe failed half the time, the cool-down
grew towards 5 minutes, and 53 of 200 deliveries arrived in two minutes. A breaker
exists to spare a destination that is down, not to starve one that works half the
time, so it now judges a failure *rate* over a window (default: ≥ 90 % of at least 20
requests in the last minute) — a destination answering half its requests is served,
and its failures are retried by the retry policy. A run of network errors (nothing
answers at all) trips it however few requests there are.

While open, rows of that destination are not claimed (`Breakers.blocked`), so they
wait with their attempts untouched. After the cool-down, half-open lets
`half_open_probes` requests through; as soon as enough of them succeeded the breaker
closes, as soon as too many failed for that, it opens again with the cool-down doubled
(at most `max_cooldown`). A fully down destination thus gets at most
`half_open_probes` requests per cool-down. A breaker that trips again within a window
of closing keeps its doubled cool-down (a flapping destination); otherwise a trip
starts from the base cool-down.

Each request is sent under a `Permit` from `allow()`, and its result is recorded with
that permit. A result whose permit is from an earlier phase (a request that was in
flight when the breaker opened, a probe answering after the verdict) keeps the last
error but changes nothing else. Probes whose results never come (their worker died)
stop blocking after `probe_timeout`, when a fresh round of probes starts.

The state is per process: with several receiver replicas, each keeps its own breakers,
so a down destination gets at most `half_open_probes` per replica per cool-down.

Times come from an injected monotonic clock (seconds), so tests move time by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..api.common import parse_duration
from ..api.webhook import CircuitBreaker as CircuitBreakerSpec

__all__ = [
    "STATES",
    "BreakerSettings",
    "BreakerStats",
    "Breakers",
    "CircuitBreaker",
    "Clock",
    "Permit",
    "State",
]

Clock = Callable[[], float]
State = Literal["closed", "open", "half_open"]
STATES: tuple[State, ...] = ("closed", "open", "half_open")

# The window is kept as this many buckets: memory per destination does not grow with
# its request rate, and the window slides in steps of window / WINDOW_BUCKETS.
WINDOW_BUCKETS = 12


@dataclass(frozen=True)
class BreakerSettings:
    """One destination's breaker settings, in seconds; `from_spec` reads the Webhook's
    `destinations[].circuitBreaker` (whose defaults these are)."""

    failure_rate: float = 0.9
    min_requests: int = 20
    window: float = 60.0
    consecutive_network_errors: int = 5  # 0: off
    cooldown: float = 30.0
    max_cooldown: float = 300.0
    half_open_probes: int = 5
    success_rate: float = 0.5
    probe_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1 or not 0 < self.success_rate <= 1:
            raise ValueError("failure_rate and success_rate must be in (0, 1]")
        if self.min_requests < 1 or self.half_open_probes < 1:
            raise ValueError("min_requests and half_open_probes must be at least 1")
        if self.consecutive_network_errors < 0:
            raise ValueError("consecutive_network_errors must not be negative")
        if self.window <= 0 or self.probe_timeout <= 0:
            raise ValueError("window and probe_timeout must be positive")
        if self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise ValueError("need 0 < cooldown <= max_cooldown")

    @classmethod
    def from_spec(cls, spec: CircuitBreakerSpec) -> BreakerSettings:
        return cls(
            failure_rate=spec.failure_rate,
            min_requests=spec.min_requests,
            window=parse_duration(spec.window).total_seconds(),
            consecutive_network_errors=spec.consecutive_network_errors,
            cooldown=parse_duration(spec.cool_down).total_seconds(),
            max_cooldown=parse_duration(spec.max_cool_down).total_seconds(),
            half_open_probes=spec.half_open_probes,
            success_rate=spec.success_rate,
        )

    @property
    def successes_to_close(self) -> int:
        """Probe successes that close a half-open breaker."""
        # The epsilon keeps 0.6 x 5 at 3, not 4 (3.0000000000000004).
        return max(1, math.ceil(self.success_rate * self.half_open_probes - 1e-9))


@dataclass(frozen=True)
class Permit:
    """Leave to send one request; its result is recorded with it."""

    epoch: int  # the phase it was given in: results of earlier phases change nothing
    probe: bool  # a half-open probe


class _Window:
    """Requests and failures over the last `seconds`, in WINDOW_BUCKETS buckets."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._width = seconds / WINDOW_BUCKETS
        self._index = [-1] * WINDOW_BUCKETS  # which bucket number each slot holds
        self._requests = [0] * WINDOW_BUCKETS
        self._failures = [0] * WINDOW_BUCKETS

    def add(self, now: float, failed: bool) -> None:
        number = int(now // self._width)
        slot = number % WINDOW_BUCKETS
        if self._index[slot] != number:
            self._index[slot], self._requests[slot], self._failures[slot] = number, 0, 0
        self._requests[slot] += 1
        self._failures[slot] += failed

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, failures) in the window ending now."""
        oldest = int(now // self._width) - WINDOW_BUCKETS
        requests = failures = 0
        for slot in range(WINDOW_BUCKETS):
            if self._index[slot] > oldest:
                requests += self._requests[slot]
                failures += self._failures[slot]
        return requests, failures

    def clear(self) -> None:
        self._index = [-1] * WINDOW_BUCKETS


@dataclass(frozen=True)
class BreakerStats:
    """One breaker as /api/v1/stats and the metrics show it (clock times: monotonic)."""

    state: State
    window_requests: int
    window_failures: int
    consecutive_network_errors: int
    last_error: str
    opened_at: float | None  # when the breaker last opened; None while closed
    next_probe_at: float | None  # when probes may go (again); None while closed
    cooldown: float  # the current cool-down, seconds
    probes_sent: int  # in this half-open round
    probe_successes: int
    probe_failures: int
    trips: int  # times it opened from closed
    settings: BreakerSettings

    @property
    def failure_rate(self) -> float | None:
        if not self.window_requests:
            return None
        return self.window_failures / self.window_requests


class CircuitBreaker:
    def __init__(
        self, settings: BreakerSettings | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._state: State = "closed"
        self._epoch = 0
        self._window = _Window(self.settings.window)
        self._network_run = 0
        self._cooldown = self.settings.cooldown
        self._opened_at: float | None = None
        self._closed_at: float | None = None  # when probes last closed it
        self._round_started: float | None = None  # this half-open round
        self._probes = self._probe_ok = self._probe_failed = 0
        self.trips = 0
        self.last_error = ""

    @property
    def state(self) -> State:
        return self._state

    @property
    def cooldown(self) -> float:
        return self._cooldown

    @property
    def opened_at(self) -> float | None:
        return self._opened_at

    def reconfigure(self, settings: BreakerSettings) -> None:
        """New settings from a changed Webhook; the state (open or not) is kept."""
        if settings == self.settings:
            return
        if settings.window != self.settings.window:
            self._window = _Window(settings.window)
        self.settings = settings
        self._cooldown = min(max(self._cooldown, settings.cooldown), settings.max_cooldown)

    def probe_due_at(self) -> float | None:
        """When a request may go next (clock time), or None while closed."""
        if self._state == "open" and self._opened_at is not None:
            return self._opened_at + self._cooldown
        if self._state == "half_open" and self._round_started is not None:
            if self._probes < self.settings.half_open_probes:
                return self._round_started
            return self._round_started + self.settings.probe_timeout
        return None

    def would_allow(self) -> bool:
        """Whether `allow()` would give a permit now, without taking it."""
        if self._state == "closed":
            return True
        due = self.probe_due_at()
        return due is not None and self._clock() >= due

    def allow(self) -> Permit | None:
        """A permit to send one request now, or None: open, or every probe of this
        half-open round is out."""
        if self._state == "closed":
            return Permit(self._epoch, probe=False)
        if not self.would_allow():
            return None
        if self._state == "open" or self._probes >= self.settings.half_open_probes:
            self._start_round()  # cool-down over, or the round's probes timed out
        self._probes += 1
        return Permit(self._epoch, probe=True)

    def release(self, permit: Permit) -> None:
        """The permit was not used (nothing was sent): a probe goes back to the round."""
        if permit.probe and permit.epoch == self._epoch and self._probes > 0:
            self._probes -= 1

    def record_success(self, permit: Permit) -> None:
        if permit.epoch != self._epoch:
            return  # a result from an earlier phase
        if self._state == "closed":
            self._window.add(self._clock(), failed=False)
            self._network_run = 0
        elif self._state == "half_open":
            self._probe_ok += 1
            if self._probe_ok >= self.settings.successes_to_close:
                self._close()

    def record_failure(self, permit: Permit, error: str = "", *, network: bool = False) -> bool:
        """Count a failed request (`network`: no HTTP answer at all). True if this
        tripped a closed breaker open."""
        if error:
            self.last_error = error
        if permit.epoch != self._epoch:
            return False
        settings = self.settings
        if self._state == "half_open":
            self._probe_failed += 1
            allowed = settings.half_open_probes - settings.successes_to_close
            if self._probe_failed > allowed:
                self._open(min(self._cooldown * 2, settings.max_cooldown))
            return False
        if self._state != "closed":
            return False
        now = self._clock()
        self._window.add(now, failed=True)
        self._network_run = self._network_run + 1 if network else 0
        requests, failures = self._window.counts(now)
        # The epsilon: 18 of 20 is 90 %, whatever 0.9 x 20 rounds to.
        by_rate = (
            requests >= settings.min_requests
            and failures >= settings.failure_rate * requests - 1e-9
        )
        limit = settings.consecutive_network_errors
        if by_rate or (limit and self._network_run >= limit):
            flapping = self._closed_at is not None and now - self._closed_at < settings.window
            self._open(
                min(self._cooldown * 2, settings.max_cooldown) if flapping else settings.cooldown
            )
            self.trips += 1
            return True
        return False

    def _start_round(self) -> None:
        self._state = "half_open"
        self._epoch += 1
        self._round_started = self._clock()
        self._probes = self._probe_ok = self._probe_failed = 0

    def _open(self, cooldown: float) -> None:
        self._state = "open"
        self._epoch += 1
        self._cooldown = cooldown
        self._opened_at = self._clock()
        self._round_started = None

    def _close(self) -> None:
        self._state = "closed"
        self._epoch += 1
        self._window.clear()  # the failures that tripped it are judged already
        self._network_run = 0
        self._opened_at = self._round_started = None
        self._closed_at = self._clock()

    def stats(self) -> BreakerStats:
        requests, failures = self._window.counts(self._clock())
        return BreakerStats(
            state=self._state,
            window_requests=requests,
            window_failures=failures,
            consecutive_network_errors=self._network_run,
            last_error=self.last_error,
            opened_at=self._opened_at,
            next_probe_at=self.probe_due_at(),
            cooldown=self._cooldown,
            probes_sent=self._probes,
            probe_successes=self._probe_ok,
            probe_failures=self._probe_failed,
            trips=self.trips,
            settings=self.settings,
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._state} trips={self.trips}>"


Key = tuple[str, str]  # (webhook "<namespace>/<name>", destination name)


@dataclass
class Breakers:
    """The breakers of every (Webhook, destination), made on first use with the
    settings the configuration gave that destination (`configure`)."""

    clock: Clock = time.monotonic
    defaults: BreakerSettings = field(default_factory=BreakerSettings)
    _settings: dict[Key, BreakerSettings] = field(default_factory=dict)
    _breakers: dict[Key, CircuitBreaker] = field(default_factory=dict)

    def configure(self, settings: Mapping[Key, BreakerSettings]) -> None:
        """The destinations of a new configuration and their settings: breakers of
        destinations no longer configured are forgotten, the others take their new
        settings in place (an open breaker stays open)."""
        self._settings = dict(settings)
        for key in [k for k in self._breakers if k not in settings]:
            del self._breakers[key]
        for key, breaker in self._breakers.items():
            breaker.reconfigure(settings[key])

    def get(self, webhook: str, destination: str) -> CircuitBreaker:
        key = (webhook, destination)
        breaker = self._breakers.get(key)
        if breaker is None:
            settings = self._settings.get(key, self.defaults)
            breaker = self._breakers[key] = CircuitBreaker(settings, self.clock)
        return breaker

    def blocked(self) -> set[Key]:
        """Keys whose rows should not be claimed now: open and not yet due for probes,
        or half-open with every probe out."""
        return {key for key, breaker in self._breakers.items() if not breaker.would_allow()}

    def snapshot(self) -> dict[Key, BreakerStats]:
        """Every configured destination's breaker (closed if never used yet)."""
        keys = list(self._settings) + [k for k in self._breakers if k not in self._settings]
        return {key: self.get(*key).stats() for key in keys}
