"""Real GitHub payloads through a real receiver serving the GitHub catalog (issue 11 §1).

Before, a third of the published example payloads were answered 422, and GitHub never
retries those. Here the events whose examples the old catalog refused the most are
served from `hookline catalog github`'s own manifests, and every one of their github.com
examples is posted signed the way GitHub signs: each is accepted. A body with a
top-level field of the wrong type is still answered 422, with that field's path.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.receiver.conftest import NS, SECRETS, MakeClient, Receiver, _webhook, start_receiver
from tests.support.github_corpus import catalog, corpus
from tests.support.signing import github_headers

# Each had examples the previous catalog refused: fields added later (release.immutable,
# repository.has_discussions, ...), Unix-seconds timestamps (installation), an enum
# spelt otherwise (marketplace_purchase's price_model).
EVENTS = ("branch_protection_rule", "installation", "marketplace_purchase", "push", "release")


def _served(event: str) -> dict[str, Any]:
    manifest = json.loads(json.dumps(catalog()[event]))
    manifest["metadata"]["namespace"] = NS
    return dict(manifest)


@pytest.fixture
async def receiver(tmp_path: Path, aiohttp_client: MakeClient) -> Receiver:
    documents = [_served(event) for event in EVENTS]
    types = [{"name": d["metadata"]["name"]} for d in documents]
    webhook = _webhook("gh", "gh", {"type": "github"}, eventTypes=types)
    return await start_receiver(tmp_path, aiohttp_client, [*documents, webhook])


async def _deliver(receiver: Receiver, event: str, payload: Any) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    headers = github_headers(SECRETS["gh"].encode(), body, str(uuid.uuid4()), event)
    response = await receiver.post("gh", body, **headers)
    return response.status, await response.json()


async def test_every_example_of_these_events_is_accepted(receiver: Receiver) -> None:
    examples = [e for e in corpus() if e.event in EVENTS]
    assert len(examples) >= 30
    refused = []
    for example in examples:
        status, answer = await _deliver(receiver, example.event, example.payload)
        if status != 202:
            refused.append((example.id, status, answer))
    assert refused == []


async def test_a_top_level_field_of_the_wrong_type_is_answered_422(receiver: Receiver) -> None:
    (first, *_) = [e for e in corpus() if e.event == "branch_protection_rule"]
    for field, value, message in (
        ("repository", 5, '5 is not of type "object"'),
        ("action", 3, '3 is not of type "string"'),
    ):
        status, answer = await _deliver(receiver, first.event, {**first.payload, field: value})
        assert (status, answer["error"]) == (422, "schema_validation_failed")
        assert answer["errors"] == [{"path": f"$.{field}", "message": message}]
        record = await receiver.delivery(answer["deliveryId"])
        assert (record["status"], record["reason"]) == ("rejected", "schema_validation_failed")
        assert record["eventType"] == "github.branch_protection_rule"
