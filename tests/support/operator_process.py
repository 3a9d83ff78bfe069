"""`hookline operator` as a subprocess, as a user or the chart starts it (issues 6, 14).

stderr is read while the process runs (a full pipe would stall its logging) and kept for
the test's assertions; stopping is SIGTERM, like a pod's, with the exit code returned.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    EVENTFILTERS,
    EVENTTYPES,
    WEBHOOKS,
    condition,
    create,
    is_ready,
    secret,
)

STOP_SECONDS = 30.0
# What would make the operator log in elsewhere or read settings the test did not give.
_OUTSIDE = ("HOOKLINE_", "KUBECONFIG", "KUBERNETES_")


def clean_environ(**env: str) -> dict[str, str]:
    """This process's environment without HOOKLINE_*, KUBECONFIG and in-cluster
    variables, plus `env`: the operator sees only the settings a test gives it."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(_OUTSIDE)}
    return {**kept, **env}


@dataclass
class OperatorProcess:
    process: asyncio.subprocess.Process
    _stderr: bytearray = field(default_factory=bytearray)
    _reader: asyncio.Task[None] | None = None

    @property
    def stderr(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self._stderr.extend(chunk)

    async def stop(self) -> int:
        """SIGTERM (once), then the exit code and all of stderr."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), STOP_SECONDS)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, STOP_SECONDS)
        return code


@asynccontextmanager
async def operator_process(
    env: Mapping[str, str], argv: Sequence[str] = ("-m", "hookline.cli", "operator")
) -> AsyncIterator[OperatorProcess]:
    """`python <argv>` (default: `-m hookline.cli operator`) with exactly `env`; stopped
    on exit if the test did not stop it (and killed if SIGTERM does not end it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = OperatorProcess(process)
    running._reader = asyncio.create_task(running._read())
    try:
        yield running
    finally:
        try:
            await running.stop()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise


async def apply_and_watch(k8s: StrictEmulator, namespace: str, *, receiver_namespace: str) -> None:
    """What issue 14's user did, and what they should have seen: an EventType, and a
    Webhook that refers to it and to a filter not applied yet (Ready=False
    FilterNotFound within 10 s); then the filter (filter and type Ready, and the
    Webhook's reason is about serving: no receiver pod runs in the emulator), and the
    managed receiver's Deployment in `receiver_namespace`."""
    await create(k8s, secret(namespace, "gh", secret=b"s3cret"))
    await create(
        k8s,
        {
            "apiVersion": API_VERSION,
            "kind": "EventType",
            "metadata": {"name": "push", "namespace": namespace},
            "spec": {
                "type": "github.push",
                "version": "v1",
                "match": {"header": {"name": "X-GitHub-Event", "value": "push"}},
            },
        },
    )
    await create(
        k8s,
        {
            "apiVersion": API_VERSION,
            "kind": "Webhook",
            "metadata": {"name": "from-process", "namespace": namespace},
            "spec": {
                "auth": {"type": "github", "secretRef": {"name": "gh"}},
                "eventTypes": [{"name": "push"}],
                "filters": [{"name": "main-only"}],
            },
        },
    )

    def reason() -> tuple[str, str] | None:
        found = condition(k8s.get(WEBHOOKS, namespace, "from-process"))
        return None if found is None else (found["status"], found["reason"])

    await k8s.wait_for(lambda: reason() == ("False", "FilterNotFound"), 10)
    await create(
        k8s,
        {
            "apiVersion": API_VERSION,
            "kind": "EventFilter",
            "metadata": {"name": "main-only", "namespace": namespace},
            "spec": {"rules": [{"field": "$.ref", "operator": "equals", "value": "main"}]},
        },
    )
    await k8s.wait_for(lambda: is_ready(k8s.get(EVENTFILTERS, namespace, "main-only")), 10)
    await k8s.wait_for(lambda: is_ready(k8s.get(EVENTTYPES, namespace, "push")), 10)
    await k8s.wait_for(lambda: reason() == ("False", "ReceiverNotReady"), 10)
    await k8s.wait_for(
        lambda: k8s.get("apps/v1/deployments", receiver_namespace, "hookline-receiver"), 10
    )


def assert_clean_exit(k8s: StrictEmulator, code: int, stderr: str) -> None:
    """Exit 0 on SIGTERM, no traceback, and no 409 anywhere (issue 14)."""
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    # The emulator's own record, not only a search of the log for "409" (a timestamp's
    # milliseconds can read ",409": that failed CI once).
    assert k8s.conflicts == [], k8s.conflicts
    assert not re.search(r"(?<![,\d])409(?!\d)", stderr), stderr[-3000:]
