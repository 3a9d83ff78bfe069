"""`hookline operator` against an API server that assigns no uids (plain KMock 0.8, as
issue 14 ran it): one ERROR line at login and exit status 1, not a silent run."""

from __future__ import annotations

import asyncio

from tests.support.operator_env import OPERATOR_NAMESPACE, emulator
from tests.support.operator_process import STOP_SECONDS, clean_environ, operator_process


async def test_a_server_without_uids_is_refused_at_login_with_exit_status_1() -> None:
    async with emulator(anchor=False, uids=False) as k:
        env = clean_environ(
            HOOKLINE_KUBE_URL=str(k.url).rstrip("/"),
            HOOKLINE_NAMESPACE=OPERATOR_NAMESPACE,
            HOOKLINE_MANAGE_RECEIVER="false",
            HOOKLINE_PEERING_STANDALONE="true",
        )
        async with operator_process(env) as running:
            # It stops by itself: no SIGTERM before it has exited.
            code = await asyncio.wait_for(running.process.wait(), STOP_SECONDS)
            assert await running.stop() == code
    text = running.stderr
    assert code == 1, text[-2000:]
    lines = [line for line in text.splitlines() if "without metadata.uid" in line]
    assert len(lines) == 1, text[-2000:]
    assert "ERROR" in lines[0] and "Use a conformant API server" in lines[0]
    assert "Traceback" not in text, text[-2000:]
