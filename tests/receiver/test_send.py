"""`send` against real HTTP sinks on loopback: every answer and failure becomes a
result (never an exception), signatures verify with the reference libraries, CloudEvents
parse back with the SDK, and the SSRF guard refuses link-local destinations unless the
Webhook allows them. No real sleeps beyond a 0.2 s timeout."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer, unused_port
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from pytest_aiohttp import AiohttpServer
from standardwebhooks.webhooks import Webhook as ReferenceWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from hookline.api.webhook import Destination
from hookline.receiver.forward import (
    CompiledDestination,
    OutgoingRequest,
    SendResult,
    build_request,
    send,
)
from hookline.receiver.retry import classify, parse_retry_after
from hookline.receiver.ssrf import ClientSessions
from hookline.store.base import DeliveryRecord

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HMAC_SECRET = b"destination-hmac-secret"
BODY = b'{"action": "completed", "run": {"id": 42}}'


@dataclass
class Sink:
    server: TestServer
    release: asyncio.Event  # the /slow handler waits on it
    hits: dict[str, int] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


def make_app(sink: SimpleNamespace) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        sink.hits[name] = sink.hits.get(name, 0) + 1
        body = await request.read()
        sink.received.append((dict(request.headers), body))
        if name == "ok":
            return web.Response(status=200, text="thanks")
        if name == "slow":
            await sink.release.wait()
            return web.Response(status=200)
        if name == "busy":
            return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")
        if name == "redirect":
            raise web.HTTPFound(location="/ok")
        if name == "huge":
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            for _ in range(256):
                await response.write(b"x" * 4096)  # 1 MiB
            await response.write_eof()
            return response
        if name == "standard":
            try:
                ReferenceWebhook(SW_SECRET).verify(body, dict(request.headers), json_parse=False)
            except WebhookVerificationError as exc:
                return web.Response(status=401, text=str(exc))
            return web.Response(status=204)
        if name == "hmac":
            expected = hmac.new(HMAC_SECRET, body, hashlib.sha256).hexdigest()
            given = request.headers.get("X-Webhook-Signature", "")
            return web.Response(status=204 if hmac.compare_digest(expected, given) else 401)
        if name == "cloudevents":
            event = from_http(HTTPMessage(dict(request.headers), body), JSONFormat())
            time = event.get_time()
            return web.json_response(
                {
                    "id": event.get_id(),
                    "source": event.get_source(),
                    "type": event.get_type(),
                    "time": time.isoformat() if time else None,
                    "data": event.get_data(),
                }
            )
        return web.Response(status=int(name), text=f"status {name}")

    app = web.Application()
    app.router.add_post("/{name}", handle)
    return app


@pytest.fixture
async def sink(aiohttp_server: AiohttpServer) -> AsyncIterator[Sink]:
    state = SimpleNamespace(hits={}, received=[], release=asyncio.Event())
    server = await aiohttp_server(make_app(state))
    result = Sink(server, state.release, state.hits, state.received)
    try:
        yield result
    finally:
        state.release.set()


@pytest.fixture
async def sessions() -> AsyncIterator[ClientSessions]:
    result = ClientSessions()
    yield result
    await result.close()


def delivery(**overrides: Any) -> DeliveryRecord:
    fields: dict[str, Any] = {
        "id": "01JBDELIVERY0000000000000A",
        "webhook": "ci/runs",
        "received_at": datetime(2027, 1, 15, 12, 0, tzinfo=UTC),
        "status": "accepted",
        "http_status": 202,
        "event_type": "github.workflow_run",
        "headers": {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run"},
        "body": BODY,
    }
    fields.update(overrides)
    return DeliveryRecord(**fields)


def destination(
    url: str, secret: bytes | None = None, allow_link_local: bool = False, **spec: Any
) -> CompiledDestination:
    dest = Destination.model_validate({"name": "sink", "url": url, **spec})
    return CompiledDestination(dest.name, url, dest, secret, allow_link_local)


async def post(
    sessions: ClientSessions, dest: CompiledDestination, seconds: float = 5.0
) -> SendResult:
    request = build_request(dest, delivery(), None, datetime.now(UTC))
    return await send(sessions.for_destination(dest.allow_link_local), request, seconds)


async def test_success(sink: Sink, sessions: ClientSessions) -> None:
    result = await post(sessions, destination(sink.url("/ok")))
    assert (result.status, result.error, result.response_head) == (200, "", b"thanks")
    assert result.duration_ms > 0
    assert classify(result.status, result.error).kind == "delivered"
    headers, body = sink.received[-1]
    assert body == BODY
    assert headers["X-GitHub-Event"] == "workflow_run"
    assert headers["X-Hookline-Delivery"] == "01JBDELIVERY0000000000000A"
    assert headers["User-Agent"] == "hookline/0.1.0"


@pytest.mark.parametrize(("status", "kind"), [(500, "retry"), (400, "failed"), (410, "suspend")])
async def test_error_statuses(sink: Sink, sessions: ClientSessions, status: int, kind: str) -> None:
    result = await post(sessions, destination(sink.url(f"/{status}")))
    assert result.status == status
    assert result.response_head == f"status {status}".encode()
    assert result.error == ""
    assert classify(result.status, result.error).kind == kind


async def test_429_with_retry_after(sink: Sink, sessions: ClientSessions) -> None:
    result = await post(sessions, destination(sink.url("/busy")))
    assert (result.status, result.retry_after) == (429, "7")
    assert parse_retry_after(result.retry_after, datetime.now(UTC)) == 7.0
    assert classify(result.status, result.error).kind == "retry"


async def test_timeout(sink: Sink, sessions: ClientSessions) -> None:
    result = await post(sessions, destination(sink.url("/slow")), seconds=0.2)
    assert result.status is None
    assert result.error == "timed out after 0.2s"
    assert 150 < result.duration_ms < 2000
    assert classify(result.status, result.error).kind == "retry"


async def test_connection_refused(sessions: ClientSessions) -> None:
    port = unused_port()  # bound then released: nothing listens there
    result = await post(sessions, destination(f"http://127.0.0.1:{port}/x"))
    assert result.status is None
    assert result.error.startswith(f"cannot connect to 127.0.0.1:{port}")
    assert "\n" not in result.error
    assert classify(result.status, result.error).kind == "retry"


async def test_only_the_first_kib_of_a_huge_answer_is_kept(
    sink: Sink, sessions: ClientSessions
) -> None:
    result = await post(sessions, destination(sink.url("/huge")))
    assert result.status == 200
    assert result.response_head == b"x" * 1024


async def test_redirect_is_not_followed(sink: Sink, sessions: ClientSessions) -> None:
    result = await post(sessions, destination(sink.url("/redirect")))
    assert result.status == 302
    assert "ok" not in sink.hits
    assert classify(result.status, result.error).kind == "failed"


async def test_standard_webhooks_signature_verifies(sink: Sink, sessions: ClientSessions) -> None:
    signing = {"scheme": "standard-webhooks", "secretRef": {"name": "s"}}
    for fmt in ("raw", "envelope", "cloudevents"):
        dest = destination(sink.url("/standard"), SW_SECRET.encode(), signing=signing, format=fmt)
        result = await post(sessions, dest)
        assert result.status == 204, result.response_head
        headers, _ = sink.received[-1]
        assert headers["webhook-id"] == "01JBDELIVERY0000000000000A"
    wrong = destination(sink.url("/standard"), b"whsec_" + b"A" * 32, signing=signing)
    assert (await post(sessions, wrong)).status == 401


async def test_hmac_signature_verifies(sink: Sink, sessions: ClientSessions) -> None:
    signing = {"scheme": "hmac-sha256", "secretRef": {"name": "s"}}
    for fmt in ("raw", "envelope", "cloudevents"):
        dest = destination(sink.url("/hmac"), HMAC_SECRET, signing=signing, format=fmt)
        assert (await post(sessions, dest)).status == 204
    assert (
        await post(sessions, destination(sink.url("/hmac"), b"wrong", signing=signing))
    ).status == 401


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_cloudevents_parse_back_with_the_sdk(
    sink: Sink, sessions: ClientSessions, mode: str
) -> None:
    dest = destination(sink.url("/cloudevents"), format="cloudevents", cloudEventsMode=mode)
    result = await post(sessions, dest)
    assert result.status == 200
    assert json.loads(result.response_head) == {
        "id": "01JBDELIVERY0000000000000A",
        "source": "/hookline/ci/runs",
        "type": "github.workflow_run",
        "time": "2027-01-15T12:00:00+00:00",
        "data": {"action": "completed", "run": {"id": 42}},
    }


# --- SSRF guard ---------------------------------------------------------------------


class LinkLocalResolver(AbstractResolver):
    """Resolves every name to 169.254.1.1, as a hostile DNS record would."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls.append(host)
        return [
            {
                "hostname": host,
                "host": "169.254.1.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


class WouldConnect(Exception):
    """Raised by a trace hook just before a connection is made, so allowed link-local
    destinations are shown to pass the guard without sending a packet there."""


def stop_before_connecting() -> aiohttp.TraceConfig:
    async def start(_: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.literal = params.url.host.replace(".", "").isdigit() or ":" in params.url.host

    async def stop(*_: Any) -> None:
        raise WouldConnect("passed the guard")

    async def stop_literal(_: Any, ctx: SimpleNamespace, params: Any) -> None:
        if ctx.literal:  # a name is resolved after this point, and stopped after that
            await stop()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(start)
    trace.on_connection_create_start.append(stop_literal)
    trace.on_dns_resolvehost_end.append(stop)
    return trace


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[ClientSessions, LinkLocalResolver]]:
    resolver = LinkLocalResolver()
    result = ClientSessions(resolver, trace_configs=[stop_before_connecting()])
    yield result, resolver
    await result.close()


async def test_literal_metadata_address_refused_unless_allowed(
    guarded: tuple[ClientSessions, LinkLocalResolver],
) -> None:
    sessions, resolver = guarded
    url = "http://169.254.169.254/latest/meta-data/"
    refused = await post(sessions, destination(url))
    assert refused.status is None and refused.refused
    assert refused.error.startswith("refused: 169.254.169.254 is a cloud metadata endpoint")
    assert classify(refused.status, refused.error, refused=refused.refused).kind == "failed"
    allowed = await post(sessions, destination(url, allow_link_local=True))
    assert not allowed.refused
    assert "passed the guard" in allowed.error
    assert resolver.calls == []  # literal addresses never reach a resolver


async def test_name_resolving_to_link_local_refused_unless_allowed(
    guarded: tuple[ClientSessions, LinkLocalResolver],
) -> None:
    sessions, resolver = guarded
    url = "http://innocent.example.test:8080/hook"
    refused = await post(sessions, destination(url))
    assert refused.refused
    assert "innocent.example.test resolves to 169.254.1.1" in refused.error
    assert "allowLinkLocal" in refused.error
    again = await post(sessions, destination(url))  # nothing refused is cached
    assert again.refused
    allowed = await post(sessions, destination(url, allow_link_local=True))
    assert not allowed.refused
    assert "passed the guard" in allowed.error
    assert resolver.calls.count("innocent.example.test") == 3


async def test_guarded_session_resolves_and_reaches_loopback(
    sink: Sink, sessions: ClientSessions
) -> None:
    # the real resolver behind the guard: loopback (and private ranges) stay allowed
    url = sink.url("/ok").replace("127.0.0.1", "localhost")
    result = await send(sessions.for_destination(False), OutgoingRequest(url, {}, b"{}"), 5.0)
    assert (result.status, result.error) == (200, "")
