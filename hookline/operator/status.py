"""What each resource's status should say (issue 6): pure, one place for all of it.

The reconciler is the only writer of hookline's statuses: Ready from the evaluation and
the push, and — from the receivers' stats — `deliveries`, `url`, the counters and
Degraded. One writer, because a JSON merge patch replaces the whole `conditions` list:
two writers each sending the list they last saw would undo each other's condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.webhook import Alerts
from ..github.reasons import GITHUB_HOOK_READY
from . import conditions as c
from .evaluate import Desired, Evaluation, ObjectKey
from .github_sync import HookReport
from .settings import OperatorSettings
from .stats import (
    FailureWindow,
    degraded,
    event_filter_counters,
    event_type_counters,
    latest_destination_error,
    webhook_deliveries,
)


@dataclass
class PushOutcome:
    """How the last push of the configuration went, replica by replica."""

    replicas: int = 0
    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def serving(self) -> bool:
        return self.acknowledged > 0

    @property
    def complete(self) -> bool:
        return self.replicas > 0 and self.acknowledged == self.replicas


@dataclass(frozen=True)
class StatusInputs:
    evaluation: Evaluation
    outcome: PushOutcome
    settings: OperatorSettings
    now: datetime  # for lastTransitionTime
    stats: Mapping[str, Any] | None = None  # the receivers' /api/v1/stats, when read
    windows: FailureWindow | None = None
    mono: float = 0.0  # the failure windows' clock
    # The last check of each managed GitHub hook, by (namespace, name, uid) (issue 12):
    # the GitHub daemons hand it here so that this stays the one status writer.
    github: Mapping[tuple[str, str, str], HookReport] = field(default_factory=dict)


def ready(key: ObjectKey, evaluation: Evaluation, outcome: PushOutcome) -> list[Desired]:
    if key in evaluation.conditions:
        return evaluation.conditions[key]
    if key not in evaluation.routed:
        return []
    if outcome.serving:
        # No configuration version in the message: it changes with every resource and
        # would rewrite every Webhook's status each time.
        message = f"served by {outcome.acknowledged} receiver replica" + (
            "s" if outcome.acknowledged != 1 else ""
        )
        if not outcome.complete:
            # A replica without the configuration reports not ready and gets no
            # traffic; the others serve. Say so, and that it is being retried.
            message += f" of {outcome.replicas}; retrying: " + "; ".join(outcome.errors[:2])
        return [Desired(c.READY, "True", c.SERVING, message)]
    message = (
        "no receiver replica is running"
        if outcome.replicas == 0
        else "; ".join(outcome.errors[:3]) or "the receiver has not taken the configuration"
    )
    return [Desired(c.READY, "False", c.RECEIVER_NOT_READY, message)]


def github_hook(
    conditions: list[dict[str, Any]],
    desired: dict[str, Any],
    spec: Mapping[str, Any],
    report: HookReport | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """GitHubHookReady and status.github from the last check of the hook (issue 12);
    both removed when the spec has no `github` block (any more)."""
    if not spec.get("github"):
        desired["github"] = None
        return [x for x in conditions if x.get("type") != GITHUB_HOOK_READY]
    if report is None:
        return conditions  # not checked yet: what the status says stays
    desired["github"] = report.github
    return c.set_condition(
        conditions,
        GITHUB_HOOK_READY,
        "True" if report.ready else "False",
        report.reason,
        report.message,
        report.generation,
        now,
    )


def alerts_of(spec: Mapping[str, Any]) -> Alerts:
    try:
        return Alerts.model_validate(spec.get("alerts") or {})
    except ValidationError:
        # The spec is reported as InvalidSpec; the counters keep the default thresholds.
        return Alerts()


def desired_status(
    key: ObjectKey, body: Mapping[str, Any], current: Mapping[str, Any], inputs: StatusInputs
) -> dict[str, Any]:
    """The status fields this operator owns, as they should be now."""
    kind, namespace, name = key
    uid = str((body.get("metadata") or {}).get("uid"))
    if inputs.evaluation.uids.get(key) != uid:
        # Newer than the last compile (or made again under the same name since): nothing
        # to say until a pass has evaluated it — one complete first write, never the
        # old object's status on the new one.
        return {}
    conditions: list[dict[str, Any]] = [dict(x) for x in current.get("conditions") or []]
    # observedGeneration is the generation the evaluation saw, not the object's now: a
    # spec changed since says what it gives after the next pass.
    generation = inputs.evaluation.generations[key]
    desired: dict[str, Any] = {"observedGeneration": generation}
    for d in ready(key, inputs.evaluation, inputs.outcome):
        conditions = c.set_condition(
            conditions, d.type, d.status, d.reason, d.message, generation, inputs.now
        )
    stats, object_id = inputs.stats, f"{namespace}/{name}"
    if kind == "Webhook":
        spec = body.get("spec") or {}
        # None removes a url the status has from settings that no longer give one.
        desired["url"] = inputs.settings.webhook_url(str(spec.get("path") or object_id))
        conditions = github_hook(
            conditions, desired, spec, inputs.github.get((namespace, name, uid)), inputs.now
        )
        if stats is not None and "webhooks" in stats and inputs.windows is not None:
            desired["deliveries"] = webhook_deliveries(stats, object_id)
            alerts = alerts_of(spec)
            window = inputs.windows.window(object_id, inputs.mono, alerts.window_seconds)
            status, reason, message = degraded(
                window,
                alerts,
                c.find(conditions, c.DEGRADED),
                latest_destination_error(stats, object_id),
            )
            conditions = c.set_condition(
                conditions,
                c.DEGRADED,
                "True" if status == "True" else "False",
                reason,
                message,
                generation,
                inputs.now,
            )
    # A section the receiver does not send (an older one, mid-upgrade) changes nothing.
    elif kind == "EventFilter" and stats is not None and "eventFilters" in stats:
        desired.update(event_filter_counters(stats, object_id))
    elif kind == "EventType" and stats is not None and "eventTypes" in stats:
        desired.update(event_type_counters(stats, object_id))
    desired["conditions"] = conditions
    return desired
