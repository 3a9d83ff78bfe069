"""`hookline operator` as a process, the way the chart runs it (issue 6): settings from
HOOKLINE_* variables, handlers registered into kopf's default registry on import, kopf's
own `run`. Against the strict KMock emulator; stopped with SIGTERM like a pod."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    OPERATOR_NAMESPACE,
    WEBHOOKS,
    condition,
    create,
    secret,
)


async def test_the_operator_command_reconciles_and_stops_on_sigterm(k8s: StrictEmulator) -> None:
    env = {
        **os.environ,
        "HOOKLINE_KUBE_URL": str(k8s.url).rstrip("/"),
        "HOOKLINE_NAMESPACE": OPERATOR_NAMESPACE,
        "HOOKLINE_MANAGE_RECEIVER": "false",
        "HOOKLINE_PEERING_STANDALONE": "true",
        "HOOKLINE_CONFIG_DEBOUNCE": "0.05",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookline.cli",
        "operator",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await create(k8s, secret("ci", "gh", secret=b"s3cret"))
        await create(
            k8s,
            {
                "apiVersion": API_VERSION,
                "kind": "Webhook",
                "metadata": {"name": "from-process", "namespace": "ci"},
                "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
            },
        )
        # No receiver runs: compiled, valid, and honestly not served.
        found = await k8s.wait_for(
            lambda: condition(k8s.get(WEBHOOKS, "ci", "from-process")), seconds=30
        )
        assert (found["status"], found["reason"]) == ("False", "ReceiverNotReady")
        assert found["message"] == "no receiver replica is running"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()[-2000:]
