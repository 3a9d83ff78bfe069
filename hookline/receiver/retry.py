"""When to try a destination again, and whether an answer calls for it (issue 5).

Pure functions of their inputs (times, an injected `random.Random`), so the whole
schedule is testable without a clock or a socket.

Backoff is exponential with *full jitter* (AWS Architecture Blog, "Exponential Backoff
And Jitter", 2015): the n-th retry waits ``uniform(0, min(maxBackoff, initialBackoff *
multiplier ** (n - 1)))``. Spreading waits over the whole interval keeps the many rows
that failed together in one outage from retrying together when it ends.

An explicit ``schedule`` is honoured exactly, *without* jitter: whoever writes
``schedule: [1m, 5m, 30m]`` expects those waits (often to line up with a downstream's
SLA), rows of one outage are already spread by their own arrival times, and the circuit
breaker keeps a down destination from being hammered while rows wait.

Whatever the policy, no attempt is scheduled after ``created_at + maxAge``: the caller
dead-letters the row instead (kept, visible and replayable).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from hookline.api.common import parse_duration
from hookline.api.webhook import Retry

__all__ = ["RetryPolicy", "Verdict", "classify", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """A destination's `retry` spec, in seconds."""

    initial_backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 3600.0
    max_age: float = 72 * 3600.0
    max_attempts: int | None = None  # tries in all, the first included
    schedule: tuple[float, ...] | None = None  # waits before retry 1, 2, ...

    @classmethod
    def from_spec(cls, retry: Retry) -> RetryPolicy:
        def seconds(text: str) -> float:
            return parse_duration(text).total_seconds()

        return cls(
            initial_backoff=seconds(retry.initial_backoff),
            multiplier=retry.multiplier,
            max_backoff=seconds(retry.max_backoff),
            max_age=seconds(retry.max_age),
            max_attempts=retry.max_attempts,
            schedule=None if retry.schedule is None else tuple(map(seconds, retry.schedule)),
        )

    def deadline(self, created_at: datetime) -> datetime:
        """The last moment an attempt may be made; after it the row is dead-lettered."""
        return created_at + timedelta(seconds=self.max_age)

    def backoff_cap(self, attempts_made: int) -> float:
        """The upper bound of the jittered wait after `attempts_made` tries."""
        try:
            grown = self.initial_backoff * self.multiplier ** (attempts_made - 1)
        except OverflowError:
            return self.max_backoff
        return min(self.max_backoff, grown)

    def delay(self, attempts_made: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before the next try, ignoring maxAge and maxAttempts.

        Retry-After (RFC 9110 10.2.3) is honoured within bounds: it can lengthen the wait
        up to maxBackoff, never shorten it, so a destination cannot make hookline spin
        (``Retry-After: 0``) nor park a row for a year.
        """
        if self.schedule is not None:
            wait = self.schedule[min(attempts_made, len(self.schedule)) - 1]
        else:
            wait = rng.uniform(0.0, self.backoff_cap(attempts_made))
        if retry_after is not None and math.isfinite(retry_after):
            wait = max(wait, min(max(retry_after, 0.0), self.max_backoff))
        return wait

    def next_attempt(
        self,
        attempts_made: int,
        created_at: datetime,
        now: datetime,
        retry_after: float | None,
        rng: random.Random,
    ) -> datetime | None:
        """When to try again after `attempts_made` tries (>= 1), the last one failed at
        `now`; None when the caller should dead-letter the row: attempts exhausted
        (maxAttempts, or past the end of the schedule) or the next try would fall after
        `created_at + maxAge`."""
        if attempts_made < 1:
            raise ValueError("attempts_made counts the tries made so far, at least 1")
        if self.max_attempts is not None and attempts_made >= self.max_attempts:
            return None
        if self.schedule is not None and attempts_made > len(self.schedule):
            return None
        at = now + timedelta(seconds=self.delay(attempts_made, retry_after, rng))
        if at > self.deadline(created_at):
            return None
        return at


# --- what an answer means --------------------------------------------------------

VerdictKind = Literal["delivered", "retry", "failed", "suspend"]


@dataclass(frozen=True)
class Verdict:
    """What to do with a row after one try.

    delivered: 2xx. retry: worth trying again later. failed: trying again will not
    help. suspend: fail the row *and* suspend the destination (410 Gone: the endpoint
    says it is gone for good, as GitHub and Stripe treat it).
    """

    kind: VerdictKind
    reason: str


def classify(status: int | None, error: str | None, *, refused: bool = False) -> Verdict:
    """Classify one try by the answer's status (None: no HTTP answer at all).

    3xx counts as failed: redirects are not followed, because the target is a URL the
    Webhook's author never declared; following it would send the signed body (and the
    configured headers, credentials included) to it, could lead past the SSRF guard
    (a redirect to 169.254.169.254), and 301/302/303 turn a POST into a GET. Point the
    destination at the final URL instead.

    `refused` (the SSRF guard refused the address) fails at once: the same address will
    be refused again until the Webhook's destinationPolicy changes, and then the row can
    be replayed.
    """
    if status is None:
        if refused:
            return Verdict("failed", error or "destination address refused")
        return Verdict("retry", error or "no answer")
    if 200 <= status < 300:
        return Verdict("delivered", f"HTTP {status}")
    if status in (408, 429) or 500 <= status < 600:
        return Verdict("retry", f"HTTP {status}")
    if status == 410:
        return Verdict("suspend", "HTTP 410 Gone: destination suspended")
    if 300 <= status < 400:
        return Verdict("failed", f"HTTP {status}: redirects are not followed")
    if 400 <= status < 500:
        return Verdict("failed", f"HTTP {status}")
    return Verdict("failed", f"unexpected HTTP status {status}")


# --- Retry-After (RFC 9110 10.2.3) -----------------------------------------------

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_TIME = r"(?P<hh>\d\d):(?P<mm>\d\d):(?P<ss>\d\d)"
_MON = r"(?P<mon>[A-Za-z]{3})"
# RFC 9110 5.6.7: IMF-fixdate is preferred, but recipients must also accept the
# obsolete RFC 850 and asctime forms.
_IMF_FIXDATE = re.compile(rf"^[A-Za-z]{{3}}, (?P<d>\d\d) {_MON} (?P<y>\d{{4}}) {_TIME} GMT$")
_RFC850 = re.compile(rf"^[A-Za-z]+, (?P<d>\d\d)-{_MON}-(?P<y>\d\d) {_TIME} GMT$")
_ASCTIME = re.compile(rf"^[A-Za-z]{{3}} {_MON} +(?P<d>\d\d?) {_TIME} (?P<y>\d{{4}})$")


def _http_date(value: str, now: datetime) -> datetime | None:
    for pattern in (_IMF_FIXDATE, _RFC850, _ASCTIME):
        match = pattern.match(value)
        if match is None:
            continue
        month = _MONTHS.get(match["mon"].lower())
        if month is None:
            return None
        year = int(match["y"])
        if pattern is _RFC850:
            # RFC 9110 5.6.7: a two-digit year more than 50 years in the future is the
            # most recent past year with those digits.
            year += now.year // 100 * 100
            if year > now.year + 50:
                year -= 100
        try:
            return datetime(
                year, month, int(match["d"]), int(match["hh"]), int(match["mm"]),
                int(match["ss"]), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            return None
    return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3): delay-seconds or
    an HTTP-date. A date in the past means 0; anything unparseable means None (no
    advice), as does a missing header."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    when = _http_date(text, now)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())
