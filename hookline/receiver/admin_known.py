"""Which of a list of sender delivery ids the store holds (issue 12).

GitHub never retries a failed delivery; the operator lists a hook's recent deliveries
and asks GitHub to redeliver those the receiver does not have. This answers "which of
these X-GitHub-Delivery ids were received" for one Webhook, by the dedup key the
receiver stores each delivery under (hookline.receiver.config.DEFAULT_DEDUP_HEADERS).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..store.base import StoreUnavailable
from .responses import problem
from .state import INGEST_APP, STATE

MAX_IDS = 1000  # GitHub's 72 h of deliveries of a busy hook, in pages of 100


async def known_deliveries(request: web.Request) -> web.Response:
    webhook = f"{request.match_info['namespace']}/{request.match_info['name']}"
    try:
        body: Any = await request.json()
    except ValueError:
        return problem(400, "invalid_body", 'the body must be JSON: {"ids": ["...", ...]}')
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        return problem(400, "invalid_body", '"ids" must be a list of non-empty strings')
    if len(ids) > MAX_IDS:
        return problem(400, "too_many_ids", f"at most {MAX_IDS} ids per request, not {len(ids)}")
    store = request.app[INGEST_APP][STATE].store
    try:
        known = [i for i in dict.fromkeys(ids) if await store.find_duplicate(webhook, i)]
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", str(exc))
    return web.json_response({"webhook": webhook, "known": known})
