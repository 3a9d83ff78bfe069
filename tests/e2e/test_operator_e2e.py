"""Issue 6, end to end: apply an EventType, an EventFilter and a Webhook → the operator
marks them Ready and pushes the compiled configuration → the receiver accepts a signed
POST and forwards it → `status.deliveries` shows it within the timer interval → annotate
replay → the destination receives it again → the annotation is gone and
`status.lastReplay` is set.

Every part is real: kopf's run loop against the strict KMock emulator (writes checked
against the CRDs), the receiver's ingest and admin apps on loopback with SQLite, its
dispatcher, and an HTTP destination.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    EVENTFILTERS,
    EVENTTYPES,
    WEBHOOKS,
    create,
    is_ready,
    operator,
    operator_settings,
    patch,
    receiver,
    secret,
)
from tests.support.sink import Sink

NS = "ci"
KEY = b"e2e-github-secret"
REPLAY = "hookline.dev/replay"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = await Sink().start()
    yield s
    await s.close()


def resources(destination: str) -> list[dict[str, Any]]:
    return [
        secret(NS, "gh", secret=KEY),
        {
            "apiVersion": API_VERSION,
            "kind": "EventType",
            "metadata": {"name": "github-workflow-run", "namespace": NS},
            "spec": {
                "type": "github.workflow_run",
                "version": "v1",
                "match": {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}},
                "schema": {"type": "object", "required": ["workflow_run"]},
            },
        },
        {
            "apiVersion": API_VERSION,
            "kind": "EventFilter",
            "metadata": {"name": "failed-runs", "namespace": NS},
            "spec": {
                "rules": [
                    {"field": "$.workflow_run.conclusion", "operator": "equals", "value": "failure"}
                ]
            },
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Webhook",
            "metadata": {"name": "ci-runs", "namespace": NS},
            "spec": {
                "path": "github/ci-runs",
                "auth": {"type": "github", "secretRef": {"name": "gh"}},
                "eventTypes": [{"name": "github-workflow-run"}],
                "unknownEventTypes": "reject",
                "filters": [{"name": "failed-runs"}],
                "destinations": [{"name": "ci-bot", "url": destination}],
            },
        },
    ]


def ready(k: StrictEmulator, res: str, name: str) -> bool:
    return is_ready(k.get(res, NS, name))


def status(k: StrictEmulator) -> dict[str, Any]:
    return dict((k.get(WEBHOOKS, NS, "ci-runs") or {}).get("status") or {})


async def test_apply_receive_report_replay(k8s: StrictEmulator, sink: Sink, tmp_path: Path) -> None:
    async with receiver(tmp_path) as running:
        settings = operator_settings(k8s, receiver_admin_urls=[running.admin_url])
        async with operator(k8s, settings):
            for obj in resources(sink.url()):
                await create(k8s, obj)
            for res, name in (
                (EVENTTYPES, "github-workflow-run"),
                (EVENTFILTERS, "failed-runs"),
                (WEBHOOKS, "ci-runs"),
            ):
                await k8s.wait_for(partial(ready, k8s, res, name))

            body = json.dumps({"action": "completed", "workflow_run": {"conclusion": "failure"}})
            signature = "sha256=" + hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()
            async with aiohttp.ClientSession() as session:
                rsp = await session.post(
                    f"{running.ingest_url}/hooks/github/ci-runs",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-GitHub-Event": "workflow_run",
                        "X-GitHub-Delivery": str(uuid.uuid4()),
                        "X-Hub-Signature-256": signature,
                    },
                )
                assert rsp.status == 202, await rsp.text()
                delivery_id = (await rsp.json())["deliveryId"]
            assert await sink.wait_until(lambda s: len(s.received) == 1, 10)
            assert sink.received[0].body == body.encode()

            # Within the timer interval (0.3 s here), the Webhook's status says so.
            def counted() -> bool:
                d = status(k8s).get("deliveries") or {}
                return d.get("accepted") == 1 and d.get("delivered") == 1

            await k8s.wait_for(counted, seconds=10)
            assert status(k8s)["deliveries"]["lastDeliveryID"] == delivery_id

            # Ask for a replay with an annotation: the destination gets it again.
            await patch(
                k8s,
                f"/apis/{API_VERSION}/namespaces/{NS}/webhooks/ci-runs",
                {"metadata": {"annotations": {REPLAY: delivery_id}}},
            )
            assert await sink.wait_until(lambda s: len(s.received) == 2, 10)
            assert sink.received[1].body == body.encode()

            def replayed() -> bool:
                obj = k8s.get(WEBHOOKS, NS, "ci-runs") or {}
                annotations = obj.get("metadata", {}).get("annotations") or {}
                return REPLAY not in annotations and bool(status(k8s).get("lastReplay"))

            await k8s.wait_for(replayed, seconds=10)
            last = status(k8s)["lastReplay"]
            assert last["request"] == delivery_id and last["count"] == 1
