"""Forwarding end to end (issue 5): accepted deliveries reach real HTTP sinks on
loopback, signed; failures are retried on schedule (a fake clock, no real waiting),
dead-lettered after the window, replayed through the admin API; the breaker holds rows
back while a destination is down; a 410 suspends the destination."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as ReferenceWebhook

from hookline.receiver.breaker import Breakers
from hookline.receiver.dispatcher import Dispatcher
from tests.receiver.conftest import (
    NS,
    SIGNING_SECRET,
    START,
    MakeClient,
    Receiver,
    _webhook,
    start_receiver,
)
from tests.support.sink import Sink

BODY = json.dumps({"action": "completed", "id": 7}).encode()


def _documents(sink: Sink) -> list[dict[str, Any]]:
    retry = {"initialBackoff": "10s", "multiplier": 2, "maxBackoff": "1h", "maxAge": "5m"}
    return [
        {
            "apiVersion": "hookline.dev/v1alpha1",
            "kind": "EventType",
            "metadata": {"name": "push", "namespace": NS},
            "spec": {
                "type": "github.push",
                "match": {"header": {"name": "X-GitHub-Event", "value": "push"}},
            },
        },
        _webhook(
            "fwd",
            "fwd",
            {"type": "none"},
            destinations=[
                {
                    "name": "bot",
                    "url": sink.url("/bot"),
                    "signing": {
                        "scheme": "standard-webhooks",
                        "secretRef": {"name": "signing", "key": "standard"},
                    },
                    "retry": retry,
                    # Small, so that a handful of rows trips it and shows the probes.
                    "circuitBreaker": {"minRequests": 3, "halfOpenProbes": 2, "successRate": 1},
                },
                {
                    "name": "pushes-only",
                    "url": sink.url("/pushes"),
                    "eventTypes": ["push"],
                    "retry": retry,
                },
            ],
        ),
    ]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.close()


@pytest.fixture
async def receiver(tmp_path: Path, aiohttp_client: MakeClient, sink: Sink) -> Receiver:
    return await start_receiver(tmp_path, aiohttp_client, _documents(sink))


@pytest.fixture
def dispatcher(receiver: Receiver) -> Dispatcher:
    state = receiver.state
    dispatcher = Dispatcher(
        store=state.store,
        config=state.config,
        metrics=state.metrics,
        now=state.now,
        breakers=Breakers(clock=receiver.monotonic),
        rng=random.Random(7),
        wakeup=state.dispatch_wakeup,
    )
    state.dispatcher = dispatcher
    return dispatcher


async def _deliver(receiver: Receiver, **headers: str) -> str:
    response = await receiver.post("fwd", BODY, **{"Content-Type": "application/json", **headers})
    assert response.status == 202, await response.text()
    delivery_id: str = (await response.json())["deliveryId"]
    return delivery_id


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(START + seconds, UTC)


async def test_delivered_signed_and_selected_by_event_type(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    plain = await _deliver(receiver)
    push = await _deliver(receiver, **{"X-GitHub-Event": "push"})
    assert await dispatcher.run_once() == 3  # plain -> bot; push -> bot and pushes-only
    by_path = sorted((r.path, r.headers["X-Hookline-Delivery"]) for r in sink.received)
    assert by_path == sorted([("/bot", plain), ("/bot", push), ("/pushes", push)])
    bot = next(r for r in sink.received if r.path == "/bot")
    # The destination verifies with the Standard Webhooks reference library, and can
    # deduplicate on webhook-id, which is the delivery id.
    # (verify() would compare the timestamp with the real clock; this test runs in 2027)
    expected = ReferenceWebhook(SIGNING_SECRET).sign(
        bot.headers["webhook-id"],
        datetime.fromtimestamp(int(bot.headers["webhook-timestamp"]), UTC),
        bot.body.decode(),
    )
    assert expected in bot.headers["webhook-signature"].split(" ")
    assert bot.headers["webhook-timestamp"] == str(int(START))
    assert bot.headers["webhook-id"] == bot.headers["X-Hookline-Delivery"]
    detail = await receiver.delivery(push)
    assert {d["destination"]: d["state"] for d in detail["destinations"]} == {
        "bot": "delivered",
        "pushes-only": "delivered",
    }
    assert [a["statusCode"] for a in detail["attempts"]] == [200, 200]
    assert await dispatcher.run_once() == 0  # nothing is sent twice


async def test_retries_follow_the_backoff_then_deliver(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.then(500).then(503)
    delivery = await _deliver(receiver)
    assert await dispatcher.run_once() == 1
    row = (await receiver.delivery(delivery))["destinations"][0]
    first_retry = datetime.fromisoformat(row["nextAttemptAt"].replace("Z", "+00:00"))
    assert row["state"] == "pending" and row["attempts"] == 1
    assert _at(0) <= first_retry <= _at(10)  # full jitter within the first backoff (10 s)
    assert await dispatcher.run_once() == 0  # not due yet
    receiver.wall.advance(10)
    assert await dispatcher.run_once() == 1
    receiver.wall.advance(20)
    assert await dispatcher.run_once() == 1
    detail = await receiver.delivery(delivery)
    assert [a["statusCode"] for a in detail["attempts"]] == [500, 503, 200]
    assert [a["outcome"] for a in detail["attempts"]] == ["retry", "retry", "delivered"]
    assert detail["destinations"][0]["state"] == "delivered"


async def test_retry_after_is_honoured(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.then(429, **{"Retry-After": "120"})
    delivery = await _deliver(receiver)
    await dispatcher.run_once()
    row = (await receiver.delivery(delivery))["destinations"][0]
    assert row["nextAttemptAt"] == "2027-01-15T08:02:00Z"  # 120 s, beyond any 10 s backoff
    receiver.wall.advance(119)
    assert await dispatcher.run_once() == 0
    receiver.wall.advance(1)
    assert await dispatcher.run_once() == 1


async def test_client_error_fails_at_once(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.then(400)
    delivery = await _deliver(receiver)
    await dispatcher.run_once()
    detail = await receiver.delivery(delivery)
    assert detail["destinations"][0]["state"] == "failed"
    assert detail["attempts"][0]["response"] == '{"status": 400}'


async def test_dead_letter_then_replay_with_audit_and_cap(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.default = 500
    delivery = await _deliver(receiver)
    for _ in range(40):  # retry until the 5 minute window closes
        await dispatcher.run_once()
        receiver.wall.advance(15)
        receiver.monotonic.advance(15)
    detail = await receiver.delivery(delivery)
    assert detail["destinations"][0]["state"] == "dead_lettered"
    tries = len(detail["attempts"])
    assert tries >= 3  # then the breaker opened; the window closed while it waited
    receiver.monotonic.advance(3600)  # let the breaker allow sends again
    sink.default = 200

    response = await receiver.admin.post(
        f"/api/v1/deliveries/{delivery}/replay",
        json={"reason": "bot fixed", "requestedBy": "alice"},
    )
    assert response.status == 202, await response.text()
    replay = await response.json()
    assert (replay["requestedBy"], replay["reason"]) == ("alice", "bot fixed")
    assert replay["destinations"] == ["bot"]
    assert await dispatcher.run_once() == 1
    detail = await receiver.delivery(delivery)
    chains = {d["replayId"]: d["state"] for d in detail["destinations"]}
    assert chains == {None: "dead_lettered", replay["id"]: "delivered"}
    assert detail["replays"][0]["requestedBy"] == "alice"
    assert len(detail["attempts"]) == tries + 1

    for _ in range(4):
        ok = await receiver.admin.post(f"/api/v1/deliveries/{delivery}/replay", json={})
        assert ok.status == 202
    capped = await receiver.admin.post(f"/api/v1/deliveries/{delivery}/replay", json={})
    assert capped.status == 409
    assert "limit 5" in (await capped.json())["message"]


async def test_replay_with_modified_body_to_one_destination(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    delivery = await _deliver(receiver, **{"X-GitHub-Event": "push"})
    await dispatcher.run_once()
    sink.received.clear()
    response = await receiver.admin.post(
        f"/api/v1/deliveries/{delivery}/replay",
        json={"destinations": ["pushes-only"], "body": {"action": "edited"}},
    )
    assert response.status == 202
    await dispatcher.run_once()
    assert [(r.path, json.loads(r.body)) for r in sink.received] == [
        ("/pushes", {"action": "edited"})
    ]
    unknown = await receiver.admin.post(
        f"/api/v1/deliveries/{delivery}/replay", json={"destinations": ["nope"]}
    )
    assert unknown.status == 400
    missing = await receiver.admin.post("/api/v1/deliveries/NOPE/replay", json={})
    assert missing.status == 404


async def test_batch_replay_of_dead_letters(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.then(400, 2)
    failed = [await _deliver(receiver), await _deliver(receiver)]
    ok = await _deliver(receiver)
    await dispatcher.run_once()
    response = await receiver.admin.post(
        "/api/v1/replays", json={"webhook": f"{NS}/fwd", "destinationState": "failed"}
    )
    result = await response.json()
    assert response.status == 202, result
    assert sorted(r["deliveryId"] for r in result["replayed"]) == sorted(failed)
    assert ok not in {r["deliveryId"] for r in result["replayed"]}
    assert await dispatcher.run_once() == 2
    empty = await receiver.admin.post("/api/v1/replays", json={})
    assert empty.status == 400  # a batch replay must say which deliveries


async def test_breaker_holds_rows_instead_of_burning_attempts(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.default = 503
    for _ in range(3):
        await _deliver(receiver)
    await dispatcher.run_once()  # 3 of 3 failed (minRequests 3): the breaker opens
    stats = await (await receiver.admin.get("/api/v1/stats")).json()
    bot = stats["webhooks"][f"{NS}/fwd"]["destinations"]["bot"]
    assert bot["breaker"] == "open"
    assert bot["circuitBreaker"]["trips"] == 1
    assert bot["circuitBreaker"]["nextProbeAt"] == "2027-01-15T08:00:30Z"  # the cool-down
    receiver.wall.advance(3600)
    waiting = [await _deliver(receiver) for _ in range(4)]
    sink.received.clear()
    assert await dispatcher.run_once() == 0  # open: its rows are not even claimed
    assert (await receiver.delivery(waiting[0]))["attempts"] == []
    sink.default = 200
    receiver.monotonic.advance(30)  # cool-down over: two probes go, the others wait
    await dispatcher.run_once()
    assert len(sink.received) == 2
    stats = await (await receiver.admin.get("/api/v1/stats")).json()
    bot = stats["webhooks"][f"{NS}/fwd"]["destinations"]["bot"]
    assert bot["breaker"] == "closed"  # both succeeded (successRate 1)
    receiver.wall.advance(5)
    await dispatcher.run_once()
    for delivery in waiting:
        assert (await receiver.delivery(delivery))["destinations"][0]["state"] == "delivered"


async def test_gone_suspends_the_destination(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.then(410)
    first = await _deliver(receiver)
    await dispatcher.run_once()
    assert (await receiver.delivery(first))["destinations"][0]["state"] == "failed"
    later = await _deliver(receiver)
    receiver.wall.advance(60)
    assert await dispatcher.run_once() == 0
    assert (await receiver.delivery(later))["destinations"][0]["state"] == "pending"
    stats = await (await receiver.admin.get("/api/v1/stats")).json()
    assert stats["webhooks"][f"{NS}/fwd"]["destinations"]["bot"]["suspended"] is True


async def test_stats_count_destinations(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    sink.then(400)
    await _deliver(receiver)
    await _deliver(receiver)
    await dispatcher.run_once()
    await _deliver(receiver)
    webhook = (await (await receiver.admin.get("/api/v1/stats")).json())["webhooks"][f"{NS}/fwd"]
    assert (webhook["delivered"], webhook["failed"], webhook["pending"]) == (1, 1, 1)
    metrics = await (await receiver.admin.get("/metrics")).text()
    assert 'hookline_outbox_pending{destination="bot",webhook="t/fwd"} 1.0' in metrics
    assert (
        'hookline_dispatch_attempts_total{destination="bot",outcome="delivered",webhook="t/fwd"}'
        in metrics
    )


async def test_a_removed_destination_fails_its_rows_visibly(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    import yaml

    from hookline.receiver.app import reload_config

    delivery = await _deliver(receiver)
    documents = _documents(sink)
    documents[-1]["spec"]["destinations"] = documents[-1]["spec"]["destinations"][1:]
    (receiver.manifests / "webhooks.yaml").write_text(yaml.safe_dump_all(documents))
    await reload_config(receiver.ingest.app)
    assert dispatcher.config is receiver.state.config  # the dispatcher follows reloads
    await dispatcher.run_once()
    detail = await receiver.delivery(delivery)
    assert detail["destinations"][0]["state"] == "failed"
    assert detail["attempts"][0]["error"] == "the destination is no longer in the Webhook's spec"
    assert sink.received == []


async def test_the_loop_survives_a_failing_claim(
    receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    import asyncio

    real_claim = dispatcher.store.claim_tasks
    failures = 0

    async def claim_that_fails_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise RuntimeError("a bug in a store")
        return await real_claim(*args, **kwargs)

    dispatcher.store.claim_tasks = claim_that_fails_once  # type: ignore[method-assign]
    dispatcher.poll_interval = 0.01
    delivery = await _deliver(receiver)
    loop = asyncio.create_task(dispatcher.run())
    try:
        assert await sink.wait_until(lambda s: len(s.received) == 1, seconds=5)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert failures == 1
    assert sink.ids() == [delivery]


async def test_a_body_that_no_longer_decodes_fails_visibly_everywhere(
    tmp_path: Path, receiver: Receiver, dispatcher: Dispatcher, sink: Sink
) -> None:
    import sqlite3
    from contextlib import closing

    # Big enough to be stored LZ4-compressed (schema version 5).
    body = json.dumps({"action": "completed", "steps": [{"name": "build"}] * 200}).encode()
    response = await receiver.post("fwd", body, **{"Content-Type": "application/json"})
    assert response.status == 202, await response.text()
    delivery: str = (await response.json())["deliveryId"]
    with closing(sqlite3.connect(tmp_path / "hookline.db")) as conn:
        stored = conn.execute(
            "SELECT body_encoding FROM deliveries WHERE id = ?", (delivery,)
        ).fetchone()
        assert stored == ("lz4",)
        # A size prefix of 10,000 bytes, then bytes that are no LZ4 block.
        garbage = (10_000).to_bytes(4, "little") + b"\xff" * 64
        conn.execute("UPDATE deliveries SET body = ? WHERE id = ?", (garbage, delivery))
        conn.commit()

    answer = await receiver.admin.get(f"/api/v1/deliveries/{delivery}")
    assert answer.status == 500
    problem = await answer.json()
    assert problem["error"] == "corrupt_record"
    assert delivery in problem["message"] and "does not decode" in problem["message"]

    # The dispatcher fails its rows with the reason instead of claiming them forever.
    await dispatcher.run_once()
    with closing(sqlite3.connect(tmp_path / "hookline.db")) as conn:
        rows = conn.execute(
            "SELECT state FROM outbox WHERE delivery_id = ?", (delivery,)
        ).fetchall()
        errors = conn.execute(
            "SELECT error FROM attempts WHERE delivery_id = ?", (delivery,)
        ).fetchall()
    assert rows and {state for (state,) in rows} == {"failed"}
    assert errors and all("does not decode" in error for (error,) in errors)
    assert sink.received == []

    # A replay is refused with the reason; a search still answers (and skips it).
    answer = await receiver.admin.post(
        f"/api/v1/deliveries/{delivery}/replay",
        json={"requestedBy": "alice", "reason": "retry"},
    )
    assert answer.status >= 400
    assert "does not decode" in (await answer.json())["message"]
    search = await receiver.admin.get("/api/v1/deliveries", params={"q": "build"})
    assert search.status == 200
    assert delivery not in [item["id"] for item in (await search.json())["items"]]
