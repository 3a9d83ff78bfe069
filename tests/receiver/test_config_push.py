"""The wire between operator and receiver (issue 6), over real HTTP on loopback with a
real SQLite store: a receiver in push mode is not ready until the operator PUTs a
configuration; pushes swap routes and secrets without a restart (requests in flight
finish on their old route); a bad push changes nothing; the admin API wants its token
while probes and metrics stay open; the operator's client works against it; no secret
value shows in answers or logs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_openapi

from hookline.api.manifests import ManifestSet, add_document
from hookline.cli import main
from hookline.receiver import Settings, create_admin_app, create_app
from hookline.receiver.admin_auth import AdminToken
from hookline.receiver.bundle import build_bundle
from hookline.receiver.client import ReceiverAdmin, ReceiverError, ReceiverUnavailable
from tests.receiver.conftest import NS, START, MakeClient, Receiver, _webhook
from tests.support.clock import FakeClock
from tests.support.signing import github_headers
from tests.support.sink import Sink

TOKEN = "admin-token-9f8e7d6c5b4a"
BODY = json.dumps({"action": "completed", "ref": "refs/heads/main"}).encode()
OLD = b"gh-secret-old-0123456789"
NEW = b"gh-secret-new-9876543210"
# Every secret value a test uses: none may show in an answer or a log line.
SECRET_VALUES = [OLD, NEW, TOKEN.encode()]

GH = _webhook("gh", "gh", {"type": "github", "secretRef": {"name": "gh-secret", "key": "secret"}})


def _bundle(
    documents: list[dict[str, Any]], secrets: dict[str, dict[str, bytes]]
) -> dict[str, Any]:
    """What the operator sends: its resources and Secrets (by name, in NS) through
    build_bundle, exactly as it will."""
    parsed = ManifestSet()
    for i, doc in enumerate(documents):
        add_document(parsed, doc, f"doc {i}")
    assert parsed.errors == []
    return build_bundle(
        parsed.webhooks,
        parsed.filters,
        parsed.event_types,
        {(NS, name): data for name, data in secrets.items()},
    )


def _gh(secret: bytes, previous: bytes | None = None) -> dict[str, Any]:
    data = {"secret": secret} | ({"secret.previous": previous} if previous else {})
    return _bundle([GH], {"gh-secret": data})


async def start_push_receiver(
    tmp_path: Path,
    aiohttp_client: MakeClient,
    *,
    token: str | None = TOKEN,
    dispatch_concurrency: int = 0,
    store_url: str | None = None,
) -> Receiver:
    wall, monotonic = FakeClock(START), FakeClock(1000.0)
    settings = Settings(
        store_url=store_url or f"sqlite:///{tmp_path / 'hookline.db'}",
        load_config=None,  # push mode
        wall_clock=wall,
        monotonic=monotonic,
        dispatch_concurrency=dispatch_concurrency,
    )
    ingest_app = create_app(settings)
    ingest = await aiohttp_client(ingest_app)
    admin_token = AdminToken(token=token.encode()) if token is not None else None
    admin = await aiohttp_client(create_admin_app(ingest_app, admin_token))
    return Receiver(ingest, admin, wall, monotonic, tmp_path)


@pytest.fixture
async def pushed(tmp_path: Path, aiohttp_client: MakeClient) -> Receiver:
    return await start_push_receiver(tmp_path, aiohttp_client)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _push(receiver: Receiver, bundle: Any, status: int = 200) -> dict[str, Any]:
    response = await receiver.admin.put("/api/v1/config", json=bundle, headers=AUTH)
    payload: dict[str, Any] = await response.json()
    assert response.status == status, payload
    return payload


async def _post_gh(receiver: Receiver, secret: bytes, delivery: str) -> int:
    response = await receiver.post("gh", BODY, **github_headers(secret, BODY, delivery))
    return response.status


# --- push mode ----------------------------------------------------------------------


async def test_not_ready_until_the_first_push(pushed: Receiver) -> None:
    ready = await pushed.admin.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["error"] == "not_configured"
    assert (await pushed.admin.get("/healthz")).status == 200  # alive, just not ready
    described = await (await pushed.admin.get("/api/v1/config", headers=AUTH)).json()
    assert described["configured"] is False and described["source"] == "push"
    assert described["routes"] == {} and described["loadedAt"] is None
    assert (await pushed.post("gh", BODY)).status == 404

    answer = await _push(pushed, _gh(OLD))
    assert answer["configured"] is True
    assert answer["routes"] == {"gh": f"{NS}/gh"} and answer["problems"] == []
    assert answer["loadedAt"] == "2027-01-15T08:00:00Z"
    assert len(answer["version"]) == 16
    ready = await pushed.admin.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["configVersion"] == answer["version"]
    assert await _post_gh(pushed, OLD, "d-1") == 202
    again = await (await pushed.admin.get("/api/v1/config", headers=AUTH)).json()
    assert again == answer


async def test_a_new_route_is_served_at_once(pushed: Receiver) -> None:
    await _push(pushed, _gh(OLD))
    assert (await pushed.post("open", b"{}")).status == 404
    opened = _webhook("open", "open", {"type": "none"})
    await _push(pushed, _bundle([GH, opened], {"gh-secret": {"secret": OLD}}))
    response = await pushed.post("open", b"{}")
    assert response.status == 202, await response.text()
    assert await _post_gh(pushed, OLD, "d-1") == 202


async def test_a_changed_secret_applies_without_restart(pushed: Receiver) -> None:
    first = await _push(pushed, _gh(OLD))
    assert await _post_gh(pushed, OLD, "d-1") == 202
    second = await _push(pushed, _gh(NEW))
    assert second["version"] != first["version"]  # the operator sees the rotation landed
    assert await _post_gh(pushed, OLD, "d-2") == 401
    assert await _post_gh(pushed, NEW, "d-3") == 202


async def test_previous_secret_accepted_during_the_overlap_only(pushed: Receiver) -> None:
    await _push(pushed, _gh(NEW, previous=OLD))
    assert await _post_gh(pushed, OLD, "d-1") == 202
    assert await _post_gh(pushed, NEW, "d-2") == 202
    # The window ends: the operator removes secret.previous and pushes again.
    await _push(pushed, _gh(NEW))
    assert await _post_gh(pushed, OLD, "d-3") == 401
    assert await _post_gh(pushed, NEW, "d-4") == 202


async def test_a_bad_bundle_is_refused_whole_and_the_old_one_serves(pushed: Receiver) -> None:
    good = await _push(pushed, _gh(OLD))
    bad = _gh(NEW)
    bad["resources"][0]["spec"]["auth"]["type"] = "telepathy"
    bad["resources"].append({"kind": "Deployment"})
    refused = await _push(pushed, bad, 400)
    assert refused["error"] == "invalid_config"
    assert "previous configuration stays in service" in refused["message"]
    assert len(refused["errors"]) == 2
    assert refused["errors"][0].startswith("resources[0] (Webhook t/gh): spec.auth.type")
    not_json = await pushed.admin.put("/api/v1/config", data=b"{nope", headers=AUTH)
    assert not_json.status == 400
    assert (await not_json.json())["error"] == "invalid_config"
    shapes: list[Any] = [[], {"resources": "x"}, {"secrets": [{"name": "s"}]}]
    for shape in shapes:
        assert (await _push(pushed, shape, 400))["error"] == "invalid_config"
    described = await (await pushed.admin.get("/api/v1/config", headers=AUTH)).json()
    assert described["version"] == good["version"]
    assert await _post_gh(pushed, OLD, "d-1") == 202
    assert await _post_gh(pushed, NEW, "d-2") == 401


async def test_unserved_webhooks_are_listed_as_problems(pushed: Receiver) -> None:
    answer = await _push(pushed, _bundle([GH], {}))
    assert answer["routes"] == {}
    assert [(p["key"], p["reason"]) for p in answer["problems"]] == [("t/gh", "SecretNotFound")]
    assert (await pushed.admin.get("/readyz")).status == 200  # configured, if empty


async def test_a_request_in_flight_finishes_on_its_old_route(pushed: Receiver) -> None:
    await _push(pushed, _gh(OLD))
    gate = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield BODY[:5]
        await gate.wait()
        yield BODY[5:]

    server = pushed.ingest.server.runner
    assert server is not None and server.server is not None
    before = server.server.requests_count
    in_flight = asyncio.create_task(
        pushed.ingest.post(
            "/hooks/gh", data=slow_body(), headers=github_headers(OLD, BODY, "d-slow")
        )
    )
    for _ in range(200):  # the handler has the request (and its route) within 2 s
        if server.server.requests_count > before:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await _push(pushed, _gh(NEW))  # OLD is no longer valid for new requests
    assert await _post_gh(pushed, OLD, "d-after") == 401
    gate.set()
    response = await in_flight
    assert response.status == 202, await response.text()


async def test_a_manifests_receiver_refuses_pushes(receiver: Receiver) -> None:
    response = await receiver.admin.put("/api/v1/config", json=_gh(OLD))
    assert response.status == 409
    assert (await response.json())["error"] == "not_push_mode"
    described = await (await receiver.admin.get("/api/v1/config")).json()
    assert described["source"] == "manifests" and described["configured"] is True


# --- admin token --------------------------------------------------------------------


async def test_the_admin_api_needs_the_token(pushed: Receiver) -> None:
    paths = [
        ("GET", "/api/v1/config"),
        ("PUT", "/api/v1/config"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/deliveries"),
        ("GET", "/api/v1/deliveries/x"),
        ("POST", "/api/v1/deliveries/x/replay"),
        ("POST", "/api/v1/replays"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/nowhere"),
    ]
    wrong = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ]
    for method, path in paths:
        for headers in wrong:
            response = await pushed.admin.request(method, path, headers=headers, json={})
            body = await response.text()
            assert response.status == 401, (method, path, headers)
            assert json.loads(body)["error"] == "unauthorized"
            assert TOKEN not in body
    assert (await pushed.admin.get("/api/v1/stats", headers=AUTH)).status == 200
    lower = {"Authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive
    assert (await pushed.admin.get("/api/v1/stats", headers=lower)).status == 200
    # Probes and Prometheus hold no token.
    assert (await pushed.admin.get("/healthz")).status == 200
    assert (await pushed.admin.get("/readyz")).status == 503  # open, and not configured
    metrics = await pushed.admin.get("/metrics")
    assert metrics.status == 200
    assert "hookline" in await metrics.text()


async def test_the_token_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    token = AdminToken(path)
    assert token.accepts("Bearer first") and not token.accepts("Bearer second")
    path.write_text("second")
    token.reload()
    assert token.accepts("Bearer second") and not token.accepts("Bearer first")
    path.write_text("")
    token.reload()  # an emptied file keeps the token that works
    assert token.accepts("Bearer second")
    assert AdminToken().accepts(None)  # no token file: open, as before issue 6


# --- the operator's client ----------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.close()


def _client(
    receiver: Receiver, session: aiohttp.ClientSession, token: str | None = TOKEN
) -> ReceiverAdmin:
    return ReceiverAdmin(str(receiver.admin.make_url("/")), token, session)


async def test_the_client_against_a_real_receiver(
    pushed: Receiver, session: aiohttp.ClientSession, sink: Sink
) -> None:
    admin = _client(pushed, session)
    assert "admin-token" not in repr(admin)
    assert (await admin.config())["configured"] is False
    forward = _webhook(
        "fwd", "fwd", {"type": "none"}, destinations=[{"name": "bot", "url": sink.url()}]
    )
    served = await admin.push_config(_bundle([forward], {}))
    assert served["routes"] == {"fwd": "t/fwd"}
    assert (await admin.config())["version"] == served["version"]

    response = await pushed.post("fwd", BODY, **{"Content-Type": "application/json"})
    assert response.status == 202
    delivery_id = (await response.json())["deliveryId"]
    stats = await admin.stats()
    assert stats["webhooks"]["t/fwd"]["accepted"] == 1
    assert stats["webhooks"]["t/fwd"]["pending"] == 1
    assert stats["config"]["version"] == served["version"]

    kept = await admin.delivery(delivery_id)
    assert (kept["id"], kept["webhook"], kept["status"]) == (delivery_id, "t/fwd", "accepted")
    with pytest.raises(ReceiverError) as not_kept:
        await admin.delivery("NOPE/../x")
    assert (not_kept.value.status, not_kept.value.code) == (404, "delivery_not_found")
    replay = await admin.replay_delivery(delivery_id, "annotation", "hookline-operator")
    assert replay["deliveryId"] == delivery_id
    assert (replay["requestedBy"], replay["reason"]) == ("hookline-operator", "annotation")
    assert replay["destinations"] == ["bot"]
    batch = await admin.replay_batch(
        "t/fwd",
        destination_state="pending",
        since=datetime.fromtimestamp(START - 60, UTC),
        reason="since=...",
        requested_by="op",
    )
    assert batch["matched"] == 1 and [r["deliveryId"] for r in batch["replayed"]] == [delivery_id]
    none = await admin.replay_batch("t/fwd", since="2030-01-01T00:00:00Z")
    assert none == {"replayed": [], "refused": [], "matched": 0}

    with pytest.raises(ReceiverError) as missing:
        await admin.replay_delivery("NOPE", "r", "op")
    assert (missing.value.status, missing.value.code) == (404, "replay_refused")
    assert not missing.value.temporary
    with pytest.raises(ReceiverError) as bad:
        await admin.replay_batch("t/fwd", destination_state="lost")
    assert (bad.value.status, bad.value.code) == (400, "bad_request")
    with pytest.raises(ReceiverError) as invalid:
        await admin.push_config({"resources": [{"kind": "Nope"}]})
    assert (invalid.value.status, invalid.value.code) == (400, "invalid_config")
    assert invalid.value.errors == [
        "resources[0]: kind 'Nope' is not one of Webhook, EventFilter, EventType"
    ]
    with pytest.raises(ReceiverError) as unauthorized:
        await _client(pushed, session, token="wrong").stats()
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    assert "wrong" not in str(unauthorized.value)


async def test_the_client_reports_an_absent_receiver(session: aiohttp.ClientSession) -> None:
    # A port nothing listens on: bound, then closed.
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    admin = ReceiverAdmin(f"http://127.0.0.1:{port}", TOKEN, session)
    with pytest.raises(ReceiverUnavailable) as gone:
        await admin.stats()
    assert TOKEN not in str(gone.value)


async def test_the_client_times_out(session: aiohttp.ClientSession) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/v1/stats", hang)
    server_client: TestClient[Any, Any] = TestClient(aiohttp.test_utils.TestServer(app))
    await server_client.start_server()
    try:
        admin = ReceiverAdmin(str(server_client.make_url("/")), None, session, timeout=0.2)
        with pytest.raises(ReceiverUnavailable, match="no answer in time"):
            await admin.stats()
    finally:
        await server_client.close()


# --- no secret anywhere -------------------------------------------------------------


async def test_no_secret_value_in_answers_or_logs(
    pushed: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> None:
        response = await pushed.admin.request(method, path, **kwargs)
        seen.append(await response.text())

    await call("PUT", "/api/v1/config", json=_gh(NEW, previous=OLD), headers=AUTH)
    broken = _gh(NEW, previous=OLD)
    broken["secrets"][0]["data"]["secret"] = "!" + base64.b64encode(NEW).decode()
    broken["resources"][0]["spec"]["auth"]["type"] = "standard-webhooks"
    await call("PUT", "/api/v1/config", json=broken, headers=AUTH)
    # A standard-webhooks Webhook whose secret is not base64: a problem, no value in it.
    unusable = _bundle(
        [_webhook("swx", "swx", {"type": "standard-webhooks", "secretRef": {"name": "swx"}})],
        {"swx": {"secret": b"whsec_" + OLD + b"*!"}},
    )
    await call("PUT", "/api/v1/config", json=unusable, headers=AUTH)
    await call("GET", "/api/v1/config", headers=AUTH)
    await call("GET", "/api/v1/stats", headers=AUTH)
    await call("GET", "/api/v1/config", headers={"Authorization": "Bearer " + TOKEN[:-1]})
    await call("GET", "/readyz")
    assert any("SecretInvalid" in text for text in seen)
    assert any("invalid_config" in text for text in seen)
    everything = "\n".join(seen) + "\n" + caplog.text
    for value in SECRET_VALUES:
        assert value.decode() not in everything
        assert base64.b64encode(value).decode() not in everything


# --- the command line ---------------------------------------------------------------


@pytest.fixture
def no_serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Record what `hookline receiver` would serve instead of serving it."""
    calls: list[dict[str, Any]] = []

    async def fake_serve(settings: Settings, **kwargs: Any) -> None:
        calls.append({"settings": settings, **kwargs})

    monkeypatch.setattr("hookline.receiver.server.serve", fake_serve)
    yield calls


def test_cli_config_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_serve: list[dict[str, Any]]
) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    store = ["--store", f"sqlite:///{tmp_path / 'x.db'}"]
    assert main(["receiver", *store]) == 2
    assert "--manifests DIR or --config-source push" in capsys.readouterr().err
    assert main(["receiver", "--manifests", str(manifests), "--config-source", "push"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["receiver", "--config-source", "manifests", *store]) == 2
    assert main(["receiver", "--config-source", "push", "--admin-token-file", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "--admin-token-file /nope" in err and err.count("\n") == 2
    (tmp_path / "empty").write_text("\n")
    empty = ["--admin-token-file", str(tmp_path / "empty")]
    assert main(["receiver", "--config-source", "push", *empty]) == 2
    assert "empty" in capsys.readouterr().err
    assert no_serve == []

    assert main(["receiver", "--manifests", str(manifests), *store]) == 0
    assert no_serve[-1]["settings"].push_mode is False
    assert no_serve[-1]["admin_token"] is None
    assert (
        main(
            [
                "receiver",
                "--config-source",
                "push",
                "--admin-host",
                "0.0.0.0",
                "--admin-token-file",
                str(token),
                *store,
            ]
        )
        == 0
    )
    served = no_serve[-1]
    assert served["settings"].push_mode is True and served["admin_host"] == "0.0.0.0"
    assert served["admin_token"].accepts(f"Bearer {TOKEN}")
    assert TOKEN not in capsys.readouterr().err


async def test_the_dispatcher_starts_with_the_first_push(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    receiver = await start_push_receiver(tmp_path, aiohttp_client, dispatch_concurrency=2)
    assert receiver.state.dispatcher is not None
    forward = _webhook(
        "fwd", "fwd", {"type": "none"}, destinations=[{"name": "bot", "url": sink.url()}]
    )
    await _push(receiver, _bundle([forward], {}))
    response = await receiver.post("fwd", BODY, **{"Content-Type": "application/json"})
    assert response.status == 202
    assert await sink.wait_until(lambda s: len(s.received) == 1, 5.0)
    assert sink.received[0].body == BODY


async def test_the_openapi_document_describes_the_wire(pushed: Receiver) -> None:
    document = await (await pushed.admin.get("/api/v1/openapi.json", headers=AUTH)).json()
    validate_openapi(document)
    assert set(document["paths"]["/api/v1/config"]) == {"get", "put"}
    assert {"/api/v1/replays", "/api/v1/deliveries/{id}/replay"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    for open_path in ("/healthz", "/readyz", "/metrics"):
        assert document["paths"][open_path]["get"]["security"] == []
