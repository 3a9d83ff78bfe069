"""`hookline operator` against an API server that assigns no uids (plain KMock 0.8, as
issue 14 ran it): one ERROR line at login and exit status 1, not a silent run."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.operator_env import OPERATOR_NAMESPACE, emulator


async def test_a_server_without_uids_is_refused_at_login_with_exit_status_1() -> None:
    async with emulator(anchor=False, uids=False) as k:
        env = {
            **os.environ,
            "HOOKLINE_KUBE_URL": str(k.url).rstrip("/"),
            "HOOKLINE_NAMESPACE": OPERATOR_NAMESPACE,
            "HOOKLINE_MANAGE_RECEIVER": "false",
            "HOOKLINE_PEERING_STANDALONE": "true",
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
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = stderr.decode()
    assert process.returncode == 1, text[-2000:]
    lines = [line for line in text.splitlines() if "without metadata.uid" in line]
    assert len(lines) == 1, text[-2000:]
    assert "ERROR" in lines[0] and "Use a conformant API server" in lines[0]
    assert "Traceback" not in text, text[-2000:]
