"""The admin API (its own port, never the ingest port): delivery history, stats,
health, metrics, and the configuration the operator pushes (issue 6). Described by
the OpenAPI document in openapi.py."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..store.base import (
    STATUSES,
    CorruptRecord,
    DeliveryQuery,
    DeliveryRecord,
    StoreUnavailable,
)
from .admin_auth import ADMIN_TOKEN
from .breaker import BreakerStats
from .bundle import compile_bundle
from .config import describe
from .openapi import OPENAPI
from .responses import problem
from .state import INGEST_APP, STATE, ReceiverState
from .stored_config import save_pushed

MAX_LIMIT = 500

log = logging.getLogger(__name__)


def _state(request: web.Request) -> ReceiverState:
    return request.app[INGEST_APP][STATE]


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def summary(record: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "webhook": record.webhook,
        "status": record.status,
        "httpStatus": record.http_status,
        "reason": record.reason,
        "message": record.message,
        "eventType": record.event_type,
        "receivedAt": _time(record.received_at),
        "sourceIP": record.source_ip,
        "dedupKey": record.dedup_key,
    }


def detail(record: DeliveryRecord) -> dict[str, Any]:
    out = summary(record)
    body: str | None = None
    encoding = None
    if record.body is not None:
        try:
            body, encoding = record.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(record.body).decode(), "base64"
    out.update(
        userAgent=record.user_agent,
        headers=record.headers,
        body=body,
        bodyEncoding=encoding,
        bodyKept=record.body is not None,
        processingMs=round(record.processing_ms, 3),
        expiresAt=_time(record.expires_at),
    )
    return out


class BadQuery(ValueError):
    pass


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name}={value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise BadQuery(f"{name}={value!r} needs a time zone (e.g. Z)")
    return parsed


def parse_query(params: Any) -> DeliveryQuery:
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadQuery(f"status={status!r}: use one of {', '.join(STATUSES)}")
    webhook = params.get("webhook") or None
    if webhook is not None and webhook.count("/") != 1:
        raise BadQuery(f"webhook={webhook!r}: use <namespace>/<name>")
    raw_limit = params.get("limit", "50")
    try:
        limit = int(raw_limit)
    except ValueError:
        raise BadQuery(f"limit={raw_limit!r} is not a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}")
    return DeliveryQuery(
        webhook=webhook,
        status=status,
        event_type=params.get("eventType") or None,
        since=_parse_time("since", params.get("since")),
        until=_parse_time("until", params.get("until")),
        q=params.get("q") or None,
        limit=limit,
        cursor=params.get("cursor") or None,
    )


async def list_deliveries(request: web.Request) -> web.Response:
    try:
        query = parse_query(request.query)
        items, cursor = await _state(request).store.list(query)
    except BadQuery as exc:
        return problem(400, "bad_query", str(exc))
    except ValueError as exc:  # a cursor the store did not hand out
        return problem(400, "bad_cursor", str(exc))
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    return web.json_response({"items": [summary(r) for r in items], "next": cursor})


async def get_delivery(request: web.Request) -> web.Response:
    delivery_id = request.match_info["id"]
    store = _state(request).store
    try:
        record = await store.get(delivery_id)
        if record is None:
            return problem(404, "delivery_not_found", f"no delivery {delivery_id!r} is kept")
        rows = await store.outbox_rows(delivery_id)
        attempts = await store.attempts(delivery_id)
        replays = await store.replays(delivery_id)
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    except CorruptRecord as exc:
        log.error("cannot read back a kept delivery: %s", exc)
        return problem(500, "corrupt_record", f"the kept delivery cannot be read: {exc}")
    out = detail(record)
    out["destinations"] = [
        {
            "id": row.id,
            "destination": row.destination,
            "state": row.state,
            "attempts": row.attempts,
            "nextAttemptAt": _time(row.next_attempt_at),
            "lastStatus": row.last_status,
            "lastError": row.last_error,
            "replayId": row.replay_id,
            "createdAt": _time(row.created_at),
        }
        for row in rows
    ]
    out["attempts"] = [
        {
            "chain": a.task_id,
            "destination": a.destination,
            "number": a.number,
            "startedAt": _time(a.started_at),
            "durationMs": round(a.duration_ms, 3),
            "statusCode": a.status_code,
            "error": a.error,
            "response": a.response.decode("utf-8", "replace"),
            "outcome": a.outcome,
        }
        for a in attempts
    ]
    out["replays"] = [
        {
            "id": r.id,
            "requestedAt": _time(r.requested_at),
            "requestedBy": r.requested_by,
            "reason": r.reason,
            "destinations": list(r.destinations),
            "bodyModified": r.body_modified,
        }
        for r in replays
    ]
    return web.json_response(out)


async def stats(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        counters = await state.store.counters()
        resources = await state.store.resource_counters()
        outbox = await state.store.destination_counters()
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    breakers = state.dispatcher.breakers.snapshot() if state.dispatcher else {}
    state.metrics.export_breakers(breakers)
    suspended = state.dispatcher.suspended if state.dispatcher else {}
    destinations: dict[str, dict[str, Any]] = {}
    for (webhook, name), c in sorted(outbox.items()):
        breaker = breakers.get((webhook, name))
        state.metrics.queue_depth.labels(webhook, name).set(c.pending)
        destinations.setdefault(webhook, {})[name] = {
            "pending": c.pending,
            "delivered": c.delivered,
            "failed": c.failed,
            "deadLettered": c.dead_lettered,
            "breaker": breaker.state if breaker else "closed",
            "circuitBreaker": _breaker(state, breaker) if breaker else None,
            "suspended": (webhook, name) in suspended,
            "lastError": c.last_error,
            "lastErrorAt": _time(c.last_error_at),
        }
    event_filters = {
        key: {name: c.counts.get(name, 0) for name in ("evaluated", "matched", "dropped")}
        for (kind, key), c in sorted(resources.items())
        if kind == "EventFilter"
    }
    event_types = {
        key: {
            "validated": c.counts.get("validated", 0),
            "invalid": c.counts.get("invalid", 0),
            "lastError": c.last_error,
            "lastErrorAt": _time(c.last_error_at),
        }
        for (kind, key), c in sorted(resources.items())
        if kind == "EventType"
    }
    webhooks = {
        key: {
            "received": c.received,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "filtered": c.filtered,
            "lastReceivedAt": _time(c.last_received_at),
            "lastDeliveryID": c.last_delivery_id,
            "lastError": c.last_error,
            **_outbox_totals(destinations.get(key, {})),
            "destinations": destinations.get(key, {}),
        }
        for key, c in sorted(counters.items())
    }
    return web.json_response(
        {
            "webhooks": webhooks,
            "eventFilters": event_filters,
            "eventTypes": event_types,
            "config": describe(state.config),
            "loadedAt": _time(state.loaded_at),
            "outbox": _backlog(state),
        }
    )


def _breaker(state: ReceiverState, breaker: BreakerStats) -> dict[str, Any]:
    """A breaker's state and what its window saw (issue 11 §2); its monotonic clock
    times as wall-clock times."""
    now, mono = state.now(), state.settings.monotonic()

    def wall(at: float | None) -> str | None:
        return None if at is None else _time(now + timedelta(seconds=at - mono))

    return {
        "state": breaker.state,
        "failureRate": breaker.failure_rate,
        "windowRequests": breaker.window_requests,
        "windowFailures": breaker.window_failures,
        "consecutiveNetworkErrors": breaker.consecutive_network_errors,
        "openedAt": wall(breaker.opened_at),
        "nextProbeAt": wall(breaker.next_probe_at),
        "coolDownSeconds": breaker.cooldown,
        "probes": {
            "sent": breaker.probes_sent,
            "succeeded": breaker.probe_successes,
            "failed": breaker.probe_failures,
        },
        "trips": breaker.trips,
        "lastError": breaker.last_error,
    }


def _backlog(state: ReceiverState) -> dict[str, Any]:
    """The outbox backlog bound (issue 11 §4), from the in-memory counts."""
    report = state.backlog.report()
    return {"backlog": report.backlog, "bound": report.bound, "waiting": report.waiting}


def _outbox_totals(destinations: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {
        name: sum(d[name] for d in destinations.values())
        for name in ("delivered", "failed", "deadLettered", "pending")
    }


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = _state(request)
    if not state.configured.is_set():
        # Push mode before the operator's first push: Kubernetes sends no traffic to a
        # replica that would answer every Webhook with 404 (issue 6).
        return problem(503, "not_configured", "waiting for the operator to PUT /api/v1/config")
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    return web.json_response(
        {"status": "ready", "configVersion": state.config.version, "source": state.source}
    )


# --- configuration (issue 6) --------------------------------------------------------


def config_description(state: ReceiverState) -> dict[str, Any]:
    """What is served, without a secret: version, routes, problems, when and whence."""
    return {
        **describe(state.config),
        "configured": state.configured.is_set(),
        "source": state.source,
        "loadedAt": _time(state.loaded_at),
    }


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(config_description(_state(request)))


async def put_config(request: web.Request) -> web.Response:
    """Swap in a pushed bundle (hookline.receiver.bundle). All or nothing: one document
    that does not parse refuses the whole bundle and the last good configuration stays
    in service, as a manifest reload does. Requests in flight finish on their old route."""
    state = _state(request)
    if not state.settings.push_mode:
        # One source of truth per receiver: a push would be undone by the next SIGHUP.
        return problem(
            409,
            "not_push_mode",
            "this receiver serves --manifests; start it with --config-source push",
        )
    try:
        payload = await request.json()
    except ValueError:
        return problem(
            400,
            "invalid_config",
            "the body is not JSON",
            details={"errors": ["bundle: not JSON"]},
        )
    async with state.config_lock:
        # Compiling a thousand Webhooks' schemas takes a while: off the event loop,
        # so ingest goes on meanwhile.
        config, errors = await asyncio.to_thread(compile_bundle, payload)
        if config is None:
            log.error(
                "pushed configuration refused (%d errors, first: %s); still serving %s",
                len(errors),
                errors[0],
                state.config.version or "nothing",
            )
            return problem(
                400,
                "invalid_config",
                f"{len(errors)} document(s) of the configuration do not parse; "
                "the previous configuration stays in service",
                details={"errors": errors},
            )
        previous = state.config.version
        state.swap(config)
        state.source = "push"
        # Kept, sealed, for a restart while the operator is down (issue 6 review); in
        # the lock, so the store ends with the last push this replica served. The body
        # as received: request.json() read and cached it.
        key = request.app[ADMIN_TOKEN].config_key()
        await save_pushed(state, key, config, await request.read())
    if config.version != previous:
        # A summary, not describe(): a thousand routes do not belong in one log line.
        log.info(
            "configuration %s pushed: %d routes, %d problems",
            config.version,
            len(config.routes),
            len(config.problems),
        )
        for item in config.problems:
            log.warning("not served: %s: %s: %s", item.webhook or "-", item.reason, item.message)
    return web.json_response(config_description(state))


async def metrics(request: web.Request) -> web.Response:
    state = _state(request)
    if state.dispatcher is not None:
        state.metrics.export_breakers(state.dispatcher.breakers.snapshot())
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)
