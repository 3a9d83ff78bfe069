"""The operator's client of one receiver replica's admin API (issue 6).

The operator pushes the compiled configuration to every replica with `push_config`,
reads counters with `stats` for the Webhooks' `status.deliveries`, and asks for
replays when a `hookline.dev/replay` annotation appears. Every method returns the
answer's JSON object, or raises:

- `ReceiverError` for an answer that is not 2xx, with the body's stable `error` code
  (`temporary` tells the operator whether to retry: 429 and 5xx);
- `ReceiverUnavailable` when no answer came (connection refused or reset, timeout):
  the replica is starting or gone, which the operator retries (kopf.TemporaryError).

The token is sent, never logged or put in an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

DEFAULT_TIMEOUT = 10.0
# Compiling a large configuration (a thousand Webhooks' schemas) takes longer.
PUSH_TIMEOUT = 60.0


class ReceiverError(Exception):
    """The receiver answered, and not with a 2xx."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []  # e.g. the lines of an invalid_config answer

    @property
    def temporary(self) -> bool:
        """Worth retrying as it is: the receiver is busy or its store is down."""
        return self.status == 429 or self.status >= 500


class ReceiverUnavailable(Exception):
    """No answer from the receiver (not listening, connection lost, timed out)."""


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("since needs a time zone")
    return value.isoformat().replace("+00:00", "Z")


class ReceiverAdmin:
    """One replica's admin API at `base_url` (e.g. ``http://10.0.3.7:8081``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session = session
        self._timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"ReceiverAdmin({self.base_url!r})"

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds or self._timeout),
            ) as response:
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                status = response.status
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ReceiverUnavailable(f"{method} {url}: {exc or type(exc).__name__}") from None
        except TimeoutError:
            raise ReceiverUnavailable(f"{method} {url}: no answer in time") from None
        if not 200 <= status < 300:
            if isinstance(payload, dict):
                raise ReceiverError(
                    status,
                    str(payload.get("error") or f"http_{status}"),
                    str(payload.get("message") or ""),
                    payload.get("errors") if isinstance(payload.get("errors"), list) else None,
                )
            raise ReceiverError(status, f"http_{status}", f"{method} {url}: not a JSON answer")
        if not isinstance(payload, dict):
            raise ReceiverError(status, "bad_answer", f"{method} {url}: not a JSON object")
        return payload

    async def push_config(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/v1/config: serve `bundle` (hookline.receiver.bundle.build_bundle).
        Returns what is now served: version, routes, problems, loadedAt. An invalid
        bundle raises ReceiverError(400, "invalid_config") with `errors`."""
        return await self._call("PUT", "/api/v1/config", bundle, seconds=PUSH_TIMEOUT)

    async def config(self) -> dict[str, Any]:
        """GET /api/v1/config: what is served (no secrets)."""
        return await self._call("GET", "/api/v1/config")

    async def stats(self) -> dict[str, Any]:
        """GET /api/v1/stats: counters per Webhook, EventFilter, EventType."""
        return await self._call("GET", "/api/v1/stats")

    async def known_deliveries(self, webhook: str, ids: list[str]) -> set[str]:
        """POST /api/v1/webhooks/<ns>/<name>/known-deliveries: which of the sender's
        delivery ids (X-GitHub-Delivery) the store holds for `webhook` ("ns/name")."""
        namespace, _, name = webhook.partition("/")
        path = f"/api/v1/webhooks/{quote(namespace, safe='')}/{quote(name, safe='')}"
        answer = await self._call("POST", f"{path}/known-deliveries", {"ids": ids})
        return {str(i) for i in answer.get("known") or []}

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        """GET /api/v1/deliveries/<id>: one kept delivery (credentials redacted), with
        its destinations, attempts and replays. 404 delivery_not_found if not kept."""
        return await self._call("GET", f"/api/v1/deliveries/{quote(delivery_id, safe='')}")

    async def replay_delivery(
        self,
        delivery_id: str,
        reason: str,
        requested_by: str,
        destinations: list[str] | None = None,
    ) -> dict[str, Any]:
        """POST /api/v1/deliveries/<id>/replay; the replay (202). 404/409 replay_refused
        when the delivery is not kept, was rejected, or was replayed too often."""
        body: dict[str, Any] = {"reason": reason, "requestedBy": requested_by}
        if destinations is not None:
            body["destinations"] = destinations
        path = f"/api/v1/deliveries/{quote(delivery_id, safe='')}/replay"
        return await self._call("POST", path, body)

    async def replay_batch(
        self,
        webhook: str,
        destination_state: str | None = None,
        since: datetime | str | None = None,
        *,
        reason: str = "",
        requested_by: str = "hookline-operator",
        status: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """POST /api/v1/replays for one Webhook (<namespace>/<name>):
        `{"replayed": [...], "refused": [...], "matched": n}`.

        `destination_state` is an outbox state (failed, dead_lettered, ...), `since`
        an RFC 3339 time or an aware datetime, `status` a delivery status."""
        body: dict[str, Any] = {"webhook": webhook, "reason": reason, "requestedBy": requested_by}
        if destination_state is not None:
            body["destinationState"] = destination_state
        if since is not None:
            body["since"] = _rfc3339(since)
        if status is not None:
            body["status"] = status
        if limit is not None:
            body["limit"] = limit
        return await self._call("POST", "/api/v1/replays", body)


__all__ = ["ReceiverAdmin", "ReceiverError", "ReceiverUnavailable"]
