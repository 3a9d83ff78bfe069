"""Daemon supervision (issue 14): a body that raises says why at ERROR and starts again;
a clean return or a stop ends it; a pass longer than its interval is a WARNING."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hookline.operator.daemons import PassTimer, supervise
from tests.support.clock import FakeClock


async def test_an_exception_is_one_error_line_and_the_body_starts_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    waits: list[float] = []

    async def body() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("garbled EndpointSlice")

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    with caplog.at_level(logging.INFO, logger="hookline.operator.daemons"):
        await supervise("reconciler", body, done=lambda: False, wait=wait, delay=5, advice="Do X.")
    assert len(runs) == 3  # two failures, then a clean return ends it
    assert waits == [5, 5]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].getMessage() == (
        "the reconciler failed: ValueError: garbled EndpointSlice; it starts again in 5 s. Do X."
    )


async def test_a_stop_during_the_restart_delay_ends_it() -> None:
    stopped = asyncio.Event()
    runs: list[int] = []

    async def body() -> None:
        runs.append(1)
        raise RuntimeError("boom")

    async def wait(seconds: float) -> None:
        stopped.set()  # kopf stops the daemon while it waits to restart

    await supervise("reconciler", body, done=stopped.is_set, wait=wait, delay=5)
    assert runs == [1]


async def test_cancellation_is_not_swallowed() -> None:
    async def body() -> None:
        await asyncio.Event().wait()

    async def wait(seconds: float) -> None:
        raise AssertionError("no restart after a cancellation")

    task = asyncio.create_task(supervise("reconciler", body, done=lambda: False, wait=wait))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_pass_longer_than_its_interval_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(100.0)
    timer = PassTimer("reconciliation", clock=clock)
    with caplog.at_level(logging.WARNING, logger="hookline.operator.daemons"):
        started = timer.start()
        clock.advance(29.0)
        assert timer.finish(started, 30.0) == 29.0
        assert not caplog.records
        started = timer.start()
        clock.advance(45.5)
        timer.finish(started, 30.0)
    assert [r.getMessage()[:66] for r in caplog.records] == [
        "a reconciliation pass took 45.5 s, longer than its interval of 30."
    ]
