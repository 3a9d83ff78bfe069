"""The reconciler: one loop that keeps the receivers' configuration and every resource's
Ready condition true to what is in the cluster (issue 6).

Level-triggered: each pass recompiles everything from kopf's indexes, so a change to an
EventFilter, EventType or Secret re-evaluates every Webhook that refers to it without any
bookkeeping of who refers to whom, and a missed event is repaired by the next pass.
Handlers only `poke()` it; many pokes within the debounce make one pass. What it writes
is compared with what the object already says first, so an idle cluster costs no
writes at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.common import API_VERSION
from ..receiver.bundle import build_bundle
from ..receiver.client import ReceiverError, ReceiverUnavailable
from . import conditions as c
from .context import OperatorContext
from .evaluate import Desired, Evaluation, ObjectKey, ParseCache, evaluate
from .ids import EVENT_TYPE_INDEX, FILTER_INDEX, SECRET_INDEX, WEBHOOK_INDEX
from .kube import KubeError, KubeUnavailable, resource_path
from .receiver_objects import ensure_receiver

log = logging.getLogger(__name__)

# Status writes in flight at once during one pass.
STATUS_WRITERS = 16

PLURALS = {"Webhook": "webhooks", "EventFilter": "eventfilters", "EventType": "eventtypes"}


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


@dataclass
class PushOutcome:
    replicas: int = 0
    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def serving(self) -> bool:
        return self.replicas > 0 and self.acknowledged == self.replicas


@dataclass
class Reconciler:
    ctx: OperatorContext
    # The configuration version each replica acknowledged, by admin URL.
    pushed: dict[str, str] = field(default_factory=dict)
    passes: int = 0
    parse_cache: ParseCache = field(default_factory=dict)
    # When the receiver's own objects were last compared (loop time); None: never.
    receiver_checked: float | None = None

    async def run(self, stopped: Any, indexes: Mapping[str, Any]) -> None:
        """Until kopf stops the daemon (operator exit, or paused by peering)."""
        settings = self.ctx.config
        while not stopped:
            woken = await self._wait(stopped, settings.resync_interval)
            if stopped:
                break
            if woken:
                # Debounce: let the rest of a burst (a `kubectl apply` of many files,
                # the initial listing) arrive before compiling.
                await asyncio.sleep(settings.config_debounce)
            self.ctx.wakeup.clear()
            try:
                # After a quiet period, also check that every replica still has it.
                await self.reconcile_once(indexes, verify=not woken)
            except (KubeError, KubeUnavailable) as exc:
                log.warning("reconciliation pass failed, retrying: %s", exc)
                self.ctx.poke()
                await asyncio.sleep(1.0)

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

    async def reconcile_once(self, indexes: Mapping[str, Any], *, verify: bool = False) -> None:
        await self.ensure_receiver()
        secrets = {k: v for k, v in index_values(indexes.get(SECRET_INDEX))}
        evaluation = evaluate(
            index_values(indexes.get(WEBHOOK_INDEX)),
            index_values(indexes.get(FILTER_INDEX)),
            index_values(indexes.get(EVENT_TYPE_INDEX)),
            secrets,
            self.parse_cache,
        )
        outcome = await self.push(evaluation, secrets, verify=verify)
        bodies = {
            kind: {
                (kind, *key): body
                for key, body in (
                    ((b["metadata"].get("namespace") or "default", b["metadata"]["name"]), b)
                    for b in index_values(indexes.get(index_id))
                )
            }
            for kind, index_id in (
                ("Webhook", WEBHOOK_INDEX),
                ("EventFilter", FILTER_INDEX),
                ("EventType", EVENT_TYPE_INDEX),
            )
        }
        # Written concurrently (a bounded number at once): a thousand Webhooks becoming
        # Ready together should not wait for a thousand round trips one after another.
        limit = asyncio.Semaphore(STATUS_WRITERS)

        async def write(key: ObjectKey, body: Mapping[str, Any]) -> None:
            async with limit:
                await self.write_status(key, body, self.desired(key, evaluation, outcome))

        await asyncio.gather(
            *(write(key, body) for objects in bodies.values() for key, body in objects.items())
        )
        self.passes += 1

    async def ensure_receiver(self) -> None:
        """The receiver's Deployment and Services, compared once per resync interval
        (each comparison is a GET per object; a busy cluster pokes far more often)."""
        settings = self.ctx.config
        now = asyncio.get_running_loop().time()
        if not settings.manage_receiver or (
            self.receiver_checked is not None
            and now - self.receiver_checked < settings.resync_interval
        ):
            return
        await ensure_receiver(self.ctx.kube, settings)
        self.receiver_checked = now

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
            nonlocal bundle
            admin = self.ctx.receiver(url)
            try:
                if verify and self.pushed.get(url) == version:
                    current = await admin.config()
                    if current.get("version") != version:
                        self.pushed.pop(url, None)  # restarted, or someone else pushed
                if self.pushed.get(url) != version:
                    if bundle is None:
                        bundle = build_bundle(
                            evaluation.webhooks,
                            evaluation.filters,
                            evaluation.event_types,
                            secrets,
                        )
                    answer = await admin.push_config(bundle)
                    self.pushed[url] = str(answer.get("version", version))
                    log.info("receiver %s now serves configuration %s", url, version)
                if self.pushed.get(url) == version:
                    outcome.acknowledged += 1
            except (ReceiverUnavailable, ReceiverError) as exc:
                self.pushed.pop(url, None)
                outcome.errors.append(f"{url}: {exc}")

        await asyncio.gather(*(one(url) for url in urls))
        return outcome

    def desired(
        self, key: ObjectKey, evaluation: Evaluation, outcome: PushOutcome
    ) -> list[Desired]:
        if key in evaluation.conditions:
            return evaluation.conditions[key]
        if key in evaluation.routed:
            if outcome.serving:
                return [
                    Desired(
                        c.READY,
                        "True",
                        c.SERVING,
                        # No configuration version here: it changes with every
                        # resource, and would rewrite every Webhook's status each time.
                        f"served by {outcome.replicas} receiver replica"
                        f"{'s' if outcome.replicas != 1 else ''}",
                    )
                ]
            reason = (
                "no receiver replica is running"
                if outcome.replicas == 0
                else "; ".join(outcome.errors[:3]) or "the receiver has not taken the configuration"
            )
            return [Desired(c.READY, "False", c.RECEIVER_NOT_READY, reason)]
        return []

    async def write_status(
        self, key: ObjectKey, body: Mapping[str, Any], desired: list[Desired]
    ) -> None:
        if not desired:
            return
        meta = body.get("metadata") or {}
        generation = meta.get("generation")
        status = body.get("status") or {}
        current = status.get("conditions") or []
        now = self.ctx.now()
        new = list(current)
        for d in desired:
            new = c.set_condition(new, d.type, d.status, d.reason, d.message, generation, now)
        if c.same_conditions(new, current) and status.get("observedGeneration") == generation:
            return
        kind, namespace, name = key
        try:
            await self.ctx.kube.patch(
                resource_path(API_VERSION, PLURALS[kind], namespace, name, "status"),
                {"status": {"conditions": new, "observedGeneration": generation}},
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
        before = c.find(current, c.READY)
        after = c.find(new, c.READY)
        if after is not None and (before is None or before.get("status") != after.get("status")):
            ok = after["status"] == "True"
            await self.ctx.kube.post_event(
                {**body, "kind": kind, "apiVersion": API_VERSION},
                type="Normal" if ok else "Warning",
                reason=c.READY if ok else str(after["reason"]),
                message=str(after["message"]) or str(after["reason"]),
            )
