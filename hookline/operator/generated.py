"""Secrets the operator makes (issue 6): a Webhook's generated auth secret, and the
receivers' admin token (which is also the anchor the reconciler daemon runs on)."""

from __future__ import annotations

import logging
import secrets as random_secrets
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.common import API_VERSION
from ..api.webhook import Webhook
from .annotations import encode_secret
from .builders import build_admin_token_secret, build_generated_secret, generated_secret_name
from .context import OperatorContext
from .evaluate import GENERATED_SECRET_KEY
from .kube import KubeError, resource_path

log = logging.getLogger(__name__)


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The Webhook as its generated Secret's controller: garbage-collected with it.

    Not kopf.adopt(): that also copies the owner's labels, Argo CD's tracking label
    among them, which would make Argo CD take the Secret for one of its own."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner.get("kind", "Webhook"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        # No blockOwnerDeletion: it would need `update` on webhooks/finalizers where
        # OwnerReferencesPermissionEnforcement is on, for no gain (nothing waits on it).
    }


async def ensure_generated_secret(
    ctx: OperatorContext, webhook: Webhook, body: Mapping[str, Any]
) -> None:
    """A Webhook whose auth needs a secret and names none gets one (32 random bytes),
    in a Secret it owns: deleted with it, never overwritten once made, made again if
    someone deletes it."""
    if not webhook.spec.auth.needs_secret or webhook.spec.auth.secret_ref is not None:
        return
    namespace = webhook.metadata.namespace or "default"
    name = generated_secret_name(webhook.metadata.name)
    path = resource_path("v1", "secrets", namespace, name)
    if await ctx.kube.get(path) is not None:
        return
    # Printable text, not raw bytes: callers paste it into their provider's settings
    # (whsec_… for Standard Webhooks, as its spec fixes; rotation writes the same).
    value = encode_secret(random_secrets.token_bytes(32), webhook.spec.auth.type.value)
    secret = build_generated_secret(webhook.metadata.name, namespace, GENERATED_SECRET_KEY, value)
    secret["metadata"]["ownerReferences"] = [owner_reference(body)]
    try:
        await ctx.kube.create(resource_path("v1", "secrets", namespace), secret)
    except KubeError as exc:
        if exc.status != 409:  # made meanwhile by a previous attempt: fine
            raise kopf.TemporaryError(f"cannot create Secret {name}: {exc}", delay=5) from exc
        return
    await ctx.kube.post_event(
        {**body, "kind": "Webhook", "apiVersion": API_VERSION},
        type="Normal",
        reason="SecretGenerated",
        message=f"generated Secret {name} (key {GENERATED_SECRET_KEY}) for spec.auth",
    )
    log.info("generated Secret %s/%s for Webhook %s", namespace, name, webhook.key)


async def ensure_admin_token(ctx: OperatorContext) -> dict[str, Any]:
    """The token receivers require on their admin API; also the object the reconciler
    daemon runs on (so kopf stops it when peering pauses this operator). Returns the
    Secret as the API server has it."""
    settings = ctx.config
    path = resource_path("v1", "secrets", settings.namespace, settings.admin_token_secret)
    if (found := await ctx.kube.get(path)) is not None:
        return found
    token = encode_secret(random_secrets.token_bytes(32))
    try:
        return await ctx.kube.create(
            resource_path("v1", "secrets", settings.namespace),
            build_admin_token_secret(settings, token),
        )
    except KubeError as exc:
        if exc.status != 409:
            raise
    # Made meanwhile (another replica, a previous attempt): the one that is there. Gone
    # again already: try later, never an empty object (login would read it as uid-less).
    if (found := await ctx.kube.get(path)) is None:
        raise kopf.TemporaryError(f"Secret {path} was deleted while being created", delay=1)
    return found
