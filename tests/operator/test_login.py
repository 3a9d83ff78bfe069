"""Login with the operator's own namespace missing (issue 14): one WARNING line naming
it and the command that fixes it, a retry within seconds, and the operator goes on as
soon as the namespace exists."""

from __future__ import annotations

import logging

import pytest

from hookline.operator.main import NAMESPACE_RETRY_KEY
from tests.support.operator_env import (
    ADMIN_TOKEN_SECRET,
    OPERATOR_NAMESPACE,
    SECRETS,
    emulator,
    operator,
    operator_settings,
)


async def test_a_missing_operator_namespace_is_named_and_login_goes_on_once_it_exists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with emulator(anchor=False, require_namespaces=True) as k:

        def named() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING
                and r.getMessage().startswith(f"the operator's namespace '{OPERATOR_NAMESPACE}'")
            ]

        settings = operator_settings(k)
        async with operator(k, settings, wait=False, extras={NAMESPACE_RETRY_KEY: 0.3}):
            await k.wait_for(named, seconds=10)
            assert f"kubectl create namespace {OPERATOR_NAMESPACE}" in named()[0]
            assert k.get(SECRETS, OPERATOR_NAMESPACE, ADMIN_TOKEN_SECRET) is None
            namespace = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": OPERATOR_NAMESPACE},
            }
            rsp = await k.post("/api/v1/namespaces", json=namespace)
            assert rsp.status in (200, 201), await rsp.text()
            # The next login attempt makes the admin-token Secret (the reconciler's anchor).
            await k.wait_for(
                lambda: k.get(SECRETS, OPERATOR_NAMESPACE, ADMIN_TOKEN_SECRET), seconds=10
            )
    assert len(named()) == 1  # one line, however long it waited
    # Neither hookline nor kopf's login activity said more (kopf's watch-stream lines of
    # a stop in the middle of its first listing are not the login's).
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith(("hookline", "kopf.activities"))
    ]
    assert errors == []
