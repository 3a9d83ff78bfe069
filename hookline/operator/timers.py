"""The stats timer (issue 6): a kopf timer that reads the receivers' /api/v1/stats once
per interval and hands it to the reconciler, which writes `status.deliveries`,
`status.url`, the counters on EventFilters and EventTypes, and the Degraded condition
wherever they changed (hookline.operator.status).

One timer on the operator's anchor Secret, not one per resource: a timer makes kopf put
a finalizer on every object it runs for, and a Webhook that cannot be deleted while the
operator is away is worse than no counters. It also means one stats request per
interval whatever the number of resources, and — being a kopf timer — that it stops
when peering pauses this operator.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import kopf

from ..api.common import parse_duration
from ..receiver.client import ReceiverError, ReceiverUnavailable
from .ids import STATS_TIMER
from .kube import KubeError, KubeUnavailable
from .reconcile import indexes_of, reconciler_of
from .settings import OperatorSettings

if TYPE_CHECKING:
    from .context import OperatorContext

log = logging.getLogger(__name__)

StatsFetch = Callable[[], Awaitable[dict[str, Any]]]
# Where tests put a stats source of their own (OperatorContext.extras).
FETCH = __name__ + ".fetch"


def stats_interval(ctx: OperatorContext) -> float:
    """The timer's interval, without loading the settings when they are not loaded yet.

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


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach the stats timer to `registry`, sharing `ctx` (and its reconciler)."""

    async def default_fetch() -> dict[str, Any]:
        admin = await ctx.receiver_admin()
        return await admin.stats()

    @kopf.timer(
        "v1",
        "secrets",
        id=STATS_TIMER,
        interval=stats_interval(ctx),
        when=ctx.is_anchor,
        registry=registry,
    )
    async def receiver_stats(body: kopf.Body, **kwargs: Any) -> None:
        if str(body.get("metadata", {}).get("uid")) in ctx.gone_anchors:
            # Its anchor was deleted: kopf does not stop a timer on an object without a
            # finalizer, so this one idles and the new anchor's timer does the work.
            return
        fetch: StatsFetch = ctx.extras.get(FETCH) or default_fetch
        try:
            stats = await fetch()
        except (ReceiverUnavailable, ReceiverError, kopf.TemporaryError, OSError) as exc:
            # Debug, not warning: the receiver not running yet (or restarting) is
            # normal and the Ready condition already says so. Nothing is written: the
            # last known counters stay (no flapping to zeros).
            log.debug("statuses not updated from the receivers' stats: %s", exc)
            return
        except (KubeError, KubeUnavailable) as exc:
            # Finding the replicas failed (e.g. EndpointSlices not served, which the
            # start-up check names): one line, not a traceback every interval (issue 11 §3).
            log.warning("statuses not updated: cannot find the receiver replicas: %s", exc)
            return
        await reconciler_of(ctx).refresh_stats(stats, indexes_of(kwargs))
