"""Two dispatchers on one PostgreSQL store, like two receiver replicas: 1,000 events
reach the destination, none of them from both (issue 5)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from hookline.api import Webhook
from hookline.receiver.config import compile_config
from hookline.receiver.dispatcher import Dispatcher
from hookline.receiver.metrics import Metrics
from hookline.store import DeliveryRecord, OutboxItem, PostgresStore, new_delivery_id
from tests.support.postgres import fresh_database
from tests.support.sink import Sink

pytestmark = pytest.mark.slow
EVENTS = 1000


def _records(now: datetime) -> list[DeliveryRecord]:
    return [
        DeliveryRecord(
            id=new_delivery_id(),
            webhook="ci/fwd",
            received_at=now,
            status="accepted",
            http_status=202,
            headers={"Content-Type": "application/json"},
            body=f'{{"n": {n}}}'.encode(),
            expires_at=now + timedelta(days=1),
            outbox=(OutboxItem("sink"),),
        )
        for n in range(EVENTS)
    ]


async def test_two_dispatchers_share_the_outbox_without_duplicates() -> None:
    sink = await Sink().start()
    webhook = Webhook.model_validate(
        {
            "metadata": {"name": "fwd", "namespace": "ci"},
            "spec": {
                "auth": {"type": "none"},
                "destinations": [{"name": "sink", "url": sink.url()}],
            },
        }
    )
    config = compile_config([webhook], [], [], {})
    async with fresh_database() as dsn:
        stores = [PostgresStore(dsn), PostgresStore(dsn)]  # two pools: two replicas
        for store in stores:
            await store.open()
        now = datetime.now(UTC)
        await asyncio.gather(*(stores[0].record(r) for r in _records(now)))
        dispatchers = [
            Dispatcher(
                store=store,
                config=config,
                metrics=Metrics(),
                now=lambda: datetime.now(UTC),
                concurrency=8,
                poll_interval=0.05,
                owner=f"replica-{i}",
            )
            for i, store in enumerate(stores)
        ]
        runs = [asyncio.create_task(d.run()) for d in dispatchers]
        await sink.wait_until(lambda s: len(s.received) >= EVENTS, seconds=60)
        for _ in range(200):  # the last sends are being finished: up to 10 s more
            counters = await stores[0].destination_counters()
            if counters[("ci/fwd", "sink")].pending == 0:
                break
            await asyncio.sleep(0.05)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        for store in stores:
            await store.close()
    await sink.close()
    sent = Counter(sink.ids())
    assert len(sent) == EVENTS, f"{EVENTS - len(sent)} events never arrived"
    assert [k for k, n in sent.items() if n > 1] == []  # none sent twice
    assert counters[("ci/fwd", "sink")].delivered == EVENTS
    labels = {"webhook": "ci/fwd", "destination": "sink", "outcome": "delivered"}
    shares = [
        d.metrics.registry.get_sample_value("hookline_dispatch_attempts_total", labels) or 0
        for d in dispatchers
    ]
    assert sum(shares) == EVENTS and min(shares) > 0, shares  # both replicas worked
