"""The reconciler: one loop that keeps the receivers' configuration and every resource's
status true to what is in the cluster (issue 6).

Level-triggered: each pass recompiles everything from kopf's indexes, so a change to an
EventFilter, EventType or Secret re-evaluates every Webhook that refers to it without any
bookkeeping of who refers to whom, and a missed event is repaired by the next pass.
Handlers only `poke()` it; many pokes within the debounce make one pass. It is the one
writer of hookline's statuses (hookline.operator.status says why): Ready after each
pass, and the counters, `url` and Degraded each time the stats timer brings the
receivers' stats. What it writes is compared with what the object already says first,
so an idle cluster costs no writes at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from ..api.common import API_VERSION
from ..github.reasons import GITHUB_HOOK_READY
from ..receiver.bundle import build_bundle
from ..receiver.client import ReceiverAdmin, ReceiverError, ReceiverUnavailable
from . import conditions as c
from .builders import generated_secret_name
from .context import OperatorContext
from .daemons import PassTimer
from .evaluate import Evaluation, ObjectKey, ParseCache, evaluate
from .generated import ensure_generated_secret
from .ids import EVENT_TYPE_INDEX, FILTER_INDEX, SECRET_INDEX, WEBHOOK_INDEX
from .kube import KubeError, KubeUnavailable, resource_path
from .receiver_objects import ensure_receiver
from .stats import FailureWindow, WrittenStatus, first_dead_letter, status_patch, webhook_deliveries
from .status import PushOutcome, StatusInputs, desired_status

log = logging.getLogger(__name__)

# Status writes in flight at once during one pass.
STATUS_WRITERS = 16
# A failed push (or API call) is retried after 1 s, doubling up to this.
MAX_RETRY_DELAY = 30.0
# Quiet-period passes reuse the last compiled configuration; every this many of them
# compiles afresh anyway, a safety net under the change detection of the handlers.
RECOMPILE_EVERY = 6
DEAD_LETTER_REASON = "DeadLetter"

PLURALS = {"Webhook": "webhooks", "EventFilter": "eventfilters", "EventType": "eventtypes"}
KINDS_BY_INDEX = (
    ("Webhook", WEBHOOK_INDEX),
    ("EventFilter", FILTER_INDEX),
    ("EventType", EVENT_TYPE_INDEX),
)


def thaw(value: Any) -> Any:
    """kopf's read-only body views as plain dicts and lists (safe to keep and compare)."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def index_values(index: Mapping[Any, Iterable[Any]] | None) -> list[Any]:
    """Every value in a kopf index (each key holds a store of values)."""
    return [value for store in (index or {}).values() for value in store]


def bodies(indexes: Mapping[str, Any]) -> dict[ObjectKey, dict[str, Any]]:
    """Every hookline resource kopf's indexes hold, by (kind, namespace, name)."""
    found: dict[ObjectKey, dict[str, Any]] = {}
    for kind, index_id in KINDS_BY_INDEX:
        for body in index_values(indexes.get(index_id)):
            meta = body.get("metadata") or {}
            found[(kind, meta.get("namespace") or "default", meta["name"])] = body
    return found


def next_delay(delay: float) -> float:
    return min(MAX_RETRY_DELAY, max(1.0, delay * 2))


@dataclass
class Last:
    """The last compiled configuration, and how its push went."""

    evaluation: Evaluation
    secrets: dict[tuple[str, str], Any]
    outcome: PushOutcome


@dataclass
class Reconciler:
    ctx: OperatorContext
    # The configuration version each replica acknowledged, by admin URL.
    pushed: dict[str, str] = field(default_factory=dict)
    passes: int = 0
    parse_cache: ParseCache = field(default_factory=dict)
    last: Last | None = None
    # The receivers' stats, as the stats timer last read them; the failure history.
    stats: dict[str, Any] | None = None
    windows: FailureWindow = field(default_factory=FailureWindow)
    # Patches sent but not yet seen back in kopf's indexes (no double writes).
    written: WrittenStatus = field(default_factory=lambda: WrittenStatus(grace=15.0))
    # When the receiver's own objects were last compared (loop time); None: never.
    receiver_checked: float | None = None
    receiver_token: str | None = None  # the admin token the pods were last given
    # > 0 while something failed: the next pass comes after it, not after a resync.
    retry_delay: float = 0.0
    quiet_passes: int = 0
    loops: int = 0  # how many daemons run this loop now (one, but for a moment)
    # A pass longer than the resync interval is a WARNING (issue 14).
    pass_timer: PassTimer = field(default_factory=lambda: PassTimer("reconciliation"))
    _lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        # Passes and stats refreshes never interleave (made here: kopf's own loop).
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def run(
        self,
        done: Callable[[], bool],
        stopped: Any,
        indexes: Mapping[str, Any],
        token: Callable[[], str | None],
    ) -> None:
        """Until `done()`: kopf stops the daemon (operator exit, paused by peering), or
        its anchor Secret was deleted."""
        self.loops += 1
        try:
            settings = self.ctx.config
            while not done():
                woken = await self._wait(stopped, self.retry_delay or settings.resync_interval)
                if done():
                    break
                if woken:
                    # Debounce: let the rest of a burst (a `kubectl apply` of many files,
                    # the initial listing) arrive before compiling.
                    await asyncio.sleep(settings.config_debounce)
                self.ctx.wakeup.clear()
                # Read on each pass: a new token (its Secret edited) is used at once.
                self.ctx.use_admin_token(token())
                self.quiet_passes = 0 if woken else self.quiet_passes + 1
                recompile = woken or self.last is None or self.quiet_passes % RECOMPILE_EVERY == 0
                started = self.pass_timer.start()
                try:
                    await self.reconcile_once(indexes, verify=not woken, recompile=recompile)
                except (KubeError, KubeUnavailable) as exc:
                    self.retry_delay = next_delay(self.retry_delay)
                    log.warning("reconciliation failed, again in %.0f s: %s", self.retry_delay, exc)
                    continue
                finally:
                    self.pass_timer.finish(started, settings.resync_interval)
                # Replicas that did not take the configuration are tried again soon, with
                # backoff, not after a quiet resync interval.
                failed = self.last is not None and bool(self.last.outcome.errors)
                self.retry_delay = next_delay(self.retry_delay) if failed else 0.0
        finally:
            self.loops -= 1

    async def _wait(self, stopped: Any, seconds: float) -> bool:
        """True when poked, False after `seconds` of quiet or when stopped."""
        woken = asyncio.ensure_future(self.ctx.wakeup.wait())
        stopping = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait(
                {woken, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (woken, stopping):
                task.cancel()
        return self.ctx.wakeup.is_set()

    async def reconcile_once(
        self, indexes: Mapping[str, Any], *, verify: bool = False, recompile: bool = True
    ) -> None:
        async with self.lock:
            await self.ensure_receiver()
            if recompile or self.last is None:
                secrets = dict(index_values(indexes.get(SECRET_INDEX)))
                evaluation = evaluate(
                    index_values(indexes.get(WEBHOOK_INDEX)),
                    index_values(indexes.get(FILTER_INDEX)),
                    index_values(indexes.get(EVENT_TYPE_INDEX)),
                    secrets,
                    self.parse_cache,
                )
            else:
                evaluation, secrets = self.last.evaluation, self.last.secrets
            await self.generate_missing_secrets(evaluation, secrets, indexes)
            outcome = await self.push(evaluation, secrets, verify=verify)
            self.last = Last(evaluation, secrets, outcome)
            # Ready and observedGeneration only: the counters are written from stats
            # read after the objects were seen (refresh_stats), never from older ones.
            await self.write_statuses(indexes, with_stats=False)
            self.passes += 1

    async def refresh_stats(self, stats: dict[str, Any], indexes: Mapping[str, Any]) -> None:
        """New stats from the timer: counters, url and Degraded written where changed."""
        async with self.lock:
            self.stats = stats
            now = asyncio.get_running_loop().time()
            # Every Webhook the receivers count, not only those kopf has shown us yet:
            # the first sample of each is its failure window's baseline.
            keys = {f"{ns}/{name}" for kind, ns, name in bodies(indexes) if kind == "Webhook"}
            keys.update(str(k) for k in (stats.get("webhooks") or {}))
            for key in keys:
                self.windows.observe(key, now, webhook_deliveries(stats, key))
            if self.last is not None:
                await self.write_statuses(indexes, with_stats=True)

    async def generate_missing_secrets(
        self,
        evaluation: Evaluation,
        secrets: Mapping[tuple[str, str], Any],
        indexes: Mapping[str, Any],
    ) -> None:
        """Every Webhook that reads a generated Secret has one: made when the Webhook
        came, and here again after anyone deleted it or an earlier attempt failed."""
        found = bodies(indexes)
        for key, webhook in evaluation.generated.items():
            name = generated_secret_name(webhook.metadata.name)
            body = found.get(key)
            if (key[1], name) in secrets or body is None:
                continue
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            try:
                await ensure_generated_secret(self.ctx, webhook, body)
            except (KubeError, KubeUnavailable, kopf.TemporaryError) as exc:
                log.warning("cannot make Secret %s/%s yet: %s", key[1], name, exc)
                self.retry_delay = self.retry_delay or 1.0

    async def ensure_receiver(self) -> None:
        """The receiver's Deployment and Services, compared once per resync interval
        (each comparison is a GET per object; a busy cluster pokes far more often)."""
        settings = self.ctx.config
        now = asyncio.get_running_loop().time()
        token_changed = self.ctx.admin_token != self.receiver_token
        if not settings.manage_receiver or (
            self.receiver_checked is not None
            and now - self.receiver_checked < settings.resync_interval
            and not token_changed
        ):
            return
        self.receiver_token = self.ctx.admin_token
        # Checked or not, not again before the interval: a refused object must not stop
        # the configuration push and the statuses, nor be retried in a tight loop.
        self.receiver_checked = now
        try:
            await ensure_receiver(self.ctx.kube, settings, self.ctx.admin_token)
        except KubeError as exc:
            log.error(
                "cannot create or repair the receiver's objects in namespace %s "
                "(retried every %.0f s): %s",
                settings.namespace,
                settings.resync_interval,
                exc,
            )

    async def push(
        self,
        evaluation: Evaluation,
        secrets: Mapping[tuple[str, str], Mapping[str, bytes]],
        *,
        verify: bool,
    ) -> PushOutcome:
        """The configuration to every replica that does not have it yet (all at once)."""
        version = evaluation.config.version
        urls = await self.ctx.receiver_urls()
        outcome = PushOutcome(replicas=len(urls))
        bundle: dict[str, Any] | None = None
        for gone in set(self.pushed) - set(urls):
            del self.pushed[gone]

        async def one(url: str) -> None:
            try:
                await push_to(url, self.ctx.receiver(url))
            except ReceiverError as exc:
                if exc.status != 401 or self.ctx.previous_admin_token is None:
                    raise
                # A replica not yet rolled to a new admin token.
                await push_to(url, self.ctx.receiver(url, previous=True))

        async def push_to(url: str, admin: ReceiverAdmin) -> None:
            nonlocal bundle
            if verify and self.pushed.get(url) == version:
                current = await admin.config()
                # Restarted (serving nothing, or the push it kept in its store), or
                # someone else pushed: push again, so its source is this operator's push.
                if current.get("version") != version or current.get("source") != "push":
                    self.pushed.pop(url, None)
            if self.pushed.get(url) != version:
                if bundle is None:
                    bundle = build_bundle(
                        evaluation.webhooks, evaluation.filters, evaluation.event_types, secrets
                    )
                answer = await admin.push_config(bundle)
                self.pushed[url] = str(answer.get("version", version))
                log.info("receiver %s now serves configuration %s", url, version)
            if self.pushed.get(url) == version:
                outcome.acknowledged += 1

        async def each(url: str) -> None:
            try:
                await one(url)
            except (ReceiverUnavailable, ReceiverError) as exc:
                self.pushed.pop(url, None)
                outcome.errors.append(f"{url}: {exc}")

        await asyncio.gather(*(each(url) for url in urls))
        return outcome

    async def write_statuses(self, indexes: Mapping[str, Any], *, with_stats: bool) -> None:
        assert self.last is not None
        inputs = StatusInputs(
            evaluation=self.last.evaluation,
            outcome=self.last.outcome,
            settings=self.ctx.config,
            now=self.ctx.now(),
            stats=self.stats if with_stats else None,
            windows=self.windows,
            mono=asyncio.get_running_loop().time(),
            github=dict(self.ctx.github_reports),
        )
        # Written concurrently (a bounded number at once): a thousand Webhooks becoming
        # Ready together should not wait for a thousand round trips one after another.
        limit = asyncio.Semaphore(STATUS_WRITERS)

        async def write(key: ObjectKey, body: Mapping[str, Any]) -> None:
            async with limit:
                await self.write_status(key, body, inputs)

        # Every write finishes before the pass ends (and the lock is released), failed or
        # not: a write still in flight would be sent again by the next pass.
        results = await asyncio.gather(
            *(write(key, body) for key, body in bodies(indexes).items()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def write_status(
        self, key: ObjectKey, body: Mapping[str, Any], inputs: StatusInputs
    ) -> None:
        # By uid too: what was sent to an object deleted since is nothing to its successor.
        written_key = (key, str((body.get("metadata") or {}).get("uid")))
        current = self.written.current(written_key, body.get("status"))
        desired = desired_status(key, body, current, inputs)
        diff = status_patch(current, desired)
        if diff is None:
            return  # the common case: nothing changed, no API call
        kind, namespace, name = key
        try:
            await self.ctx.kube.patch(
                resource_path(API_VERSION, PLURALS[kind], namespace, name, "status"),
                {"status": diff},
            )
        except KubeError as exc:
            if exc.status == 404:
                return  # deleted meanwhile: the next pass no longer sees it
            if exc.status == 409 or exc.status >= 500:
                raise  # passing: the pass is retried
            # Refused (422...): a bug of ours, not the user's; the other resources'
            # statuses must still be written, so report it and go on.
            log.error("status of %s %s/%s refused: %s", kind, namespace, name, exc)
            return
        self.written.sent(written_key, diff)
        await self.post_events(key, body, current, desired)

    async def post_events(
        self,
        key: ObjectKey,
        body: Mapping[str, Any],
        current: Mapping[str, Any],
        desired: Mapping[str, Any],
    ) -> None:
        involved = {**body, "kind": key[0], "apiVersion": API_VERSION}
        before = c.find(current.get("conditions"), c.READY)
        after = c.find(desired.get("conditions"), c.READY)
        if after is not None and (before is None or before.get("status") != after.get("status")):
            ok = after["status"] == "True"
            await self.ctx.kube.post_event(
                involved,
                type="Normal" if ok else "Warning",
                reason=c.READY if ok else str(after["reason"]),
                message=str(after["message"]) or str(after["reason"]),
            )
            if ok and key[0] == "Webhook":
                # A managed GitHub hook waits for its Webhook to be served (issue 12).
                self.ctx.wake_github(key[1], key[2])
        before = c.find(current.get("conditions"), GITHUB_HOOK_READY)
        after = c.find(desired.get("conditions"), GITHUB_HOOK_READY)
        if after is not None and (
            before is None
            or (before.get("status"), before.get("reason")) != (after["status"], after["reason"])
        ):
            # Issue 12: the upstream hook became active, or why it is not (each reason
            # once: a rate limit that becomes a 401 is news, the same 401 again is not).
            ok = after["status"] == "True"
            await self.ctx.kube.post_event(
                involved,
                type="Normal" if ok else "Warning",
                reason=GITHUB_HOOK_READY if ok else str(after["reason"]),
                message=str(after["message"]) or str(after["reason"]),
            )
        deliveries = desired.get("deliveries")
        if deliveries is not None and first_dead_letter(current.get("deliveries"), deliveries):
            n = deliveries["deadLettered"]
            await self.ctx.kube.post_event(
                involved,
                type="Warning",
                reason=DEAD_LETTER_REASON,
                message=(
                    f"{n} {'delivery was' if n == 1 else 'deliveries were'} dead-lettered: "
                    "see status.deliveries and the receiver's delivery log; replay with the "
                    "annotation hookline.dev/replay: dead-lettered"
                ),
            )


def reconciler_of(ctx: OperatorContext) -> Reconciler:
    """The context's one reconciler (the daemon and the stats timer share it)."""
    found = ctx.extras.get("reconciler")
    if not isinstance(found, Reconciler):
        found = ctx.extras["reconciler"] = Reconciler(ctx)
    return found


def indexes_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The indexes the reconciler reads, out of a kopf handler's keyword arguments."""
    return {k: kwargs[k] for k in (WEBHOOK_INDEX, FILTER_INDEX, EVENT_TYPE_INDEX, SECRET_INDEX)}
