"""Statuses from the receivers' stats, in kopf's real run loop against the KMock emulator
(issue 6): status.deliveries, status.url and counters appear; idle resources cost no
PATCH; the Degraded condition follows the failure rate and dead letters; the first dead
letter makes one Warning Event; an unreachable receiver changes nothing.

The whole operator runs, with a fake stats source in place of the receivers' admin API
(so the numbers are the test's); every write is checked against the CRD schemas.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import kmock
import pytest

from hookline.api.common import API_VERSION
from hookline.operator import timers
from hookline.operator.context import OperatorContext
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    EVENTFILTERS,
    EVENTTYPES,
    WEBHOOKS,
    operator_settings,
)
from tests.support.operator_env import operator as running_operator

NS = "ci"
INTERVAL = 0.2
BASE_URL = "https://hooks.example.com"


@dataclass
class FakeReceiver:
    """What GET /api/v1/stats answers; `down` makes it unreachable."""

    doc: dict[str, Any] = field(
        default_factory=lambda: {"webhooks": {}, "eventFilters": {}, "eventTypes": {}}
    )
    down: bool = False
    calls: int = 0

    async def stats(self) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("connection refused")
        return copy.deepcopy(self.doc)

    def webhook(self, key: str, **counters: Any) -> None:
        self.doc["webhooks"].setdefault(key, {}).update(counters)


@pytest.fixture(autouse=True)
def quiet_kopf() -> Iterator[None]:
    # kopf logs several DEBUG/INFO lines per timer run; captured by pytest, hundreds of
    # timers' lines slow the operator thread down thirty-fold. Warnings still show.
    logger = logging.getLogger("kopf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def receiver() -> FakeReceiver:
    return FakeReceiver()


@pytest.fixture
def interval() -> float:
    return INTERVAL  # a test may parametrize its own


@pytest.fixture
async def operator(
    k8s: StrictEmulator, receiver: FakeReceiver, interval: float
) -> AsyncIterator[OperatorContext]:
    settings = operator_settings(k8s, stats_interval=interval, public_base_url=BASE_URL)
    async with running_operator(k8s, settings, extras={timers.FETCH: receiver.stats}) as ctx:
        yield ctx


async def create(k: StrictEmulator, plural: str, obj: dict[str, Any]) -> None:
    rsp = await k.post(f"/apis/{API_VERSION}/namespaces/{NS}/{plural}", json=obj)
    assert rsp.status == 200, await rsp.text()


def webhook(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"auth": {"type": "none"}, **spec},
    }


def status_of(k: StrictEmulator, res: str, name: str) -> dict[str, Any]:
    return dict((k.get(res, NS, name) or {}).get("status") or {})


def degraded(k: StrictEmulator, name: str) -> dict[str, Any] | None:
    for c in status_of(k, WEBHOOKS, name).get("conditions") or []:
        if c.get("type") == "Degraded":
            return dict(c)
    return None


def dead_letter_events(k: StrictEmulator, name: str) -> list[dict[str, Any]]:
    # Any: StrictEmulator's own `list` method shadows the builtin in its annotations.
    events: Any = k.events_for(name, NS)
    return [e for e in events if e["reason"] == "DeadLetter"]


def all_patches(k: StrictEmulator) -> list[kmock.Request]:
    # Iterating the emulator is iterating KMock's request log.
    return [r for r in k if r.method == "PATCH"]


def status_patches(k: StrictEmulator) -> list[kmock.Request]:
    return [r for r in all_patches(k) if r.subresource == "status"]


async def test_deliveries_url_and_counters_appear(
    k8s: StrictEmulator, receiver: FakeReceiver, operator: OperatorContext
) -> None:
    receiver.webhook(
        f"{NS}/runs",
        received=3,
        accepted=2,
        rejected=1,
        filtered=0,
        delivered=2,
        failed=0,
        deadLettered=0,
        pending=0,
        lastReceivedAt="2026-11-25T10:00:01.5Z",
        lastDeliveryID="01JD3Z5Q4M8X6V0A2B9C7D1E5F",
        lastError="signature mismatch",
        destinations={},
    )
    receiver.doc["eventFilters"][f"{NS}/failed"] = {"evaluated": 5, "matched": 2, "dropped": 3}
    receiver.doc["eventTypes"][f"{NS}/run"] = {
        "validated": 4,
        "invalid": 1,
        "lastError": "$.action: required",
        "lastErrorAt": "2026-11-25T10:00:00Z",
    }
    await create(k8s, "webhooks", webhook("runs", path="github/runs"))
    await create(
        k8s,
        "eventfilters",
        {
            "apiVersion": API_VERSION,
            "kind": "EventFilter",
            "metadata": {"name": "failed"},
            "spec": {"rules": [{"field": "$.action", "operator": "equals", "value": "x"}]},
        },
    )
    await create(
        k8s,
        "eventtypes",
        {
            "apiVersion": API_VERSION,
            "kind": "EventType",
            "metadata": {"name": "run"},
            "spec": {
                "type": "github.workflow_run",
                "match": {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}},
            },
        },
    )

    status = await k8s.wait_for(
        lambda: (s := status_of(k8s, WEBHOOKS, "runs")).get("deliveries") and s, seconds=5
    )
    assert status["deliveries"] == {
        "received": 3,
        "accepted": 2,
        "rejected": 1,
        "filtered": 0,
        "delivered": 2,
        "failed": 0,
        "deadLettered": 0,
        "lastReceivedAt": "2026-11-25T10:00:01Z",
        "lastDeliveryID": "01JD3Z5Q4M8X6V0A2B9C7D1E5F",
        "lastError": "signature mismatch",
    }
    assert status["url"] == f"{BASE_URL}/hooks/github/runs"
    condition = degraded(k8s, "runs")
    assert condition is not None and condition["status"] == "False"
    assert condition["reason"] == "Healthy" and condition["observedGeneration"] == 1

    await k8s.wait_for(lambda: status_of(k8s, EVENTFILTERS, "failed").get("evaluated"), 5)
    assert (
        status_of(k8s, EVENTFILTERS, "failed").items()
        >= {"evaluated": 5, "matched": 2, "dropped": 3}.items()
    )
    await k8s.wait_for(lambda: status_of(k8s, EVENTTYPES, "run").get("validated"), 5)
    assert (
        status_of(k8s, EVENTTYPES, "run").items()
        >= {
            "validated": 4,
            "invalid": 1,
            "lastValidationError": "$.action: required",
            "lastValidationErrorAt": "2026-11-25T10:00:00Z",
        }.items()
    )

    # A change is a patch of what changed only; lastError cleared by the receiver goes.
    before = len(status_patches(k8s))
    receiver.webhook(f"{NS}/runs", received=4, accepted=3, lastError=None)
    await k8s.wait_for(
        lambda: status_of(k8s, WEBHOOKS, "runs")["deliveries"]["received"] == 4, seconds=5
    )
    assert "lastError" not in status_of(k8s, WEBHOOKS, "runs")["deliveries"]
    sent = [json.loads(r.body) for r in status_patches(k8s)[before:]]
    assert sent == [{"status": {"deliveries": {"received": 4, "accepted": 3, "lastError": None}}}]


@pytest.mark.slow  # 200 Webhooks (a load run)
@pytest.mark.parametrize("interval", [0.5])
async def test_idle_webhooks_cost_no_patches(
    k8s: StrictEmulator, receiver: FakeReceiver, operator: OperatorContext, interval: float
) -> None:
    count = 200
    for i in range(count):
        receiver.webhook(f"{NS}/idle-{i}", received=i, accepted=i, delivered=i)
    for i in range(count):
        await create(k8s, "webhooks", webhook(f"idle-{i}"))

    written = 0

    def all_written() -> bool:
        # Re-checked after every request: look at each object only until it is written.
        nonlocal written
        while written < count:
            obj = k8s.objects[kmock.resource(WEBHOOKS), NS, f"idle-{written}"].raw
            if obj.get("status", {}).get("deliveries", {}).get("received") != written:
                return False
            written += 1
        return True

    await k8s.wait_for(all_written, seconds=15)
    # The first writes of each: Ready after the first pass, then deliveries, url and
    # Degraded at once when the stats come (one PATCH when both arrive together).
    assert count <= len(status_patches(k8s)) <= 2 * count
    patches = len(all_patches(k8s))
    calls = receiver.calls

    # Four stats intervals (and resync passes of the reconciler) over 200 Webhooks.
    await asyncio.sleep(interval * 4)

    assert len(all_patches(k8s)) == patches  # idle: not one API call
    # One stats request per interval for all 200 Webhooks, not one per Webhook.
    assert receiver.calls - calls <= 4 + 2


async def test_degraded_follows_failures_and_dead_letters(
    k8s: StrictEmulator, receiver: FakeReceiver, operator: OperatorContext
) -> None:
    key = f"{NS}/flaky"
    receiver.webhook(key, received=10, accepted=10, delivered=10, failed=0, deadLettered=0)
    alerts = {"failureRate": 0.2, "window": "1h", "minDeliveries": 5}
    await create(k8s, "webhooks", webhook("flaky", alerts=alerts))
    await k8s.wait_for(lambda: (c := degraded(k8s, "flaky")) and c["status"] == "False", 5)

    # 8 of the next 10 outcomes failed: above 20 %.
    receiver.webhook(key, delivered=12, failed=8)
    condition = await k8s.wait_for(
        lambda: (c := degraded(k8s, "flaky")) and c["status"] == "True" and c, seconds=5
    )
    assert condition["reason"] == "FailureRateHigh"
    assert "80% of 10 forwarding outcomes failed in the last 1h" in condition["message"]
    assert "20%" in condition["message"]
    assert not dead_letter_events(k8s, "flaky")

    # A dead letter: DeadLetters, and one Warning Event.
    receiver.webhook(key, deadLettered=1)
    condition = await k8s.wait_for(
        lambda: (c := degraded(k8s, "flaky")) and c["reason"] == "DeadLetters" and c, seconds=5
    )
    assert condition["message"].startswith("1 delivery was dead-lettered in the last 1h")
    events = await k8s.wait_for(lambda: dead_letter_events(k8s, "flaky"), 5)
    assert events[0]["type"] == "Warning"
    assert events[0]["involvedObject"]["kind"] == "Webhook"
    assert "hookline.dev/replay" in events[0]["message"]

    # More dead letters later: still one Event (the first dead letter only).
    receiver.webhook(key, deadLettered=3)
    await k8s.wait_for(
        lambda: status_of(k8s, WEBHOOKS, "flaky")["deliveries"]["deadLettered"] == 3, 5
    )
    await asyncio.sleep(INTERVAL * 3)
    assert len(dead_letter_events(k8s, "flaky")) == 1


async def test_an_unreachable_receiver_changes_nothing(
    k8s: StrictEmulator, receiver: FakeReceiver, operator: OperatorContext
) -> None:
    receiver.webhook(f"{NS}/steady", received=7, accepted=7)
    await create(k8s, "webhooks", webhook("steady"))
    await k8s.wait_for(
        lambda: status_of(k8s, WEBHOOKS, "steady").get("deliveries", {}).get("received") == 7, 5
    )
    before = len(status_patches(k8s))
    receiver.down = True
    calls = receiver.calls
    await asyncio.sleep(INTERVAL * 4)
    assert len(status_patches(k8s)) == before  # no flapping to zeros, nothing written
    assert status_of(k8s, WEBHOOKS, "steady")["deliveries"]["received"] == 7
    assert 1 <= receiver.calls - calls <= 6  # retried once per interval, not per resource
    receiver.down = False
    receiver.webhook(f"{NS}/steady", received=8)
    await k8s.wait_for(lambda: status_of(k8s, WEBHOOKS, "steady")["deliveries"]["received"] == 8, 5)
