"""kopf handlers for Webhook, EventFilter, EventType and the Secrets they read (issue 6).

Thin, as in crate-operator's main.py: each handler parses what it was given and calls a
plain function. kopf's indexes hold the cluster's objects; the reconciler daemon
(hookline.operator.reconcile) compiles them into the receiver configuration and writes
the Ready conditions; handlers here generate Secrets and tell the reconciler when to look.
Handler and index ids are constants: kopf stores progress under them, so renaming one
would make kopf forget what it already did.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets as random_secrets
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.common import API_VERSION, GROUP, VERSION
from ..api.webhook import Webhook
from . import conditions as c
from .annotations import encode_secret
from .builders import (
    ADMIN_TOKEN_KEY,
    GENERATED_LABEL,
    WEBHOOK_ANNOTATION,
    build_admin_token_secret,
    build_generated_secret,
    generated_secret_name,
)
from .context import OperatorContext
from .evaluate import (
    GENERATED_SECRET_KEY,
    decode_secret_data,
    parse,
)
from .ids import (
    EVENT_TYPE_INDEX,
    FILTER_INDEX,
    RECONCILER_DAEMON,
    REFERENCES_INDEX,
    SECRET_INDEX,
    WEBHOOK_HANDLER,
    WEBHOOK_INDEX,
)
from .kube import KubeError, resource_path
from .reconcile import Reconciler, thaw

log = logging.getLogger(__name__)


def secret_references(body: Mapping[str, Any]) -> dict[tuple[str, str, str], str]:
    """("Secret", namespace, name) -> the Webhook's key, for every Secret it reads
    (its generated one included): which Secret changes matter to the receiver."""
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name")
    spec = body.get("spec") or {}
    names = {generated_secret_name(str(name))}
    if (ref := (spec.get("auth") or {}).get("secretRef")) and ref.get("name"):
        names.add(ref["name"])
    for dest in spec.get("destinations") or []:
        if (ref := (dest.get("signing") or {}).get("secretRef")) and ref.get("name"):
            names.add(ref["name"])
    if (ref := (spec.get("github") or {}).get("tokenSecretRef")) and ref.get("name"):
        names.add(ref["name"])
    return {("Secret", namespace, secret): f"{namespace}/{name}" for secret in names}


def data_digest(body: Mapping[str, Any]) -> str:
    """Identifies a Secret's data without holding it (nothing of it can be read back)."""
    data = sorted((str(k), str(v)) for k, v in (body.get("data") or {}).items())
    return hashlib.sha256(repr(data).encode()).hexdigest()


class SeenVersions:
    """What the reconciler was last told of each object, so that it is poked only when
    something it computes from changed."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str, str], str] = {}

    def changed(self, event: str | None, body: Mapping[str, Any], version: str) -> bool:
        meta = body.get("metadata") or {}
        key = (str(body.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        if event == "DELETED":
            self._versions.pop(key, None)
            return True
        # The uid too: an object deleted and created again under the same name.
        version = f"{meta.get('uid')}:{version}"
        if self._versions.get(key) == version:
            return False
        self._versions[key] = version
        return True


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
        "blockOwnerDeletion": True,
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


async def ensure_admin_token(ctx: OperatorContext) -> None:
    """The token receivers require on their admin API; also the object the reconciler
    daemon runs on (so kopf stops it when peering pauses this operator)."""
    settings = ctx.config
    path = resource_path("v1", "secrets", settings.namespace, settings.admin_token_secret)
    if await ctx.kube.get(path) is not None:
        return
    token = base64.urlsafe_b64encode(random_secrets.token_bytes(32)).rstrip(b"=")
    try:
        await ctx.kube.create(
            resource_path("v1", "secrets", settings.namespace),
            build_admin_token_secret(settings, token),
        )
    except KubeError as exc:
        if exc.status != 409:
            raise


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Attach every core handler to `registry`, sharing `ctx`."""

    # --- indexes: the cluster as the reconciler sees it -----------------------------

    @kopf.index(GROUP, VERSION, "webhooks", id=WEBHOOK_INDEX, registry=registry)
    def index_webhooks(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> Any:
        return {(namespace, name): thaw(body)}

    @kopf.index(GROUP, VERSION, "eventfilters", id=FILTER_INDEX, registry=registry)
    def index_filters(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> Any:
        return {(namespace, name): thaw(body)}

    @kopf.index(GROUP, VERSION, "eventtypes", id=EVENT_TYPE_INDEX, registry=registry)
    def index_event_types(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> Any:
        return {(namespace, name): thaw(body)}

    @kopf.index(GROUP, VERSION, "webhooks", id=REFERENCES_INDEX, registry=registry)
    def index_references(body: kopf.Body, **_: Any) -> Any:
        return secret_references(body)

    @kopf.index("v1", "secrets", id=SECRET_INDEX, registry=registry)
    def index_secrets(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> Any:
        # Values stay in this process's memory: they reach receivers only inside the
        # authenticated configuration push, never a ConfigMap, status or log (DESIGN.md).
        return {(namespace, name): ((namespace, name), decode_secret_data(body))}

    # --- what makes the reconciler look again ---------------------------------------

    seen = SeenVersions()

    @kopf.on.event(GROUP, VERSION, "webhooks", registry=registry)
    @kopf.on.event(GROUP, VERSION, "eventfilters", registry=registry)
    @kopf.on.event(GROUP, VERSION, "eventtypes", registry=registry)
    def resource_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        # Only a new spec (or a new or deleted object) changes what is compiled. The
        # status writes of the timers and the reconciler come back as events too; a pass
        # for each would be a thousand passes for a thousand Webhooks' counters.
        if seen.changed(type, body, str(body.get("metadata", {}).get("generation"))):
            ctx.poke()

    @kopf.on.event("v1", "secrets", registry=registry)
    async def secret_changed(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        # Only Secrets some Webhook reads, and only when their data changed: the
        # cluster's other Secrets change all the time and are none of the receiver's
        # business.
        meta = body.get("metadata", {})
        if ("Secret", meta.get("namespace"), meta.get("name")) not in kwargs[REFERENCES_INDEX]:
            return
        if seen.changed(type, body, data_digest(body)):
            ctx.poke()
        if type == "DELETED" and (meta.get("labels") or {}).get(GENERATED_LABEL) == "true":
            await regenerate(meta, kwargs[WEBHOOK_INDEX])

    async def regenerate(secret_meta: Mapping[str, Any], webhooks: Any) -> None:
        # A generated Secret deleted by hand (not with its Webhook): made again, or
        # the Webhook would stay SecretNotFound until someone edits it.
        owner = (secret_meta.get("annotations") or {}).get(WEBHOOK_ANNOTATION)
        found = [b for b in webhooks.get((secret_meta.get("namespace"), owner), ())]
        if not found or found[0].get("metadata", {}).get("deletionTimestamp"):
            return
        webhook, _ = parse(Webhook, found[0])
        if isinstance(webhook, Webhook):
            await ensure_generated_secret(ctx, webhook, found[0])

    @kopf.on.event("v1", "secrets", when=ctx.is_anchor, registry=registry)
    async def admin_token_changed(type: str | None, **_: Any) -> None:
        if type == "DELETED":
            await ensure_admin_token(ctx)  # the receivers' token and the daemon's anchor

    # --- per-Webhook work: the generated Secret --------------------------------------

    @kopf.on.resume(GROUP, VERSION, "webhooks", id=WEBHOOK_HANDLER, registry=registry)
    @kopf.on.create(GROUP, VERSION, "webhooks", id=WEBHOOK_HANDLER, registry=registry)
    @kopf.on.update(GROUP, VERSION, "webhooks", id=WEBHOOK_HANDLER, registry=registry)
    async def reconcile_webhook(body: kopf.Body, patch: kopf.Patch, logger: Any, **_: Any) -> None:
        raw = thaw(body)
        webhook, error = parse(Webhook, raw)
        if webhook is None or error is not None:
            # A user's mistake: say so on the resource and stop retrying until the spec
            # changes (the API server's schema let it in; the model's checks did not).
            patch.status["conditions"] = c.set_condition(
                (raw.get("status") or {}).get("conditions"),
                c.READY,
                "False",
                c.INVALID_SPEC,
                error or "the spec does not parse",
                raw["metadata"].get("generation"),
                ctx.now(),
            )
            patch.status["observedGeneration"] = raw["metadata"].get("generation")
            raise kopf.PermanentError(f"{c.INVALID_SPEC}: {error}")
        assert isinstance(webhook, Webhook)
        await ensure_generated_secret(ctx, webhook, raw)
        ctx.poke()

    # --- the reconciler --------------------------------------------------------------

    @kopf.daemon(
        "v1",
        "secrets",
        id=RECONCILER_DAEMON,
        when=ctx.is_anchor,
        registry=registry,
        cancellation_timeout=1.0,
    )
    async def reconciler(stopped: kopf.DaemonStopped, body: kopf.Body, **kwargs: Any) -> None:
        def token() -> str | None:
            # The daemon's body is kept current by kopf: an edited token is used at once.
            value = decode_secret_data(body).get(ADMIN_TOKEN_KEY)
            return value.decode() if value else None

        indexes = {
            k: kwargs[k] for k in (WEBHOOK_INDEX, FILTER_INDEX, EVENT_TYPE_INDEX, SECRET_INDEX)
        }
        ctx.poke()
        await reconciler_of(ctx).run(stopped, indexes, token)


def reconciler_of(ctx: OperatorContext) -> Reconciler:
    """The context's one reconciler (the daemon and the stats timer share it)."""
    found = ctx.extras.get("reconciler")
    if not isinstance(found, Reconciler):
        found = ctx.extras["reconciler"] = Reconciler(ctx)
    return found
