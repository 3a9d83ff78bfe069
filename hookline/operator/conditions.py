"""The one helper that writes metav1.Conditions (issue 6; Flux's notification-controller).

Conditions, not phases, so that `kubectl wait --for=condition=Ready`, Argo CD and Flux
(kstatus) read hookline's resources without custom health scripts. `lastTransitionTime`
changes only when a condition's status does; `observedGeneration` says which spec the
condition speaks of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
DEGRADED = "Degraded"
DEPRECATED = "Deprecated"

# Ready reasons (CamelCase, as metav1.Condition requires). A reason is a stable API:
# alerts and runbooks match on it, so these are constants, never ad-hoc strings.
SERVING = "Serving"  # Webhook compiled and served by every receiver replica
COMPILED = "Compiled"  # EventFilter / EventType compiled into the receiver config
INVALID_SPEC = "InvalidSpec"  # the spec does not parse with the shared models
RECEIVER_NOT_READY = "ReceiverNotReady"  # no receiver replica took the configuration


def _time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """`conditions` with `type` set; pure. The others are kept as they are, in order."""
    result: list[dict[str, Any]] = []
    found = False
    for existing in conditions or ():
        if existing.get("type") != type:
            result.append(dict(existing))
            continue
        found = True
        changed = existing.get("status") != status
        result.append(
            _condition(
                type,
                status,
                reason,
                message,
                generation,
                _time(now) if changed else str(existing.get("lastTransitionTime") or _time(now)),
            )
        )
    if not found:
        result.append(_condition(type, status, reason, message, generation, _time(now)))
    return result


def _condition(
    type: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    transition: str,
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        # metav1.Condition caps the message at 32 KiB.
        "message": message[:32768],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def find(conditions: Iterable[Mapping[str, Any]] | None, type: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type), None)
