"""`hookline operator` as a process (issues 6 and 14): settings from HOOKLINE_* variables,
handlers registered into kopf's default registry on import, kopf's own `run`. Against the
strict KMock emulator; stopped with SIGTERM like a pod."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    EVENTFILTERS,
    EVENTTYPES,
    OPERATOR_NAMESPACE,
    WEBHOOKS,
    condition,
    create,
    is_ready,
    secret,
)
from tests.support.operator_process import clean_environ, operator_process
from tests.support.tls import TestCA, https_server

FAST_CONFIG = {"HOOKLINE_CONFIG_DEBOUNCE": "0.05"}  # pushes debounced 50 ms, not 100 ms
NS = "ci"


def webhook(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": "from-process", "namespace": NS},
        "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}, **spec},
    }


def ready_reason(k: StrictEmulator) -> tuple[str, str] | None:
    found = condition(k.get(WEBHOOKS, NS, "from-process"))
    return None if found is None else (found["status"], found["reason"])


async def test_the_operator_command_reconciles_and_stops_on_sigterm(k8s: StrictEmulator) -> None:
    env = clean_environ(
        HOOKLINE_KUBE_URL=str(k8s.url).rstrip("/"),
        HOOKLINE_NAMESPACE=OPERATOR_NAMESPACE,
        HOOKLINE_MANAGE_RECEIVER="false",
        HOOKLINE_PEERING_STANDALONE="true",
        **FAST_CONFIG,
    )
    async with operator_process(env) as running:
        await create(k8s, secret(NS, "gh", secret=b"s3cret"))
        await create(k8s, webhook())
        # No receiver runs: compiled, valid, and honestly not served.
        found = await k8s.wait_for(
            lambda: condition(k8s.get(WEBHOOKS, NS, "from-process")), seconds=30
        )
        assert (found["status"], found["reason"]) == ("False", "ReceiverNotReady")
        assert found["message"] == "no receiver replica is running"
        code = await running.stop()
    assert code == 0, running.stderr[-2000:]


def write_kubeconfig(path: Path, server: str, ca: TestCA) -> Path:
    """A kubeconfig as a cloud CLI writes one: base64 CA data, a token user, and a
    current context with a namespace."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": server, "certificate-authority-data": ca.kubeconfig_data},
            }
        ],
        "users": [{"name": "dev", "user": {"token": "dev-token-not-checked"}}],
        "contexts": [
            {
                "name": "test",
                "context": {"cluster": "test", "user": "dev", "namespace": OPERATOR_NAMESPACE},
            }
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_the_operator_as_a_user_starts_it(k8s: StrictEmulator, tmp_path: Path) -> None:
    """Issue 14: a kubeconfig over https, every setting at its default (so the receiver
    is managed, in the context's namespace); the statuses appear, and nothing fails."""
    ca = TestCA()
    async with https_server(k8s, ca) as url:
        env = clean_environ(
            KUBECONFIG=str(write_kubeconfig(tmp_path / "kubeconfig", url, ca)),
            HOOKLINE_PEERING_STANDALONE="true",
            HOME=str(tmp_path),
            **FAST_CONFIG,
        )
        async with operator_process(env) as running:
            await create(k8s, secret(NS, "gh", secret=b"s3cret"))
            await create(
                k8s,
                {
                    "apiVersion": API_VERSION,
                    "kind": "EventType",
                    "metadata": {"name": "push", "namespace": NS},
                    "spec": {
                        "type": "github.push",
                        "version": "v1",
                        "match": {"header": {"name": "X-GitHub-Event", "value": "push"}},
                    },
                },
            )
            await create(
                k8s, webhook(eventTypes=[{"name": "push"}], filters=[{"name": "main-only"}])
            )
            await k8s.wait_for(lambda: ready_reason(k8s) == ("False", "FilterNotFound"), 10)

            await create(
                k8s,
                {
                    "apiVersion": API_VERSION,
                    "kind": "EventFilter",
                    "metadata": {"name": "main-only", "namespace": NS},
                    "spec": {"rules": [{"field": "$.ref", "operator": "equals", "value": "main"}]},
                },
            )
            await k8s.wait_for(lambda: is_ready(k8s.get(EVENTFILTERS, NS, "main-only")), 10)
            await k8s.wait_for(lambda: is_ready(k8s.get(EVENTTYPES, NS, "push")), 10)
            await k8s.wait_for(lambda: ready_reason(k8s) == ("False", "ReceiverNotReady"), 10)
            # Managed, in the kubeconfig context's namespace (issue 14).
            await k8s.wait_for(
                lambda: k8s.get("apps/v1/deployments", OPERATOR_NAMESPACE, "hookline-receiver"),
                10,
            )
            code = await running.stop()
    stderr = running.stderr
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    # The emulator's own record, not a search of the log for "409" (a timestamp's
    # milliseconds can read ",409").
    assert k8s.conflicts == [], k8s.conflicts
    assert not re.search(r"(?<![,\d])409(?!\d)", stderr), stderr[-3000:]
