"""Compile resources into the receiver's routing table.

"Load resources → compile routes" is this one piece of code, used by the standalone
receiver (manifests from a directory, issue 3) and the operator (resources from the
cluster, issue 6), so both serve exactly the same thing for the same resources.
A Webhook that cannot be served (a missing Secret, a path another Webhook already
holds) is left out and listed in `problems` with the reason, never served half-built.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpath_rfc9535

from ..api import EventFilter, EventType, Webhook
from ..api.common import SecretKeyRef, compile_jsonpath
from ..api.manifests import ManifestSet
from ..api.references import missing_references, resolve_event_type
from ..api.webhook import AuthType
from ..store.outbox import PRIORITIES
from .auth import Verifier, build_verifier, credential_headers
from .eventtypes import CompiledEventType, EventTypeRegistry, compile_event_type, registry_for
from .filters import CompiledFilter, compile_filter
from .forward import CompiledDestination, destination_url

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The sender's own delivery id, when the Webhook names no idempotencyKey (issue 3).
DEFAULT_DEDUP_HEADERS = {
    AuthType.GITHUB: "X-GitHub-Delivery",
    AuthType.STANDARD_WEBHOOKS: "webhook-id",
}
MISSING_SECRET_REF = "SecretRefRequired"
EVENT_TYPE_INVALID = "EventTypeInvalid"
PATH_CONFLICT = "PathConflict"
BAD_SECRET = "SecretInvalid"
# Secret rotation (issue 6): while `<key>.previous` is in the referenced Secret, the old
# value stays valid beside the new one. The operator writes it on rotation and removes
# it when the overlap window (24 h by default) ends; the receiver only reads it.
PREVIOUS_SECRET_SUFFIX = ".previous"


@dataclass(frozen=True)
class Problem:
    """Why a resource is not served; `reason` is a condition reason (CamelCase)."""

    webhook: str  # the key (<namespace>/<name>) of the resource, "" for a file
    reason: str
    message: str
    kind: str = "Webhook"


@dataclass(frozen=True)
class Route:
    """Everything the ingest path needs for one Webhook, precomputed."""

    key: str  # <namespace>/<name>
    path: str  # served at /hooks/<path>
    webhook: Webhook
    verifier: Verifier
    sensitive_headers: frozenset[str]
    max_body_bytes: int
    source_networks: tuple[IPNetwork, ...]
    rate: float | None
    burst: int
    dedup_header: str | None
    dedup_path: jsonpath_rfc9535.JSONPathQuery | None
    retention_seconds: float
    requires_json: bool  # refuse what is not JSON (415/400)
    reads_body: bool  # parse a JSON body when one is sent (an EventType may look inside)
    event_types: EventTypeRegistry
    unknown_event_types: str  # accept | reject
    filters: tuple[tuple[str, CompiledFilter], ...]  # (<namespace>/<name>, filter)
    destinations: tuple[CompiledDestination, ...]
    priority: int  # PRIORITIES[spec.priority]
    # A digest of everything above but secrets' values, so limiter state survives a
    # reload that did not change the route.
    fingerprint: str = ""

    def destination(self, name: str) -> CompiledDestination | None:
        return next((d for d in self.destinations if d.name == name), None)


@dataclass(frozen=True)
class ReceiverConfig:
    routes: dict[str, Route] = field(default_factory=dict)  # by path
    problems: list[Problem] = field(default_factory=list)
    # Digest of the whole configuration: what /readyz and the operator report.
    version: str = ""

    # The same routes by Webhook key, for the dispatcher (rows name their Webhook).
    by_key: dict[str, Route] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {r.key: r for r in self.routes.values()})

    def route_for(self, webhook_key: str) -> Route | None:
        return self.by_key.get(webhook_key)


# (namespace, name) -> key -> value
Secrets = Mapping[tuple[str, str], Mapping[str, bytes]]


def auth_secrets(webhook: Webhook, secrets: Secrets) -> list[bytes]:
    """The secrets callers may authenticate with: the current one, and during a
    rotation's overlap window the previous one too (issue 6)."""
    ref = webhook.spec.auth.secret_ref
    if ref is None:
        return []
    data = secrets.get((webhook.metadata.namespace or "default", ref.name), {})
    if ref.key not in data:
        return []
    previous = data.get(ref.key + PREVIOUS_SECRET_SUFFIX)
    # An empty previous value is no secret at all: never accept it (build_verifier
    # would refuse the whole route).
    return [data[ref.key], previous] if previous else [data[ref.key]]


def _secret(namespace: str, ref: SecretKeyRef, secrets: Secrets) -> bytes | None:
    return secrets.get((namespace, ref.name), {}).get(ref.key)


def _previous_secret(namespace: str, ref: SecretKeyRef, secrets: Secrets) -> bytes | None:
    return secrets.get((namespace, ref.name), {}).get(ref.key + PREVIOUS_SECRET_SUFFIX) or None


def _destinations(webhook: Webhook, secrets: Secrets) -> tuple[CompiledDestination, ...]:
    namespace = webhook.metadata.namespace or "default"
    allow = webhook.spec.destination_policy.allow_link_local
    return tuple(
        CompiledDestination(
            name=dest.name,
            url=destination_url(dest, namespace),
            spec=dest,
            signing_secret=(
                _secret(namespace, dest.signing.secret_ref, secrets) if dest.signing else None
            ),
            # During a rotation's overlap the destination may still hold the old
            # secret: Standard Webhooks signs with both (issue 6).
            previous_signing_secret=(
                _previous_secret(namespace, dest.signing.secret_ref, secrets)
                if dest.signing
                else None
            ),
            allow_link_local=allow,
        )
        for dest in webhook.spec.destinations
    )


def _route(
    webhook: Webhook,
    secrets: Secrets,
    event_types: EventTypeRegistry,
    filters: tuple[tuple[str, CompiledFilter], ...],
) -> Route:
    spec = webhook.spec
    verifier = build_verifier(spec.auth, auth_secrets(webhook, secrets))
    limits = spec.limits
    rate = limits.requests_per_second
    burst = limits.burst or (max(1, int(rate * 2)) if rate else 0)
    dedup_header = None
    dedup_path = None
    if spec.idempotency_key is not None:
        dedup_header = spec.idempotency_key.header
        if spec.idempotency_key.path is not None:
            dedup_path = compile_jsonpath(spec.idempotency_key.path)
    else:
        dedup_header = DEFAULT_DEDUP_HEADERS.get(spec.auth.type)
    # The body must parse as JSON when something reads fields out of it. (A recognised
    # EventType with a schema needs one too; the pipeline checks that per delivery.)
    requires_json = dedup_path is not None or spec.correlation is not None or bool(filters)
    fingerprint = hashlib.sha256(
        json.dumps(webhook.spec.to_k8s(), sort_keys=True).encode()
    ).hexdigest()[:16]
    return Route(
        key=webhook.key,
        path=webhook.path,
        webhook=webhook,
        verifier=verifier,
        sensitive_headers=credential_headers(spec.auth),
        max_body_bytes=limits.max_body_bytes,
        source_networks=tuple(ipaddress.ip_network(c) for c in limits.source_cidrs),
        rate=rate,
        burst=burst,
        dedup_header=dedup_header,
        dedup_path=dedup_path,
        retention_seconds=webhook.retention_seconds,
        requires_json=requires_json,
        reads_body=requires_json
        or any(
            c.resource.spec.match.body is not None or c.resource.spec.schema_ is not None
            for c in event_types.allowed
        ),
        event_types=event_types,
        unknown_event_types=spec.unknown_event_types,
        filters=filters,
        destinations=_destinations(webhook, secrets),
        priority=PRIORITIES[spec.priority],
        fingerprint=fingerprint,
    )


def compile_config(
    webhooks: Iterable[Webhook],
    filters: Iterable[EventFilter],
    event_types: Iterable[EventType],
    secrets: Secrets,
) -> ReceiverConfig:
    """Pure: the same resources and secrets always give the same configuration."""
    filters = list(filters)
    event_types = list(event_types)
    routes: dict[str, Route] = {}
    problems: list[Problem] = []
    # Each schema and filter is compiled once per load, whatever the Webhooks sharing it.
    compiled_types: dict[str, CompiledEventType] = {}
    for et in event_types:
        try:
            compiled_types[et.key] = compile_event_type(et)
        except ValueError as exc:
            problems.append(Problem(et.key, EVENT_TYPE_INVALID, str(exc), kind="EventType"))
    compiled_filters = {f.key: compile_filter(f) for f in filters}
    # Indexed by namespace once: looking them up per Webhook made a push of a thousand
    # Webhooks with their thousand Secrets quadratic (issue 6 benchmark).
    filter_names: dict[str | None, set[str]] = {}
    for f in filters:
        filter_names.setdefault(f.metadata.namespace, set()).add(f.metadata.name)
    types_by_ns: dict[str | None, list[EventType]] = {}
    for t in event_types:
        types_by_ns.setdefault(t.metadata.namespace, []).append(t)
    secret_keys: dict[str, dict[str, set[str]]] = {}
    for (sns, name), data in secrets.items():
        secret_keys.setdefault(sns, {})[name] = set(data)
    for webhook in sorted(webhooks, key=lambda w: w.key):
        ns = webhook.metadata.namespace or "default"
        namespace_types = types_by_ns.get(ns, [])
        missing = missing_references(
            webhook,
            filters=filter_names.get(ns, set()),
            event_types=namespace_types,
            secrets=secret_keys.get(ns, {}),
        )
        if missing:
            problems += [Problem(webhook.key, m.reason, m.message) for m in missing]
            continue
        if webhook.spec.auth.needs_secret and webhook.spec.auth.secret_ref is None:
            problems.append(
                Problem(
                    webhook.key,
                    MISSING_SECRET_REF,
                    "spec.auth.secretRef is required here: only the operator generates secrets",
                )
            )
            continue
        holder = routes.get(webhook.path)
        if holder is not None:
            problems.append(
                Problem(
                    webhook.key,
                    PATH_CONFLICT,
                    f"path {webhook.path!r} is already served for Webhook {holder.key}",
                )
            )
            continue
        broken = [
            ref_key
            for ref in webhook.spec.event_types
            if (found := resolve_event_type(ref, namespace_types)) is not None
            and (ref_key := found.key) not in compiled_types
        ]
        if broken:
            problems.append(
                Problem(
                    webhook.key,
                    EVENT_TYPE_INVALID,
                    f"EventType {broken[0]} has a schema that cannot be compiled",
                )
            )
            continue
        registry = registry_for(
            webhook,
            [t for t in namespace_types if t.key in compiled_types],
            {
                t.metadata.name: compiled_types[t.key]
                for t in namespace_types
                if t.key in compiled_types
            },
        )
        route_filters = tuple(
            (f"{ns}/{ref.name}", compiled_filters[f"{ns}/{ref.name}"])
            for ref in webhook.spec.filters
        )
        try:
            routes[webhook.path] = _route(webhook, secrets, registry, route_filters)
        except ValueError as exc:
            problems.append(Problem(webhook.key, BAD_SECRET, str(exc)))
    # What identifies this configuration: every route with its secrets' digests, and
    # every EventType and EventFilter spec (a changed schema is a new configuration).
    version = hashlib.sha256(
        json.dumps(
            [
                sorted(
                    (path, route.fingerprint, _secret_digest(route, secrets))
                    for path, route in routes.items()
                ),
                sorted(
                    [(t.kind, t.key, t.spec.to_k8s()) for t in event_types]
                    + [(f.kind, f.key, f.spec.to_k8s()) for f in filters]
                ),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return ReceiverConfig(routes=routes, problems=problems, version=version)


def _secret_digest(route: Route, secrets: Secrets) -> str:
    # Part of the version, so a rotated secret is a new configuration; a digest, so the
    # version reveals nothing of the secret. Signing secrets count too: the operator
    # compares versions to know a rotation reached every replica (issue 6).
    values = auth_secrets(route.webhook, secrets)
    for dest in route.destinations:
        values += [dest.signing_secret or b"", dest.previous_signing_secret or b""]
    return hashlib.sha256(b"\0".join(values)).hexdigest()[:16]


INVALID_MANIFEST = "InvalidManifest"


def config_from_manifests(manifests: ManifestSet) -> ReceiverConfig:
    """The standalone receiver's configuration; documents that do not parse are listed
    as problems and the rest is served, so one typo does not take every Webhook down."""
    config = compile_config(
        manifests.webhooks, manifests.filters, manifests.event_types, manifests.secrets
    )
    invalid = [Problem("", INVALID_MANIFEST, line) for line in manifests.errors]
    return ReceiverConfig(config.routes, invalid + config.problems, config.version)


def describe(config: ReceiverConfig) -> dict[str, Any]:
    """A secret-free summary for logs and the admin API."""
    return {
        "version": config.version,
        "routes": {path: route.key for path, route in sorted(config.routes.items())},
        "problems": [
            {"kind": p.kind, "key": p.webhook, "reason": p.reason, "message": p.message}
            for p in config.problems
        ],
    }
