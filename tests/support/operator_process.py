"""`hookline operator` as a subprocess, as a user or the chart starts it (issues 6, 14).

stderr is read while the process runs (a full pipe would stall its logging) and kept for
the test's assertions; stopping is SIGTERM, like a pod's, with the exit code returned.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

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
async def operator_process(env: Mapping[str, str]) -> AsyncIterator[OperatorProcess]:
    """`python -m hookline.cli operator` with exactly `env`; stopped on exit if the test
    did not stop it (and killed if SIGTERM does not end it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookline.cli",
        "operator",
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
