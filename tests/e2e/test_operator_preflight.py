"""`hookline operator` by hand, as the README invites, on a cluster without the chart's
peering object (issue 11 §3): the process says so on stderr, and acts once the object is
created, without a restart. Against the strict KMock emulator."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import OPERATOR_NAMESPACE, WEBHOOKS, condition, create, secret

MISSING = b"peering is mandatory and ClusterKopfPeering 'hookline' does not exist"


async def read_until(
    stream: asyncio.StreamReader, needle: bytes, seen: bytearray, times: int = 1
) -> None:
    while seen.count(needle) < times:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"stderr ended without {needle!r}: {bytes(seen)[-2000:]!r}")
        seen += line


async def test_the_operator_command_names_the_missing_peering_object_and_acts_once_created(
    k8s: StrictEmulator,
) -> None:
    k8s.add_builtin("kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
    env = {
        **os.environ,
        "HOOKLINE_KUBE_URL": str(k8s.url).rstrip("/"),
        "HOOKLINE_NAMESPACE": OPERATOR_NAMESPACE,
        "HOOKLINE_MANAGE_RECEIVER": "false",
        "HOOKLINE_PEERING_STANDALONE": "false",
        "HOOKLINE_PREFLIGHT_INTERVAL": "0.2",
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
    assert process.stderr is not None
    seen = bytearray()
    try:
        await create(k8s, secret("ci", "gh", secret=b"s3cret"))
        await create(
            k8s,
            {
                "apiVersion": API_VERSION,
                "kind": "Webhook",
                "metadata": {"name": "by-hand", "namespace": "ci"},
                "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
            },
        )
        # Bounded generously: the process start (imports) is included.
        await asyncio.wait_for(read_until(process.stderr, MISSING, seen), 30)
        # Said again while it is missing.
        await asyncio.wait_for(read_until(process.stderr, MISSING, seen, times=2), 5)
        assert condition(k8s.get(WEBHOOKS, "ci", "by-hand")) is None

        rsp = await k8s.post(
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            json={
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "hookline"},
            },
        )
        assert rsp.status == 200
        found = await k8s.wait_for(lambda: condition(k8s.get(WEBHOOKS, "ci", "by-hand")), 15)
        assert (found["status"], found["reason"]) == ("False", "ReceiverNotReady")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(_drain(process), 30)
    assert process.returncode == 0, (bytes(seen) + rest)[-2000:]


async def _drain(process: asyncio.subprocess.Process) -> tuple[bytes, int]:
    assert process.stderr is not None
    rest = await process.stderr.read()
    return rest, await process.wait()
