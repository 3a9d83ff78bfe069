"""The pure planning of managed GitHub hooks (hookline.github.hooks, issue 12), as data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hookline.github import hooks as plan
from hookline.github.client import rate_limit_delay

URL = "https://hooks.example.com/hooks/ci/runs"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def hook(id: int, url: str = URL, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "active": True,
        "events": ["workflow_run"],
        "config": {"url": url, "content_type": "json", "insecure_ssl": "0"},
        **fields,
    }


def test_choose_keeps_the_known_hook_else_the_oldest() -> None:
    hooks = [hook(9), hook(3), hook(5), hook(1, URL + "/")]
    keep, others = plan.choose_hook(hooks, URL, None)
    assert keep is not None and keep["id"] == 3
    assert [h["id"] for h in others] == [5, 9]  # never hook 1: another endpoint
    keep, others = plan.choose_hook(hooks, URL, 9)
    assert keep is not None and keep["id"] == 9 and [h["id"] for h in others] == [3, 5]
    assert plan.choose_hook([hook(1, "https://elsewhere/")], URL, None) == (None, [])


def test_no_drift_no_patch() -> None:
    args = dict(url=URL, events=["workflow_run"], active=True, insecure_ssl=False, secret="s")
    assert plan.drift_patch(hook(1), secret_changed=False, **args) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "want"),
    [
        ({"events": ["push"]}, {"events": ["workflow_run"]}),
        ({"active": False}, {"active": True}),
        ({"config": {"url": URL, "content_type": "form", "insecure_ssl": "0"}}, "config"),
        ({"config": {"url": "https://x/", "content_type": "json", "insecure_ssl": "0"}}, "config"),
        ({"config": {"url": URL, "content_type": "json", "insecure_ssl": "1"}}, "config"),
    ],
)
def test_drift_is_patched_back(edit: dict[str, Any], want: Any) -> None:
    patch = plan.drift_patch(
        {**hook(1), **edit},
        url=URL,
        events=["workflow_run"],
        active=True,
        insecure_ssl=False,
        secret="s",
        secret_changed=False,
    )
    if want == "config":
        # The secret always goes with a config: GitHub drops one not sent again.
        assert patch == {"config": plan.desired_config(URL, "s", False)}
    else:
        assert patch == want


def test_a_rotated_secret_sends_the_whole_config() -> None:
    patch = plan.drift_patch(
        hook(1),
        url=URL,
        events=["workflow_run"],
        active=True,
        insecure_ssl=False,
        secret="new",
        secret_changed=True,
    )
    assert patch == {
        "config": {"url": URL, "content_type": "json", "insecure_ssl": "0", "secret": "new"}
    }


def test_secret_digest() -> None:
    digest = plan.secret_digest(b"s3cret")
    assert digest.startswith("scrypt$4096$8$1$") and "s3cret" not in digest
    assert plan.secret_matches(b"s3cret", digest)
    assert not plan.secret_matches(b"other", digest)
    assert plan.secret_digest(b"s3cret") != digest  # salted
    # Malformed, or parameters that would cost the operator seconds: never a match.
    for bad in (None, "", "scrypt$1$2", digest.replace("$4096$", "$1048576$"), "md5$x$y$z$a$b"):
        assert not plan.secret_matches(b"s3cret", bad)


def delivery(id: int, guid: str, code: int, minutes_ago: float, **fields: Any) -> dict[str, Any]:
    at = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": id,
        "guid": guid,
        "status_code": code,
        "delivered_at": at,
        "redelivery": False,
        "event": "workflow_run",
        **fields,
    }


def test_missed_deliveries() -> None:
    deliveries = [
        delivery(1, "ok", 202, 50),
        delivery(2, "down", 0, 40),
        delivery(3, "refused", 503, 30),
        delivery(4, "stored-but-503", 503, 20),
        delivery(5, "old", 0, 73 * 60),
        delivery(6, "ping", 0, 10, event="ping"),
        delivery(7, "again", 0, 9),
        delivery(8, "again", 0, 8, redelivery=True),  # asked for once already
        delivery(9, "later-ok", 0, 7),
        delivery(10, "later-ok", 200, 6, redelivery=True),
        delivery(11, "twice", 0, 5),
        delivery(12, "twice", 502, 4),
    ]
    missed = plan.missed_deliveries(deliveries, {"stored-but-503"}, NOW, timedelta(hours=72))
    assert [d["id"] for d in missed] == [2, 3, 12]  # the newest attempt of each


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, False),
        ({"code": None, "status": "unused", "message": None}, False),
        ({"code": 200, "status": "active", "message": "OK"}, False),
        ({"code": 503, "status": "failed", "message": "Invalid HTTP Response: 503"}, True),
        ({"code": None, "status": "failed", "message": "failed to connect to host"}, True),
    ],
)
def test_delivery_failed(response: Any, failed: bool) -> None:
    assert plan.delivery_failed(response) is failed


def test_rate_limit_delay() -> None:
    assert rate_limit_delay({"Retry-After": "90"}, 0) == 90
    assert (
        rate_limit_delay({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1300"}, 1000) == 300
    )
    assert rate_limit_delay({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "900"}, 1000) == 1
    assert rate_limit_delay({"x-ratelimit-remaining": "12"}, 0) is None
