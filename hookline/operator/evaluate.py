"""From what is in the cluster to what the receiver serves and what each status says.

Pure (issue 6): the reconciler hands in the objects kopf's indexes hold and gets back
the compiled receiver configuration and, for every resource, the conditions it should
carry. The compile step is `hookline.receiver.config.compile_config`, the same code the
standalone receiver runs on manifests, so a cluster and a directory of the same objects
serve exactly the same routes and refuse the same mistakes for the same reasons.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api import EventFilter, EventType, Webhook
from ..api.common import SecretKeyRef
from ..api.errors import format_validation_error
from ..api.resource import Resource
from ..receiver.config import ReceiverConfig, compile_config
from . import conditions as c
from .builders import generated_secret_name
from .stats import redact_urls

# The key of the Secret the operator generates for a Webhook whose auth has no
# secretRef (issue 6); its name is builders.generated_secret_name.
GENERATED_SECRET_KEY = "secret"


ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
Secrets = Mapping[tuple[str, str], Mapping[str, bytes]]


@dataclass(frozen=True)
class Desired:
    """One condition a resource should carry."""

    type: str
    status: c.ConditionStatus
    reason: str
    message: str


@dataclass
class Evaluation:
    config: ReceiverConfig
    # What was compiled: the models (generated secretRefs filled in), for the bundle.
    webhooks: list[Webhook] = field(default_factory=list)
    filters: list[EventFilter] = field(default_factory=list)
    event_types: list[EventType] = field(default_factory=list)
    # Every resource's desired conditions and the generation they speak of.
    conditions: dict[ObjectKey, list[Desired]] = field(default_factory=dict)
    generations: dict[ObjectKey, int | None] = field(default_factory=dict)
    # Webhooks that compiled into a route: Ready once a receiver serves the config.
    routed: set[ObjectKey] = field(default_factory=set)
    # The uid each evaluated object had: a status is written only to that object, never
    # to one deleted and made again under the same name since.
    uids: dict[ObjectKey, str] = field(default_factory=dict)
    # Webhooks that read a Secret the operator generates (as they were written).
    generated: dict[ObjectKey, Webhook] = field(default_factory=dict)


def decode_secret_data(body: Mapping[str, Any]) -> dict[str, bytes]:
    """A v1 Secret's `data` (base64) as bytes; undecodable keys are left out."""
    out: dict[str, bytes] = {}
    for key, value in (body.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True)
        except binascii.Error:
            continue
    return out


def object_key(body: Mapping[str, Any]) -> ObjectKey:
    meta = body.get("metadata") or {}
    return (str(body.get("kind")), str(meta.get("namespace") or "default"), str(meta.get("name")))


def parse(model: type[Resource], body: Mapping[str, Any]) -> tuple[Resource | None, str | None]:
    """The model, or the first lines of why it does not parse (for InvalidSpec)."""
    doc = {k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
    try:
        return model.model_validate(doc), None
    except ValidationError as exc:
        # The message goes to a condition, an Event and the log: a URL the user got
        # wrong keeps only its scheme and host (its path or query may be a token).
        return None, redact_urls("; ".join(format_validation_error(exc)[:5]))


def with_generated_secret(webhook: Webhook) -> Webhook:
    """The Webhook as the receiver should see it: pointing at its generated Secret."""
    if not webhook.spec.auth.needs_secret or webhook.spec.auth.secret_ref is not None:
        return webhook
    auth = webhook.spec.auth.model_copy(
        update={
            "secret_ref": SecretKeyRef(
                name=generated_secret_name(webhook.metadata.name), key=GENERATED_SECRET_KEY
            )
        }
    )
    spec = webhook.spec.model_copy(update={"auth": auth})
    return webhook.model_copy(update={"spec": spec})


# A parsed object, or why it does not parse, by what identifies its spec: the same
# uid and generation always parse the same (the spec changes only with the generation).
ParseCache = dict[tuple[str, str, int | None], tuple[Resource | None, str | None]]


def evaluate(
    webhooks: Iterable[Mapping[str, Any]],
    filters: Iterable[Mapping[str, Any]],
    event_types: Iterable[Mapping[str, Any]],
    secrets: Secrets,
    cache: ParseCache | None = None,
) -> Evaluation:
    """`cache` (kept by the caller between calls) spares re-parsing unchanged objects:
    with a thousand Webhooks, parsing them all is a third of a pass."""
    result = Evaluation(config=ReceiverConfig())
    seen: ParseCache = {}
    parsed: dict[str, list[Resource]] = {"Webhook": [], "EventFilter": [], "EventType": []}
    models: dict[str, type[Resource]] = {
        "Webhook": Webhook,
        "EventFilter": EventFilter,
        "EventType": EventType,
    }
    for kind, bodies in (
        ("Webhook", webhooks),
        ("EventFilter", filters),
        ("EventType", event_types),
    ):
        for body in bodies:
            key = object_key({**body, "kind": kind})
            meta = body.get("metadata") or {}
            result.generations[key] = meta.get("generation")
            result.uids[key] = str(meta.get("uid"))
            cache_key = (kind, str(meta.get("uid") or key), meta.get("generation"))
            cached = cache.get(cache_key) if cache is not None and meta.get("uid") else None
            model, error = cached if cached is not None else parse(models[kind], body)
            seen[cache_key] = (model, error)
            if model is None:
                result.conditions[key] = [
                    Desired(c.READY, "False", c.INVALID_SPEC, error or "the spec does not parse")
                ]
                continue
            parsed[kind].append(model)
            if isinstance(model, Webhook) and model.spec.auth.needs_secret:
                if model.spec.auth.secret_ref is None:
                    result.generated[key] = model

    if cache is not None:
        # Only what is still there: deleted objects leave the cache with this pass.
        cache.clear()
        cache.update(seen)
    result.webhooks = [with_generated_secret(w) for w in parsed["Webhook"]]  # type: ignore[arg-type]
    result.filters = parsed["EventFilter"]  # type: ignore[assignment]
    result.event_types = parsed["EventType"]  # type: ignore[assignment]
    config = compile_config(result.webhooks, result.filters, result.event_types, secrets)
    result.config = config

    problems: dict[ObjectKey, list[tuple[str, str]]] = {}
    for problem in config.problems:
        ns, _, name = problem.webhook.partition("/")
        problems.setdefault((problem.kind, ns, name), []).append((problem.reason, problem.message))

    users: dict[tuple[str, str, str], int] = {}
    routed_keys = {route.key for route in config.routes.values()}
    for webhook in result.webhooks:
        key = ("Webhook", webhook.metadata.namespace or "default", webhook.metadata.name)
        found = problems.get(key)
        if found:
            # The first reason is the condition's; every message is in it, so one
            # `kubectl describe` shows all that is missing at once.
            result.conditions[key] = [
                Desired(c.READY, "False", found[0][0], "; ".join(m for _, m in found))
            ]
            continue
        if webhook.key in routed_keys:
            result.routed.add(key)
        for ref in webhook.spec.filters:
            users[("EventFilter", key[1], ref.name)] = (
                users.get(("EventFilter", key[1], ref.name), 0) + 1
            )

    for flt in result.filters:
        key = ("EventFilter", flt.metadata.namespace or "default", flt.metadata.name)
        count = users.get(key, 0)
        result.conditions[key] = [
            Desired(
                c.READY,
                "True",
                c.COMPILED,
                f"compiled; used by {count} Webhook{'s' if count != 1 else ''}",
            )
        ]
    for et in result.event_types:
        key = ("EventType", et.metadata.namespace or "default", et.metadata.name)
        found = problems.get(key)
        desired = (
            [Desired(c.READY, "False", found[0][0], found[0][1])]
            if found
            else [
                Desired(c.READY, "True", c.COMPILED, f"{et.spec.type} {et.spec.version} compiled")
            ]
        )
        if et.spec.deprecated:
            desired.append(
                Desired(
                    c.DEPRECATED,
                    "True",
                    c.DEPRECATED,
                    f"{et.spec.type} {et.spec.version} is deprecated; move its Webhooks to a "
                    "newer version",
                )
            )
        result.conditions[key] = desired
    return result
