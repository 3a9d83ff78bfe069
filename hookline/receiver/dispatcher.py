"""The dispatcher (issue 5): takes due outbox rows from the store, sends each to its
destination, and finishes the row — delivered, retried later, failed or dead-lettered.

Rows are claimed under a lease, so with PostgreSQL several receiver replicas share one
outbox and no row is sent by two workers at once; a replica that dies mid-send loses
its leases, and the rows are sent again by whoever claims them next (at least once:
a destination deduplicates by the delivery id it is given). Destinations whose circuit
breaker is open, or that answered 410 Gone, are skipped at claim time: their rows wait
instead of burning attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..store.base import CorruptRecord, Store, StoreUnavailable
from ..store.outbox import Attempt, OutboxTask, Outcome
from .breaker import Breakers, BreakerSettings, Key
from .config import ReceiverConfig
from .forward import build_request, send
from .metrics import Metrics
from .retry import RetryPolicy, classify, parse_retry_after
from .ssrf import ClientSessions

log = logging.getLogger(__name__)

# A lease outlives the longest send it covers: the destination's timeout plus this.
LEASE_MARGIN = 30.0
# A row claimed while all of its destination's half-open probes are out is looked at
# again after this long. (Rows of an open breaker are not claimed at all.)
DEFER_SECONDS = 5.0
# Outcomes after which a row is no longer pending.
_SETTLED = frozenset({"delivered", "failed", "dead_lettered"})


def owner_id() -> str:
    """Who holds a lease: host and process, readable in the outbox table."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Dispatcher:
    store: Store
    config: ReceiverConfig
    metrics: Metrics
    now: Callable[[], datetime]  # the wall clock, injected so tests move time by hand
    concurrency: int = 16
    poll_interval: float = 1.0
    lease_margin: float = LEASE_MARGIN
    owner: str = field(default_factory=owner_id)
    breakers: Breakers = field(default_factory=Breakers)
    sessions: ClientSessions = field(default_factory=ClientSessions)
    rng: random.Random = field(default_factory=random.Random)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Destinations that answered 410 Gone: left alone until their Webhook's spec
    # changes (a new configuration) — a person has to look at them.
    suspended: dict[tuple[str, str], str] = field(default_factory=dict)
    # Told of every row about to leave pending (delivered, failed, dead-lettered), with
    # its webhook and destination; what it returns is called once the store has it.
    # The backlog bound's counts (issue 11 §4).
    on_settle: Callable[[str, str], Callable[[], None]] | None = None
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.breakers.configure(breaker_settings(self.config))

    # --- configuration ---

    def use(self, config: ReceiverConfig) -> None:
        """Serve a new configuration: suspensions of destinations that changed or
        disappeared are forgotten, so are their breakers if they disappeared; the others
        take the destination's circuitBreaker settings (issue 11 §2)."""
        old = self.config
        self.config = config
        keys = set()
        for route in config.routes.values():
            for dest in route.destinations:
                keys.add((route.key, dest.name))
        for key in list(self.suspended):
            previous = old.route_for(key[0])
            current = config.route_for(key[0])
            if (
                key not in keys
                or previous is None
                or current is None
                or (previous.fingerprint != current.fingerprint)
            ):
                del self.suspended[key]
        self.breakers.configure(breaker_settings(config))

    # --- the loop ---

    async def run(self) -> None:
        """Send until cancelled; at most `concurrency` sends at once."""
        try:
            while True:
                # Cleared before claiming, so rows committed while we claim wake us.
                self.wakeup.clear()
                free = self.concurrency - len(self._inflight)
                claimed = await self._claim_and_start(free) if free > 0 else 0
                if free == 0 or claimed == free:
                    await self._wait(wake=False)  # busy: go on as soon as a slot frees
                else:
                    await self._wait(wake=True)  # idle: new rows, a free slot, or the poll
        finally:
            for task in list(self._inflight):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._inflight, return_exceptions=True)
            await self.sessions.close()

    async def run_once(self) -> int:
        """Claim what is due now and send it all; for tests and tools. Returns how many
        rows were processed."""
        tasks = await self._claim(self.concurrency)
        await asyncio.gather(*(self.process(task) for task in tasks))
        return len(tasks)

    async def _claim(self, limit: int) -> list[OutboxTask]:
        skip = self.breakers.blocked() | set(self.suspended)
        now = self.now()
        lease = self.lease_margin + max(
            (d.timeout for r in self.config.routes.values() for d in r.destinations),
            default=10.0,
        )
        return await self.store.claim_tasks(self.owner, now, limit, lease, skip)

    async def _claim_and_start(self, free: int) -> int:
        try:
            tasks = await self._claim(free)
        except StoreUnavailable as exc:
            log.warning("cannot claim outbox rows, will retry: %s", exc)
            return 0
        except Exception:
            # Whatever went wrong, the loop must live on: a dead dispatcher would leave
            # every accepted delivery unsent until a restart. The poll retries.
            log.exception("claiming outbox rows failed, will retry")
            return 0
        for task in tasks:
            running = asyncio.create_task(self.process(task))
            self._inflight.add(running)
            running.add_done_callback(self._inflight.discard)
        return len(tasks)

    async def _wait(self, *, wake: bool) -> None:
        waiters: set[asyncio.Future[Any]] = set(self._inflight)
        wakeup = asyncio.ensure_future(self.wakeup.wait()) if wake else None
        if wakeup is not None:
            waiters.add(wakeup)
        if not waiters:
            return
        try:
            await asyncio.wait(
                waiters,
                timeout=self.poll_interval if wake else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if wakeup is not None:
                wakeup.cancel()

    # --- one row ---

    async def process(self, task: OutboxTask) -> None:
        """Send one claimed row and finish it; never raises (a failure is a retry)."""
        try:
            await self._process(task)
        except StoreUnavailable as exc:
            # The lease runs out and the row is claimed again: nothing is lost.
            log.warning("could not finish outbox row %s: %s", task.id, exc)
        except Exception:
            log.exception("dispatching outbox row %s failed", task.id)

    async def _finish(
        self,
        task: OutboxTask,
        outcome: Outcome,
        *,
        attempt: Attempt | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        settled = (
            self.on_settle(task.webhook, task.destination)
            if self.on_settle is not None and outcome in _SETTLED
            else None
        )
        kept = await self.store.finish_task(
            task,
            self.owner,
            outcome,
            now=self.now(),
            attempt=attempt,
            next_attempt_at=next_attempt_at,
        )
        if not kept:
            log.warning("lease on outbox row %s expired before it was finished", task.id)
        elif settled is not None:
            settled()
        self.metrics.attempts.labels(task.webhook, task.destination, outcome).inc()

    async def _fail_unsent(self, task: OutboxTask, now: datetime, why: str) -> None:
        """Fail a row without sending it, keeping why as its attempt's error."""
        attempt = self._attempt(task, now, 0.0, None, why, b"", "failed")
        await self._finish(task, "failed", attempt=attempt)

    async def _process(self, task: OutboxTask) -> None:
        now = self.now()
        route = self.config.route_for(task.webhook)
        dest = route.destination(task.destination) if route is not None else None
        if dest is None:
            # The destination was removed from the Webhook: a person decided it goes
            # nowhere now. Fail the row so it is visible and replayable.
            await self._fail_unsent(task, now, "the destination is no longer in the Webhook's spec")
            return
        policy = RetryPolicy.from_spec(dest.spec.retry)
        if now >= policy.deadline(task.created_at):
            # The window closed while the row waited (breaker open, destination
            # suspended, receiver down): dead-letter it without a send, visible and
            # replayable, instead of trying an event older than maxAge.
            await self._finish(task, "dead_lettered")
            return
        key = (task.webhook, task.destination)
        breaker = self.breakers.get(*key)
        permit = breaker.allow()
        if permit is None:
            # This half-open round's probes are all out: look again soon.
            await self._finish(
                task, "deferred", next_attempt_at=now + timedelta(seconds=DEFER_SECONDS)
            )
            return
        try:
            record = await self.store.get(task.delivery_id)
        except CorruptRecord as exc:
            # Claiming it again would meet the same bytes: fail the row, visibly.
            breaker.release(permit)
            await self._fail_unsent(task, now, str(exc))
            return
        if record is None:
            breaker.release(permit)
            await self._fail_unsent(task, now, "the delivery was purged before it could be sent")
            return
        request = build_request(dest, record, task.body, now)
        session = self.sessions.for_destination(dest.allow_link_local)
        result = await send(session, request, dest.timeout)
        self.metrics.send_seconds.labels(task.webhook, task.destination).observe(
            result.duration_ms / 1000
        )
        verdict = classify(result.status, result.error, refused=result.refused)
        error = result.error or ("" if verdict.kind == "delivered" else verdict.reason)
        if verdict.kind == "delivered":
            breaker.record_success(permit)
            outcome: Outcome = "delivered"
            next_at = None
        elif verdict.kind == "retry":
            # No HTTP answer at all: a run of these trips the breaker on its own.
            if breaker.record_failure(permit, error, network=result.status is None):
                self.metrics.breaker_trips.labels(*key).inc()
                log.warning("circuit breaker of %s/%s opened", *key)
            retry_after = parse_retry_after(result.retry_after, now)
            next_at = policy.next_attempt(
                task.attempts + 1, task.created_at, now, retry_after, self.rng
            )
            outcome = "retry" if next_at is not None else "dead_lettered"
        else:
            # 4xx: the destination answered, so it is up (not a breaker failure); the
            # request itself is what it refuses.
            breaker.record_success(permit)
            outcome, next_at = "failed", None
            if verdict.kind == "suspend":
                self.suspended[key] = error
                log.warning("destination %s/%s answered 410 Gone: suspended", *key)
        attempt = self._attempt(
            task, now, result.duration_ms, result.status, error, result.response_head, outcome
        )
        await self._finish(task, outcome, attempt=attempt, next_attempt_at=next_at)

    @staticmethod
    def _attempt(
        task: OutboxTask,
        started: datetime,
        duration_ms: float,
        status: int | None,
        error: str,
        response: bytes,
        outcome: Outcome,
    ) -> Attempt:
        return Attempt(
            task_id=task.id,
            delivery_id=task.delivery_id,
            destination=task.destination,
            number=task.attempts + 1,
            started_at=started,
            duration_ms=duration_ms,
            status_code=status,
            error=error,
            response=response[:1024],
            outcome=outcome,
        )


def breaker_settings(config: ReceiverConfig) -> dict[Key, BreakerSettings]:
    """Each configured destination's circuitBreaker settings (issue 11 §2)."""
    return {
        (route.key, dest.name): BreakerSettings.from_spec(dest.spec.circuit_breaker)
        for route in config.routes.values()
        for dest in route.destinations
    }
