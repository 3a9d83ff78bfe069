"""An API server that stores objects without metadata.uid (plain KMock 0.8, as issue 14
ran it): kopf then mixes the objects' state and stops the reconciler; the operator must
say so in one ERROR line instead of leaving a silent run with no status."""

from __future__ import annotations

import logging

import pytest

from tests.support.operator_env import (
    ADMIN_TOKEN,
    ADMIN_TOKEN_SECRET,
    OPERATOR_NAMESPACE,
    create,
    create_github_webhook,
    emulator,
    operator,
    operator_settings,
    secret,
)


async def test_objects_without_uid_are_named_in_one_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with emulator(anchor=False, uids=False) as k:
        await create(k, secret(OPERATOR_NAMESPACE, ADMIN_TOKEN_SECRET, token=ADMIN_TOKEN.encode()))
        async with operator(k, operator_settings(k)) as ctx:
            # Login already refuses the server: the admin-token Secret came back uid-less.
            assert ctx.stop_flag.is_set()
            assert ctx.fatal is not None and "without metadata.uid" in ctx.fatal
            await create_github_webhook(k, "bars", "wr")

            def named() -> list[logging.LogRecord]:
                return [
                    r
                    for r in caplog.records
                    if r.levelno == logging.ERROR and "has no metadata.uid" in r.getMessage()
                ]

            await k.wait_for(named, seconds=5)
    assert len(named()) == 1, [r.getMessage() for r in named()]
