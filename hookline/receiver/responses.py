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
    details: Mapping[str, object] | None = None,
) -> web.Response:
    body: dict[str, object] = {"error": code, "message": message, **(details or {})}
    if delivery_id is not None:
        # The id of the record kept of this refusal, so a sender can quote it.
        body["deliveryId"] = delivery_id
    return web.json_response(body, status=status, headers=headers)


class Refusal(Exception):
    """A request refused with an HTTP status, a stable code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        keep_body: bool = True,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.keep_body = keep_body
        self.headers = headers or {}
        self.details = details or {}  # more fields for the JSON answer, e.g. "errors"
