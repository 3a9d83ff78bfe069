"""Supervision of the operator's long-running daemon bodies (issue 14).

kopf logs an exception that escapes a daemon and, by default, never runs that daemon
again until its object changes: for the reconciler that means no status is written for
any resource, with one traceback in the log as the only sign. Issue 14 asks that a
daemon that stops says why, at WARNING or above, with what the user can do; and an
error in one pass (a garbled object from the API server, a bug) is no reason to stop
writing statuses for good. So each body runs under `supervise`: an exception is one
ERROR line with its cause and the advice, and the body starts again after a delay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

# OperatorContext.extras key: seconds before a failed daemon body starts again.
RESTART_DELAY_KEY = "daemon_restart_delay"
DEFAULT_RESTART_DELAY = 5.0


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    done: Callable[[], bool],
    wait: Callable[[float], Awaitable[Any]],
    delay: float = DEFAULT_RESTART_DELAY,
    advice: str = "",
) -> None:
    """Run `body` until it returns or `done()`; restart it `delay` s after an exception.

    `wait(seconds)` returns early when the daemon is stopped (kopf's `stopped.wait`), so
    a restart delay never holds up the operator's exit. Cancellation is not caught: kopf
    cancels a daemon it stops, and the caller says why (conformance.py).
    """
    while not done():
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The type and message only: a traceback's locals could hold Secret data.
            log.error(
                "the %s failed: %s: %s; it starts again in %.0f s.%s",
                name,
                type(exc).__name__,
                exc,
                delay,
                f" {advice}" if advice else "",
            )
            await wait(delay)


class PassTimer:
    """Warns when one pass takes longer than the interval it is meant to run at: the
    passes then run back to back and statuses lag behind the cluster (issue 14)."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock

    def start(self) -> float:
        return self.clock()

    def finish(self, started: float, interval: float) -> float:
        took = self.clock() - started
        if took > interval:
            log.warning(
                "a %s pass took %.1f s, longer than its interval of %.1f s: statuses lag "
                "behind the cluster; check the API server's and the receivers' latency",
                self.name,
                took,
                interval,
            )
        return took
