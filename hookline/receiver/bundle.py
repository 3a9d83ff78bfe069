"""The configuration bundle the operator pushes to each receiver replica (issue 6).

A bundle is JSON::

    {"resources": [<Webhook/EventFilter/EventType as resource.to_k8s()>, ...],
     "secrets":   [{"namespace": "ci", "name": "ci-runs-secret",
                    "data": {"secret": "<base64>", "secret.previous": "<base64>"}}, ...]}

It travels over HTTP to the receiver's admin port (PUT /api/v1/config), never through a
ConfigMap: Secrets stay out of the API server's plain objects (DESIGN.md). Only the keys
the receiver reads are sent — auth and destination signing secrets, with their
`<key>.previous` rotation entries — not whole Secrets.

The receiver parses a bundle with the manifest loader's own `add_document`, so
"load resources → compile routes" stays one piece of code whether the resources came
from files (`hookline receiver --manifests`) or from the operator.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from ..api import EventFilter, EventType, Webhook
from ..api.common import SecretKeyRef
from ..api.manifests import ManifestSet, add_document
from ..api.resource import Resource
from .config import PREVIOUS_SECRET_SUFFIX, ReceiverConfig, Secrets, compile_config

RESOURCE_KINDS = ("Webhook", "EventFilter", "EventType")
# What the receiver keeps of metadata: who the resource is. Labels, annotations (often
# a whole last-applied-configuration) and managedFields are never read by the receiver
# and would make a thousand-Webhook bundle several times larger.
_METADATA_KEPT = ("name", "namespace", "uid", "generation")


def _slim(resource: Resource) -> dict[str, Any]:
    doc = resource.to_k8s()
    meta = doc.get("metadata", {})
    doc["metadata"] = {k: meta[k] for k in _METADATA_KEPT if k in meta}
    doc.pop("status", None)  # the receiver serves specs; status is the operator's
    return doc


def _wanted_keys(webhook: Webhook) -> tuple[list[SecretKeyRef], list[SecretKeyRef]]:
    """(refs whose values the receiver needs, refs it only needs to see exist)."""
    spec = webhook.spec
    needed: list[SecretKeyRef] = []
    if spec.auth.secret_ref is not None:
        needed.append(spec.auth.secret_ref)
    needed += [d.signing.secret_ref for d in spec.destinations if d.signing is not None]
    # The GitHub token (or App key) manages the upstream hook; only the operator uses it.
    # Its key is listed with an empty value so that the shared reference check
    # (SecretNotFound) reads the same on both sides, but the credential itself never
    # reaches a receiver.
    presence: list[SecretKeyRef] = [spec.github.credential_ref[1]] if spec.github else []
    return needed, presence


def build_bundle(
    webhooks: Iterable[Webhook],
    filters: Iterable[EventFilter],
    event_types: Iterable[EventType],
    secrets: Secrets,
) -> dict[str, Any]:
    """Pure: the JSON-able bundle of these resources and the Secret keys they read.

    Referenced Secrets or keys that do not exist are left out: the receiver then reports
    the same SecretNotFound problem the operator's own compile does.
    """
    webhooks = sorted(webhooks, key=lambda w: w.key)
    resources: list[Resource] = [
        *sorted(event_types, key=lambda r: r.key),
        *sorted(filters, key=lambda r: r.key),
        *webhooks,
    ]
    chosen: dict[tuple[str, str], dict[str, str]] = {}
    for webhook in webhooks:
        namespace = webhook.metadata.namespace or "default"
        needed, presence = _wanted_keys(webhook)
        for ref in presence:
            data = secrets.get((namespace, ref.name))
            if data is not None and ref.key in data:
                chosen.setdefault((namespace, ref.name), {}).setdefault(ref.key, "")
        for ref in needed:
            data = secrets.get((namespace, ref.name))
            if data is None:
                continue
            out = chosen.setdefault((namespace, ref.name), {})
            for key in (ref.key, ref.key + PREVIOUS_SECRET_SUFFIX):
                if key in data:
                    out[key] = base64.b64encode(data[key]).decode("ascii")
    return {
        "resources": [_slim(r) for r in resources],
        "secrets": [
            {"namespace": ns, "name": name, "data": dict(sorted(data.items()))}
            for (ns, name), data in sorted(chosen.items())
        ],
    }


def bundle_to_manifests(doc: Any) -> ManifestSet:
    """Parse a bundle as the manifest loader parses files: what is bad becomes an error
    line in `errors` (no values of Secrets in them), the rest is parsed."""
    result = ManifestSet()
    if not isinstance(doc, dict):
        result.errors.append("bundle: not a JSON object with resources and secrets")
        return result
    resources = doc.get("resources", [])
    secrets = doc.get("secrets", [])
    if not isinstance(resources, list):
        result.errors.append("resources: not a list")
        resources = []
    if not isinstance(secrets, list):
        result.errors.append("secrets: not a list")
        secrets = []
    for i, item in enumerate(resources):
        where = f"resources[{i}]"
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in RESOURCE_KINDS:
            # add_document would skip other kinds, or read a Secret here; a bundle
            # holds exactly these three, so anything else is the sender's mistake.
            result.errors.append(
                f"{where}: kind {kind!r} is not one of {', '.join(RESOURCE_KINDS)}"
            )
            continue
        add_document(result, item, where)
    for i, item in enumerate(secrets):
        where = f"secrets[{i}]"
        problem = _secret_shape_problem(item)
        if problem is not None:
            result.errors.append(f"{where}: {problem}")
            continue
        secret_doc = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"namespace": item["namespace"], "name": item["name"]},
            "data": item["data"],
        }
        add_document(result, secret_doc, where)
    return result


def compile_bundle(payload: Any) -> tuple[ReceiverConfig | None, list[str]]:
    """(the configuration, []) of a parsed bundle, or (None, its errors). One function
    for a push and for the stored push read back at start-up (issue 6 review), so both
    serve the same thing. Blocking: run it off the event loop."""
    manifests = bundle_to_manifests(payload)
    if manifests.errors:
        return None, manifests.errors
    config = compile_config(
        manifests.webhooks, manifests.filters, manifests.event_types, manifests.secrets
    )
    return config, []


def _secret_shape_problem(item: Any) -> str | None:
    # Messages name fields, never values: the data are secrets.
    if not isinstance(item, dict):
        return "not an object with namespace, name and data"
    for name in ("namespace", "name"):
        if not isinstance(item.get(name), str) or not item[name]:
            return f"{name} must be a non-empty string"
    data = item.get("data")
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return "data must be an object of base64 strings"
    return None
