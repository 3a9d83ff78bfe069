"""The kopf handlers for the annotations users write on a Webhook (issue 6):

    hookline.dev/replay: <deliveryId> | failed | dead-lettered | since=<RFC3339>
    hookline.dev/rotate-secret: <any value>

Each handler acts once, records the outcome (status.lastReplay, Events) and removes the
annotation in the same patch, so applying the same value again later is a new change
and acts again. What a person wrote wrong is answered with a Warning Event and a
cleared annotation, never a retry loop; what passes (no receiver yet, the API server
busy) is a kopf.TemporaryError, retried, and given up on with a Warning after a while
so that an annotation never hangs on an object for ever.

The parsing and the Secret arithmetic are pure and live in `annotations.py`; this module
is the glue to kopf, the receiver's admin API and the Kubernetes API.
"""

from __future__ import annotations

import base64
import logging
import secrets as random_secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import kopf

from ..api.common import GROUP, VERSION
from ..receiver.client import ReceiverAdmin, ReceiverError, ReceiverUnavailable
from ..receiver.replay import MAX_BATCH
from .annotations import (
    PREVIOUS_EXPIRES_ANNOTATION,
    REPLAY_ANNOTATION,
    ROTATE_ANNOTATION,
    AnnotationError,
    ReplayRequest,
    encode_secret,
    expired_previous,
    format_time,
    parse_replay,
    previous_expires_at,
    previous_key,
    rotate,
)
from .builders import GENERATED_LABEL, WEBHOOK_ANNOTATION, generated_secret_name
from .context import OperatorContext
from .daemons import DEFAULT_RESTART_DELAY, RESTART_DELAY_KEY, supervise
from .evaluate import GENERATED_SECRET_KEY, decode_secret_data
from .kube import KubeError, KubeUnavailable, resource_path

log = logging.getLogger(__name__)

# Handler ids: kopf keeps each handler's progress on the object under its id (field
# handlers get "/<field>" appended by kopf), so these must never be renamed.
REPLAY_HANDLER = "annotation-replay"
ROTATE_HANDLER = "annotation-rotate-secret"
PREVIOUS_SECRET_DAEMON = "previous-secret-expiry"

# Event reasons (kubectl get events --field-selector reason=...).
REPLAY_REQUESTED = "ReplayRequested"
REPLAY_FINISHED = "ReplayFinished"
REPLAY_FAILED = "ReplayFailed"
SECRET_ROTATED = "SecretRotated"
SECRET_NOT_ROTATED = "SecretNotRotated"
PREVIOUS_SECRET_EXPIRED = "PreviousSecretExpired"

# On a rotated Secret: which request rotated it last (the Webhook's uid and when kopf
# first ran the handler), so a retry after a lost answer does not rotate twice and
# push the value callers still use out of `.previous`.
ROTATION_ANNOTATION = "hookline.dev/rotation"

RETRY_DELAY = 5.0  # seconds between attempts while the receiver or API server is away
GIVE_UP_AFTER = timedelta(minutes=10)
# The overlap daemon sleeps until the window ends, but wakes at least this often (seconds)
# in case the clock jumped.
EXPIRY_INTERVAL = 60.0
SECRET_BYTES = 32  # issue 6: "a new secret (32 random bytes)"
_REQUEST_MAX = 256  # status.lastReplay.request keeps this much of what was written
_MESSAGE_MAX = 1024  # the API server caps Event messages at 1 KiB


@dataclass(frozen=True)
class Timing:
    """How the handlers retry and how often the overlap daemon looks; tests shorten it
    by putting one in `ctx.extras[TIMING]` (read at each call, so a test can set it
    after `register_all`)."""

    retry_delay: float = RETRY_DELAY
    give_up_after: timedelta = GIVE_UP_AFTER
    expiry_interval: float = EXPIRY_INTERVAL


TIMING = __name__  # the key in OperatorContext.extras


def timing_of(ctx: OperatorContext) -> Timing:
    found = ctx.extras.get(TIMING)
    return found if isinstance(found, Timing) else Timing()


class _Temporary(Exception):
    """Worth another attempt: the receiver or the API server did not answer."""


def webhook_key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def _clip(text: str, limit: int = _MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _give_up(runtime: timedelta, timing: Timing) -> bool:
    return runtime >= timing.give_up_after


# --- hookline.dev/replay ---------------------------------------------------------------


async def _check_owner(admin: ReceiverAdmin, delivery_id: str, key: str) -> None:
    """Refuse a delivery of another Webhook: whoever may annotate this Webhook must not
    replay another namespace's deliveries through it (the replay endpoint takes any id)."""
    owner = (await admin.delivery(delivery_id)).get("webhook")
    if owner != key:
        raise AnnotationError(
            f"delivery {delivery_id} belongs to Webhook {owner}, not {key}: annotate that "
            "Webhook to replay it"
        )


async def _replay(
    admin: ReceiverAdmin, request: ReplayRequest, key: str, actor: str
) -> tuple[int, str, bool]:
    """Ask the receiver; (count, message, whether anything went wrong)."""
    reason = f"{REPLAY_ANNOTATION}={request.value}"[:1024]
    if request.delivery_id is not None:
        await _check_owner(admin, request.delivery_id, key)
        answer = await admin.replay_delivery(request.delivery_id, reason, actor)
        destinations = ", ".join(answer.get("destinations") or []) or "its destinations"
        return 1, f"replayed delivery {request.delivery_id} to {destinations}", False
    answer = await admin.replay_batch(
        key,
        destination_state=request.destination_state,
        since=request.since,
        reason=reason,
        requested_by=actor,
        # since=: what went out since then. Filtered deliveries went nowhere, and a
        # batch must not send them everywhere; replay one by id to do that.
        status="accepted" if request.kind == "since" else None,
    )
    replayed = len(answer.get("replayed") or [])
    refused = answer.get("refused") or []
    matched = int(answer.get("matched") or 0)
    if matched == 0:
        return 0, f"no {request.describe()} of Webhook {key} to replay", False
    message = f"replayed {replayed} of {matched} {request.describe()}"
    if refused:
        first = refused[0]
        message += (
            f"; {len(refused)} refused (e.g. {first.get('deliveryId')}: {first.get('message')})"
        )
    if matched >= MAX_BATCH:
        message += f" (the receiver replays at most {MAX_BATCH}, the newest, per request)"
    return replayed, message, replayed == 0


async def handle_replay(
    ctx: OperatorContext,
    body: kopf.Body,
    patch: Any,
    value: Any,
    *,
    retry: int,
    runtime: timedelta,
) -> None:
    timing = timing_of(ctx)
    key = webhook_key(body)
    written = "" if value is None else str(value)
    now = ctx.now()

    def finish(count: int, message: str, failed: bool) -> None:
        message = _clip(message)
        patch.status["lastReplay"] = {
            "request": written.strip()[:_REQUEST_MAX],
            "count": count,
            "time": format_time(now),
            "message": message,
        }
        patch.metadata.annotations[REPLAY_ANNOTATION] = None
        if failed:
            kopf.warn(body, reason=REPLAY_FAILED, message=message)
        else:
            kopf.info(body, reason=REPLAY_FINISHED, message=message)

    try:
        request = parse_replay(written, now=now)
    except AnnotationError as exc:
        finish(0, str(exc), True)
        return
    if retry == 0:
        kopf.info(
            body,
            reason=REPLAY_REQUESTED,
            message=f"replaying {request.describe()} of Webhook {key}",
        )
    try:
        try:
            admin = await ctx.receiver_admin()
            count, message, failed = await _replay(admin, request, key, f"annotation on {key}")
        except (ReceiverUnavailable, KubeUnavailable) as exc:
            raise _Temporary(f"the receiver did not answer: {exc}") from exc
        except KubeError as exc:
            raise _Temporary(f"cannot find the receivers: {exc}") from exc
        except kopf.TemporaryError as exc:  # no replica yet, or the operator is starting
            raise _Temporary(str(exc)) from exc
        except ReceiverError as exc:
            # 429/5xx: busy or its store is down. 401/403: the operator's admin token and
            # the receiver's disagree, which a token rotation in progress settles.
            if exc.temporary or exc.status in (401, 403):
                raise _Temporary(f"the receiver answered {exc.status}: {exc.message}") from exc
            # 400/404/409: the request cannot be met (not kept, rejected, replayed too
            # often); the receiver's message says which.
            count, message, failed = 0, f"the receiver refused: {exc.message or exc.code}", True
        except AnnotationError as exc:
            count, message, failed = 0, str(exc), True
    except _Temporary as exc:
        if _give_up(runtime, timing):
            finish(0, f"gave up after {runtime.total_seconds():.0f} s: {exc}", True)
            return
        raise kopf.TemporaryError(str(exc), delay=timing.retry_delay) from exc
    finish(count, message, failed)


# --- hookline.dev/rotate-secret --------------------------------------------------------


def is_generated_for(secret: Mapping[str, Any], webhook_name: str) -> bool:
    """Whether hookline generated this Secret for this Webhook (builders.py marks it)."""
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return labels.get(GENERATED_LABEL) == "true" and annotations.get(WEBHOOK_ANNOTATION) == (
        webhook_name
    )


async def handle_rotate(
    ctx: OperatorContext,
    body: kopf.Body,
    patch: Any,
    *,
    started: datetime,
    runtime: timedelta,
) -> None:
    timing = timing_of(ctx)
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace") or "default", str(meta.get("name"))
    auth = (body.get("spec") or {}).get("auth") or {}

    def refuse(message: str) -> None:
        patch.metadata.annotations[ROTATE_ANNOTATION] = None
        kopf.warn(body, reason=SECRET_NOT_ROTATED, message=_clip(message))

    if auth.get("type") in (None, "none"):
        refuse("spec.auth.type is none: there is no secret to rotate")
        return
    ref = auth.get("secretRef")
    if ref:
        secret_name, key = str(ref.get("name")), str(ref.get("key") or "secret")
    else:
        secret_name, key = generated_secret_name(name), GENERATED_SECRET_KEY
    path = resource_path("v1", "secrets", namespace, secret_name)
    marker = f"{meta.get('uid')}/{started.isoformat()}"
    try:
        try:
            secret = await ctx.kube.get(path)
            if secret is None and ref:
                refuse(f"Secret {secret_name} (spec.auth.secretRef) does not exist")
                return
            if secret is None:
                # The operator creates it on its next pass over the Webhook.
                raise _Temporary(f"the generated Secret {secret_name} does not exist yet")
            if not is_generated_for(secret, name):
                refuse(
                    f"Secret {secret_name} was not generated by hookline for this Webhook, so "
                    "hookline does not change it: rotate it yourself. Put the new value under "
                    f"key {key!r} and keep the old one under {previous_key(key)!r} while "
                    "callers move over (the receiver accepts both), then delete that key."
                )
                return
            secret_meta = secret.get("metadata") or {}
            if (secret_meta.get("annotations") or {}).get(ROTATION_ANNOTATION) != marker:
                expires = await _rotate_secret(ctx, path, secret, key, auth, marker)
            else:  # this request's earlier attempt rotated it; only its answer was lost
                expires = (secret_meta.get("annotations") or {}).get(PREVIOUS_EXPIRES_ANNOTATION)
        except KubeUnavailable as exc:
            raise _Temporary(str(exc)) from exc
        except KubeError as exc:
            if exc.status == 409 or exc.status == 429 or exc.status >= 500:
                raise _Temporary(f"Secret {secret_name}: {exc}") from exc
            refuse(f"cannot rotate Secret {secret_name}: {exc}")
            return
        except kopf.TemporaryError as exc:  # the operator is still starting
            raise _Temporary(str(exc)) from exc
    except _Temporary as exc:
        if _give_up(runtime, timing):
            refuse(f"gave up after {runtime.total_seconds():.0f} s: {exc}")
            return
        raise kopf.TemporaryError(str(exc), delay=timing.retry_delay) from exc
    patch.metadata.annotations[ROTATE_ANNOTATION] = None
    until = f"; the previous value stays valid until {expires}" if expires else ""
    kopf.info(
        body,
        reason=SECRET_ROTATED,
        message=f"rotated the secret in Secret {secret_name} (key {key}){until}",
    )
    ctx.poke()  # get the new value to the receivers now, not at the next resync


async def _rotate_secret(
    ctx: OperatorContext,
    path: str,
    secret: Mapping[str, Any],
    key: str,
    auth: Mapping[str, Any],
    marker: str,
) -> str | None:
    """Write the new value and keep the old one; the expiry time, if one is kept."""
    new_value = encode_secret(random_secrets.token_bytes(SECRET_BYTES), auth.get("type"))
    data, annotations = rotate(
        decode_secret_data(secret), key, new_value, ctx.now(), ctx.config.secret_overlap
    )
    changes: dict[str, Any] = {
        "metadata": {
            # A precondition: a concurrent writer (another rotation, the expiry timer)
            # makes this a 409 and a retry, never a lost update.
            "resourceVersion": (secret.get("metadata") or {}).get("resourceVersion"),
            "annotations": {**annotations, ROTATION_ANNOTATION: marker},
        },
        "data": {
            k: (None if v is None else base64.b64encode(v).decode("ascii"))
            for k, v in data.items()
            if k == key or k == previous_key(key)
        },
    }
    await ctx.kube.patch(path, changes)
    return annotations.get(PREVIOUS_EXPIRES_ANNOTATION)


# --- the end of the overlap window ----------------------------------------------------


def _owner_reference(secret: Mapping[str, Any]) -> kopf.Body:
    """The Webhook a generated Secret belongs to, as an object to post an Event on."""
    meta = secret.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "Webhook":
            reference: dict[str, Any] = {
                "apiVersion": owner.get("apiVersion"),
                "kind": owner.get("kind"),
                "metadata": {
                    "name": owner.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": owner.get("uid"),
                },
            }
            return kopf.Body(cast(Any, reference))
    return kopf.Body(cast(Any, dict(secret)))


async def expire_previous(ctx: OperatorContext, secret: Mapping[str, Any]) -> bool:
    """Drop a generated Secret's previous value once its window is over; whether it did."""
    changes = expired_previous(secret, ctx.now())
    if changes is None:
        return False
    meta = secret.get("metadata") or {}
    changes["metadata"]["resourceVersion"] = meta.get("resourceVersion")
    path = resource_path("v1", "secrets", meta.get("namespace"), meta.get("name"))
    try:
        await ctx.kube.patch(path, changes)
    except KubeError as exc:
        if exc.status in (404, 409):  # gone, or changed meanwhile: look again next time
            return False
        raise
    kopf.info(
        _owner_reference(secret),
        reason=PREVIOUS_SECRET_EXPIRED,
        message=(
            f"the overlap window of Secret {meta.get('name')} is over: only the rotated "
            "secret is accepted now"
        ),
    )
    ctx.poke()
    return True


async def _still_there(ctx: OperatorContext, body: kopf.Body, uid: str | None) -> bool:
    meta = body.get("metadata") or {}
    path = resource_path("v1", "secrets", meta.get("namespace"), meta.get("name"))
    try:
        found = await ctx.kube.get(path)
    except (KubeError, KubeUnavailable):
        return True  # unknown: assume so, and look again later
    return found is not None and (found.get("metadata") or {}).get("uid") == uid


async def watch_overlap(ctx: OperatorContext, stopped: Any, body: kopf.Body) -> None:
    """One generated Secret in its overlap window: sleep until the window ends, then end
    it. `body` is kopf's live view, so a rotation during the wait moves the end; kopf
    stops this once the expiry annotation is gone (the daemon's filter), and starts it
    again when a later rotation writes a new one."""
    uid = (body.get("metadata") or {}).get("uid")
    while not stopped:
        timing = timing_of(ctx)
        if not await _still_there(ctx, body, uid):
            # Deleted (it carries no finalizer: kopf does not stop this daemon then).
            return
        expires = previous_expires_at(body)
        if expires is None:  # about to be stopped by the filter
            await stopped.wait(timing.expiry_interval)
            continue
        remaining = (expires - ctx.now()).total_seconds()
        if remaining > 0:
            await stopped.wait(min(remaining, timing.expiry_interval))
            continue
        try:
            done = await expire_previous(ctx, body)
        except (KubeError, KubeUnavailable, kopf.TemporaryError) as exc:
            log.warning("cannot end the overlap window of a Secret, retrying: %s", exc)
            done = False
        # Done: the filter stops this daemon as soon as kopf sees the patched Secret.
        # Not done (a conflict, the API away): look again shortly.
        await stopped.wait(timing.expiry_interval if done else timing.retry_delay)


# --- registration ---------------------------------------------------------------------


def register(
    registry: kopf.OperatorRegistry, ctx: OperatorContext, timing: Timing | None = None
) -> None:
    """Attach the two annotation handlers and the overlap daemon to `registry`."""
    if timing is not None:
        ctx.extras[TIMING] = timing

    # A tuple: a dotted string would split at the dot in the annotation's key. `new`
    # PRESENT: removing the annotation (which the handler itself does) is no request.
    @kopf.on.field(
        GROUP,
        VERSION,
        "webhooks",
        field=("metadata", "annotations", REPLAY_ANNOTATION),
        new=kopf.PRESENT,
        id=REPLAY_HANDLER,
        registry=registry,
    )
    async def replay_annotation(
        body: kopf.Body,
        patch: kopf.Patch,
        new: Any,
        retry: int,
        runtime: timedelta,
        **_: Any,
    ) -> None:
        await handle_replay(ctx, body, patch, new, retry=retry, runtime=runtime)

    @kopf.on.field(
        GROUP,
        VERSION,
        "webhooks",
        field=("metadata", "annotations", ROTATE_ANNOTATION),
        new=kopf.PRESENT,
        id=ROTATE_HANDLER,
        registry=registry,
    )
    async def rotate_annotation(
        body: kopf.Body,
        patch: kopf.Patch,
        started: datetime,
        runtime: timedelta,
        **_: Any,
    ) -> None:
        await handle_rotate(ctx, body, patch, started=started, runtime=runtime)

    # Generated Secrets in an overlap window only: kopf filters the rest out before any
    # work, and adds its finalizer only to these, only while the window is open.
    @kopf.daemon(
        "v1",
        "secrets",
        id=PREVIOUS_SECRET_DAEMON,
        labels={GENERATED_LABEL: "true"},
        annotations={PREVIOUS_EXPIRES_ANNOTATION: kopf.PRESENT},
        cancellation_timeout=1.0,
        registry=registry,
    )
    async def previous_secret_expiry(
        stopped: kopf.DaemonStopped, body: kopf.Body, **_: Any
    ) -> None:
        # Issue 14: an error ends the overlap watch with an ERROR line and a restart,
        # not a traceback and a previous secret that is never removed.
        await supervise(
            "previous-secret expiry",
            lambda: watch_overlap(ctx, stopped, body),
            done=lambda: bool(stopped),
            wait=stopped.wait,
            delay=float(ctx.extras.get(RESTART_DELAY_KEY, DEFAULT_RESTART_DELAY)),
            advice="The previous secret stays accepted until it is removed.",
        )
