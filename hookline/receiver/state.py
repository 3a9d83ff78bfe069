"""What the receiver's handlers share, and the typed app keys they reach it by."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web

from ..store.base import Store
from .backlog import DEFAULT_BOUND, DEFAULT_WAIT_SECONDS, Backlog
from .config import IPNetwork, ReceiverConfig
from .dispatcher import Dispatcher
from .limits import Clock, RateLimiter
from .metrics import Metrics

ConfigLoader = Callable[[], Awaitable[ReceiverConfig]]
ConfigSource = Literal["manifests", "push", "stored"]


@dataclass
class Settings:
    """How one receiver process runs; built by the CLI, or by tests."""

    store_url: str
    # Where the configuration comes from: a loader (manifests, reloaded on SIGHUP), or
    # None for push mode, where the operator PUTs it to /api/v1/config (issue 6) and
    # the receiver is not ready until the first push.
    load_config: ConfigLoader | None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    purge_interval: float = 300.0
    # Dispatch (issue 5): how many sends at once; 0 turns dispatching off (a receiver
    # replica that only ingests, or tests that drive the dispatcher by hand).
    dispatch_concurrency: int = 16
    dispatch_poll_interval: float = 1.0
    # How long past a destination's timeout a send's lease lasts: after that, another
    # replica (or this one, restarted) may take over a row whose sender died.
    dispatch_lease_margin: float = 30.0
    # Issue 11 §4: at most this many pending outbox rows per destination (0: no bound);
    # a delivery that finds one full waits up to outbox_wait_seconds for room, then
    # is answered 503 with Retry-After.
    max_outbox_backlog: int = DEFAULT_BOUND
    outbox_wait_seconds: float = DEFAULT_WAIT_SECONDS
    # Injected so tests control time: wall clock for timestamps and tolerances,
    # monotonic clock for rate limits.
    wall_clock: Clock = time.time
    monotonic: Clock = time.monotonic

    @property
    def push_mode(self) -> bool:
        return self.load_config is None


@dataclass
class ReceiverState:
    settings: Settings
    store: Store
    config: ReceiverConfig
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(init=False)
    backlog: Backlog = field(init=False)
    loaded_at: datetime | None = None
    # Set when a commit wrote outbox rows, so the dispatcher sends without waiting.
    dispatch_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dispatcher: Dispatcher | None = None
    # Set by the first swap. In push mode it stays clear until the operator's first
    # push: /readyz answers 503 (no traffic) and the dispatcher waits, so a fresh
    # replica never fails outbox rows for Webhooks it has not been told about yet.
    configured: asyncio.Event = field(default_factory=asyncio.Event)
    # One configuration change at a time, applied in the order they arrived.
    config_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Where the served configuration came from: "manifests", "push" (the operator), or
    # "stored" (the last push, read back from the store at start-up until the operator
    # pushes again: issue 6 review). Shown by GET /api/v1/config and /readyz.
    source: ConfigSource = field(init=False)
    # (version, key digest) of the configuration this process knows the store holds:
    # a push that repeats it, under the same admin token, is not written again.
    stored_as: tuple[str, bytes] | None = None

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.settings.monotonic)
        self.backlog = Backlog(self.settings.max_outbox_backlog, self.settings.outbox_wait_seconds)
        self.metrics.watch_backlog(self.backlog.report)
        self.source = "push" if self.settings.push_mode else "manifests"

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.settings.wall_clock(), UTC)

    def swap(self, config: ReceiverConfig) -> None:
        """Serve `config` from the next request on; requests in flight finish on the
        route they started with (each handler holds its own reference)."""
        self.config = config
        self.loaded_at = self.now()
        self.limiter.forget_except(route.key for route in config.routes.values())
        if self.dispatcher is not None:
            self.dispatcher.use(config)
        self.metrics.routes.set(len(config.routes))
        self.metrics.config_problems.set(len(config.problems))
        self.configured.set()
        self.backlog.resync_wanted.set()  # destinations may have come or gone


SETTINGS = web.AppKey("settings", Settings)
STATE = web.AppKey("state", ReceiverState)
# The admin app reads the ingest app's state: they are separate apps on separate ports.
INGEST_APP = web.AppKey("ingest_app", web.Application)
