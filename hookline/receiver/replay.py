"""Replay (issue 5): send a kept delivery again, as a new attempt chain linked to the
original, audited (who, why, when) and capped so replays cannot loop.

POST /api/v1/deliveries/<id>/replay   one delivery, optionally a modified body and a
                                      subset of its destinations
POST /api/v1/replays                  a batch chosen by a selector
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..store.base import STATUSES, CorruptRecord, StoreUnavailable
from ..store.outbox import OUTBOX_STATES, OutboxItem, Replay, ReplayRefused, ReplaySelector
from .admin import BadQuery, _parse_time, _state, _time
from .responses import problem
from .state import ReceiverState

# At most this many replays of one delivery (issue 5: "capped, default at most 5").
MAX_REPLAYS = 5
MAX_BATCH = 1000
ACTOR_HEADER = "X-Hookline-Actor"


@dataclass(frozen=True)
class ReplayRequest:
    requested_by: str
    reason: str
    destinations: list[str] | None  # None: every destination the delivery goes to
    body: bytes | None


def _actor(request: web.Request, payload: dict[str, Any]) -> str:
    who = payload.get("requestedBy") or request.headers.get(ACTOR_HEADER) or "admin-api"
    return str(who)[:256]


async def _payload(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        payload = await request.json()
    except ValueError:
        raise BadQuery("the request body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadQuery("the request body must be a JSON object")
    return payload


def _replay_request(request: web.Request, payload: dict[str, Any]) -> ReplayRequest:
    destinations = payload.get("destinations")
    if destinations is not None and (
        not isinstance(destinations, list) or not all(isinstance(d, str) for d in destinations)
    ):
        raise BadQuery("destinations must be a list of destination names")
    body: bytes | None = None
    if "body" in payload:
        raw = payload["body"]
        # A JSON value is sent as JSON; a string is sent as it is.
        body = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
    return ReplayRequest(
        requested_by=_actor(request, payload),
        reason=str(payload.get("reason") or "")[:1024],
        destinations=destinations,
        body=body,
    )


def _replay_json(replay: Replay) -> dict[str, Any]:
    return {
        "id": replay.id,
        "deliveryId": replay.delivery_id,
        "requestedAt": _time(replay.requested_at),
        "requestedBy": replay.requested_by,
        "reason": replay.reason,
        "destinations": list(replay.destinations),
        "bodyModified": replay.body_modified,
    }


async def replay_one(state: ReceiverState, delivery_id: str, ask: ReplayRequest) -> Replay:
    """Raises ReplayRefused (with a message for a person) or BadQuery."""
    try:
        record = await state.store.get(delivery_id)
    except CorruptRecord as exc:
        raise ReplayRefused(f"cannot send it again: {exc}") from None
    if record is None:
        raise ReplayRefused(f"no delivery {delivery_id!r} is kept")
    if record.status == "rejected":
        raise ReplayRefused(
            f"delivery {delivery_id} was refused ({record.reason}); only accepted or "
            "filtered deliveries can be sent on"
        )
    route = state.config.route_for(record.webhook)
    if route is None:
        raise ReplayRefused(f"Webhook {record.webhook} is not served any more")
    if ask.destinations is None:
        # Where it went before; a filtered delivery went nowhere, so: everywhere.
        before = {row.destination for row in await state.store.outbox_rows(delivery_id)}
        chosen = [d for d in route.destinations if not before or d.name in before]
    else:
        unknown = [n for n in ask.destinations if route.destination(n) is None]
        if unknown:
            raise BadQuery(f"Webhook {record.webhook} has no destination {unknown[0]!r}")
        chosen = [d for d in route.destinations if d.name in ask.destinations]
    if not chosen:
        raise ReplayRefused(f"Webhook {record.webhook} has no destination for this delivery")
    replay = await state.store.replay(
        delivery_id,
        destinations=[OutboxItem(d.name, route.priority) for d in chosen],
        requested_by=ask.requested_by,
        reason=ask.reason,
        now=state.now(),
        body=ask.body,
        max_replays=MAX_REPLAYS,
    )
    state.dispatch_wakeup.set()
    return replay


async def replay_delivery(request: web.Request) -> web.Response:
    state = _state(request)
    delivery_id = request.match_info["id"]
    try:
        ask = _replay_request(request, await _payload(request))
        replay = await replay_one(state, delivery_id, ask)
    except BadQuery as exc:
        return problem(400, "bad_request", str(exc))
    except ReplayRefused as exc:
        status = 404 if "no delivery" in str(exc) else 409
        return problem(status, "replay_refused", str(exc))
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    return web.json_response(_replay_json(replay), status=202)


def _selector(payload: dict[str, Any]) -> ReplaySelector:
    status = payload.get("status")
    if status is not None and status not in STATUSES:
        raise BadQuery(f"status {status!r}: use one of {', '.join(STATUSES)}")
    state = payload.get("destinationState")
    if state is not None and state not in OUTBOX_STATES:
        raise BadQuery(f"destinationState {state!r}: use one of {', '.join(OUTBOX_STATES)}")
    limit = payload.get("limit", MAX_BATCH)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise BadQuery(f"limit must be a number from 1 to {MAX_BATCH}")
    selector = ReplaySelector(
        webhook=payload.get("webhook"),
        status=status,
        event_type=payload.get("eventType"),
        since=_parse_time("since", payload.get("since")),
        until=_parse_time("until", payload.get("until")),
        destination_state=state,
        destination=payload.get("destination"),
        limit=limit,
    )
    if selector == ReplaySelector(limit=limit):
        raise BadQuery(
            "say which deliveries: webhook, status, eventType, since, until or destinationState"
        )
    return selector


async def replay_batch(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        payload = await _payload(request)
        if "body" in payload:
            raise BadQuery(
                "a batch replay sends the kept bodies; replay one delivery to change one"
            )
        selector = _selector(payload)
        ask = _replay_request(request, payload)
        ids = await state.store.select_for_replay(selector)
    except BadQuery as exc:
        return problem(400, "bad_request", str(exc))
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    replayed: list[dict[str, Any]] = []
    refused: list[dict[str, str]] = []
    for delivery_id in ids:
        try:
            replayed.append(_replay_json(await replay_one(state, delivery_id, ask)))
        except (ReplayRefused, BadQuery) as exc:
            refused.append({"deliveryId": delivery_id, "message": str(exc)})
        except StoreUnavailable as exc:
            return problem(503, "store_unavailable", f"{exc} (after {len(replayed)} replays)")
    return web.json_response(
        {"replayed": replayed, "refused": refused, "matched": len(ids)}, status=202
    )
