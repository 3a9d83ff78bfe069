"""The start-up check (issue 11 §3): an operator run without the chart's peering object,
kopf's peering CRD or a built-in resource says so in one line, again and again, and acts
as soon as the object appears — without a restart."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hookline.api.common import API_VERSION
from hookline.operator import preflight
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
PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "group": "kopf.dev",
        "scope": "Cluster",
        "names": {
            "kind": "ClusterKopfPeering",
            "plural": "clusterkopfpeerings",
            "singular": "clusterkopfpeering",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
# Short, so that the test sees the line repeat; 30 s in production.
INTERVAL = 0.2


@pytest.fixture
async def k8s() -> AsyncIterator[StrictEmulator]:
    """No peering object: what `hookline operator` by hand meets on a fresh cluster."""
    async with emulator() as k:
        await create(k, secret("ci", "gh", secret=b"s3cret"))
        yield k


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO, logger=preflight.log.name)

    def found(*words: str) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == preflight.log.name and all(w in r.getMessage() for w in words)
        ]

    return found


def settings(k: StrictEmulator, **overrides: Any) -> Any:
    values = {"peering_standalone": False, "preflight_interval": INTERVAL, **overrides}
    return operator_settings(k, **values)


def webhook(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": "ci"},
        "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
    }


def acted(k: StrictEmulator, name: str) -> bool:
    """Only an acting operator writes a Webhook's conditions."""
    return bool(((k.get(WEBHOOKS, "ci", name) or {}).get("status") or {}).get("conditions"))


async def create_peering(k: StrictEmulator) -> None:
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering"}
    rsp = await k.post(
        "/apis/kopf.dev/v1/clusterkopfpeerings", json={**body, "metadata": {"name": "hookline"}}
    )
    assert rsp.status == 200, await rsp.text()


async def test_a_missing_peering_object_is_named_until_it_is_created(
    k8s: StrictEmulator, lines: Any
) -> None:
    k8s.add_builtin(PEERINGS, "ClusterKopfPeering", namespaced=False)
    async with operator(k8s, settings(k8s), wait=False):
        await create(k8s, webhook("early"))
        # One line: what is missing, how to create it, or how to run without it.
        first = (await eventually(lambda: lines("ClusterKopfPeering 'hookline' does not exist")))[0]
        assert "peering is mandatory" in first and "the operator does nothing" in first
        assert '"kind":"ClusterKopfPeering","metadata":{"name":"hookline"}' in first
        assert "kubectl apply -f -" in first and "HOOKLINE_PEERING_STANDALONE=true" in first
        # Said again every interval while it is missing; the operator does nothing.
        await eventually(lambda: len(lines("does not exist")) >= 3)
        assert not acted(k8s, "early")

        await create_peering(k8s)
        # No restart: kopf resumes on the object's ADDED event; the check says so, once.
        await k8s.wait_for(lambda: acted(k8s, "early"), seconds=10)
        await eventually(lambda: lines("everything the operator needs is there now"))
        said = len(lines("does not exist"))
        await create(k8s, webhook("late"))
        await k8s.wait_for(lambda: acted(k8s, "late"))
        assert len(lines("does not exist")) == said


async def test_kopfs_peering_crd_not_served_is_named_apart_from_the_object(
    k8s: StrictEmulator, lines: Any
) -> None:
    async with operator(k8s, settings(k8s), wait=False):
        await create(k8s, webhook("early"))
        crd_line = "does not serve kopf.dev/v1/clusterkopfpeerings"
        first = (await eventually(lambda: lines(crd_line)))[0]
        assert "kopf's peering CRD clusterkopfpeerings.kopf.dev" in first
        assert "helm template" in first and "HOOKLINE_PEERING_STANDALONE=true" in first
        assert not lines("does not exist")
        await eventually(lambda: len(lines("clusterkopfpeerings")) >= 2)

        # The CRD installed (kopf sees it through its CRD watch), then the object.
        k8s.add_builtin(PEERINGS, "ClusterKopfPeering", namespaced=False)
        await create(k8s, PEERING_CRD)
        await eventually(lambda: lines("ClusterKopfPeering 'hookline' does not exist"))
        await create_peering(k8s)
        await k8s.wait_for(lambda: acted(k8s, "early"), seconds=10)


async def test_a_resource_the_operator_needs_and_is_not_served_is_named(
    k8s: StrictEmulator, lines: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # (Not one the operator creates: KMock serves a resource once an object of it is posted.)
    del k8s.resources["discovery.k8s.io/v1/endpointslices"]
    async with operator(k8s, settings(k8s, peering_standalone=True)):
        line = (await eventually(lambda: lines("discovery.k8s.io/v1/endpointslices")))[0]
        assert line == (
            "the API server does not serve discovery.k8s.io/v1/endpointslices: the operator "
            "cannot find the receiver replicas, so no configuration is pushed and no status "
            "counters are read; or set HOOKLINE_RECEIVER_ADMIN_URLS"
        )
        await eventually(lambda: len(lines("endpointslices")) >= 2)
        # Nothing else is missing: one line per missing resource, nothing about peering.
        assert {m for m in lines("") if "endpointslices" not in m} == set()
        # The stats timer, which lists EndpointSlices, says it in a line too, no traceback.
        await eventually(lambda: "cannot find the receiver replicas" in caplog.text)
        assert not [r for r in caplog.records if r.exc_info], caplog.text
