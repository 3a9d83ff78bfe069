"""POST /hooks/<path>: the ingest pipeline, in the order issue 3 fixes.

route → source CIDR → rate limit → body size → authenticate → (JSON) → deduplicate →
(event types and filters: issue 4) → durable commit → answer.

Every request that reaches a route leaves a record, accepted or not; a 2xx is sent only
after the accepted record is committed, and a store that cannot commit gets the sender
a 503, so a sender never believes in a delivery hookline does not have.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from ..api.webhook import AuthType
from ..store.base import DeliveryRecord, DeliveryStatus, StoreUnavailable, new_delivery_id
from ..store.outbox import OutboxItem
from .auth import AuthFailure, redact_headers
from .backlog import Key
from .classify import Classification, classifies, classify
from .config import Route
from .context import EventContext
from .limits import client_address, retry_after_seconds, source_allowed
from .responses import Refusal, problem
from .state import STATE, ReceiverState

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# Challenges for 401s, as RFC 9110 asks of the schemes that have one.
_CHALLENGES = {AuthType.BASIC: 'Basic realm="hookline"', AuthType.BEARER: 'Bearer realm="hookline"'}


@dataclass(slots=True)
class Delivery:
    """One request on its way through the pipeline."""

    route: Route
    request: web.Request
    started: float
    source_ip: str = ""
    body: bytes | None = None
    payload: Any = None
    dedup_key: str | None = None
    classification: Classification = field(default_factory=Classification)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it is longer than `limit` (reading stops there)."""
    length = request.content_length
    if length is not None:
        if length > limit:
            return None
        if length == 0:
            return b""
        # A declared length within the limit: usually the whole body is buffered by
        # now and is taken without waiting, else the rest is awaited; no chunk loop
        # and join (issue 3's ingest benchmark: the hot path reads every body).
        head = request.content.read_nowait(length)
        if len(head) == length:
            return head
        try:
            return head + await request.content.readexactly(length - len(head))
        except asyncio.IncompleteReadError as exc:
            return head + exc.partial  # the sender stopped early: what came, as before
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not, and a schema
    # validator would read them as null.
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; ValueError if it is not JSON (NaN and Infinity are not)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson stops at 64-bit integers; JSON has no such limit, so those bodies
        # take the slower standard parser rather than a refusal.
        if "integer" not in str(exc).lower():
            raise ValueError(str(exc)) from None
    return json.loads(body, parse_constant=_no_constants)


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def admit(state: ReceiverState, delivery: Delivery) -> None:
    """Every check before the commit; raises Refusal."""
    route, request = delivery.route, delivery.request
    if request.method != "POST":
        raise Refusal(
            405,
            "method_not_allowed",
            f"use POST, not {request.method}",
            keep_body=False,
            headers={"Allow": "POST"},
        )
    if not source_allowed(delivery.source_ip, route.source_networks):
        raise Refusal(
            403,
            "source_not_allowed",
            f"source address {delivery.source_ip} is not in this Webhook's allowed sourceCIDRs",
            keep_body=False,
        )
    wait = state.limiter.check(route)
    if wait:
        seconds = retry_after_seconds(wait)
        raise Refusal(
            429,
            "rate_limited",
            f"more than {route.rate:g} requests per second; retry in {seconds}s",
            keep_body=False,
            headers={"Retry-After": str(seconds)},
        )
    delivery.body = await read_body(request, route.max_body_bytes)
    if delivery.body is None:
        raise Refusal(
            413,
            "payload_too_large",
            f"the body is larger than this Webhook's limit of {route.max_body_bytes} bytes",
            keep_body=False,
            headers={"Connection": "close"},
        )
    try:
        route.verifier.verify(request.headers, delivery.body, state.settings.wall_clock())
    except AuthFailure as failure:
        challenge = _CHALLENGES.get(route.webhook.spec.auth.type)
        raise Refusal(
            401,
            failure.code,
            failure.message,
            headers={"WWW-Authenticate": challenge} if challenge else None,
        ) from None
    if route.requires_json:
        if not _is_json_type(request.content_type):
            raise Refusal(
                415,
                "unsupported_media_type",
                f"this Webhook needs a JSON body (Content-Type: application/json), "
                f"not {request.content_type or 'no Content-Type'}",
            )
        try:
            delivery.payload = parse_json(delivery.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refusal(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    elif route.reads_body and _is_json_type(request.content_type):
        # Not required, but an EventType may recognise the event by a body field or
        # validate it. Routes that never look inside the body skip the parse: it is
        # the costliest step of the ingest path (docs/benchmarks.md).
        try:
            delivery.payload = parse_json(delivery.body)
        except (ValueError, UnicodeDecodeError):
            delivery.payload = None
    delivery.dedup_key = dedup_key(route, request, delivery.payload)
    if is_github_ping(route, request):
        # Issue 12: GitHub sends `ping` when a hook is created (and on the operator's
        # POST .../pings). It is no event of the Webhook's eventTypes and no filter
        # applies: recorded (signature verified above), answered 2xx, forwarded nowhere.
        delivery.classification = Classification(filtered_by=GITHUB_PING)
        return
    if not classifies(route):
        return  # the default Classification: no event type, no tallies
    # Event types and filters (issue 4): the classification is kept even when it
    # refuses, so the refusal's record counts against the EventType that refused it.
    delivery.classification = classify(
        route,
        EventContext(delivery.payload, request.headers, None, delivery.source_ip),
    )
    if delivery.classification.refusal is not None:
        raise delivery.classification.refusal


GITHUB_PING = "github ping: recorded, not forwarded"


def is_github_ping(route: Route, request: web.Request) -> bool:
    return (
        route.webhook.spec.auth.type is AuthType.GITHUB
        and request.headers.get("X-GitHub-Event") == "ping"
    )


def dedup_key(route: Route, request: web.Request, payload: Any) -> str | None:
    if route.dedup_header is not None:
        return request.headers.get(route.dedup_header) or None
    if route.dedup_path is not None:
        node = route.dedup_path.find_one(payload)
        if node is not None and isinstance(node.value, str | int) and node.value != "":
            return str(node.value)
    return None


def outbox_items(route: Route, event_type_name: str | None) -> tuple[OutboxItem, ...]:
    """The destinations an accepted delivery goes to: all, or those whose eventTypes
    list its EventType (issue 5)."""
    return tuple(
        OutboxItem(dest.name, route.priority)
        for dest in route.destinations
        if not dest.spec.event_types or event_type_name in dest.spec.event_types
    )


def _record(
    state: ReceiverState,
    delivery: Delivery,
    status: DeliveryStatus,
    http_status: int,
    *,
    reason: str = "",
    message: str = "",
    keep_body: bool = True,
) -> DeliveryRecord:
    route, request = delivery.route, delivery.request
    now = state.settings.wall_clock()
    received_at = datetime.fromtimestamp(now, UTC)  # what state.now() gives, with `now`
    return DeliveryRecord(
        id=new_delivery_id(now),
        webhook=route.key,
        received_at=received_at,
        status=status,
        http_status=http_status,
        reason=reason,
        message=message,
        event_type=delivery.classification.event_type,
        source_ip=delivery.source_ip,
        user_agent=request.headers.get("User-Agent", ""),
        headers=redact_headers(request.headers, route.sensitive_headers),
        body=delivery.body if keep_body else None,
        processing_ms=(time.perf_counter() - delivery.started) * 1000,
        dedup_key=delivery.dedup_key if status != "rejected" else None,
        expires_at=received_at + timedelta(seconds=route.retention_seconds),
        tallies=tuple(delivery.classification.tallies),
        outbox=(
            outbox_items(route, delivery.classification.event_type_name)
            if status == "accepted" and route.destinations
            else ()
        ),
    )


async def _refuse(state: ReceiverState, delivery: Delivery, refusal: Refusal) -> web.Response:
    record = _record(
        state,
        delivery,
        "rejected",
        refusal.status,
        reason=refusal.code,
        message=refusal.message,
        keep_body=refusal.keep_body,
    )
    try:
        await state.store.record(record)
    except StoreUnavailable as exc:
        # The caller is refused either way; losing the record of a refusal loses no
        # event, so answer with the refusal and count the miss.
        state.metrics.store_errors.labels(delivery.route.key).inc()
        log.warning("could not record refusal of %s: %s", delivery.route.key, exc)
    state.metrics.count_request(delivery.route.key, "rejected", refusal.code)
    return problem(
        refusal.status,
        refusal.code,
        refusal.message,
        delivery_id=record.id,
        headers=refusal.headers,
        details=refusal.details,
    )


# What a sender is told to wait before it sends again when a destination's backlog is
# full: a few seconds of the dispatcher's work (issue 11 §4).
BACKLOG_RETRY_AFTER = 5


async def _when_backlog_full(
    state: ReceiverState, delivery: Delivery, keys: tuple[Key, ...]
) -> web.StreamResponse | None:
    """A destination of this delivery has --max-outbox-backlog rows pending: None once
    room was reserved (the dispatcher made some within the wait), else the answer —
    200 for a delivery already stored (a resend must not look refused), or 503 with
    Retry-After, recorded like any other refusal (issue 11 §4)."""
    route = delivery.route
    if delivery.dedup_key is not None:
        try:
            original = await state.store.find_duplicate(route.key, delivery.dedup_key)
        except StoreUnavailable:
            original = None  # the wait and the commit will tell
        if original is not None:
            state.metrics.count_request(route.key, "duplicate", "duplicate")
            return web.json_response({"deliveryId": original, "duplicate": True}, status=200)
    if await state.backlog.reserve(keys):
        return None
    full = state.backlog.full(keys) or keys[0]
    # Nothing of this refusal counts for EventTypes and filters: they did not refuse
    # it, and the sender sends it again. Nor is its body kept: it will come again, and
    # an overloaded store is no place for more bytes.
    delivery.classification.tallies = []
    return await _refuse(
        state,
        delivery,
        Refusal(
            503,
            "outbox_backlog",
            f"destination {full[1]!r} has {state.backlog.count(full)} deliveries waiting "
            f"to be forwarded, this receiver's limit (--max-outbox-backlog "
            f"{state.backlog.bound}); retry in {BACKLOG_RETRY_AFTER}s",
            keep_body=False,
            headers={"Retry-After": str(BACKLOG_RETRY_AFTER)},
            details={"destination": full[1], "backlog": state.backlog.count(full)},
        ),
    )


async def receive(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    started = time.perf_counter()
    path = request.match_info["path"]
    route = state.config.routes.get(path)
    if route is None:
        state.metrics.unrouted.inc()
        return problem(404, "unknown_webhook", f"no Webhook is served at /hooks/{path}")
    delivery = Delivery(route=route, request=request, started=started)
    delivery.source_ip = client_address(
        request.remote, request.headers.get("X-Forwarded-For"), state.settings.trusted_proxies
    )
    try:
        await admit(state, delivery)
    except Refusal as refusal:
        return await _refuse(state, delivery, refusal)
    filtered_by = delivery.classification.filtered_by
    if filtered_by is None:
        record = _record(state, delivery, "accepted", 202)
    else:
        # The sender did nothing wrong (issue 4): 202, recorded as filtered with the
        # filter and rule that dropped it.
        record = _record(state, delivery, "filtered", 202, reason="filtered", message=filtered_by)
    held: tuple[Key, ...] = ()
    if record.outbox and state.backlog.enabled:
        held = tuple((route.key, item.destination) for item in record.outbox)
        if not state.backlog.try_reserve(held):
            answer = await _when_backlog_full(state, delivery, held)
            if answer is not None:
                return answer
    try:
        result = await state.store.record(record)
    except BaseException as exc:
        state.backlog.release(held)
        if not isinstance(exc, StoreUnavailable):
            raise
        state.metrics.store_errors.labels(route.key).inc()
        state.metrics.count_request(route.key, "unavailable", "store_unavailable")
        log.error("store cannot commit a delivery to %s: %s", route.key, exc)
        # Never a 2xx for what is not durable: the sender keeps it and retries.
        return problem(
            503,
            "store_unavailable",
            "the delivery could not be stored; retry later",
            headers={"Retry-After": "5"},
        )
    state.metrics.observe_ingest(route.key, time.perf_counter() - started)
    if held:
        if result.duplicate:
            state.backlog.release(held)  # a duplicate's rows are never written
        else:
            state.backlog.commit(held)
    if result.duplicate:
        state.metrics.count_request(route.key, "duplicate", "duplicate")
        return web.json_response({"deliveryId": result.id, "duplicate": True}, status=200)
    state.metrics.count_request(route.key, record.status, "")
    if record.outbox:
        state.dispatch_wakeup.set()  # new rows: the dispatcher need not wait for its poll
    if filtered_by is not None:
        return web.json_response({"deliveryId": result.id, "filtered": True}, status=202)
    # Built by hand: the hot path's answer (ids are base32, nothing to escape).
    return web.Response(
        body=b'{"deliveryId": "' + result.id.encode() + b'"}',
        status=202,
        content_type="application/json",
    )
