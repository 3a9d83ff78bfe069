"""kopf handlers of managed GitHub hooks (issue 12). Thin: each parses what kopf gives
and calls hookline.operator.github_hooks.

- A daemon per Webhook with `spec.github` checks its hook now and then every
  HOOKLINE_GITHUB_RESYNC_INTERVAL (sooner when its spec or a Secret it reads changes,
  or after a rate limit's delay), and hands the report to the reconciler, which writes
  GitHubHookReady and status.github (it is the one status writer: status.py).
- The deletion handler deletes the hook. Filtered on `spec.github`, so kopf puts its
  finalizer only on Webhooks that manage a hook (and removes it when the block goes).
- Removing the `github` block deletes the hook too.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from .context import OperatorContext
from .daemons import DEFAULT_RESTART_DELAY, RESTART_DELAY_KEY, supervise
from .github_hooks import ClientCache, check, remove
from .ids import GITHUB_HOOK_DAEMON, GITHUB_HOOK_DELETE, GITHUB_HOOK_REMOVED, SECRET_INDEX
from .reconcile import thaw


def has_github(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("github"))


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Until `seconds` pass, the daemon is stopped, or `wake` is set."""
    waits = [asyncio.ensure_future(stopped.wait(seconds)), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        for task in waits:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    @kopf.daemon(
        GROUP,
        VERSION,
        "webhooks",
        id=GITHUB_HOOK_DAEMON,
        when=has_github,
        registry=registry,
        # A check in flight (a PATCH to GitHub) finishes rather than being cut off.
        cancellation_backoff=1.0,
        cancellation_timeout=5.0,
    )
    async def github_hook(
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        namespace: str | None,
        name: str | None,
        uid: str | None,
        **kwargs: Any,
    ) -> None:
        namespace, name, uid = str(namespace), str(name), str(uid)
        key = (namespace, name)
        wake = ctx.github_wakeups[key] = asyncio.Event()
        cache = ClientCache()

        async def loop() -> None:
            while not stopped:
                wake.clear()
                # kopf keeps `body` current: each check reads the spec as it is now.
                last = ctx.github_reports.get((namespace, name, uid))
                # This daemon's own last report, not status.github: the reconciler may
                # not have written it yet, and a hook made a moment ago is not made twice.
                report = await check(
                    ctx,
                    thaw(body),
                    kwargs[SECRET_INDEX],
                    cache,
                    previous=None if last is None else last.github,
                )
                ctx.github_reports[(namespace, name, uid)] = report
                ctx.poke()
                if report.redelivered:
                    n = report.redelivered
                    await ctx.kube.post_event(
                        {**thaw(body), "kind": "Webhook"},
                        type="Normal",
                        reason="GitHubRedelivered",
                        message=(
                            f"asked GitHub to redeliver {n} missed "
                            f"{'delivery' if n == 1 else 'deliveries'}"
                        ),
                    )
                await _sleep(stopped, wake, report.retry_after or ctx.config.github_resync_interval)

        try:
            await supervise(
                f"GitHub hook check of {namespace}/{name}",
                loop,
                done=lambda: bool(stopped),
                wait=stopped.wait,
                delay=float(ctx.extras.get(RESTART_DELAY_KEY, DEFAULT_RESTART_DELAY)),
                advice="GitHubHookReady is not updated meanwhile.",
            )
        finally:
            if ctx.github_wakeups.get(key) is wake:
                del ctx.github_wakeups[key]
            if not (body.get("spec") or {}).get("github"):
                # The block was removed: nothing of the hook is reported any more.
                ctx.github_reports.pop((namespace, name, uid), None)

    @kopf.on.delete(
        GROUP, VERSION, "webhooks", id=GITHUB_HOOK_DELETE, when=has_github, registry=registry
    )
    async def github_hook_deleted(body: kopf.Body, uid: str, runtime: Any, **kwargs: Any) -> None:
        meta = body.get("metadata") or {}
        await remove(
            ctx, thaw(body), kwargs[SECRET_INDEX], runtime.total_seconds(), why="Webhook deleted"
        )
        ctx.github_reports.pop((str(meta.get("namespace")), str(meta.get("name")), uid), None)

    @kopf.on.field(
        GROUP, VERSION, "webhooks", field="spec.github", id=GITHUB_HOOK_REMOVED, registry=registry
    )
    async def github_block_changed(
        old: Any, new: Any, body: kopf.Body, runtime: Any, **kwargs: Any
    ) -> None:
        if not old or new:
            return  # added or changed: the daemon does it
        before = thaw(body)
        before["spec"] = {**(before.get("spec") or {}), "github": thaw(old)}
        await remove(
            ctx, before, kwargs[SECRET_INDEX], runtime.total_seconds(), why="spec.github removed"
        )
