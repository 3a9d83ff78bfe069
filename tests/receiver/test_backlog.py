"""The outbox backlog bound (issue 11 §4), end to end: a real receiver over SQLite and a
real sink on loopback. With --max-outbox-backlog 20 and nothing forwarded, the 21st
delivery waits, then is answered 503 outbox_backlog with Retry-After and recorded; a
resend of an accepted one is still 200 duplicate; once the dispatcher drains, new
deliveries are accepted again — within the wait, if the room comes during it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hookline.receiver.breaker import Breakers
from hookline.receiver.dispatcher import Dispatcher
from hookline.receiver.openapi import OPENAPI
from tests.receiver.conftest import NS, MakeClient, Receiver, _webhook, start_receiver
from tests.support.sink import Sink

BOUND = 20
WEBHOOK = f"{NS}/fwd"


def _documents(sink: Sink) -> list[dict[str, Any]]:
    return [
        _webhook(
            "fwd",
            "fwd",
            {"type": "none"},
            idempotencyKey={"header": "Idempotency-Key"},
            destinations=[{"name": "bot", "url": sink.url("/bot")}],
        )
    ]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.close()


async def _receiver(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink, wait: float = 0.05
) -> Receiver:
    # The dispatcher is off: the test decides when rows are forwarded (_dispatcher).
    return await start_receiver(
        tmp_path,
        aiohttp_client,
        _documents(sink),
        max_outbox_backlog=BOUND,
        outbox_wait_seconds=wait,
    )


_made: list[Dispatcher] = []


@pytest.fixture(autouse=True)
async def _close_dispatchers() -> AsyncIterator[None]:
    yield
    while _made:
        await _made.pop().sessions.close()


def _dispatcher(receiver: Receiver) -> Dispatcher:
    state = receiver.state
    dispatcher = Dispatcher(
        store=state.store,
        config=state.config,
        metrics=state.metrics,
        now=state.now,
        concurrency=BOUND,
        breakers=Breakers(clock=receiver.monotonic),
        rng=random.Random(7),
        on_settle=state.backlog.settling,
    )
    state.dispatcher = dispatcher
    _made.append(dispatcher)
    return dispatcher


async def _fill(receiver: Receiver) -> list[str]:
    ids = []
    for i in range(BOUND):
        answer = await receiver.post("fwd", b"{}", **{"Idempotency-Key": f"k-{i}"})
        assert answer.status == 202, await answer.text()
        ids.append((await answer.json())["deliveryId"])
    return ids


async def _stats(receiver: Receiver) -> dict[str, Any]:
    answer = await receiver.admin.get("/api/v1/stats")
    assert answer.status == 200
    result: dict[str, Any] = await answer.json()
    return result


async def test_a_full_backlog_answers_503_with_retry_after_and_records_it(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    receiver = await _receiver(tmp_path, aiohttp_client, sink)
    await _fill(receiver)
    answer = await receiver.post("fwd", b"{}", **{"Idempotency-Key": "k-over"})
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "5"
    body = await answer.json()
    assert body["error"] == "outbox_backlog"
    assert "--max-outbox-backlog 20" in body["message"]
    assert (body["destination"], body["backlog"]) == ("bot", BOUND)
    record = await receiver.delivery(body["deliveryId"])
    assert (record["status"], record["httpStatus"], record["reason"]) == (
        "rejected",
        503,
        "outbox_backlog",
    )
    stats = await _stats(receiver)
    assert stats["outbox"] == {"backlog": {WEBHOOK: {"bot": BOUND}}, "bound": BOUND, "waiting": 0}
    jsonschema.validate(stats["outbox"], OPENAPI["components"]["schemas"]["OutboxBacklog"])
    counted = stats["webhooks"][WEBHOOK]
    assert (counted["accepted"], counted["rejected"], counted["pending"]) == (BOUND, 1, BOUND)
    metrics = await (await receiver.admin.get("/metrics")).text()
    assert f'hookline_outbox_backlog{{destination="bot",webhook="{WEBHOOK}"}} 20.0' in metrics
    assert "hookline_outbox_backlog_bound 20.0" in metrics
    assert "hookline_outbox_waiting 0.0" in metrics
    # The refused key is not remembered as a delivery: sent again later, it is taken.
    assert await receiver.state.store.find_duplicate(WEBHOOK, "k-over") is None


async def test_a_resend_is_still_a_duplicate_when_full(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    receiver = await _receiver(tmp_path, aiohttp_client, sink)
    ids = await _fill(receiver)
    answer = await receiver.post("fwd", b"{}", **{"Idempotency-Key": "k-3"})
    assert answer.status == 200
    assert await answer.json() == {"deliveryId": ids[3], "duplicate": True}


async def test_once_the_dispatcher_drains_deliveries_are_accepted_again(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    receiver = await _receiver(tmp_path, aiohttp_client, sink)
    await _fill(receiver)
    assert (await receiver.post("fwd", b"{}")).status == 503
    assert await _dispatcher(receiver).run_once() == BOUND
    assert len(sink.received) == BOUND
    assert (await _stats(receiver))["outbox"]["backlog"] == {}
    for _ in range(BOUND):
        assert (await receiver.post("fwd", b"{}")).status == 202
    assert (await receiver.post("fwd", b"{}")).status == 503


async def test_a_delivery_waiting_for_room_is_accepted_when_rows_are_forwarded(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    # A wait far longer than the test: the answer comes as soon as there is room.
    receiver = await _receiver(tmp_path, aiohttp_client, sink, wait=30.0)
    await _fill(receiver)
    backlog = receiver.state.backlog
    waiting = asyncio.ensure_future(receiver.post("fwd", b"{}"))
    while backlog.waiting == 0:
        assert not waiting.done(), await waiting.result().text()
        await asyncio.sleep(0)  # a turn of the loop, not a timed wait
    assert (await _stats(receiver))["outbox"]["waiting"] == 1
    await _dispatcher(receiver).run_once()
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status == 202, await answer.text()
    assert backlog.waiting == 0
    assert (await _stats(receiver))["outbox"]["backlog"] == {WEBHOOK: {"bot": 1}}


async def test_a_restarted_receiver_counts_what_the_store_holds(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    first = await _receiver(tmp_path, aiohttp_client, sink)
    await _fill(first)
    await first.ingest.close()  # closes the store
    await first.admin.close()
    again = await _receiver(tmp_path, aiohttp_client, sink)
    assert (await again.post("fwd", b"{}")).status == 503


async def test_no_bound_accepts_past_it(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    receiver = await start_receiver(
        tmp_path, aiohttp_client, _documents(sink), max_outbox_backlog=0
    )
    for _ in range(BOUND + 5):
        assert (await receiver.post("fwd", b"{}")).status == 202
    assert (await _stats(receiver))["outbox"] == {"backlog": {}, "bound": 0, "waiting": 0}


async def test_rows_being_retried_still_count(
    tmp_path: Path, aiohttp_client: MakeClient, sink: Sink
) -> None:
    receiver = await _receiver(tmp_path, aiohttp_client, sink)
    await _fill(receiver)
    sink.then(503, BOUND).then(400)
    assert await _dispatcher(receiver).run_once() == BOUND  # all answered 503: retried
    assert receiver.state.backlog.count((WEBHOOK, "bot")) == BOUND
    assert (await receiver.post("fwd", b"{}")).status == 503
