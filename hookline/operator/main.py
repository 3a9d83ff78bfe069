"""The operator's start-up, login and clean-up, and `register_all` (issue 6).

`kopf run -m hookline.operator` (or `hookline operator`) imports the package, which
registers everything here into kopf's default registry with a context that reads its
settings from HOOKLINE_* variables at start-up. Tests call `register_all` with a fresh
registry and a context of their own, so several operators can run side by side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import aiohttp
import kopf

from . import annotation_handlers, github_handlers, handlers, preflight, timers
from .context import OperatorContext
from .generated import ensure_admin_token
from .ids import RECONCILER_DAEMON, STATS_TIMER
from .kube import KubeClient, KubeError, resource_path

log = logging.getLogger(__name__)


def register_all(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Every handler of the operator: start-up and login, the reconciler and its
    indexes, the stats timer, the annotation handlers."""
    register_lifecycle(registry, ctx)
    handlers.register(registry, ctx)
    timers.register(registry, ctx)
    annotation_handlers.register(registry, ctx)
    github_handlers.register(registry, ctx)
    without_finalizers(
        registry,
        {RECONCILER_DAEMON, STATS_TIMER, annotation_handlers.PREVIOUS_SECRET_DAEMON},
    )


def without_finalizers(registry: kopf.OperatorRegistry, handler_ids: set[str]) -> None:
    """Let kopf run these daemons and timers without a finalizer on their objects.

    kopf puts a finalizer on every object a daemon or timer runs for (so that it can
    stop them before the object goes), and offers no switch. hookline's run on Secrets
    of its own — the admin-token anchor, generated secrets in an overlap window — whose
    deletion must never wait for the operator: `kubectl delete namespace` would hang
    while it is uninstalled or paused. The price: kopf does not stop them when their
    Secret is deleted, so each stops itself then (OperatorContext.gone_anchors, the
    overlap daemon's own check). kopf removes a finalizer it no longer needs.
    """
    spawning = registry._spawning  # kopf has no public API for this (see above)
    spawning._handlers = [
        dataclasses.replace(h, requires_finalizer=False) if h.id in handler_ids else h
        for h in spawning._handlers
    ]


# Seconds between login attempts while the operator's own namespace is missing: it is
# usually being created right then (kubectl apply of the install), so soon, not kopf's 60.
# OperatorContext.extras key to shorten it in tests.
NAMESPACE_RETRY_DELAY = 5.0
NAMESPACE_RETRY_KEY = "namespace_retry_delay"


async def admin_token_at_login(ctx: OperatorContext) -> dict[str, Any]:
    """The admin-token Secret, made if missing. While the operator's own namespace is
    missing: one WARNING line, then a check every few seconds until it exists (issue
    14) — not a traceback, nor kopf's ERROR line for each retry of a failed login."""
    namespace = ctx.config.namespace
    path = resource_path("v1", "namespaces", None, namespace)
    delay = float(ctx.extras.get(NAMESPACE_RETRY_KEY, NAMESPACE_RETRY_DELAY))
    waited = False
    while True:
        try:
            anchor = await ensure_admin_token(ctx)
        except KubeError as exc:
            if exc.status != 404 or await ctx.kube.get(path) is not None:
                raise
            if not waited:
                log.warning(
                    "the operator's namespace %r (HOOKLINE_NAMESPACE) does not exist: create "
                    "it (kubectl create namespace %s) or set HOOKLINE_NAMESPACE; the operator "
                    "waits for it, checking every %g s",
                    namespace,
                    namespace,
                    delay,
                )
                waited = True
            await asyncio.sleep(delay)
            continue
        if waited:
            log.info("the operator's namespace %r exists now", namespace)
        return anchor


def register_lifecycle(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        """Every kopf setting hookline relies on, each with why."""
        ours = ctx.config  # HOOKLINE_* variables; a mistake there stops the start-up here
        # Progress and the last-handled spec under an annotation prefix of hookline's
        # own, so `kubectl describe` shows whose they are. Not "hookline.dev" itself:
        # kopf strips its storage prefix's annotations before diffing, which would hide
        # the user's hookline.dev/replay and hookline.dev/rotate-secret from the handlers.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="kopf.hookline.dev"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kopf.hookline.dev", key="last-handled-configuration"
        )
        # High availability (issue 6): replicas peer through one peering object and only
        # the one with the highest priority acts; the others pause (their daemons and
        # timers stop, watches pause). Priorities must differ: equal ones all pause.
        settings.peering.name = ours.peering_name
        settings.peering.priority = ours.peering_priority
        settings.peering.standalone = ours.peering_standalone
        # Mandatory: with the peering object missing no replica acts, rather than all.
        settings.peering.mandatory = not ours.peering_standalone
        settings.peering.clusterwide = not ours.watch_namespaces
        # A Ready transition, a generated Secret, a replay: explicit kopf.info/warn calls
        # become Events; ordinary log lines do not (they would flood `describe`).
        # Their names (issue 14): kopf posts each with generateName "kopf-event-" only
        # (kopf/_cogs/clients/events.py), the server adds 5 random characters. They never
        # collide with the reconciler's Events, whose names always end "." + hex
        # (kube.event_name); the strict test emulator draws from 36^5 names, too many
        # to collide in a test. A real API server before 1.31 (KEP-4420 retries
        # server-side) may answer a collision with a 409, which kopf does not retry:
        # it logs "Failed to post an event" at WARNING and drops that Event. Tolerated:
        # these are a few explicit Events (replay, rotation), not one per reconciliation.
        settings.posting.enabled = True
        settings.posting.loggers = False
        # Watches are re-established regularly, so a half-dead connection through a
        # load balancer cannot silently stop the operator from seeing changes.
        settings.watching.server_timeout = max(60, int(settings.watching.server_timeout or 0))
        # One HTTP session for the API client and the receivers' admin API.
        ctx.session = aiohttp.ClientSession()

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        ours = ctx.config
        info: kopf.ConnectionInfo | None
        if ours.kube_url:
            # An API server given explicitly: tests (the KMock emulator) and local runs.
            info = kopf.ConnectionInfo(
                server=ours.kube_url, insecure=True, default_namespace=ours.namespace
            )
        else:
            info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is None:
            raise kopf.LoginError("no service account and no kubeconfig to log in with")
        assert ctx.session is not None
        ctx.connection = info
        ctx.kube_client = KubeClient(info, ctx.session)
        # Issue 11 §3: say what is missing (peering object, CRDs, built-in resources)
        # rather than wait in silence; a background task, as kopf pauses every handler
        # while the peering object is missing. Before the admin token: that needs Secrets.
        preflight.start(ctx)
        anchor = await admin_token_at_login(ctx)
        if not (anchor.get("metadata") or {}).get("uid"):
            # Issue 14: kopf keys each object's state and daemons by uid; without uids
            # the reconciler is stopped by other objects' events and no status is ever
            # written. Refuse at once rather than run in silence.
            ctx.give_up(
                f"the Kubernetes API server at {info.server} returned Secret "
                f"{ours.namespace}/{ours.admin_token_secret} without metadata.uid (a "
                "conformant server always assigns one); kopf keeps each object's state under "
                "its uid, so the operator cannot work with it. Use a conformant API server."
            )
        return info

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await preflight.stop(ctx)
        if ctx.session is not None:
            await ctx.session.close()
            ctx.session = None
        ctx.kube_client = None
