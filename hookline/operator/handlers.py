"""kopf handlers for Webhook, EventFilter, EventType and the Secrets they read (issue 6).

Thin, as in crate-operator's main.py: each handler parses what it was given and calls a
plain function. kopf's indexes hold the cluster's objects; the reconciler daemon
(hookline.operator.reconcile) compiles them into the receiver configuration and writes
the Ready conditions; handlers here generate Secrets and tell the reconciler when to look.
Handler and index ids are constants: kopf stores progress under them, so renaming one
would make kopf forget what it already did.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..api.webhook import Webhook
from . import conditions as c
from .builders import (
    ADMIN_TOKEN_KEY,
    generated_secret_name,
)
from .conformance import UidCheck, reconciler_stop_message
from .context import OperatorContext
from .daemons import DEFAULT_RESTART_DELAY, RESTART_DELAY_KEY, supervise
from .evaluate import (
    decode_secret_data,
    parse,
)
from .generated import ensure_admin_token, ensure_generated_secret
from .ids import (
    EVENT_TYPE_INDEX,
    FILTER_INDEX,
    RECONCILER_DAEMON,
    REFERENCES_INDEX,
    SECRET_INDEX,
    WEBHOOK_HANDLER,
    WEBHOOK_INDEX,
)
from .reconcile import indexes_of, reconciler_of, thaw

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
    github = spec.get("github") or {}
    for ref in (github.get("tokenSecretRef"), (github.get("app") or {}).get("privateKeySecretRef")):
        if ref and ref.get("name"):
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
    has_uid = UidCheck()  # an API server without uids stops the reconciler (issue 14)

    @kopf.on.event(GROUP, VERSION, "webhooks", registry=registry)
    @kopf.on.event(GROUP, VERSION, "eventfilters", registry=registry)
    @kopf.on.event(GROUP, VERSION, "eventtypes", registry=registry)
    def resource_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        has_uid(str(body.get("kind")), body)
        # Only a new spec (or a new or deleted object) changes what is compiled. The
        # status writes of the timers and the reconciler come back as events too; a pass
        # for each would be a thousand passes for a thousand Webhooks' counters.
        if seen.changed(type, body, str(body.get("metadata", {}).get("generation"))):
            ctx.poke()
            meta = body.get("metadata", {})
            ctx.wake_github(str(meta.get("namespace")), str(meta.get("name")))

    @kopf.on.event("v1", "secrets", registry=registry)
    async def secret_changed(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        has_uid("Secret", body)
        # Only Secrets some Webhook reads, and only when their data changed: the
        # cluster's other Secrets change all the time and are none of the receiver's
        # business.
        meta = body.get("metadata", {})
        if ("Secret", meta.get("namespace"), meta.get("name")) not in kwargs[REFERENCES_INDEX]:
            return
        if seen.changed(type, body, data_digest(body)):
            ctx.poke()
            # A rotated hook secret or token: the GitHub hooks that read it look now.
            for webhook in kwargs[REFERENCES_INDEX].get(
                ("Secret", meta.get("namespace"), meta.get("name")), ()
            ):
                namespace, _, name = str(webhook).partition("/")
                ctx.wake_github(namespace, name)

    @kopf.on.event("v1", "secrets", when=ctx.is_anchor, registry=registry)
    async def admin_token_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            # Its daemon and timer stop themselves (see OperatorContext.gone_anchors);
            # the new anchor gets its own.
            ctx.gone_anchors.add(str(body.get("metadata", {}).get("uid")))
            ctx.poke()
            await ensure_admin_token(ctx)  # the receivers' token and the daemon's anchor

    # --- per-Webhook work: the generated Secret --------------------------------------

    @kopf.on.resume(GROUP, VERSION, "webhooks", id=WEBHOOK_HANDLER, registry=registry)
    @kopf.on.create(GROUP, VERSION, "webhooks", id=WEBHOOK_HANDLER, registry=registry)
    @kopf.on.update(GROUP, VERSION, "webhooks", id=WEBHOOK_HANDLER, registry=registry)
    async def reconcile_webhook(body: kopf.Body, **_: Any) -> None:
        raw = thaw(body)
        webhook, error = parse(Webhook, raw)
        if webhook is None or error is not None:
            # A user's mistake: the reconciler says so in Ready (InvalidSpec, with the
            # field); kopf stops retrying until the spec changes.
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
        # On a stop, kopf first sets `stopped` and waits this long before cancelling, so
        # a pass that is writing statuses finishes rather than being cut mid-write.
        cancellation_backoff=1.0,
        cancellation_timeout=1.0,
    )
    async def reconciler(stopped: kopf.DaemonStopped, body: kopf.Body, **kwargs: Any) -> None:
        def token() -> str | None:
            # The daemon's body is kept current by kopf: an edited token is used at once.
            value = decode_secret_data(body).get(ADMIN_TOKEN_KEY)
            return value.decode() if value else None

        indexes = indexes_of(kwargs)
        uid = str(body.get("metadata", {}).get("uid"))

        def done() -> bool:
            return bool(stopped) or uid in ctx.gone_anchors

        ctx.poke()
        anchor = f"{ctx.config.namespace}/{ctx.config.admin_token_secret}"
        try:
            await supervise(
                "reconciler",
                lambda: reconciler_of(ctx).run(done, stopped, indexes, token),
                done=done,
                wait=stopped.wait,
                delay=float(ctx.extras.get(RESTART_DELAY_KEY, DEFAULT_RESTART_DELAY)),
                advice="No status is written meanwhile; if this repeats, report it with this line.",
            )
        except asyncio.CancelledError:
            # kopf cancels a daemon still running a second after it set `stopped`; its
            # own line names no cause, so say which and what to do (issue 14).
            log.log(*reconciler_stop_message(stopped.reason, anchor))
            raise
        if stopped:
            log.log(*reconciler_stop_message(stopped.reason, anchor))
