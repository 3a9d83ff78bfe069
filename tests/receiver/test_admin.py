"""The admin API: history with filters and pagination, stats, OpenAPI, health,
metrics; retention purge and configuration reload."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml
from openapi_spec_validator import validate as validate_openapi

from hookline.receiver.app import reload_config
from tests.receiver.conftest import WEBHOOKS, Receiver, _webhook
from tests.receiver.test_ingest import _accepted, _refused


async def _get(receiver: Receiver, url: str, status: int = 200) -> Any:
    response = await receiver.admin.get(url)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def test_admin_is_not_served_on_the_ingest_port(receiver: Receiver) -> None:
    for path in ("/api/v1/deliveries", "/api/v1/stats", "/metrics", "/healthz"):
        assert (await receiver.ingest.get(path)).status == 404
    assert (await receiver.admin.post("/hooks/open", data=b"{}")).status == 404


async def test_list_filters_and_pagination(receiver: Receiver) -> None:
    accepted = [await _accepted(receiver, "open", f'{{"n": {i}}}'.encode()) for i in range(7)]
    receiver.wall.advance(60)
    later = await _accepted(receiver, "bearer", Authorization="Bearer tok-123")
    refused = (await _refused(receiver, "bearer", 401, "missing_credentials"))["deliveryId"]

    everything = await _get(receiver, "/api/v1/deliveries?limit=500")
    ids = [item["id"] for item in everything["items"]]
    assert ids == [refused, later, *reversed(accepted)]  # newest first
    assert everything["next"] is None
    assert set(everything["items"][0]) >= {"id", "webhook", "status", "eventType", "receivedAt"}

    seen: list[str] = []
    url = "/api/v1/deliveries?webhook=t/open&limit=3"
    while url:
        page = await _get(receiver, url)
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        url = (
            f"/api/v1/deliveries?webhook=t/open&limit=3&cursor={page['next']}"
            if page["next"]
            else ""
        )
    assert seen == list(reversed(accepted))

    rejected = await _get(receiver, "/api/v1/deliveries?status=rejected")
    assert [i["id"] for i in rejected["items"]] == [refused]
    since = await _get(receiver, "/api/v1/deliveries?since=2027-01-15T08:00:30Z")
    assert [i["id"] for i in since["items"]] == [refused, later]
    until = await _get(receiver, "/api/v1/deliveries?until=2027-01-15T08:00:30Z")
    assert len(until["items"]) == 7
    found = await _get(receiver, '/api/v1/deliveries?q="n": 3')
    assert [i["id"] for i in found["items"]] == [accepted[3]]


async def test_bad_queries_are_400(receiver: Receiver) -> None:
    for query, code in [
        ("status=lost", "bad_query"),
        ("limit=0", "bad_query"),
        ("limit=many", "bad_query"),
        ("since=yesterday", "bad_query"),
        ("since=2027-01-15T08:00:00", "bad_query"),
        ("webhook=open", "bad_query"),
        ("cursor=not-a-cursor", "bad_cursor"),
    ]:
        payload = await _get(receiver, f"/api/v1/deliveries?{query}", 400)
        assert payload["error"] == code, query
    missing = await _get(receiver, "/api/v1/deliveries/NOPE", 404)
    assert missing["error"] == "delivery_not_found"


async def test_stats(receiver: Receiver) -> None:
    first = await _accepted(receiver, "open")
    receiver.wall.advance(5)
    last = await _accepted(receiver, "open")
    await _refused(receiver, "bearer", 401, "missing_credentials")
    stats = await _get(receiver, "/api/v1/stats")
    assert stats["webhooks"]["t/open"] == {
        "received": 2,
        "accepted": 2,
        "rejected": 0,
        "filtered": 0,
        "lastReceivedAt": "2027-01-15T08:00:05Z",
        "lastDeliveryID": last,
        "lastError": None,
        # t/open has no destinations: nothing to forward.
        "delivered": 0,
        "failed": 0,
        "deadLettered": 0,
        "pending": 0,
        "destinations": {},
    }
    assert first != last
    bearer = stats["webhooks"]["t/bearer"]
    assert (bearer["received"], bearer["rejected"]) == (1, 1)
    assert bearer["lastError"].startswith("missing_credentials: ")
    assert stats["config"]["routes"]["open"] == "t/open"


async def test_openapi_document_is_valid(receiver: Receiver) -> None:
    document = await _get(receiver, "/api/v1/openapi.json")
    validate_openapi(document)
    assert {"/api/v1/deliveries", "/api/v1/deliveries/{id}", "/api/v1/stats"} <= set(
        document["paths"]
    )


async def test_health_ready_and_metrics(receiver: Receiver) -> None:
    assert (await _get(receiver, "/healthz"))["status"] == "ok"
    ready = await _get(receiver, "/readyz")
    assert ready["status"] == "ready" and ready["configVersion"]
    await _accepted(receiver, "open")
    await _refused(receiver, "nope", 404, "unknown_webhook")
    response = await receiver.admin.get("/metrics")
    text = await response.text()
    assert 'hookline_requests_total{code="",status="accepted",webhook="t/open"} 1.0' in text
    assert "hookline_unrouted_requests_total 1.0" in text
    assert "hookline_routes 11.0" in text


async def test_retention_purge(receiver: Receiver) -> None:
    gh_secret = b"gh-secret"
    from tests.support.signing import github_headers

    old = await _accepted(receiver, "gh", b"{}", **github_headers(gh_secret, b"{}", "old"))
    kept = await _accepted(receiver, "open")  # retention 720h
    receiver.wall.advance(3601)  # past t/gh's 1h retention
    receiver.state.settings.purge_interval = 0.01
    purged = await receiver.state.store.purge_expired(receiver.state.now())
    assert purged == 1
    assert (await receiver.admin.get(f"/api/v1/deliveries/{old}")).status == 404
    assert (await receiver.admin.get(f"/api/v1/deliveries/{kept}")).status == 200
    # After its retention, a delivery id is no longer remembered.
    await _accepted(receiver, "gh", b"{}", **github_headers(gh_secret, b"{}", "old"))


async def test_purge_runs_periodically(tmp_path: Any, aiohttp_client: Any) -> None:
    from hookline.receiver import Settings, create_app
    from hookline.receiver.server import manifests_loader
    from hookline.receiver.state import STATE
    from tests.receiver.conftest import START, write_manifests
    from tests.support.clock import FakeClock

    wall = FakeClock(START)
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'p.db'}",
        load_config=manifests_loader(write_manifests(tmp_path / "m")),
        wall_clock=wall,
        purge_interval=0.01,
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    response = await client.post("/hooks/small", data=b"x")
    delivery_id = (await response.json())["deliveryId"]
    wall.advance(721 * 3600)
    store = app[STATE].store
    for _ in range(200):  # the loop runs every 10 ms; give it up to 2 s
        if await store.get(delivery_id) is None:
            break
        await asyncio.sleep(0.01)
    assert await store.get(delivery_id) is None


async def test_reload_swaps_routes_without_restart(receiver: Receiver) -> None:
    await _accepted(receiver, "open")
    changed = [w for w in WEBHOOKS if w["metadata"]["name"] != "open"]
    changed.append(_webhook("renamed", "renamed", {"type": "none"}))
    (receiver.manifests / "webhooks.yaml").write_text(yaml.safe_dump_all(changed))
    await reload_config(receiver.ingest.app)
    await _refused(receiver, "open", 404, "unknown_webhook")
    await _accepted(receiver, "renamed")


async def test_broken_reload_keeps_serving(receiver: Receiver) -> None:
    version = receiver.state.config.version
    (receiver.manifests / "webhooks.yaml").write_text("kind: [broken")
    await reload_config(receiver.ingest.app)
    # Like `nginx -s reload`: a configuration that does not parse is refused whole and
    # the last good one stays in service.
    assert receiver.state.config.version == version
    await _accepted(receiver, "open")
