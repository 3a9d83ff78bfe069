"""`hookline operator` as a process (issues 6 and 14): settings from HOOKLINE_* variables,
handlers registered into kopf's default registry on import, kopf's own `run`. Against the
strict KMock emulator; stopped with SIGTERM like a pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.kubeconfig import write_kubeconfig
from tests.support.operator_env import (
    OPERATOR_NAMESPACE,
    WEBHOOKS,
    condition,
    create,
    secret,
)
from tests.support.operator_process import (
    apply_and_watch,
    assert_clean_exit,
    clean_environ,
    operator_process,
)
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


async def test_the_operator_as_a_user_starts_it(k8s: StrictEmulator, tmp_path: Path) -> None:
    """Issue 14: a kubeconfig over https, every setting at its default (so the receiver
    is managed, in the context's namespace); the statuses appear, and nothing fails."""
    ca = TestCA()
    async with https_server(k8s, ca) as url:
        kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig", url, ca, namespace=OPERATOR_NAMESPACE
        )
        env = clean_environ(
            KUBECONFIG=str(kubeconfig),
            HOOKLINE_PEERING_STANDALONE="true",
            HOME=str(tmp_path),
            **FAST_CONFIG,
        )
        async with operator_process(env) as running:
            await apply_and_watch(k8s, NS, receiver_namespace=OPERATOR_NAMESPACE)
            code = await running.stop()
    assert_clean_exit(k8s, code, running.stderr)
