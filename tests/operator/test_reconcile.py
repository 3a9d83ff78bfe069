"""The operator's core against the KMock emulator and a real receiver (issue 6):
resources become Ready and served, missing references and their recovery, generated
Secrets, deletion. kopf's real run loop throughout; every write checked against the CRDs.
"""

from __future__ import annotations

import asyncio
import base64
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
from hookline.operator.builders import generated_secret_name
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    EVENTFILTERS,
    EVENTTYPES,
    OPERATOR_NAMESPACE,
    SECRETS,
    WEBHOOKS,
    RunningReceiver,
    condition,
    create,
    events_for,
    eventually,
    free_port,
    is_ready,
    operator,
    operator_settings,
    patch,
    receiver,
    secret,
)

NS = "ci"
GITHUB_SECRET = b"it-is-a-secret"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with receiver(tmp_path) as r:
        yield r


def webhook(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"auth": {"type": "github", "secretRef": {"name": "gh", "key": "secret"}}, **spec},
    }


EVENT_TYPE = {
    "apiVersion": API_VERSION,
    "kind": "EventType",
    "metadata": {"name": "github-workflow-run", "namespace": NS},
    "spec": {
        "type": "github.workflow_run",
        "version": "v1",
        "match": {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}},
        "schema": {
            "type": "object",
            "required": ["action", "workflow_run"],
            "properties": {"action": {"type": "string"}, "workflow_run": {"type": "object"}},
        },
    },
}
EVENT_FILTER = {
    "apiVersion": API_VERSION,
    "kind": "EventFilter",
    "metadata": {"name": "failed-runs", "namespace": NS},
    "spec": {
        "rules": [{"field": "$.workflow_run.conclusion", "operator": "equals", "value": "failure"}]
    },
}


def ready_object(k: StrictEmulator, res: str, name: str) -> dict[str, Any] | None:
    obj = k.get(res, NS, name)
    return obj if is_ready(obj) else None


async def accepted_within(r: RunningReceiver, path: str, key: bytes, *, seconds: float) -> bool:
    """Whether a POST signed with `key` is accepted within `seconds` (tried every 50 ms)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if (await post_github(r, path, {"a": 2}, key)).status == 202:
            return True
        await asyncio.sleep(0.05)
    return False


def remade(k: StrictEmulator, name: str, old_uid: str) -> dict[str, Any] | None:
    found = k.get(SECRETS, NS, name)
    return found if found is not None and found["metadata"]["uid"] != old_uid else None


async def post_github(
    r: RunningReceiver, path: str, body: dict[str, Any], key: bytes
) -> aiohttp.ClientResponse:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as s:
        rsp = await s.post(
            f"{r.ingest_url}/hooks/{path}",
            data=raw,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "workflow_run",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature,
            },
        )
        await rsp.read()
        return rsp


async def test_resources_become_ready_and_are_served(
    k8s: StrictEmulator, running: RunningReceiver
) -> None:
    async with operator(k8s, operator_settings(k8s, receiver_admin_urls=[running.admin_url])):
        await create(k8s, secret(NS, "gh", secret=GITHUB_SECRET))
        await create(k8s, EVENT_TYPE)
        await create(k8s, EVENT_FILTER)
        await create(
            k8s,
            webhook(
                "ci-runs",
                path="github/ci-runs",
                eventTypes=[{"name": "github-workflow-run"}],
                filters=[{"name": "failed-runs"}],
            ),
        )
        for res, name in (
            (WEBHOOKS, "ci-runs"),
            (EVENTFILTERS, "failed-runs"),
            (EVENTTYPES, "github-workflow-run"),
        ):
            obj = await k8s.wait_for(partial(ready_object, k8s, res, name))
            assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        ready = condition(k8s.get(WEBHOOKS, NS, "ci-runs"))
        assert ready is not None and ready["reason"] == "Serving"
        assert ready["observedGeneration"] == 1

        # The receiver serves what the operator compiled: a signed POST is accepted...
        run = {"action": "completed", "workflow_run": {"conclusion": "failure"}}
        rsp = await post_github(running, "github/ci-runs", run, GITHUB_SECRET)
        assert rsp.status == 202
        # ... a wrong signature is not; the filter drops a success.
        assert (await post_github(running, "github/ci-runs", run, b"wrong")).status == 401
        ok = {"action": "completed", "workflow_run": {"conclusion": "success"}}
        assert (await post_github(running, "github/ci-runs", ok, GITHUB_SECRET)).status == 202
        assert running.state.config.route_for(f"{NS}/ci-runs") is not None

        # A Ready transition is an Event on the resource.
        events = await k8s.wait_for(
            lambda: [e for e in events_for(k8s, "ci-runs", NS) if e["reason"] == "Ready"]
        )
        assert events[0]["type"] == "Normal"


async def test_missing_references_and_recovery(
    k8s: StrictEmulator, running: RunningReceiver
) -> None:
    async with operator(k8s, operator_settings(k8s, receiver_admin_urls=[running.admin_url])):
        await create(
            k8s,
            webhook(
                "waiting",
                filters=[{"name": "failed-runs"}],
                eventTypes=[{"name": "github-workflow-run"}],
            ),
        )

        def ready_reason() -> str | None:
            found = condition(k8s.get(WEBHOOKS, NS, "waiting"))
            return found["reason"] if found else None

        await k8s.wait_for(lambda: ready_reason() == "FilterNotFound")
        message = condition(k8s.get(WEBHOOKS, NS, "waiting"))["message"]  # type: ignore[index]
        # One describe shows everything that is missing, each named.
        assert "'failed-runs'" in message and "'github-workflow-run'" in message
        assert "Secret 'gh'" in message
        await k8s.wait_for(
            lambda: [e for e in events_for(k8s, "waiting", NS) if e["reason"] == "FilterNotFound"]
        )

        await create(k8s, EVENT_FILTER)
        await k8s.wait_for(lambda: ready_reason() == "EventTypeNotFound")
        await create(k8s, EVENT_TYPE)
        await k8s.wait_for(lambda: ready_reason() == "SecretNotFound")
        assert running.state.config.route_for(f"{NS}/waiting") is None
        # The Secret appearing (a kind the operator only indexes) makes it Ready by itself.
        await create(k8s, secret(NS, "gh", secret=GITHUB_SECRET))
        await k8s.wait_for(lambda: ready_reason() == "Serving")
        assert running.state.config.route_for(f"{NS}/waiting") is not None


async def test_generated_secret_and_deletion(k8s: StrictEmulator, running: RunningReceiver) -> None:
    async with operator(k8s, operator_settings(k8s, receiver_admin_urls=[running.admin_url])):
        hook = webhook("generated", path="generated")
        del hook["spec"]["auth"]["secretRef"]
        created = await create(k8s, hook)
        name = generated_secret_name("generated")
        generated = await k8s.wait_for(lambda: k8s.get(SECRETS, NS, name))
        owner = generated["metadata"]["ownerReferences"][0]
        assert owner["uid"] == created["metadata"]["uid"] and owner["kind"] == "Webhook"
        value = base64.b64decode(generated["data"]["secret"])
        assert len(base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))) == 32
        await k8s.wait_for(lambda: is_ready(k8s.get(WEBHOOKS, NS, "generated")))
        assert (await post_github(running, "generated", {"a": 1}, value)).status == 202
        # The Event says a Secret was generated; no Event, status or log carries it.
        events = events_for(k8s, "generated", NS)
        assert any(e["reason"] == "SecretGenerated" for e in events)
        assert value.decode() not in json.dumps([*events, k8s.get(WEBHOOKS, NS, "generated")])

        # Deleted by hand, the Secret is made again (a new value), and served.
        rsp = await k8s.delete(f"/api/v1/namespaces/{NS}/secrets/{name}")
        assert rsp.status == 200
        again = await k8s.wait_for(partial(remade, k8s, name, generated["metadata"]["uid"]))
        value = base64.b64decode(again["data"]["secret"])
        # The receiver takes the new value once the operator has pushed it.
        assert await accepted_within(running, "generated", value, seconds=5)

        # Deleting the Webhook: the receiver stops serving it, its Secret goes with it.
        rsp = await k8s.delete(f"/apis/{API_VERSION}/namespaces/{NS}/webhooks/generated")
        assert rsp.status == 200
        await k8s.wait_for(lambda: k8s.get(SECRETS, NS, name) is None)
        await eventually(lambda: running.state.config.route_for(f"{NS}/generated") is None)
        assert (await post_github(running, "generated", {"a": 1}, value)).status == 404


async def test_receiver_down_is_not_ready_then_recovers(
    k8s: StrictEmulator, tmp_path: Path
) -> None:
    async with receiver(tmp_path) as running:
        url = running.admin_url
    # Nothing listens at `url` now: the Webhook compiles but is not served.
    async with operator(
        k8s, operator_settings(k8s, receiver_admin_urls=[url], resync_interval=0.3)
    ):
        await create(k8s, secret(NS, "gh", secret=GITHUB_SECRET))
        await create(k8s, webhook("early"))
        await k8s.wait_for(
            lambda: (
                (condition(k8s.get(WEBHOOKS, NS, "early")) or {}).get("reason")
                == "ReceiverNotReady"
            )
        )
        assert not is_ready(k8s.get(WEBHOOKS, NS, "early"))


async def test_a_new_admin_token_does_not_take_running_receivers_away(
    k8s: StrictEmulator, running: RunningReceiver
) -> None:
    async with operator(k8s, operator_settings(k8s, receiver_admin_urls=[running.admin_url])):
        await create(k8s, secret(NS, "gh", secret=GITHUB_SECRET))
        await create(k8s, webhook("steady"))
        await k8s.wait_for(partial(ready_object, k8s, WEBHOOKS, "steady"))
        # The token changes; this receiver still runs with the old one until its pod
        # rolls. The operator keeps talking to it with the old token meanwhile.
        await patch(
            k8s,
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/hookline-receiver-admin-token",
            {"data": {"token": base64.b64encode(b"the-next-admin-token").decode()}},
        )
        await create(k8s, webhook("after", path="after"))
        await k8s.wait_for(partial(ready_object, k8s, WEBHOOKS, "after"))
        assert running.state.config.route_for(f"{NS}/after") is not None
        assert not [e for e in events_for(k8s, "steady", NS) if e["type"] == "Warning"]


async def test_a_restarted_receiver_serves_its_stored_push_then_gets_a_fresh_one(
    k8s: StrictEmulator, tmp_path: Path
) -> None:
    port = free_port()
    async with receiver(tmp_path, admin_port=port) as first:
        settings = operator_settings(k8s, receiver_admin_urls=[first.admin_url])
        async with operator(k8s, settings):
            await create(k8s, secret(NS, "gh", secret=GITHUB_SECRET))
            await create(k8s, webhook("kept", path="kept"))
            await k8s.wait_for(partial(ready_object, k8s, WEBHOOKS, "kept"))
            # The receiver restarts on the same store and port while the operator runs.
            await first.close()
            async with receiver(tmp_path, admin_port=port) as second:
                # Ready at once with the push it kept, and serving it...
                assert second.state.source == "stored"
                assert second.state.config.route_for(f"{NS}/kept") is not None
                # ... until the operator's next quiet pass pushes to it again.
                await eventually(lambda: second.state.source == "push", seconds=10)
