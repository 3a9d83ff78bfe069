"""The pure part of the stats timers (issue 6): the shared stats cache, the status wire
forms, the failure window, the Degraded condition and the minimal status patch. Clocks
are moved by hand; nothing sleeps."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kopf._core.intents.handlers import TimerHandler
from pydantic import ValidationError

from hookline.api.eventfilter import EventFilterStatus
from hookline.api.eventtype import EventTypeStatus
from hookline.api.webhook import Alerts, DeliveryCounts, WebhookSpec
from hookline.operator import register_all, timers
from hookline.operator.context import OperatorContext
from hookline.operator.ids import GITHUB_HOOK_DAEMON, STATS_TIMER
from hookline.operator.settings import OperatorSettings
from hookline.operator.stats import (
    REASON_DEAD_LETTERS,
    REASON_FAILURE_RATE,
    REASON_HEALTHY,
    FailureWindow,
    WindowStats,
    WrittenStatus,
    degraded,
    event_filter_counters,
    event_type_counters,
    first_dead_letter,
    latest_destination_error,
    merge_patch,
    redact_urls,
    status_patch,
    webhook_deliveries,
)
from tests.support.clock import FakeClock

STATS: dict[str, Any] = {
    "webhooks": {
        "ci/runs": {
            "received": 12,
            "accepted": 10,
            "rejected": 2,
            "filtered": 3,
            "lastReceivedAt": "2026-11-25T10:00:01.123456Z",
            "lastDeliveryID": "01JD3Z5Q4M8X6V0A2B9C7D1E5F",
            "lastError": "signature mismatch",
            "delivered": 6,
            "failed": 1,
            "deadLettered": 0,
            "pending": 0,
            "destinations": {
                "bot": {"lastError": "HTTP 500", "lastErrorAt": "2026-11-25T09:00:00Z"},
                "audit": {"lastError": "timed out", "lastErrorAt": "2026-11-25T09:30:00Z"},
                "quiet": {"lastError": None, "lastErrorAt": None},
            },
        }
    },
    "eventFilters": {"ci/failed-runs": {"evaluated": 9, "matched": 4, "dropped": 5}},
    "eventTypes": {
        "ci/run": {
            "validated": 7,
            "invalid": 1,
            "lastError": "$.action: required",
            "lastErrorAt": "2026-11-25T10:00:00+00:00",
        }
    },
    "config": {},
    "loadedAt": "2026-11-25T09:00:00Z",
}


# --- wire forms ------------------------------------------------------------------------


def test_webhook_deliveries_is_the_delivery_counts_wire_form() -> None:
    out = webhook_deliveries(STATS, "ci/runs")
    assert out == {
        "received": 12,
        "accepted": 10,
        "rejected": 2,
        "filtered": 3,
        "delivered": 6,
        "failed": 1,
        "deadLettered": 0,
        "lastReceivedAt": "2026-11-25T10:00:01Z",
        "lastDeliveryID": "01JD3Z5Q4M8X6V0A2B9C7D1E5F",
        "lastError": "signature mismatch",
    }
    # Every key is a DeliveryCounts field, spelt as on the wire.
    parsed = DeliveryCounts.model_validate({k: v for k, v in out.items() if v is not None})
    assert parsed.to_k8s() == out


def test_a_webhook_the_receiver_has_not_seen_has_zeros() -> None:
    out = webhook_deliveries(STATS, "ci/other")
    assert {k: v for k, v in out.items() if v is not None} == DeliveryCounts().to_k8s()
    assert out["lastReceivedAt"] is None
    assert webhook_deliveries({}, "ci/runs")["received"] == 0


def test_odd_values_in_the_stats_document_do_not_reach_the_status() -> None:
    stats = {
        "webhooks": {
            "a/b": {
                "received": "12",
                "accepted": -3,
                "rejected": True,
                "filtered": 2.0,
                "lastReceivedAt": "yesterday",
                "lastDeliveryID": 7,
                "lastError": "x" * 5000,
            }
        }
    }
    out = webhook_deliveries(stats, "a/b")
    assert (out["received"], out["accepted"], out["rejected"], out["filtered"]) == (0, 0, 0, 2)
    assert out["lastReceivedAt"] is None and out["lastDeliveryID"] is None
    assert len(out["lastError"]) == 1024
    assert webhook_deliveries({"webhooks": ["not", "a", "map"]}, "a/b")["received"] == 0


def test_times_are_normalised_to_utc_seconds() -> None:
    stats = {"webhooks": {"a/b": {"lastReceivedAt": "2026-11-25T12:00:01.9+02:00"}}}
    assert webhook_deliveries(stats, "a/b")["lastReceivedAt"] == "2026-11-25T10:00:01Z"
    stats = {"webhooks": {"a/b": {"lastReceivedAt": "2026-11-25T10:00:01"}}}  # naive: UTC
    assert webhook_deliveries(stats, "a/b")["lastReceivedAt"] == "2026-11-25T10:00:01Z"


def test_event_filter_counters_match_the_status_model() -> None:
    out = event_filter_counters(STATS, "ci/failed-runs")
    assert out == {"evaluated": 9, "matched": 4, "dropped": 5}
    assert EventFilterStatus.model_validate(out).to_k8s() == {**out, "conditions": []}
    assert event_filter_counters(STATS, "ci/nope") == {"evaluated": 0, "matched": 0, "dropped": 0}


def test_event_type_counters_match_the_status_model() -> None:
    out = event_type_counters(STATS, "ci/run")
    assert out == {
        "validated": 7,
        "invalid": 1,
        "lastValidationError": "$.action: required",
        "lastValidationErrorAt": "2026-11-25T10:00:00Z",
    }
    model = EventTypeStatus.model_validate(out)
    assert model.last_validation_error == "$.action: required"
    assert set(out) <= set(model.to_k8s())
    empty = event_type_counters(STATS, "ci/nope")
    assert empty["validated"] == 0 and empty["lastValidationError"] is None


def test_latest_destination_error_names_the_destination() -> None:
    assert latest_destination_error(STATS, "ci/runs") == "audit: timed out"
    assert latest_destination_error(STATS, "ci/other") is None


# --- spec.alerts -----------------------------------------------------------------------


def test_alerts_defaults_and_bounds() -> None:
    alerts = Alerts()
    assert (alerts.failure_rate, alerts.window, alerts.min_deliveries) == (0.1, "15m", 10)
    assert alerts.window_seconds == 900
    spec = WebhookSpec.model_validate({"auth": {"type": "none"}})
    assert spec.alerts == Alerts()
    parsed = Alerts.model_validate({"failureRate": 0.5, "window": "1h", "minDeliveries": 1})
    assert parsed.to_k8s() == {"failureRate": 0.5, "window": "1h", "minDeliveries": 1}
    for bad in (
        {"failureRate": 1.5},
        {"failureRate": -0.1},
        {"window": "0s"},
        {"window": "fifteen minutes"},
        {"window": "200h"},
        {"minDeliveries": 0},
        {"threshold": 3},
    ):
        with pytest.raises(ValidationError):
            Alerts.model_validate(bad)


# --- FailureWindow ---------------------------------------------------------------------


def counts(delivered: int, failed: int = 0, dead: int = 0) -> dict[str, int]:
    return {"delivered": delivered, "failed": failed, "deadLettered": dead}


def test_window_counts_what_happened_within_it() -> None:
    w = FailureWindow()
    w.observe("a/b", 0.0, counts(100, 5))  # history from before: the baseline
    assert w.window("a/b", 0.0, 60) == WindowStats(0, 0, 0, complete=False)
    w.observe("a/b", 30.0, counts(110, 8))
    stats = w.window("a/b", 30.0, 60)
    assert (stats.delivered, stats.failed, stats.outcomes, stats.complete) == (10, 3, 13, False)
    assert stats.rate == pytest.approx(3 / 13)
    w.observe("a/b", 70.0, counts(120, 8))
    # From t=10 on: the counters at 10 are those of the t=0 sample.
    stats = w.window("a/b", 70.0, 60)
    assert (stats.delivered, stats.failed, stats.complete) == (20, 3, True)
    w.observe("a/b", 100.0, counts(120, 8))
    # From t=40: the baseline is the t=30 sample; the failures before it have left.
    stats = w.window("a/b", 100.0, 60)
    assert (stats.delivered, stats.failed, stats.rate) == (10, 0, 0.0)


def test_an_idle_webhook_keeps_one_sample() -> None:
    w = FailureWindow()
    for t in range(10_000):
        w.observe("a/b", float(t), counts(5, 1))
        w.window("a/b", float(t), 60)
    assert len(w._histories["a/b"].samples) == 1
    assert w.window("a/b", 10_000.0, 60) == WindowStats(complete=True)


def test_old_samples_are_pruned() -> None:
    w = FailureWindow()
    for t in range(1000):
        w.observe("a/b", float(t), counts(t))  # a change every second
        w.window("a/b", float(t), 60)
    assert len(w._histories["a/b"].samples) <= 62


def test_counters_that_go_down_start_a_new_history() -> None:
    w = FailureWindow()
    w.observe("a/b", 0.0, counts(100, 50))
    w.observe("a/b", 10.0, counts(3, 1))  # a new store
    stats = w.window("a/b", 10.0, 60)
    assert (stats.outcomes, stats.complete) == (0, False)


def test_unknown_keys_and_forgetting() -> None:
    w = FailureWindow(forget_after=100.0)
    assert w.window("x/y", 0.0, 60) == WindowStats()
    w.observe("x/y", 0.0, counts(1))
    w.forget("x/y")
    assert len(w) == 0
    w.observe("gone/one", 0.0, counts(1))
    w.observe("a/b", 50.0, counts(1))
    w.observe("a/b", 150.0, counts(1))  # gone/one was not seen for 150 s: dropped
    assert len(w) == 1


# --- degraded --------------------------------------------------------------------------


ALERTS = Alerts(failure_rate=0.1, window="15m", min_deliveries=10)


def test_healthy_webhook() -> None:
    status, reason, message = degraded(WindowStats(100, 5, 0, complete=True), ALERTS)
    assert (status, reason) == ("False", REASON_HEALTHY)
    assert "15m" in message and "10%" in message
    # The healthy message does not change with the counts (no patch per interval).
    assert degraded(WindowStats(7, 0, 0, True), ALERTS)[2] == message


def test_failure_rate_above_the_threshold() -> None:
    status, reason, message = degraded(
        WindowStats(80, 20, 0, complete=True), ALERTS, destination_error="bot: HTTP 500"
    )
    assert (status, reason) == ("True", REASON_FAILURE_RATE)
    assert "20%" in message and "100" in message and "15m" in message and "10%" in message
    assert "bot: HTTP 500" in message
    # Exactly at the threshold is not above it.
    assert degraded(WindowStats(90, 10, 0, True), ALERTS)[0] == "False"


def test_too_few_outcomes_do_not_count() -> None:
    assert degraded(WindowStats(1, 1, 0, True), ALERTS)[0] == "False"
    assert degraded(WindowStats(0, 10, 0, True), ALERTS)[1] == REASON_FAILURE_RATE


def test_dead_letters_win() -> None:
    status, reason, message = degraded(WindowStats(100, 0, 1, True), ALERTS)
    assert (status, reason) == ("True", REASON_DEAD_LETTERS)
    assert message.startswith("1 delivery was dead-lettered in the last 15m")
    assert "hookline.dev/replay" in message
    assert "3 deliveries were" in degraded(WindowStats(0, 0, 3, True), ALERTS)[2]


def test_failure_rate_one_turns_the_rate_alert_off() -> None:
    off = Alerts(failure_rate=1.0)
    assert degraded(WindowStats(0, 100, 0, True), off)[0] == "False"


def test_a_true_condition_is_kept_until_a_whole_window_was_observed() -> None:
    previous = {"type": "Degraded", "status": "True", "reason": "DeadLetters", "message": "m"}
    # Just after an operator restart: no evidence yet, keep what the object says.
    assert degraded(WindowStats(complete=False), ALERTS, previous) == ("True", "DeadLetters", "m")
    # A whole healthy window: clear it.
    assert degraded(WindowStats(complete=True), ALERTS, previous)[0] == "False"
    # Nothing to keep: healthy.
    assert degraded(WindowStats(), ALERTS, None)[0] == "False"
    healthy = {"type": "Degraded", "status": "False", "reason": "Healthy"}
    assert degraded(WindowStats(), ALERTS, healthy)[0] == "False"


# --- status_patch ----------------------------------------------------------------------


def test_nothing_changed_is_none() -> None:
    desired = webhook_deliveries(STATS, "ci/runs")
    current = {"deliveries": {k: v for k, v in desired.items() if v is not None}}
    assert status_patch(current, {"deliveries": desired}) is None
    assert status_patch({}, {}) is None


def test_only_changed_fields_are_patched() -> None:
    current = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready"}],
        "deliveries": {"received": 1, "accepted": 1, "lastError": "old"},
        "url": "https://a/hooks/x",
    }
    desired = {
        "deliveries": {"received": 2, "accepted": 1, "lastError": None, "lastDeliveryID": None},
        "url": "https://a/hooks/x",
    }
    # lastError goes (null removes it); lastDeliveryID was never there; other fields are
    # not ours and are not looked at.
    assert status_patch(current, desired) == {"deliveries": {"received": 2, "lastError": None}}


def test_first_write_has_no_nulls() -> None:
    desired = {"deliveries": webhook_deliveries(STATS, "ci/nope"), "url": None}
    patch = status_patch(None, desired)
    assert patch is not None
    assert "url" not in patch
    assert None not in patch["deliveries"].values()
    assert patch["deliveries"]["received"] == 0


def test_lists_are_compared_whole() -> None:
    a = [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}]
    b = [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "True"}]
    assert status_patch({"conditions": a}, {"conditions": a}) is None
    assert status_patch({"conditions": a}, {"conditions": b}) == {"conditions": b}
    assert status_patch({"deliveries": 3}, {"deliveries": {"received": 1}}) == {
        "deliveries": {"received": 1}
    }


# --- first_dead_letter -----------------------------------------------------------------


def test_first_dead_letter() -> None:
    assert first_dead_letter(None, counts(0, 0, 1))
    assert first_dead_letter({"deadLettered": 0}, counts(0, 0, 2))
    assert first_dead_letter({"received": 3}, counts(0, 0, 1))
    assert not first_dead_letter({"deadLettered": 1}, counts(0, 0, 2))
    assert not first_dead_letter(None, counts(5, 1, 0))


# --- merge_patch and WrittenStatus -----------------------------------------------------


def test_merge_patch_is_rfc_7386() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    patch = {"a": None, "b": {"c": 5, "d": None}, "e": [3], "f": {"g": 1}}
    assert merge_patch(target, patch) == {"b": {"c": 5}, "e": [3], "f": {"g": 1}}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}  # not modified
    assert merge_patch(None, {"x": 1}) == {"x": 1}


def test_a_sent_patch_is_laid_over_a_stale_status() -> None:
    clock = FakeClock(0.0)
    written = WrittenStatus(grace=5.0, clock=clock)
    stale = {"deliveries": {"received": 1, "lastError": "x"}}
    assert written.current("k", stale) == stale
    written.sent("k", {"deliveries": {"received": 2, "lastError": None}})
    # kopf still hands the timer the old body: the patch is not sent twice.
    assert written.current("k", stale) == {"deliveries": {"received": 2}}
    assert status_patch(written.current("k", stale), {"deliveries": {"received": 2}}) is None
    # A second patch before the first is seen: both are laid over.
    written.sent("k", {"url": "u"})
    assert written.current("k", stale) == {"deliveries": {"received": 2}, "url": "u"}
    # The object shows them: nothing is remembered any more.
    fresh = {"deliveries": {"received": 2}, "url": "u"}
    assert written.current("k", fresh) == fresh
    assert len(written) == 0


def test_a_patch_never_seen_is_sent_again_after_the_grace() -> None:
    clock = FakeClock(0.0)
    written = WrittenStatus(grace=5.0, clock=clock)
    written.sent("k", {"url": "u"})
    clock.advance(5.1)
    assert written.current("k", {}) == {}  # lost: the timer writes it again
    written.sent("gone", {"url": "u"})
    clock.advance(6.0)
    written.sent("k", {"url": "v"})  # sweeps what deleted objects left behind
    assert len(written) == 1
    written.forget("k")
    assert len(written) == 0


def test_stats_interval_before_the_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = OperatorContext()  # settings are read at start-up, registration is at import
    monkeypatch.delenv("HOOKLINE_STATS_INTERVAL", raising=False)
    assert timers.stats_interval(ctx) == 10.0
    for raw, expected in (("2.5", 2.5), ("1m", 60.0), ("soon", 10.0), ("-1", 10.0)):
        monkeypatch.setenv("HOOKLINE_STATS_INTERVAL", raw)
        assert timers.stats_interval(ctx) == expected
    assert ctx.settings is None  # nothing else was loaded
    ctx.settings = OperatorSettings(namespace="hookline", stats_interval=3.0)
    assert timers.stats_interval(ctx) == 3.0


def test_urls_in_errors_keep_only_scheme_and_host() -> None:
    error = (
        "ClientResponseError: 500, message='Internal Server Error', "
        "url=URL('https://hooks.slack.com/services/T000/B000/XXXXSECRET?token=abc')"
    )
    stats = {"webhooks": {"a/b": {"lastError": error}}}
    out = webhook_deliveries(stats, "a/b")["lastError"]
    assert "SECRET" not in out and "token" not in out
    assert "url=URL('https://hooks.slack.com/…')" in out
    assert redact_urls("cannot connect to 10.0.0.1:8080: refused") == (
        "cannot connect to 10.0.0.1:8080: refused"
    )
    assert redact_urls("see http://a.example:81") == "see http://a.example:81"
    dest: dict[str, Any] = {"d": {"lastError": "GET http://x/y?k=1"}}
    assert (
        latest_destination_error({"webhooks": {"a/b": {"destinations": dest}}}, "a/b")
        == "d: GET http://x/…"
    )
    assert (
        redact_urls("POST https://user:pw@h.example/x failed") == "POST https://h.example/… failed"
    )


def test_one_stats_timer_on_the_anchor_without_loading_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOKLINE_STATS_INTERVAL", "7s")
    ctx = OperatorContext()
    registry = kopf.OperatorRegistry()
    register_all(registry, ctx)
    timers_found = [h for h in registry._spawning.get_all_handlers() if isinstance(h, TimerHandler)]
    # One timer for all resources, on the anchor Secret: no finalizer on any Webhook.
    assert [(h.id, h.interval, h.requires_finalizer) for h in timers_found] == [
        (STATS_TIMER, 7.0, False)
    ]
    # The only daemon with a finalizer is a managed GitHub hook's (issue 12), and only on
    # Webhooks with a `github` block: its hook is deleted before the Webhook goes.
    needing = [h for h in registry._spawning.get_all_handlers() if h.requires_finalizer]
    assert [h.id for h in needing] == [GITHUB_HOOK_DAEMON]
    assert needing[0].when is not None
    assert not needing[0].when(spec={}, body={})  # type: ignore[call-arg,arg-type]
    assert ctx.settings is None  # read at start-up, not at import
