"""GitHub's `ping` (issue 12): sent when a hook is created and when the operator asks
for one. A Webhook that allows only other events, with filters and a destination, still
answers a signed ping 2xx: recorded, forwarded nowhere. An unsigned one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookline.receiver.ingest import GITHUB_PING
from tests.receiver.conftest import NS, SECRETS, MakeClient, Receiver, _webhook, start_receiver
from tests.support.signing import github_headers

PING = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 123456}).encode()


@pytest.fixture
async def receiver(tmp_path: Path, aiohttp_client: MakeClient) -> Receiver:
    documents = [
        {
            "apiVersion": "hookline.dev/v1alpha1",
            "kind": "EventType",
            "metadata": {"name": "runs", "namespace": NS},
            "spec": {
                "type": "github.workflow_run",
                "match": {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}},
            },
        },
        {
            "apiVersion": "hookline.dev/v1alpha1",
            "kind": "EventFilter",
            "metadata": {"name": "completed", "namespace": NS},
            "spec": {"rules": [{"field": "$.action", "operator": "equals", "value": "completed"}]},
        },
        _webhook(
            "gh",
            "gh",
            {"type": "github"},
            eventTypes=[{"name": "runs"}],
            unknownEventTypes="reject",
            filters=[{"name": "completed"}],
            destinations=[{"name": "ci", "url": "http://127.0.0.1:9/never"}],
        ),
    ]
    return await start_receiver(tmp_path, aiohttp_client, documents)


async def test_a_signed_ping_is_answered_and_forwarded_nowhere(receiver: Receiver) -> None:
    headers = github_headers(SECRETS["gh"].encode(), PING, "ping-1", event="ping")
    response = await receiver.post("gh", PING, **headers)
    assert response.status == 202, await response.text()
    answer = await response.json()
    record = await receiver.delivery(answer["deliveryId"])
    assert (record["status"], record["message"]) == ("filtered", GITHUB_PING)
    assert record["destinations"] == []  # no outbox row: forwarded nowhere


async def test_an_unsigned_ping_is_refused(receiver: Receiver) -> None:
    headers = github_headers(b"not-the-secret", PING, "ping-2", event="ping")
    response = await receiver.post("gh", PING, **headers)
    assert response.status == 401


async def test_other_events_are_still_refused_by_the_event_types(receiver: Receiver) -> None:
    body = b'{"action": "opened"}'
    headers = github_headers(SECRETS["gh"].encode(), body, "issue-1", event="issues")
    response = await receiver.post("gh", body, **headers)
    assert response.status == 422


async def test_known_deliveries_are_those_the_store_holds(receiver: Receiver) -> None:
    """What the operator asks before it has GitHub redeliver (issue 12)."""
    for guid in ("guid-1", "guid-2"):
        headers = github_headers(SECRETS["gh"].encode(), PING, guid, event="ping")
        assert (await receiver.post("gh", PING, **headers)).status == 202
    refused = github_headers(b"forged", PING, "guid-3", event="ping")
    assert (await receiver.post("gh", PING, **refused)).status == 401
    path = f"/api/v1/webhooks/{NS}/gh/known-deliveries"
    asked = ["guid-1", "guid-3", "guid-4", "guid-2"]
    response = await receiver.admin.post(path, json={"ids": asked})
    assert response.status == 200, await response.text()
    # A refused delivery is not held: GitHub must send it again.
    assert await response.json() == {"webhook": f"{NS}/gh", "known": ["guid-1", "guid-2"]}
    other = await receiver.admin.post(
        f"/api/v1/webhooks/{NS}/other/known-deliveries", json={"ids": ["guid-1"]}
    )
    assert (await other.json())["known"] == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "invalid_body"),
        (b'{"ids": "guid-1"}', "invalid_body"),
        (b'{"ids": [""]}', "invalid_body"),
        (json.dumps({"ids": [f"g{i}" for i in range(1001)]}).encode(), "too_many_ids"),
    ],
)
async def test_known_deliveries_refuses_bad_bodies(
    receiver: Receiver, body: bytes, error: str
) -> None:
    response = await receiver.admin.post(
        f"/api/v1/webhooks/{NS}/gh/known-deliveries",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert (response.status, (await response.json())["error"]) == (400, error)
