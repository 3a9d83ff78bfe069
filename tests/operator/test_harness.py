"""The operator test harness itself (for issue 6): kopf's real run loop against the
stricter KMock emulator in tests/support/kmock_harness.py, with a CRD that has the status
subresource and every write checked against its schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kmock
import kopf
import pytest

from tests.support.crd_schema import validate_object
from tests.support.kmock_harness import OperatorThread, StrictEmulator, fast_settings, pruned_fields
from tests.support.kmock_harness import _parse_path as fixed_parse_path

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {
            "kind": "Widget",
            "plural": "widgets",
            "singular": "widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "observedGeneration": {"type": "integer"},
                                    "ticks": {"type": "integer"},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["type", "status"],
                                            "properties": {
                                                "type": {"type": "string"},
                                                "status": {
                                                    "type": "string",
                                                    "enum": ["True", "False", "Unknown"],
                                                },
                                                "reason": {"type": "string"},
                                                "message": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}
WIDGETS = "example.dev/v1alpha1/widgets"


def strict_validator(crd: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return validate_object(crd, obj) + pruned_fields(schema, obj)


@pytest.fixture
async def k8s(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StrictEmulator]:
    # KMock 0.8 cannot parse /api/v1/namespaces; patched for this test only.
    monkeypatch.setattr("kmock._internal.parsing.parse_path", fixed_parse_path)
    async with StrictEmulator() as k, kmock.Server(k):
        k.add_kopf_backbone()
        k.add_crd(WIDGET_CRD, validator=strict_validator)
        yield k
        assert not k.violations, k.violations  # every write of the operator obeyed the CRD schema
        # 4xx KubernetesErrors (404 on a missing object...) are normal; anything else is an emulator bug.
        assert not [e for e in k.errors if not isinstance(e, kmock.KubernetesError)], k.errors


def make_registry(server_url: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()  # a plain registry: no kubeconfig/in-cluster fallback logins

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server_url, insecure=True, default_namespace="default")

    @kopf.on.create("example.dev", "v1alpha1", "widgets", registry=registry)
    def widget_created(body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
        patch.status["observedGeneration"] = meta["generation"]
        patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Created"}]
        kopf.info(body, reason="Ready", message="The widget is ready.")

    @kopf.timer("example.dev", "v1alpha1", "widgets", interval=0.2, registry=registry)
    def widget_tick(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
        patch.status["ticks"] = (status.get("ticks") or 0) + 1

    return registry


@pytest.fixture
async def operator(k8s: StrictEmulator) -> AsyncIterator[OperatorThread]:
    registry = make_registry(str(k8s.url).rstrip("/"))
    async with OperatorThread(registry=registry, settings=fast_settings(), clusterwide=True) as op:
        # ready_flag is raised before kopf scans the API; stopping it mid-scan costs 5 s. Wait for the watch.
        await k8s.wait_for(lambda: k8s.watched(WIDGETS), seconds=5)
        yield op


def widget(name: str, size: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size},
    }


def ready(obj: dict[str, Any] | None) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (obj or {}).get("status", {}).get("conditions", [])
    )


async def test_create_handler_patches_status(k8s: StrictEmulator, operator: OperatorThread) -> None:
    rsp = await k8s.post("/apis/example.dev/v1alpha1/namespaces/ns1/widgets", json=widget("w1"))
    assert rsp.status == 200, await rsp.text()

    obj = await k8s.wait_for(lambda: ready(o := k8s.get(WIDGETS, "ns1", "w1")) and o, seconds=5)
    assert obj["status"]["observedGeneration"] == 1
    # KMock's partial matching (>=) recurses into dicts only; lists are compared whole.
    assert k8s.objects[WIDGETS, "ns1", "w1"] >= {
        "status": {"observedGeneration": 1, "conditions": ...}
    }

    # Exactly one status write came from the create handler: kopf saw the object once.
    # list(k8s) is KMock's request log; r.body is what the client sent (r.data is rewritten by the harness).
    status_patches = [
        r
        for r in k8s
        if r.method == "PATCH" and r.subresource == "status" and b"conditions" in r.body
    ]
    assert len(status_patches) == 1

    # kopf.info() became a v1 Event on the object (posted in the background).
    events = await k8s.wait_for(
        lambda: [e for e in k8s.events_for("w1", "ns1") if e["reason"] == "Ready"]
    )
    assert events[0]["involvedObject"]["kind"] == "Widget"
    assert events[0]["involvedObject"]["uid"] == obj["metadata"]["uid"]


async def test_invalid_object_is_refused(k8s: StrictEmulator, operator: OperatorThread) -> None:
    rsp = await k8s.post(
        "/apis/example.dev/v1alpha1/namespaces/ns1/widgets", json=widget("bad", size=0)
    )
    assert rsp.status == 422
    assert (await rsp.json())["reason"] == "Invalid"
    k8s.violations.clear()  # this one was the test's own, deliberate


async def test_timer_writes_status(k8s: StrictEmulator, operator: OperatorThread) -> None:
    await k8s.post("/apis/example.dev/v1alpha1/namespaces/ns1/widgets", json=widget("w2"))

    def ticks() -> int:
        return int((k8s.get(WIDGETS, "ns1", "w2") or {}).get("status", {}).get("ticks", 0))

    await k8s.wait_for(lambda: ticks() >= 3, seconds=5)  # interval=0.2 s: about 0.5 s
