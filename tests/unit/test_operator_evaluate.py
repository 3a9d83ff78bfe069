"""The operator's pure parts (issue 6): conditions and the evaluation of what is in the
cluster into the receiver configuration and each resource's conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hookline.api.common import API_VERSION
from hookline.operator import conditions as c
from hookline.operator.builders import generated_secret_name
from hookline.operator.evaluate import ParseCache, evaluate
from hookline.operator.handlers import SeenVersions, data_digest

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRETS = {("ci", "gh"): {"secret": b"s"}}


def webhook(name: str, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {
            "name": name,
            "namespace": "ci",
            "uid": f"uid-{name}",
            "generation": generation,
        },
        "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}, **spec},
    }


def test_transition_time_changes_only_with_the_status() -> None:
    first = c.set_condition([], "Ready", "False", "FilterNotFound", "x", 1, T0)
    later = T0 + timedelta(minutes=5)
    same = c.set_condition(first, "Ready", "False", "SecretNotFound", "y", 2, later)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert same[0]["reason"] == "SecretNotFound" and same[0]["observedGeneration"] == 2
    flipped = c.set_condition(same, "Ready", "True", "Serving", "", 2, later)
    assert flipped[0]["lastTransitionTime"] == "2026-11-25T12:05:00Z"
    # Other conditions are kept as they are.
    both = c.set_condition(flipped, "Degraded", "False", "Healthy", "", 2, later)
    assert [x["type"] for x in both] == ["Ready", "Degraded"]


def test_missing_references_are_named_and_routed_webhooks_listed() -> None:
    result = evaluate([webhook("ok"), webhook("lost", filters=[{"name": "nope"}])], [], [], SECRETS)
    assert ("Webhook", "ci", "ok") in result.routed
    lost = result.conditions[("Webhook", "ci", "lost")]
    assert (lost[0].status, lost[0].reason) == ("False", "FilterNotFound")
    assert "'nope'" in lost[0].message
    assert set(result.config.routes) == {"ci/ok"}


def test_a_webhook_without_secret_ref_uses_its_generated_secret() -> None:
    body = webhook("gen")
    del body["spec"]["auth"]["secretRef"]
    name = generated_secret_name("gen")
    missing = evaluate([body], [], [], {})
    assert missing.conditions[("Webhook", "ci", "gen")][0].reason == "SecretNotFound"
    served = evaluate([body], [], [], {("ci", name): {"secret": b"generated"}})
    assert ("Webhook", "ci", "gen") in served.routed
    ref = served.webhooks[0].spec.auth.secret_ref
    assert ref is not None and ref.name == name


def test_an_unparsable_spec_is_invalid_and_not_served() -> None:
    body = webhook("bad", path="/leading-slash")
    result = evaluate([body], [], [], SECRETS)
    bad = result.conditions[("Webhook", "ci", "bad")][0]
    assert (bad.reason, bad.status) == ("InvalidSpec", "False")
    assert "spec.path" in bad.message
    assert not result.config.routes


def test_deprecated_event_type_has_a_condition() -> None:
    et = {
        "apiVersion": API_VERSION,
        "kind": "EventType",
        "metadata": {"name": "old", "namespace": "ci", "uid": "u", "generation": 1},
        "spec": {
            "type": "acme.thing",
            "version": "v1",
            "deprecated": True,
            "match": {"header": {"name": "X-Event", "value": "thing"}},
        },
    }
    result = evaluate([], [], [et], {})
    types = {d.type: d for d in result.conditions[("EventType", "ci", "old")]}
    assert types["Ready"].status == "True" and types["Deprecated"].status == "True"


def test_parse_cache_reuses_unchanged_objects_and_forgets_deleted_ones() -> None:
    cache: ParseCache = {}
    evaluate([webhook("a"), webhook("b")], [], [], SECRETS, cache)
    first = {k: v[0] for k, v in cache.items()}
    evaluate([webhook("a"), webhook("b", generation=2, path="moved")], [], [], SECRETS, cache)
    assert cache[("Webhook", "uid-a", 1)][0] is first[("Webhook", "uid-a", 1)]
    assert ("Webhook", "uid-b", 1) not in cache
    moved = cache[("Webhook", "uid-b", 2)][0]
    assert moved is not None and moved.spec.path == "moved"  # type: ignore[attr-defined]
    evaluate([webhook("a")], [], [], SECRETS, cache)
    assert set(cache) == {("Webhook", "uid-a", 1)}


def test_only_new_specs_and_data_poke_the_reconciler() -> None:
    seen = SeenVersions()
    body = webhook("a")
    assert seen.changed(None, body, "1")  # the initial listing
    assert not seen.changed("MODIFIED", body, "1")  # a status write came back
    assert seen.changed("MODIFIED", body, "2")  # a new spec
    again = {**body, "metadata": {**body["metadata"], "uid": "uid-new"}}
    assert seen.changed("ADDED", again, "2")  # deleted and made again, same name
    assert seen.changed("DELETED", again, "2")
    secret = {"kind": "Secret", "metadata": {"name": "s", "namespace": "ci"}, "data": {"k": "eA=="}}
    assert data_digest(secret) != data_digest({**secret, "data": {"k": "eQ=="}})
    assert "eA==" not in data_digest(secret)


def test_an_invalid_spec_message_does_not_repeat_a_url_token() -> None:
    body = webhook(
        "leaky",
        destinations=[{"name": "slack", "url": "ftp://hooks.slack.com/services/T0/B0/SECRETTOKEN"}],
    )
    result = evaluate([body], [], [], SECRETS)
    bad = result.conditions[("Webhook", "ci", "leaky")][0]
    assert bad.reason == "InvalidSpec" and "spec.destinations[0].url" in bad.message
    assert "SECRETTOKEN" not in bad.message
