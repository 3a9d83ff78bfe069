"""The receiver run by the operator (issue 6): its Deployment and Services created from
the settings, drift put back, and the replicas found behind the admin Service's
EndpointSlices and given the configuration. Against KMock, with a real receiver standing
in for the pod behind the EndpointSlice."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from hookline.api.common import API_VERSION
from hookline.operator.receiver_objects import TOKEN_DIGEST_ANNOTATION
from hookline.operator.reconcile import reconciler_of
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    OPERATOR_NAMESPACE,
    WEBHOOKS,
    create,
    eventually,
    free_port,
    is_ready,
    operator,
    operator_settings,
    patch,
    receiver,
    secret,
)

DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
NETWORK_POLICIES = "networking.k8s.io/v1/networkpolicies"
INGRESSES = "networking.k8s.io/v1/ingresses"


def replicas(k: StrictEmulator) -> Any:
    return (
        (k.get(DEPLOYMENTS, OPERATOR_NAMESPACE, "hookline-receiver") or {}).get("spec") or {}
    ).get("replicas")


def token_digest(k: StrictEmulator) -> str | None:
    deployment = k.get(DEPLOYMENTS, OPERATOR_NAMESPACE, "hookline-receiver") or {}
    template = deployment.get("spec", {}).get("template", {})
    return (template.get("metadata", {}).get("annotations") or {}).get(TOKEN_DIGEST_ANNOTATION)


async def test_receiver_objects_created_and_drift_repaired(k8s: StrictEmulator) -> None:
    settings = operator_settings(
        k8s,
        manage_receiver=True,
        resync_interval=0.2,
        receiver_replicas=2,
        store_secret_name="hookline-store",
    )
    async with operator(k8s, settings):
        deployment = await k8s.wait_for(
            lambda: k8s.get(DEPLOYMENTS, OPERATOR_NAMESPACE, "hookline-receiver")
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "push" in container["args"]
        assert deployment["spec"]["replicas"] == 2
        services = await k8s.wait_for(lambda: len(k8s.list(SERVICES)) == 2 and k8s.list(SERVICES))
        ingest = next(s for s in services if s["metadata"]["name"] == "hookline-receiver")
        # The admin port is never on the Service that takes the internet's traffic.
        assert [p["targetPort"] for p in ingest["spec"]["ports"]] != [settings.admin_port]
        assert settings.admin_port not in [p.get("port") for p in ingest["spec"]["ports"]]
        await k8s.wait_for(lambda: k8s.list(NETWORK_POLICIES))

        # Someone scales it by hand and drops a label: the operator puts both back.
        await patch(
            k8s,
            f"/apis/apps/v1/namespaces/{OPERATOR_NAMESPACE}/deployments/hookline-receiver",
            {"spec": {"replicas": 7}, "metadata": {"labels": {"app.kubernetes.io/name": None}}},
        )
        await k8s.wait_for(lambda: replicas(k8s) == 7)
        await k8s.wait_for(lambda: replicas(k8s) == 2)
        labels = k8s.get(DEPLOYMENTS, OPERATOR_NAMESPACE, "hookline-receiver")["metadata"]["labels"]  # type: ignore[index]
        assert labels["app.kubernetes.io/name"] == "hookline"

        # A new admin token rolls the receiver pods (they read it at start).
        before = token_digest(k8s)
        assert before
        await patch(
            k8s,
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/hookline-receiver-admin-token",
            {"data": {"token": base64.b64encode(b"a-new-admin-token").decode()}},
        )
        await k8s.wait_for(lambda: token_digest(k8s) not in (before, None))


async def test_replicas_found_through_endpointslices(k8s: StrictEmulator, tmp_path: Path) -> None:
    port = free_port()
    async with receiver(tmp_path, admin_port=port) as running:
        settings = operator_settings(
            k8s, manage_receiver=True, admin_port=port, resync_interval=0.2
        )
        async with operator(k8s, settings):
            await create(k8s, secret("ci", "gh", secret=b"s3cret"))
            await create(
                k8s,
                {
                    "apiVersion": API_VERSION,
                    "kind": "Webhook",
                    "metadata": {"name": "found", "namespace": "ci"},
                    "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
                },
            )
            # No pod yet: compiled, but nobody serves it.
            await k8s.wait_for(
                lambda: ((k8s.get(WEBHOOKS, "ci", "found") or {}).get("status") or {}).get(
                    "conditions"
                )
            )
            assert not is_ready(k8s.get(WEBHOOKS, "ci", "found"))
            # A pod appears behind the admin Service (not ready yet: published anyway).
            await create(
                k8s,
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": "hookline-receiver-admin-abcde",
                        "namespace": OPERATOR_NAMESPACE,
                        "labels": {"kubernetes.io/service-name": settings.admin_service_name},
                    },
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": False}}],
                    "ports": [{"name": "admin", "port": port}],
                },
            )
            await k8s.wait_for(lambda: is_ready(k8s.get(WEBHOOKS, "ci", "found")), seconds=10)
            assert running.state.config.route_for("ci/found") is not None


async def test_a_disabled_ingress_is_removed(k8s: StrictEmulator) -> None:
    labels = {"app.kubernetes.io/managed-by": "hookline-operator"}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "hookline-receiver",
            "namespace": OPERATOR_NAMESPACE,
            "labels": labels,
        },
        "spec": {"rules": [{"host": "hooks.example.com"}]},
    }
    rsp = await k8s.post(
        f"/apis/networking.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/ingresses", json=ingress
    )
    assert rsp.status == 200
    settings = operator_settings(k8s, manage_receiver=True, ingress_enabled=False)
    async with operator(k8s, settings):
        await k8s.wait_for(
            lambda: k8s.get(INGRESSES, OPERATOR_NAMESPACE, "hookline-receiver") is None
        )


async def test_a_deleted_anchor_is_made_again_and_one_loop_runs(k8s: StrictEmulator) -> None:
    settings = operator_settings(k8s, manage_receiver=True, resync_interval=0.2)
    async with operator(k8s, settings) as ctx:
        first = await k8s.wait_for(lambda: token_digest(k8s))
        anchor = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/hookline-receiver-admin-token"
        assert (await k8s.delete(anchor)).status == 200
        # A new token, a new anchor, and the pods rolled once to it.
        second = await k8s.wait_for(
            lambda: token_digest(k8s) not in (first, None) and token_digest(k8s)
        )
        reconciler = reconciler_of(ctx)
        await eventually(lambda: reconciler.loops == 1)
        # The old daemon is gone: nothing flips the pods back to the old token.
        passes = reconciler.passes
        await eventually(lambda: reconciler.passes >= passes + 5)
        assert token_digest(k8s) == second
