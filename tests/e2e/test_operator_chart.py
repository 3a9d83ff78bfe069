"""The operator as the Helm chart runs it (issue 14): the container's command and every
HOOKLINE_* variable come from `helm template` of charts/hookline (tests/support/chart.py,
there being no helm binary here), with the chart's defaults: receiver managed, kopf
peering through the ClusterKopfPeering the chart's post-install hook creates, kopf's
liveness endpoint on. Every request the operator sends must be one the chart's RBAC
grants its ServiceAccount.

What differs from a pod, and why: the API server is reached through a kubeconfig (there
is no in-cluster service-account mount here), the liveness port is a free loopback
port instead of 0.0.0.0:8080, and `kopf` is started as `python -m kopf`, the venv's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest

from hookline.operator.rbac import Permission, allows
from tests.support.chart import find, template
from tests.support.kmock_harness import StrictEmulator
from tests.support.kubeconfig import TOKEN, write_kubeconfig
from tests.support.operator_env import OPERATOR_NAMESPACE, emulator, free_port
from tests.support.operator_process import (
    apply_and_watch,
    assert_clean_exit,
    clean_environ,
    operator_process,
)
from tests.support.tls import TestCA, https_server

NS = "bars"  # issue 14's user's namespace
PEERINGS = "kopf.dev/v1/clusterkopfpeerings"


@pytest.fixture
async def k8s() -> AsyncIterator[StrictEmulator]:
    async with emulator() as k:
        yield k


def install_chart(k8s: StrictEmulator, objects: list[dict[str, Any]]) -> None:
    """What `helm install` leaves that the operator needs before it starts: the
    chart's kopf peering CRDs (served by the emulator)."""
    for crd in (o for o in objects if o["kind"] == "CustomResourceDefinition"):
        k8s.add_crd(crd)


def subjects_of(objects: list[dict[str, Any]], account: tuple[str, str]) -> list[dict[str, Any]]:
    """The bindings whose subjects include the ServiceAccount `account` (namespace, name)."""
    namespace, name = account
    return [
        binding
        for binding in objects
        if binding["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == name
            and s.get("namespace") == namespace
            for s in binding.get("subjects", [])
        )
    ]


def granted_in(
    objects: list[dict[str, Any]], account: tuple[str, str], namespace: str | None
) -> list[Mapping[str, object]]:
    """The PolicyRules that apply to `account` in `namespace` (None: cluster-wide)."""
    rules: list[Mapping[str, object]] = []
    for binding in subjects_of(objects, account):
        bound_in = binding["metadata"].get("namespace")
        if binding["kind"] == "RoleBinding" and bound_in != namespace:
            continue
        ref = binding["roleRef"]
        role = find(objects, ref["kind"], ref["name"]) if ref["kind"] == "ClusterRole" else None
        if ref["kind"] == "Role":
            role = next(
                o
                for o in objects
                if o["kind"] == "Role"
                and o["metadata"]["name"] == ref["name"]
                and o["metadata"].get("namespace") == bound_in
            )
        assert role is not None, ref
        rules.extend(role.get("rules", []))
    return rules


def verb_of(request: kmock.Request) -> str:
    method = str(request.method).upper().rsplit(".", 1)[-1]
    if method == "GET":
        if request.name:
            return "get"
        return "watch" if request.params.get("watch") in ("true", "1") else "list"
    if method == "DELETE":
        return "delete" if request.name else "deletecollection"
    return {"POST": "create", "PATCH": "patch", "PUT": "update"}[method]


def check_rbac(
    objects: list[dict[str, Any]], account: tuple[str, str], requests: list[kmock.Request]
) -> tuple[set[Permission], list[str]]:
    """The permissions the operator's requests used, and those of them that the chart's
    RBAC would answer 403."""
    used: set[Permission] = set()
    refused = []
    for request in requests:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            continue  # the test's own requests, not the operator's
        if request.resource is None or request.resource.plural is None:
            continue  # discovery (/api, /apis/...): allowed to every authenticated user
        resource = str(request.resource.plural)
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        permission = (request.resource.group or "", resource, verb_of(request))
        used.add(permission)
        rules = granted_in(objects, account, None)
        if request.namespace:
            rules += granted_in(objects, account, request.namespace)
        if not any(allows([rule], permission) for rule in rules):
            refused.append(f"{permission} in {request.namespace or 'the cluster'}")
    return used, sorted(set(refused))


async def test_the_operator_as_the_chart_runs_it(k8s: StrictEmulator, tmp_path: Path) -> None:
    objects = template(namespace=OPERATOR_NAMESPACE)
    deployment = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    account = (OPERATOR_NAMESPACE, pod["serviceAccountName"])
    install_chart(k8s, objects)
    # The post-install hook's ClusterKopfPeering (peering.standalone is false by default).
    peering = find(objects, "ClusterKopfPeering")
    rsp = await k8s.post("/apis/kopf.dev/v1/clusterkopfpeerings", json=peering)
    assert rsp.status == 200, await rsp.text()

    port = free_port()
    command = list(container["command"])
    assert command[:4] == ["kopf", "run", "-m", "hookline.operator"], command
    liveness = "--liveness=http://0.0.0.0:8080/healthz"
    assert liveness in command, command
    command[command.index(liveness)] = f"--liveness=http://127.0.0.1:{port}/healthz"
    settings = {e["name"]: e["value"] for e in container["env"]}
    assert settings["HOOKLINE_MANAGE_RECEIVER"] == "true"
    assert settings["HOOKLINE_PEERING_STANDALONE"] == "false"

    ca = TestCA()
    async with https_server(k8s, ca) as url:
        env = clean_environ(
            **settings,
            # A pod's name, which kopf's peering identity and priority derive from.
            HOSTNAME="hookline-5d8f7c9b6d-x2x7q",
            KUBECONFIG=str(write_kubeconfig(tmp_path / "kubeconfig", url, ca, namespace=NS)),
            HOME=str(tmp_path),
        )
        async with operator_process(env, ["-m", *command]) as running:
            await apply_and_watch(k8s, NS, receiver_namespace=OPERATOR_NAMESPACE)
            # The replica announced itself in the chart's peering object ...
            await k8s.wait_for(lambda: (k8s.get(PEERINGS, None, "hookline") or {}).get("status"))
            # ... and the kubelet's liveness probe would pass.
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as probe:
                    assert probe.status == 200, await probe.text()
            code = await running.stop()
    assert_clean_exit(k8s, code, running.stderr)
    used, refused = check_rbac(objects, account, list(k8s._requests))
    assert refused == [], "\n".join(refused)
    # The check saw the operator's real work, not only its discovery requests.
    assert {
        ("", "secrets", "watch"),
        ("apps", "deployments", "create"),
        ("hookline.dev", "webhooks/status", "patch"),
        ("", "events", "create"),
        ("kopf.dev", "clusterkopfpeerings", "patch"),
    } <= used, sorted(used)
