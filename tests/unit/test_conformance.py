"""What the operator says when the API server or kopf stops its work (issue 14)."""

from __future__ import annotations

import logging

import kopf
import pytest

from hookline.operator.conformance import UidCheck, reconciler_stop_message

R = kopf.DaemonStoppingReason
ANCHOR = "hookline/hookline-receiver-admin-token"


def test_an_object_without_uid_is_named_once_at_error(caplog: pytest.LogCaptureFixture) -> None:
    check = UidCheck()
    with caplog.at_level(logging.INFO, logger="hookline.operator.conformance"):
        assert check("Secret", {"metadata": {"name": "a", "namespace": "x", "uid": "u-1"}})
        assert not check("Secret", {"metadata": {"name": "gh", "namespace": "bars"}})
        assert not check("Webhook", {"metadata": {"name": "wr", "namespace": "bars"}})
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("Secret bars/gh has no metadata.uid")
    assert "conformant API server" in record.getMessage()


@pytest.mark.parametrize(
    ("reason", "level", "words"),
    [
        (R.OPERATOR_EXITING, logging.INFO, "operator is exiting"),
        (R.OPERATOR_PAUSING | R.DAEMON_CANCELLED, logging.WARNING, "higher peering priority"),
        (R.RESOURCE_DELETED, logging.WARNING, f"Secret {ANCHOR}"),
        (R.FILTERS_MISMATCH | R.DAEMON_CANCELLED, logging.ERROR, "metadata.uid"),
        (None, logging.ERROR, "restart the operator"),
    ],
)
def test_each_stop_of_the_reconciler_says_why(
    reason: kopf.DaemonStoppingReason | None, level: int, words: str
) -> None:
    got_level, message = reconciler_stop_message(reason, ANCHOR)
    assert got_level == level
    assert words in message
    # A stop that costs the user their status is never below WARNING.
    if reason is None or not reason & R.OPERATOR_EXITING:
        assert got_level >= logging.WARNING
