"""The receiver's Deployment, Services, Ingress and NetworkPolicy, created and kept in
shape by the operator (issue 6: "drift is repaired").

The desired objects come from the pure builders; this module only compares and writes.
It runs from the reconciler, so only the acting replica (kopf peering) touches them, and
it looks only in the operator's own namespace (a namespaced Role suffices: no
cluster-wide watch of Deployments).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .builders import (
    MANAGED_BY,
    build_admin_network_policy,
    build_receiver_admin_service,
    build_receiver_deployment,
    build_receiver_ingress,
    build_receiver_service,
    drift_patch,
)
from .kube import KubeClient, KubeError, resource_path
from .settings import OperatorSettings

log = logging.getLogger(__name__)

PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
}


# A digest of the admin token on the receiver pods: a new token (its Secret deleted and
# made again, or edited) rolls them, since they read the mounted token at start.
TOKEN_DIGEST_ANNOTATION = "hookline.dev/admin-token-sha256"


def desired_objects(
    settings: OperatorSettings, admin_token: str | None = None
) -> list[dict[str, Any]]:
    """Pure: everything the operator runs the receiver with, from its settings."""
    annotations = (
        {TOKEN_DIGEST_ANNOTATION: hashlib.sha256(admin_token.encode()).hexdigest()[:16]}
        if admin_token
        else None
    )
    objects = [
        build_receiver_deployment(settings, pod_annotations=annotations),
        build_receiver_service(settings),
        build_receiver_admin_service(settings),
    ]
    if (ingress := build_receiver_ingress(settings)) is not None:
        objects.append(ingress)
    if settings.network_policy_enabled:
        objects.append(build_admin_network_policy(settings))
    return objects


def object_path(obj: Mapping[str, Any], *, named: bool = True) -> str:
    meta = obj["metadata"]
    return resource_path(
        obj["apiVersion"],
        PLURALS[obj["kind"]],
        meta["namespace"],
        meta["name"] if named else None,
    )


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


async def ensure_receiver(
    kube: KubeClient, settings: OperatorSettings, admin_token: str | None = None
) -> Outcome:
    """Create what is missing, put back what drifted; leave everything else alone."""
    outcome = Outcome()
    for desired in desired_objects(settings, admin_token):
        what = f"{desired['kind']} {desired['metadata']['namespace']}/{desired['metadata']['name']}"
        actual = await kube.get(object_path(desired))
        if actual is None:
            try:
                await kube.create(object_path(desired, named=False), desired)
            except KubeError as exc:
                if exc.status != 409:  # created meanwhile: compared on the next pass
                    raise
            outcome.created.append(what)
            log.info("created %s", what)
            continue
        patch = drift_patch(desired, actual)
        if patch is not None:
            await kube.patch(object_path(desired), patch)
            outcome.repaired.append(what)
            # Someone edited an object the operator owns: say so, it will happen again.
            log.warning("repaired drift in %s: %s", what, sorted(patch))
    if build_receiver_ingress(settings) is None:
        await remove_disabled_ingress(kube, settings, outcome)
    return outcome


async def remove_disabled_ingress(
    kube: KubeClient, settings: OperatorSettings, outcome: Outcome
) -> None:
    """An Ingress the operator made, once disabled, goes: left behind it would keep the
    receiver published on the internet after the settings said not to."""
    path = resource_path(
        "networking.k8s.io/v1", "ingresses", settings.namespace, settings.receiver_name
    )
    found = await kube.get(path)
    labels = ((found or {}).get("metadata") or {}).get("labels") or {}
    if found is not None and labels.get("app.kubernetes.io/managed-by") == MANAGED_BY:
        await kube.delete(path)
        outcome.removed.append(f"Ingress {settings.namespace}/{settings.receiver_name}")
        log.warning("removed the receiver's Ingress: the settings disable it")
