"""The reconciler under supervision, through kopf's real loop (issue 14): an error in a
pass is one ERROR line and a restart, and statuses come once the input is fixed; a clean
exit of the operator says so at INFO, with no ERROR."""

from __future__ import annotations

import logging

import pytest

from hookline.operator.daemons import RESTART_DELAY_KEY
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    OPERATOR_NAMESPACE,
    WEBHOOKS,
    condition,
    create_github_webhook,
    operator,
    operator_settings,
)

SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/endpointslices"


async def test_a_failing_pass_is_an_error_line_and_the_reconciler_recovers(
    k8s: StrictEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # An EndpointSlice of the receivers' admin Service whose endpoints are not a list:
    # reading the receivers' addresses fails inside the pass.
    garbled = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "garbled",
            "namespace": OPERATOR_NAMESPACE,
            "labels": {"kubernetes.io/service-name": "hookline-receiver-admin"},
        },
        "addressType": "IPv4",
        "endpoints": {"not": "a list"},
    }
    rsp = await k8s.post(SLICES, json=garbled)
    assert rsp.status in (200, 201), await rsp.text()
    settings = operator_settings(k8s)
    assert settings.admin_service_name == "hookline-receiver-admin"
    async with operator(k8s, settings, extras={RESTART_DELAY_KEY: 0.2}):
        await create_github_webhook(k8s, "bars", "wr")

        def failures() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.ERROR and r.getMessage().startswith("the reconciler failed")
            ]

        await k8s.wait_for(failures, seconds=10)
        assert "AttributeError" in failures()[0]
        assert condition(k8s.get(WEBHOOKS, "bars", "wr")) is None  # no pass got through
        rsp = await k8s.delete(f"{SLICES}/garbled")
        assert rsp.status == 200, await rsp.text()
        found = await k8s.wait_for(lambda: condition(k8s.get(WEBHOOKS, "bars", "wr")), 10)
        assert (found["status"], found["reason"]) == ("False", "ReceiverNotReady")


async def test_a_clean_exit_logs_the_reconciler_stop_at_info(
    k8s: StrictEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with operator(k8s, operator_settings(k8s)):
        await create_github_webhook(k8s, "bars", "wr")
        await k8s.wait_for(lambda: condition(k8s.get(WEBHOOKS, "bars", "wr")), 10)
    stops = [r for r in caplog.records if r.getMessage().startswith("the reconciler stops")]
    assert [(r.levelno, r.getMessage()) for r in stops] == [
        (logging.INFO, "the reconciler stops: the operator is exiting")
    ]
    hookline_errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("hookline")
    ]
    assert hookline_errors == []
