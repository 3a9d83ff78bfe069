"""Every answer the receiver gives: JSON with a stable `error` code and a message a
person understands (issue 3, "Answers")."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web


def problem(
    status: int,
    code: str,
    message: str,
    *,
    delivery_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, object] = {"error": code, "message": message}
    if delivery_id is not None:
        # The id of the record kept of this refusal, so a sender can quote it.
        body["deliveryId"] = delivery_id
    return web.json_response(body, status=status, headers=headers)
