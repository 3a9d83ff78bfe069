"""kopf timers that write the receiver's counters back into each resource's status
(issue 6): `status.deliveries`, `status.url` and the Degraded condition on Webhooks, the
counters on EventFilters and EventTypes, and a Warning Event on a Webhook's first dead
letter.

Each timer is thin: it takes the stats document from the shared `StatsCache` (one HTTP
request per interval for all resources together), computes its part of the status with
the pure functions of `stats.py`, and writes only what `status_patch` says changed —
through kopf's `patch`, so that an idle resource costs no API call at all. When the
receiver cannot be read, nothing is written (no flapping to zeros) and the next
interval tries again.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf
from pydantic import ValidationError

from ..api.common import GROUP, VERSION, parse_duration
from ..api.webhook import Alerts
from . import conditions as c
from .settings import OperatorSettings
from .stats import (
    Clock,
    FailureWindow,
    StatsCache,
    StatsFetch,
    StatsUnavailable,
    WrittenStatus,
    degraded,
    event_filter_counters,
    event_type_counters,
    first_dead_letter,
    latest_destination_error,
    status_patch,
    webhook_deliveries,
)

if TYPE_CHECKING:
    from .context import OperatorContext

log = logging.getLogger(__name__)

WEBHOOK_STATS_TIMER = "webhook-stats"
EVENT_FILTER_STATS_TIMER = "eventfilter-stats"
EVENT_TYPE_STATS_TIMER = "eventtype-stats"
# The slot in OperatorContext.extras that holds this module's state.
STATE_KEY = __name__
DEAD_LETTER_REASON = "DeadLetter"


@dataclass
class TimerState:
    """What the timers keep between calls, for the life of one operator process."""

    cache: StatsCache
    written: WrittenStatus
    windows: FailureWindow = field(default_factory=FailureWindow)
    clock: Clock = time.monotonic


def _fetcher(ctx: OperatorContext) -> StatsFetch:
    async def fetch() -> dict[str, Any]:
        admin = await ctx.receiver_admin()
        return await admin.stats()

    return fetch


def stats_interval(ctx: OperatorContext) -> float:
    """The timers' interval, without loading the settings when they are not loaded yet.

    kopf fixes a timer's interval when it is registered, and the package registers its
    handlers at import, before the settings are read (context.py: importing has no side
    effects). So only HOOKLINE_STATS_INTERVAL is read here, the way OperatorSettings
    reads it; a bad value is refused at start-up with the rest of the settings.
    """
    if ctx.settings is not None:
        return float(ctx.settings.stats_interval)
    default = float(OperatorSettings.model_fields["stats_interval"].default)
    raw = os.environ.get("HOOKLINE_STATS_INTERVAL", "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        try:
            value = parse_duration(raw).total_seconds()
        except ValueError:
            return default
    return value if value > 0 else default


def timer_state(
    ctx: OperatorContext, *, fetch: StatsFetch | None = None, clock: Clock = time.monotonic
) -> TimerState:
    """The timers' state on `ctx` (OperatorContext.extras), made on first use."""
    state = ctx.extras.get(STATE_KEY)
    if not isinstance(state, TimerState):
        interval = stats_interval(ctx)
        cache = StatsCache(fetch or _fetcher(ctx), interval, clock)
        # A sent patch not seen back within a few intervals was lost: send it again.
        written = WrittenStatus(max(3 * interval, 5.0), clock)
        state = TimerState(cache, written, clock=clock)
        ctx.extras[STATE_KEY] = state
    return state


class QuietTimerSuccess(logging.Filter):
    """Drops kopf's "Timer '<id>' succeeded." INFO line for the stats timers.

    kopf logs it on every run for every object: a thousand Webhooks at a 10 s interval
    would be a hundred identical lines a second. Failures are still logged.
    """

    def __init__(self, ids: tuple[str, ...]) -> None:
        super().__init__()
        self.messages = frozenset(f"Timer {id!r} succeeded." for id in ids)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.messages


def quiet_timer_logs() -> None:
    """Install `QuietTimerSuccess` on kopf's per-object logger, once."""
    logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietTimerSuccess) for f in logger.filters):
        ids = (WEBHOOK_STATS_TIMER, EVENT_FILTER_STATS_TIMER, EVENT_TYPE_STATS_TIMER)
        logger.addFilter(QuietTimerSuccess(ids))


def _alerts(spec: Mapping[str, Any]) -> Alerts:
    try:
        return Alerts.model_validate(spec.get("alerts") or {})
    except ValidationError:
        # The reconciler reports a bad spec as Ready=False InvalidSpec; the alert
        # thresholds fall back to the defaults rather than stopping the counters.
        return Alerts()


async def _stats(
    state: TimerState, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> dict[str, Any] | None:
    try:
        return await state.cache.get()
    except StatsUnavailable as exc:
        # Debug, not warning: the receiver not running yet (or restarting) is normal and
        # the Ready condition already says so; a warning per resource per interval would
        # drown the log. Nothing is written: the last known counters stay.
        logger.debug("status not updated: %s", exc)
        return None


def register(
    registry: kopf.OperatorRegistry,
    ctx: OperatorContext,
    *,
    fetch: StatsFetch | None = None,
    clock: Clock = time.monotonic,
) -> None:
    """Attach the three stats timers to `registry`, sharing `ctx`.

    `fetch` replaces reading the receivers' admin API (tests); `clock` is the monotonic
    clock of the stats cache and the failure windows.
    """
    state = timer_state(ctx, fetch=fetch, clock=clock)
    interval = state.cache.interval

    @kopf.on.startup(registry=registry)
    def stats_timer_logs(**_: Any) -> None:
        quiet_timer_logs()  # at start-up, not at import (importing has no side effects)

    def initial_delay(**_: Any) -> float:
        # Spread the timers over one interval: after an operator restart, a thousand
        # Webhooks whose counters moved are patched over the interval, not in one burst.
        return random.uniform(0.0, interval)

    @kopf.timer(
        GROUP,
        VERSION,
        "webhooks",
        id=WEBHOOK_STATS_TIMER,
        interval=interval,
        initial_delay=initial_delay,
        registry=registry,
    )
    async def webhook_stats(
        body: kopf.Body,
        spec: kopf.Spec,
        meta: kopf.Meta,
        status: kopf.Status,
        namespace: str | None,
        name: str | None,
        patch: kopf.Patch,
        logger: Any,
        **_: Any,
    ) -> None:
        stats = await _stats(state, logger)
        if stats is None:
            return
        key = f"{namespace}/{name}"
        current = state.written.current(("Webhook", key), status)
        deliveries = webhook_deliveries(stats, key)
        alerts = _alerts(spec)
        now = state.clock()
        state.windows.observe(key, now, deliveries)
        window = state.windows.window(key, now, alerts.window_seconds)
        conditions = current.get("conditions") or []
        cond_status, reason, message = degraded(
            window,
            alerts,
            c.find(conditions, c.DEGRADED),
            latest_destination_error(stats, key),
        )
        desired: dict[str, Any] = {
            "deliveries": deliveries,
            "url": ctx.config.webhook_url(spec.get("path") or key),
            "conditions": c.set_condition(
                conditions,
                c.DEGRADED,
                "True" if cond_status == "True" else "False",
                reason,
                message,
                meta.get("generation"),
                ctx.now(),
            ),
        }
        diff = status_patch(current, desired)
        if diff is None:
            return  # the common case: an idle Webhook costs no API call
        # set_condition keeps the other conditions as they are, so "conditions" is in the
        # diff only when Degraded itself changed: a Ready the reconciler just wrote is
        # not rewritten by every counter update (a merge patch replaces whole lists).
        for field_name, value in diff.items():
            patch.status[field_name] = value
        state.written.sent(("Webhook", key), diff)
        if first_dead_letter(current.get("deliveries"), deliveries):
            n = deliveries["deadLettered"]
            kopf.event(
                body,
                type="Warning",
                reason=DEAD_LETTER_REASON,
                message=(
                    f"{n} {'delivery was' if n == 1 else 'deliveries were'} dead-lettered: "
                    "see status.deliveries and the receiver's delivery log; replay with the "
                    "annotation hookline.dev/replay: dead-lettered"
                ),
            )

    @kopf.timer(
        GROUP,
        VERSION,
        "eventfilters",
        id=EVENT_FILTER_STATS_TIMER,
        interval=interval,
        initial_delay=initial_delay,
        registry=registry,
    )
    async def event_filter_stats(
        status: kopf.Status,
        namespace: str | None,
        name: str | None,
        patch: kopf.Patch,
        logger: Any,
        **_: Any,
    ) -> None:
        stats = await _stats(state, logger)
        if stats is None:
            return
        key = ("EventFilter", f"{namespace}/{name}")
        diff = status_patch(
            state.written.current(key, status), event_filter_counters(stats, key[1])
        )
        if diff is None:
            return
        for field_name, value in diff.items():
            patch.status[field_name] = value
        state.written.sent(key, diff)

    @kopf.timer(
        GROUP,
        VERSION,
        "eventtypes",
        id=EVENT_TYPE_STATS_TIMER,
        interval=interval,
        initial_delay=initial_delay,
        registry=registry,
    )
    async def event_type_stats(
        status: kopf.Status,
        namespace: str | None,
        name: str | None,
        patch: kopf.Patch,
        logger: Any,
        **_: Any,
    ) -> None:
        stats = await _stats(state, logger)
        if stats is None:
            return
        key = ("EventType", f"{namespace}/{name}")
        diff = status_patch(state.written.current(key, status), event_type_counters(stats, key[1]))
        if diff is None:
            return
        for field_name, value in diff.items():
            patch.status[field_name] = value
        state.written.sent(key, diff)
