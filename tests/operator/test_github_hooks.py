"""Managed GitHub hooks through kopf's real loop against the strict emulator (issue 12):
the operator creates the hook on the local GitHub API (every exchange checked against
GitHub's description), GitHub's ping reaches the real receiver and is answered 2xx,
GitHubHookReady and status.github are written, a finalizer is put only on Webhooks with
a `github` block, and deleting the Webhook deletes the hook, even without credentials
(bounded, with an Event)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hookline.api.common import API_VERSION
from hookline.github import reasons as r
from tests.github.conftest import REPO, TOKEN
from tests.support.clock import FakeClock
from tests.support.github_api import FakeGitHub, Grant
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    RunningReceiver,
    condition,
    create,
    events_for,
    eventually,
    operator,
    operator_settings,
    patch,
    receiver,
    secret,
)

NS = "builds"
WEBHOOKS = f"/apis/{API_VERSION}/namespaces/{NS}/webhooks"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    import time

    server = FakeGitHub(FakeClock(time.time()))
    server.repos.add(REPO)
    server.tokens[TOKEN] = Grant()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
    assert server.violations == []


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with receiver(tmp_path) as r:
        yield r


def webhook(name: str, github: FakeGitHub, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "auth": {"type": "github", "secretRef": {"name": "hook-secret"}},
            "github": {
                "repository": REPO,
                "apiURL": github.url,
                "tokenSecretRef": {"name": "gh-token"},
                **fields,
            },
        },
    }


async def setup(k8s: StrictEmulator) -> None:
    await create(k8s, secret(NS, "hook-secret", secret=b"s3cret"))
    await create(k8s, secret(NS, "gh-token", token=TOKEN.encode()))


async def test_the_hook_is_created_pinged_and_deleted_with_the_webhook(
    k8s: StrictEmulator, github: FakeGitHub, running: RunningReceiver
) -> None:
    await setup(k8s)
    settings = operator_settings(
        k8s, receiver_admin_urls=[running.admin_url], public_base_url=running.ingest_url
    )
    async with operator(k8s, settings):
        await create(k8s, webhook("runs", github))
        plain = {
            **webhook("plain", github),
            "spec": {"auth": {"type": "github", "secretRef": {"name": "hook-secret"}}},
        }
        await create(k8s, plain)
        res = f"{API_VERSION}/webhooks"
        ready = await k8s.wait_for(
            lambda: (
                (c := condition(k8s.get(res, NS, "runs"), r.GITHUB_HOOK_READY))
                and c["status"] == "True"
                and c
            ),
            10,
        )
        assert ready["reason"] == r.HOOK_ACTIVE
        obj = k8s.get(res, NS, "runs") or {}
        (hook,) = github.hooks_of(REPO)
        status = obj["status"]
        assert status["github"]["hookID"] == hook.id
        assert hook.config["url"] == status["url"]
        assert hook.config["secret"] == "s3cret"
        assert "s3cret" not in str(status) and TOKEN not in str(obj)
        assert FINALIZER in obj["metadata"].get("finalizers", [])
        plain_obj = k8s.get(res, NS, "plain") or {}
        assert FINALIZER not in (plain_obj["metadata"].get("finalizers") or [])
        assert condition(plain_obj, r.GITHUB_HOOK_READY) is None
        # GitHub's pings reached the real receiver and were answered 2xx.
        pings = [d for d in github.deliveries if d.item["event"] == "ping"]
        assert pings and all(d.item["status_code"] == 202 for d in pings), [
            (d.item["status_code"], d.item["status"]) for d in pings
        ]
        await k8s.wait_for(
            lambda: any(e["reason"] == r.GITHUB_HOOK_READY for e in events_for(k8s, "runs", NS)),
            5,
        )

        rsp = await k8s.delete(f"{WEBHOOKS}/runs")
        assert rsp.status in (200, 202)
        await k8s.wait_for(lambda: k8s.get(res, NS, "runs") is None, 10)
        assert github.hooks_of(REPO) == []
        assert any(e["reason"] == "GitHubHookDeleted" for e in events_for(k8s, "runs", NS))


async def test_removing_the_github_block_deletes_the_hook(
    k8s: StrictEmulator, github: FakeGitHub, running: RunningReceiver
) -> None:
    await setup(k8s)
    settings = operator_settings(
        k8s, receiver_admin_urls=[running.admin_url], public_base_url=running.ingest_url
    )
    res = f"{API_VERSION}/webhooks"
    async with operator(k8s, settings):
        await create(k8s, webhook("runs", github))
        await k8s.wait_for(lambda: github.hooks_of(REPO), 10)
        await patch(k8s, f"{WEBHOOKS}/runs", {"spec": {"github": None}})
        await eventually(lambda: not github.hooks_of(REPO), 10)
        await k8s.wait_for(
            lambda: (
                condition(k8s.get(res, NS, "runs"), r.GITHUB_HOOK_READY) is None
                and FINALIZER
                not in ((k8s.get(res, NS, "runs") or {})["metadata"].get("finalizers") or [])
            ),
            10,
        )
        assert "github" not in (k8s.get(res, NS, "runs") or {}).get("status", {})


async def test_missing_credentials_are_a_condition_and_do_not_hold_deletion(
    k8s: StrictEmulator, github: FakeGitHub, running: RunningReceiver
) -> None:
    await create(k8s, secret(NS, "hook-secret", secret=b"s3cret"))  # no gh-token
    settings = operator_settings(
        k8s,
        receiver_admin_urls=[running.admin_url],
        public_base_url=running.ingest_url,
        github_delete_timeout=1.0,
    )
    res = f"{API_VERSION}/webhooks"
    async with operator(k8s, settings):
        await create(k8s, webhook("runs", github))
        found = await k8s.wait_for(
            lambda: condition(k8s.get(res, NS, "runs"), r.GITHUB_HOOK_READY), 10
        )
        assert (found["status"], found["reason"]) == ("False", r.CREDENTIALS_NOT_FOUND)
        assert "gh-token" in found["message"]
        await k8s.delete(f"{WEBHOOKS}/runs")
        await k8s.wait_for(lambda: k8s.get(res, NS, "runs") is None, 10)
        assert any(e["reason"] == "GitHubHookNotDeleted" for e in events_for(k8s, "runs", NS))


async def test_unauthorized_is_a_condition(
    k8s: StrictEmulator, github: FakeGitHub, running: RunningReceiver
) -> None:
    await setup(k8s)
    del github.tokens[TOKEN]
    settings = operator_settings(
        k8s, receiver_admin_urls=[running.admin_url], public_base_url=running.ingest_url
    )
    res = f"{API_VERSION}/webhooks"
    async with operator(k8s, settings):
        await create(k8s, webhook("runs", github))
        found = await k8s.wait_for(
            lambda: condition(k8s.get(res, NS, "runs"), r.GITHUB_HOOK_READY), 10
        )
        assert (found["status"], found["reason"]) == ("False", r.UNAUTHORIZED)
        assert TOKEN not in found["message"]
        # Fixed by the user (a new token in the Secret): the daemon looks at once.
        github.tokens["ghp_new"] = Grant()
        await patch(
            k8s,
            f"/api/v1/namespaces/{NS}/secrets/gh-token",
            {"stringData": None, "data": {"token": "Z2hwX25ldw=="}},
        )
        found = await k8s.wait_for(
            lambda: (
                (c := condition(k8s.get(res, NS, "runs"), r.GITHUB_HOOK_READY))
                and c["status"] == "True"
                and c
            ),
            10,
        )
        assert github.hooks_of(REPO)
