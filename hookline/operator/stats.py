"""Receiver statistics → resource status, without the Kubernetes API in sight (issue 6).

The stats timer (`timers.py`) reads /api/v1/stats once per interval and the reconciler
writes what follows (`status.py`); the rules are here, pure and driven by an injectable
clock so that the unit tests need neither sleeps nor a cluster:

* `webhook_deliveries`, `event_filter_counters`, `event_type_counters` — the receiver's
  stats document in the wire form of the status models (hookline.api.*Status).
* `FailureWindow` and `degraded` — the Degraded condition from cumulative counters.
* `status_patch` — the minimal merge patch; None when nothing changed, which is what
  makes idle resources cost zero API calls per interval; `WrittenStatus` — patches sent
  but not yet seen back, so that none is sent twice.
* `first_dead_letter` — when to post the one-time DeadLetter Event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..api.webhook import Alerts

Clock = Callable[[], float]

# Degraded condition vocabulary (metav1.Condition reasons are CamelCase identifiers).
REASON_FAILURE_RATE = "FailureRateHigh"
REASON_DEAD_LETTERS = "DeadLetters"
REASON_HEALTHY = "Healthy"

# Longest error text copied into a status: the receiver's errors are one-liners, but a
# status is read by every watcher of the object, so one odd error must not bloat it.
MAX_ERROR_CHARS = 1024

DELIVERY_COUNTS = (
    "received",
    "accepted",
    "rejected",
    "filtered",
    "delivered",
    "failed",
    "deadLettered",
)
FILTER_COUNTS = ("evaluated", "matched", "dropped")


# --- the stats document in status wire form -------------------------------------------


def _count(entry: Mapping[str, Any], name: str) -> int:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


# A URL's path and query can be a credential (Slack-style hook URLs, ?token=...): errors
# copied into a status, which everyone who may `get` the resource reads, keep only the
# scheme and host (DESIGN.md: secrets never reach a status).
_URL = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s'\"<>()@]*@)?([^/\s'\"<>()]+)([^\s'\"<>()]*)"
)


def _cut_url(match: re.Match[str]) -> str:
    scheme, userinfo, host, tail = match.groups()
    return scheme + host + ("/…" if userinfo or tail else "")


def redact_urls(text: str) -> str:
    """`text` with every URL cut down to its scheme and host (no user, path or query)."""
    return _URL.sub(_cut_url, text)


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    text = redact_urls(value)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _time(value: Any) -> str | None:
    """RFC 3339 in metav1.Time's form (UTC, seconds): the same receiver time always gives
    the same text, so an unchanged time never looks like a change."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _section(stats: Mapping[str, Any], section: str, key: str) -> Mapping[str, Any]:
    entries = stats.get(section)
    entry = entries.get(key) if isinstance(entries, Mapping) else None
    return entry if isinstance(entry, Mapping) else {}


def webhook_deliveries(stats: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`status.deliveries` (DeliveryCounts) of the Webhook `key` (<namespace>/<name>).

    Zeros for a Webhook the receiver has not seen. Optional fields are present with None
    when unknown, so that `status_patch` clears a value the receiver no longer reports.
    """
    entry = _section(stats, "webhooks", key)
    out: dict[str, Any] = {name: _count(entry, name) for name in DELIVERY_COUNTS}
    out["lastReceivedAt"] = _time(entry.get("lastReceivedAt"))
    delivery_id = entry.get("lastDeliveryID")
    out["lastDeliveryID"] = delivery_id if isinstance(delivery_id, str) and delivery_id else None
    out["lastError"] = _text(entry.get("lastError"))
    return out


def event_filter_counters(stats: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The EventFilterStatus counters (evaluated, matched, dropped) of `key`."""
    entry = _section(stats, "eventFilters", key)
    return {name: _count(entry, name) for name in FILTER_COUNTS}


def event_type_counters(stats: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The EventTypeStatus counters of `key`; the receiver's lastError/lastErrorAt are
    the status's lastValidationError/lastValidationErrorAt."""
    entry = _section(stats, "eventTypes", key)
    return {
        "validated": _count(entry, "validated"),
        "invalid": _count(entry, "invalid"),
        "lastValidationError": _text(entry.get("lastError")),
        "lastValidationErrorAt": _time(entry.get("lastErrorAt")),
    }


def latest_destination_error(stats: Mapping[str, Any], key: str) -> str | None:
    """'<destination>: <error>' of the Webhook's most recent forwarding error, if any."""
    destinations = _section(stats, "webhooks", key).get("destinations")
    if not isinstance(destinations, Mapping):
        return None
    best: tuple[str, str] | None = None
    for name, dest in destinations.items():
        if not isinstance(dest, Mapping) or not (error := _text(dest.get("lastError"))):
            continue
        at = str(dest.get("lastErrorAt") or "")
        if best is None or at > best[0]:
            best = (at, f"{name}: {error}")
    return best[1] if best else None


# --- failure rate over a window ------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    delivered: int
    failed: int
    dead_lettered: int


@dataclass(frozen=True)
class WindowStats:
    """Forwarding outcomes within the window, from the difference of cumulative counters."""

    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    complete: bool = False  # the history reaches back over the whole window

    @property
    def outcomes(self) -> int:
        return self.delivered + self.failed + self.dead_lettered

    @property
    def failures(self) -> int:
        return self.failed + self.dead_lettered

    @property
    def rate(self) -> float:
        return self.failures / self.outcomes if self.outcomes else 0.0


@dataclass
class _History:
    samples: list[Sample]
    last_seen: float


class FailureWindow:
    """Per-Webhook samples of (time, delivered, failed, deadLettered), to compute what
    happened over `spec.alerts.window` from counters that only ever grow.

    A sample is kept only when the counters changed (plus the first), so an idle
    Webhook holds one sample whatever the window; the counters at any past moment are
    those of the last sample at or before it. The history is in memory: after an
    operator restart the first observation is the new baseline, and `complete` stays
    False until a whole window has been observed (see `degraded`). Counters that go
    down mean a new store: the history starts again.
    """

    def __init__(self, forget_after: float = 8 * 24 * 3600.0) -> None:
        # Longer than the longest allowed window (168h): a Webhook not observed for that
        # long was deleted, and its history goes.
        self.forget_after = forget_after
        self._histories: dict[str, _History] = {}
        self._swept = float("-inf")

    def __len__(self) -> int:
        return len(self._histories)

    def forget(self, key: str) -> None:
        self._histories.pop(key, None)

    def observe(self, key: str, now: float, deliveries: Mapping[str, Any]) -> None:
        sample = Sample(
            now,
            _count(deliveries, "delivered"),
            _count(deliveries, "failed"),
            _count(deliveries, "deadLettered"),
        )
        history = self._histories.get(key)
        if history is None:
            self._histories[key] = _History([sample], now)
        else:
            history.last_seen = now
            last = history.samples[-1]
            if (
                sample.delivered < last.delivered
                or sample.failed < last.failed
                or sample.dead_lettered < last.dead_lettered
            ):
                history.samples = [sample]
            elif (sample.delivered, sample.failed, sample.dead_lettered) != (
                last.delivered,
                last.failed,
                last.dead_lettered,
            ):
                history.samples.append(sample)
        self._sweep(now)

    def window(self, key: str, now: float, seconds: float) -> WindowStats:
        history = self._histories.get(key)
        if history is None:
            return WindowStats()
        samples = history.samples
        start = now - seconds
        # The baseline is the last sample at or before the window's start; older ones
        # can never matter again for this window, and go.
        base = 0
        for i, sample in enumerate(samples):
            if sample.at <= start:
                base = i
            else:
                break
        if base:
            del samples[:base]
        first, last = samples[0], samples[-1]
        return WindowStats(
            delivered=last.delivered - first.delivered,
            failed=last.failed - first.failed,
            dead_lettered=last.dead_lettered - first.dead_lettered,
            complete=first.at <= start,
        )

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.forget_after / 8:
            return
        self._swept = now
        cutoff = now - self.forget_after
        for key in [k for k, h in self._histories.items() if h.last_seen < cutoff]:
            del self._histories[key]


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def degraded(
    window: WindowStats,
    alerts: Alerts,
    previous: Mapping[str, Any] | None = None,
    destination_error: str | None = None,
) -> tuple[str, str, str]:
    """(status, reason, message) of the Degraded condition.

    True with `DeadLetters` when deliveries were dead-lettered within the window, or
    `FailureRateHigh` when at least `minDeliveries` outcomes finished in it and more
    than `failureRate` of them failed. `previous` is the Degraded condition now on the
    object: while the history does not yet cover a whole window (an operator restart),
    a True is kept rather than cleared on too little evidence — no flapping.
    """
    if window.dead_lettered:
        n = window.dead_lettered
        message = (
            f"{n} {'delivery was' if n == 1 else 'deliveries were'} dead-lettered in the last "
            f"{alerts.window}; replay with the annotation hookline.dev/replay: dead-lettered"
        )
        if destination_error:
            message += f" (last error: {destination_error})"
        return "True", REASON_DEAD_LETTERS, message
    if window.outcomes >= alerts.min_deliveries and window.rate > alerts.failure_rate:
        message = (
            f"{_percent(window.rate)} of {window.outcomes} forwarding outcomes failed in the "
            f"last {alerts.window}, above the threshold of {_percent(alerts.failure_rate)}"
        )
        if destination_error:
            message += f" (last error: {destination_error})"
        return "True", REASON_FAILURE_RATE, message
    if (
        not window.complete
        and previous is not None
        and previous.get("status") == "True"
        and isinstance(previous.get("reason"), str)
    ):
        return "True", previous["reason"], str(previous.get("message") or "")
    # A message that does not change with the counts: a healthy Webhook's condition is
    # written once, not every interval.
    return (
        "False",
        REASON_HEALTHY,
        f"no dead letters and at most {_percent(alerts.failure_rate)} of forwarding outcomes "
        f"failed in the last {alerts.window}",
    )


# --- writing back --------------------------------------------------------------------


def status_patch(
    current_status: Mapping[str, Any] | None, desired: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The JSON merge patch that turns `current_status` into one holding `desired`.

    Only fields of `desired` are looked at (the rest of the status belongs to other
    handlers). Nested objects are compared field by field, lists as a whole (a merge
    patch replaces lists). A None in `desired` means "absent": it becomes a null (a
    removal) only when the field is there now. None when nothing differs: no API call.
    """
    current = current_status if isinstance(current_status, Mapping) else {}
    patch: dict[str, Any] = {}
    for name, want in desired.items():
        have = current.get(name)
        if want is None:
            if have is not None:
                patch[name] = None
        elif isinstance(want, Mapping):
            if isinstance(have, Mapping):
                sub = status_patch(have, want)
                if sub is not None:
                    patch[name] = sub
            else:
                patch[name] = {k: v for k, v in want.items() if v is not None}
        elif have != want:
            patch[name] = want
    return patch or None


def merge_patch(target: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386: `target` with the JSON merge `patch` applied (a new dict; pure)."""
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, Mapping):
            result[name] = merge_patch(result.get(name), value)
        else:
            result[name] = value
    return result


class WrittenStatus:
    """Status patches sent but not yet seen back in the object kopf hands the timers.

    kopf updates a timer's body from the watch stream, after its batch window: with a
    short interval, or a busy API server, the next run can still see the old status and
    would send the same patch again. Until the object shows a patch (or `grace` seconds
    have passed: the write may have been lost, and is then made again), it is laid over
    the status the timer sees.
    """

    def __init__(self, grace: float, clock: Clock = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._sent: dict[Any, tuple[dict[str, Any], float]] = {}
        self._swept = float("-inf")

    def __len__(self) -> int:
        return len(self._sent)

    def current(self, key: Any, status: Mapping[str, Any] | None) -> dict[str, Any]:
        """The status as it will be once the patches already sent for `key` land."""
        seen = dict(status) if isinstance(status, Mapping) else {}
        sent = self._sent.get(key)
        if sent is None:
            return seen
        patch, at = sent
        if status_patch(seen, patch) is None or self._clock() - at > self.grace:
            del self._sent[key]
            return seen
        return merge_patch(seen, patch)

    def sent(self, key: Any, patch: Mapping[str, Any]) -> None:
        now = self._clock()
        before = self._sent.get(key)
        self._sent[key] = (_compose(before[0], patch) if before else dict(patch), now)
        if now - self._swept > self.grace:
            # Objects deleted right after a write are never looked at again.
            self._swept = now
            for stale in [k for k, (_, at) in self._sent.items() if now - at > self.grace]:
                del self._sent[stale]

    def forget(self, key: Any) -> None:
        self._sent.pop(key, None)


def _compose(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """One merge patch doing what `first` then `second` do (removals, None, kept)."""
    result = dict(first)
    for name, value in second.items():
        earlier = result.get(name)
        if isinstance(value, Mapping) and isinstance(earlier, Mapping):
            result[name] = _compose(earlier, value)
        else:
            result[name] = value
    return result


def first_dead_letter(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether `current` deliveries show the Webhook's first dead letter ever recorded in
    its status. The status is persisted, so an operator restart does not repeat it."""
    before = _count(previous, "deadLettered") if isinstance(previous, Mapping) else 0
    return before == 0 and _count(current, "deadLettered") > 0
