"""Event types and filters in the pipeline (issue 4): recognition, schema validation
(422), the unknown-type policy, filtering (202 filtered), and their counters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.receiver.conftest import NS, MakeClient, Receiver, _webhook, start_receiver


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


PUSH_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["ref", "commits"],
    "properties": {"ref": {"type": "string"}, "commits": {"type": "array"}},
}
DOCUMENTS = [
    _doc(
        "EventType",
        "push",
        {
            "type": "github.push",
            "match": {"header": {"name": "X-GitHub-Event", "value": "push"}},
            "schema": PUSH_SCHEMA,
        },
    ),
    _doc(
        "EventType",
        "order-created",
        {
            "type": "shop.order.created",
            "match": {"body": {"path": "$.type", "value": "order.created"}},
            "schema": {"type": "object", "required": ["type", "total"]},
        },
    ),
    _doc(
        "EventFilter",
        "main-only",
        {"rules": [{"field": "$.ref", "operator": "equals", "value": "refs/heads/main"}]},
    ),
    _doc(
        "EventFilter",
        "pushes",
        {"rules": [{"field": "meta:eventType", "operator": "equals", "value": "github.push"}]},
    ),
    _webhook(
        "strict",
        "strict",
        {"type": "none"},
        eventTypes=[{"name": "push"}, {"type": "shop.order.created"}],
        unknownEventTypes="reject",
        filters=[{"name": "pushes"}, {"name": "main-only"}],
    ),
    _webhook("lenient", "lenient", {"type": "none"}, eventTypes=[{"name": "push"}]),
]
PUSH = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def receiver(tmp_path: Path, aiohttp_client: MakeClient) -> Receiver:
    return await start_receiver(tmp_path, aiohttp_client, DOCUMENTS)


async def _post(
    receiver: Receiver, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    response = await receiver.post(path, json.dumps(body).encode(), **headers)
    return response.status, await response.json()


async def test_recognised_valid_and_matching_is_accepted(receiver: Receiver) -> None:
    status, answer = await _post(
        receiver, "strict", {"ref": "refs/heads/main", "commits": []}, PUSH
    )
    assert (status, set(answer)) == (202, {"deliveryId"})
    record = await receiver.delivery(answer["deliveryId"])
    assert (record["status"], record["eventType"]) == ("accepted", "github.push")


async def test_schema_violation_is_422_with_paths(receiver: Receiver) -> None:
    status, answer = await _post(receiver, "strict", {"ref": 7}, PUSH)
    assert (status, answer["error"]) == (422, "schema_validation_failed")
    paths = {e["path"] for e in answer["errors"]}
    assert "$.ref" in paths and "$" in paths  # wrong type; missing "commits"
    record = await receiver.delivery(answer["deliveryId"])
    assert (record["status"], record["reason"]) == ("rejected", "schema_validation_failed")
    assert record["eventType"] == "github.push"


async def test_recognised_by_body_field(receiver: Receiver) -> None:
    status, answer = await _post(receiver, "strict", {"type": "order.created"}, JSON)
    assert (status, answer["error"]) == (422, "schema_validation_failed")
    assert "total" in answer["message"]


async def test_unknown_type_rejected_or_accepted_by_policy(receiver: Receiver) -> None:
    status, answer = await _post(receiver, "strict", {"x": 1}, {"X-GitHub-Event": "issues", **JSON})
    assert (status, answer["error"]) == (422, "unknown_event_type")
    status, answer = await _post(
        receiver, "lenient", {"x": 1}, {"X-GitHub-Event": "issues", **JSON}
    )
    assert status == 202
    assert (await receiver.delivery(answer["deliveryId"]))["eventType"] is None


async def test_filtered_is_202_and_recorded_with_the_rule(receiver: Receiver) -> None:
    status, answer = await _post(receiver, "strict", {"ref": "refs/heads/dev", "commits": []}, PUSH)
    assert status == 202
    assert answer == {"deliveryId": answer["deliveryId"], "filtered": True}
    record = await receiver.delivery(answer["deliveryId"])
    assert (record["status"], record["reason"]) == ("filtered", "filtered")
    assert record["message"].startswith("EventFilter main-only rules[0]")
    # A filter on meta:eventType sees the recognised type.
    status, answer = await _post(receiver, "strict", {"type": "order.created", "total": 3}, JSON)
    record = await receiver.delivery(answer["deliveryId"])
    assert record["message"].startswith("EventFilter pushes rules[0]")


async def test_schema_needs_json(receiver: Receiver) -> None:
    response = await receiver.post("lenient", b"ref=main", **{"X-GitHub-Event": "push"})
    assert response.status == 415
    assert (await response.json())["error"] == "unsupported_media_type"


async def test_counters_per_filter_and_type(receiver: Receiver) -> None:
    await _post(receiver, "strict", {"ref": "refs/heads/main", "commits": []}, PUSH)
    await _post(receiver, "strict", {"ref": "refs/heads/dev", "commits": []}, PUSH)
    await _post(receiver, "strict", {"ref": 1}, PUSH)
    stats = await (await receiver.admin.get("/api/v1/stats")).json()
    assert stats["eventTypes"]["t/push"]["validated"] == 2
    assert stats["eventTypes"]["t/push"]["invalid"] == 1
    assert stats["eventTypes"]["t/push"]["lastError"].startswith("$")
    assert stats["eventFilters"]["t/pushes"] == {"evaluated": 2, "matched": 2, "dropped": 0}
    assert stats["eventFilters"]["t/main-only"] == {"evaluated": 2, "matched": 1, "dropped": 1}
    webhook = stats["webhooks"]["t/strict"]
    assert (webhook["accepted"], webhook["filtered"], webhook["rejected"]) == (1, 1, 1)
