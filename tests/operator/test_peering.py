"""High availability (issue 6): two operator replicas peer through kopf's peering object;
only the one with the higher priority acts, and the other takes over when it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from hookline.api.common import API_VERSION
from hookline.operator import OperatorContext
from hookline.operator.reconcile import Reconciler
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    WEBHOOKS,
    create,
    emulator,
    eventually,
    operator,
    operator_settings,
    secret,
)

PEERINGS = "kopf.dev/v1/clusterkopfpeerings"


@pytest.fixture
async def k8s() -> AsyncIterator[StrictEmulator]:
    async with emulator() as k:
        k.add_builtin(PEERINGS, "ClusterKopfPeering", namespaced=False)
        rsp = await k.post(
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            json={
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "hookline"},
            },
        )
        assert rsp.status == 200
        await create(k, secret("ci", "gh", secret=b"s3cret"))
        yield k


def webhook(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": "ci"},
        "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
    }


def passes(ctx: OperatorContext) -> int:
    reconciler = ctx.extras.get("reconciler")
    return reconciler.passes if isinstance(reconciler, Reconciler) else 0


def acted(k: StrictEmulator, name: str) -> bool:
    """The Webhook got its conditions (no receiver runs here: Ready is False, but only an
    acting operator writes it)."""
    return bool(((k.get(WEBHOOKS, "ci", name) or {}).get("status") or {}).get("conditions"))


async def test_only_the_higher_priority_replica_acts_and_the_other_takes_over(
    k8s: StrictEmulator,
) -> None:
    def settings(priority: int) -> Any:
        return operator_settings(k8s, peering_standalone=False, peering_priority=priority)

    async with AsyncExitStack() as leading:
        leader = await leading.enter_async_context(operator(k8s, settings(200)))
        await create(k8s, webhook("first"))
        await k8s.wait_for(lambda: acted(k8s, "first"))
        async with operator(k8s, settings(100), wait=False) as standby:
            # The standby sees a higher priority in the peering object and pauses.
            await k8s.wait_for(
                lambda: len((k8s.get(PEERINGS, None, "hookline") or {}).get("status") or {}) == 2
            )
            before = passes(leader)
            await create(k8s, webhook("second"))
            await k8s.wait_for(lambda: acted(k8s, "second"))
            await eventually(lambda: passes(leader) > before)
            assert passes(standby) == 0

            # The leader stops (it removes itself from the peering object on the way
            # out); the standby, still running, resumes and acts.
            await leading.aclose()
            await create(k8s, webhook("third"))
            await k8s.wait_for(lambda: acted(k8s, "third"), seconds=15)
            await eventually(lambda: passes(standby) > 0)
