"""The models accept every example and refuse what users get wrong, naming the field."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from hookline.api import EventFilter, EventType, Webhook, format_validation_error, parse_duration
from hookline.api.manifests import load_manifests
from hookline.api.references import missing_references
from tests.conftest import EXAMPLES


def test_every_example_is_accepted() -> None:
    manifests = load_manifests([EXAMPLES])
    assert manifests.errors == []
    assert {w.metadata.name for w in manifests.webhooks} == {"ci-runs", "payments", "orders"}
    assert [f.metadata.name for f in manifests.filters] == ["failed-runs"]
    assert [t.metadata.name for t in manifests.event_types] == ["github-workflow-run"]
    auth_types = {w.spec.auth.type.value for w in manifests.webhooks}
    assert auth_types == {"github", "hmac", "standard-webhooks"}


def test_examples_reference_only_what_exists() -> None:
    manifests = load_manifests([EXAMPLES])
    for webhook in manifests.webhooks:
        assert (
            missing_references(
                webhook,
                filters={f.metadata.name for f in manifests.filters},
                event_types=manifests.event_types,
                secrets={name: set(data) for (_, name), data in manifests.secrets.items()},
            )
            == []
        )


def test_defaults() -> None:
    webhook = Webhook.model_validate(
        {"metadata": {"name": "w", "namespace": "ci"}, "spec": {"auth": {"type": "none"}}}
    )
    assert webhook.path == "ci/w"
    assert webhook.spec.limits.max_body_bytes == 1024 * 1024
    assert webhook.spec.retention == "720h"
    assert webhook.retention_seconds == 30 * 24 * 3600
    assert webhook.spec.priority == "normal"
    dest = Webhook.model_validate(
        {
            "metadata": {"name": "w"},
            "spec": {"auth": {"type": "none"}, "destinations": [{"name": "d", "url": "http://x"}]},
        }
    ).spec.destinations[0]
    assert (dest.retry.initial_backoff, dest.retry.multiplier) == ("1s", 2.0)
    assert (dest.retry.max_backoff, dest.retry.max_age, dest.timeout) == ("1h", "72h", "10s")


def test_github_defaults_and_app_credentials() -> None:
    github = Webhook.model_validate(WEBHOOK).spec.github
    assert github is not None
    # Issue 12: the seed use is a dispatched workflow's run id.
    assert (github.events, github.api_url) == (["workflow_run"], "https://api.github.com")
    assert github.credential_ref == ("spec.github.tokenSecretRef", github.token_secret_ref)
    doc = copy.deepcopy(WEBHOOK)
    doc["spec"]["github"] = {
        "organization": "acme",
        "app": {"appID": 12, "installationID": 34, "privateKeySecretRef": {"name": "k"}},
    }
    app = Webhook.model_validate(doc).spec.github
    assert app is not None and app.app is not None
    assert (app.app.app_id, app.app.installation_id) == (12, 34)
    path, ref = app.credential_ref
    assert (path, ref.name, ref.key) == (
        "spec.github.app.privateKeySecretRef",
        "k",
        "private-key.pem",
    )
    wire = Webhook.model_validate(doc).to_k8s()["spec"]["github"]["app"]
    assert set(wire) == {"appID", "installationID", "privateKeySecretRef"}


def test_round_trip_keeps_wire_spelling() -> None:
    manifests = load_manifests([EXAMPLES])
    for resource in manifests.resources:
        again = type(resource).model_validate(resource.to_k8s())
        assert again == resource
    ci = next(w for w in manifests.webhooks if w.metadata.name == "ci-runs").to_k8s()
    assert ci["spec"]["github"]["tokenSecretRef"] == {"name": "github-token", "key": "token"}
    assert "apiURL" in ci["spec"]["github"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("5m", 300), ("72h", 259200), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "1d", "m5", "1h 30m", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


WEBHOOK: dict[str, Any] = {
    "apiVersion": "hookline.dev/v1alpha1",
    "kind": "Webhook",
    "metadata": {"name": "ci-runs", "namespace": "ci"},
    "spec": {
        "auth": {"type": "github", "secretRef": {"name": "s"}},
        "github": {"repository": "acme/app", "tokenSecretRef": {"name": "t"}},
        "destinations": [{"name": "bot", "url": "http://bot:8080/events"}],
        "limits": {"sourceCIDRs": ["10.0.0.0/8"]},
        "correlation": {"path": "$.workflow_run.name", "pattern": "(?P<id>[0-9]+)"},
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(WEBHOOK)
    node: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


_DELETE = object()

BAD_WEBHOOKS = [
    # (mutation path, value, field path in the error, words in the message)
    ("spec.retention", "30 days", "spec.retention", "is not a duration"),
    ("spec.retention", "0s", "spec.retention", "longer than zero"),
    ("spec.limits.sourceCIDRs", ["10.0.0.0/33"], "spec.limits.sourceCIDRs[0]", "not a CIDR"),
    ("spec.limits.sourceCIDRs", ["10.0.0.1/8"], "spec.limits.sourceCIDRs[0]", "host bits set"),
    ("spec.limits.sourceCIDRs", ["banana"], "spec.limits.sourceCIDRs[0]", "not a CIDR"),
    ("spec.correlation.pattern", "(?P<id>[0-9", "spec.correlation.pattern", "does not compile"),
    ("spec.correlation.pattern", "(?<=a)b", "spec.correlation.pattern", "does not compile"),
    ("spec.correlation.path", "$.workflow_run[", "spec.correlation.path", "does not parse"),
    ("spec.correlation.path", "workflow_run.name", "spec.correlation.path", "must start with $"),
    (
        "spec.destinations.0.url",
        "ftp://bot/events",
        "spec.destinations[0].url",
        "http:// or https://",
    ),
    ("spec.destinations.0.url", "http://", "spec.destinations[0].url", "has no host"),
    ("spec.destinations.0.url", "http://u:p@bot/", "spec.destinations[0].url", "credentials"),
    (
        "spec.destinations",
        [{"name": "bot", "url": "http://a"}, {"name": "bot", "url": "http://b"}],
        "spec.destinations",
        "name 'bot' is used twice",
    ),
    (
        "spec.destinations.0",
        {"name": "bot", "url": "http://a", "service": {"name": "a"}},
        "spec.destinations[0]",
        "exactly one of url or service",
    ),
    (
        "spec.destinations.0",
        {"name": "bot"},
        "spec.destinations[0]",
        "exactly one of url or service",
    ),
    ("spec.destinations.0.name", "Bot_1", "spec.destinations[0].name", "not a DNS label"),
    (
        "spec.destinations.0.retry",
        {"maxAttempts": 3, "schedule": ["1s"]},
        "spec.destinations[0].retry",
        "alternatives",
    ),
    (
        "spec.destinations.0.retry",
        {"initialBackoff": "2h", "maxBackoff": "1h"},
        "spec.destinations[0].retry",
        "longer than maxBackoff",
    ),
    (
        "spec.destinations.0.circuitBreaker",
        {"coolDown": "10m", "maxCoolDown": "5m"},
        "spec.destinations[0].circuitBreaker",
        "longer than maxCoolDown",
    ),
    (
        "spec.destinations.0.circuitBreaker",
        {"coolDown": "10m"},  # longer than the default maxCoolDown, 5m
        "spec.destinations[0].circuitBreaker",
        "longer than maxCoolDown",
    ),
    (
        "spec.destinations.0.circuitBreaker",
        {"failureRate": 0},
        "spec.destinations[0].circuitBreaker.failureRate",
        "greater than 0",
    ),
    (
        "spec.destinations.0.circuitBreaker",
        {"successRate": 1.5},
        "spec.destinations[0].circuitBreaker.successRate",
        "less than or equal to 1",
    ),
    (
        "spec.destinations.0.circuitBreaker",
        {"minRequests": 0},
        "spec.destinations[0].circuitBreaker.minRequests",
        "greater than or equal to 1",
    ),
    (
        "spec.destinations.0.circuitBreaker",
        {"window": "1 minute"},
        "spec.destinations[0].circuitBreaker.window",
        "not a duration",
    ),
    (
        "spec.destinations.0.headers",
        {"Bad Header": "x"},
        "spec.destinations[0].headers['Bad Header']",
        "not an HTTP header name",
    ),
    ("spec.destinations.0.format", "xml", "spec.destinations[0].format", "'xml' is not allowed"),
    (
        "spec.github",
        {"repository": "a/b", "organization": "a", "tokenSecretRef": {"name": "t"}},
        "spec.github",
        "exactly one of repository or organization",
    ),
    ("spec.github", {"tokenSecretRef": {"name": "t"}}, "spec.github", "exactly one of repository"),
    ("spec.github.repository", "not-a-repo", "spec.github.repository", "owner/name"),
    ("spec.github.tokenSecretRef", _DELETE, "spec.github", "exactly one of tokenSecretRef or app"),
    (
        "spec.github.app",
        {"appID": 1, "installationID": 2, "privateKeySecretRef": {"name": "k"}},
        "spec.github",
        "exactly one of tokenSecretRef or app",
    ),
    (
        "spec.github.app",
        {"appID": 0, "installationID": 2, "privateKeySecretRef": {"name": "k"}},
        "spec.github.app.appID",
        "greater than or equal to 1",
    ),
    ("spec.auth.type", "oauth", "spec.auth.type", "'oauth' is not allowed"),
    ("spec.auth", {"type": "hmac", "username": "u"}, "spec.auth", "username does not apply"),
    ("spec.auth", {"type": "basic"}, "spec.auth", "needs a username"),
    ("spec.auth", {"type": "none", "secretRef": {"name": "s"}}, "spec.auth", "takes no secretRef"),
    ("spec.auth", {"type": "hmac", "tolerance": "5m"}, "spec.auth", "needs timestampHeader"),
    ("spec.auth", {"type": "hmac"}, "spec", "auth.type must be github"),
    ("spec.auth.secretRef", {"name": "S!"}, "spec.auth.secretRef.name", "not a Kubernetes name"),
    ("spec.path", "/github/ci", "spec.path", "must not start with '/'"),
    ("spec.path", "github/../ci", "spec.path", "'..'"),
    ("spec.path", "github//ci", "spec.path", "non-empty segments"),
    ("spec.priority", "urgent", "spec.priority", "'urgent' is not allowed"),
    ("spec.limits.maxBodyBytes", 0, "spec.limits.maxBodyBytes", "greater than or equal to 1"),
    ("spec.limits.burst", 10, "spec.limits", "burst needs requestsPerSecond"),
    ("spec.maxBodyBytes", 10, "spec.maxBodyBytes", "unknown field"),
    ("spec.eventTypes", [{"name": "a", "type": "b"}], "spec.eventTypes[0]", "not both"),
    ("spec.eventTypes", [{"version": "v1"}], "spec.eventTypes[0]", "by name or by type"),
    ("spec.idempotencyKey", {}, "spec.idempotencyKey", "exactly one of header or path"),
    ("spec.auth", _DELETE, "spec.auth", "required"),
]


@pytest.mark.parametrize(("path", "value", "where", "words"), BAD_WEBHOOKS)
def test_bad_webhooks_are_refused_naming_the_field(
    path: str, value: Any, where: str, words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Webhook.model_validate(_with(path, value))
    lines = format_validation_error(info.value)
    assert any(line.startswith(f"{where}: ") and words in line for line in lines), lines


def _filter(*rules: Any, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "f"}, "spec": {"rules": list(rules), **spec}}


BAD_FILTERS = [
    (
        _filter({"field": "$.a[", "operator": "equals", "value": 1}),
        "spec.rules[0].field",
        "does not parse",
    ),
    (
        _filter({"field": "body.a", "operator": "equals", "value": 1}),
        "spec.rules[0].field",
        "must be a JSONPath",
    ),
    (
        _filter({"field": "header:Bad Name", "operator": "exists"}),
        "spec.rules[0].field",
        "header name",
    ),
    (
        _filter({"field": "$.a", "operator": "like", "value": 1}),
        "spec.rules[0].operator",
        "'like' is not allowed",
    ),
    (
        _filter({"field": "$.a", "operator": "regex_match", "value": "(a"}),
        "spec.rules[0]",
        "does not compile",
    ),
    (
        _filter({"field": "$.a", "operator": "regex_match", "value": 3}),
        "spec.rules[0]",
        "needs a regex string",
    ),
    (
        _filter({"field": "$.a", "operator": "in", "value": "x"}),
        "spec.rules[0]",
        "needs a non-empty list",
    ),
    (
        _filter({"field": "$.a", "operator": "in", "value": []}),
        "spec.rules[0]",
        "needs a non-empty list",
    ),
    (
        _filter({"field": "$.a", "operator": "greater_than", "value": "big"}),
        "spec.rules[0]",
        "number or an RFC 3339",
    ),
    (
        _filter({"field": "$.a", "operator": "greater_than", "value": True}),
        "spec.rules[0]",
        "number or an RFC 3339",
    ),
    (_filter({"field": "$.a", "operator": "equals", "value": [1]}), "spec.rules[0]", "not a list"),
    (
        _filter({"field": "$.a", "operator": "starts_with", "value": 1}),
        "spec.rules[0]",
        "needs a string",
    ),
    (
        _filter({"field": "$.a", "operator": "exists", "value": "yes"}),
        "spec.rules[0]",
        "exists takes",
    ),
    (_filter({"field": "$.a"}), "spec.rules[0]", "needs an operator"),
    (
        _filter(
            {"field": "$.a", "operator": "exists", "all": [{"field": "$.b", "operator": "exists"}]}
        ),
        "spec.rules[0]",
        "one of",
    ),
    (
        _filter({"all": [{"field": "$.a", "operator": "equals", "value": "(", "any": []}]}),
        "spec.rules[0].all[0].any",
        "at least 1 item",
    ),
    (
        _filter({"any": [{"all": [{"field": "$.x[", "operator": "exists"}]}]}),
        "spec.rules[0].any[0].all[0].field",
        "does not parse",
    ),
    (_filter(), "spec", "needs rules, an expression, or both"),
    (_filter(expression="body.action =="), "spec.expression", "does not compile"),
    (
        _filter({"field": "$.a", "operator": "exists"}, match="some"),
        "spec.match",
        "'some' is not allowed",
    ),
]


@pytest.mark.parametrize(("doc", "where", "words"), BAD_FILTERS)
def test_bad_filters_are_refused_naming_the_field(
    doc: dict[str, Any], where: str, words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        EventFilter.model_validate(doc)
    lines = format_validation_error(info.value)
    assert any(line.startswith(f"{where}") and words in line for line in lines), lines


def test_good_filter_forms() -> None:
    f = EventFilter.model_validate(
        _filter(
            {"field": "meta:eventType", "operator": "in", "value": ["a", "b"]},
            {"field": "header:X-GitHub-Event", "operator": "equals", "value": "push"},
            {"field": "$.created_at", "operator": "greater_than", "value": "2026-01-01T00:00:00Z"},
            {
                "any": [
                    {"field": "$.n", "operator": "less_than", "value": 3.5},
                    {"field": "meta:sourceIP", "operator": "starts_with", "value": "10."},
                ]
            },
            {"field": "$.x", "operator": "exists"},
            expression="body.action == 'completed'",
        )
    )
    assert f.spec.rules[3].any_ is not None and len(f.spec.rules[3].any_) == 2


def _event_type(**spec: Any) -> dict[str, Any]:
    base = {"type": "github.push", "match": {"header": {"name": "X-GitHub-Event", "value": "push"}}}
    return {"metadata": {"name": "t"}, "spec": {**base, **spec}}


BAD_EVENT_TYPES = [
    (_event_type(match={}), "spec.match", "set header, body or both"),
    (
        _event_type(match={"body": {"path": "type", "value": "x"}}),
        "spec.match.body.path",
        "must start with $",
    ),
    (_event_type(schema={"type": "objekt"}), "spec.schema", "not a valid JSON Schema"),
    (_event_type(schema={"$ref": "#/$defs/nowhere"}), "spec.schema", "does not compile"),
    (_event_type(schema={"$ref": "https://example.com/s.json"}), "spec.schema", "compile"),
    (
        _event_type(schema={"$schema": "http://json-schema.org/draft-03/schema#"}),
        "spec.schema",
        "not supported",
    ),
    (_event_type(type="GitHub Push"), "spec.type", "pattern"),
    (_event_type(version=""), "spec.version", "pattern"),
]


@pytest.mark.parametrize(("doc", "where", "words"), BAD_EVENT_TYPES)
def test_bad_event_types_are_refused_naming_the_field(
    doc: dict[str, Any], where: str, words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        EventType.model_validate(doc)
    lines = format_validation_error(info.value)
    assert any(line.startswith(f"{where}: ") and words in line for line in lines), lines


@pytest.mark.parametrize(
    "draft",
    ["http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"],
)
def test_event_type_accepts_both_drafts(draft: str) -> None:
    et = EventType.model_validate(_event_type(schema={"$schema": draft, "type": "object"}))
    assert et.spec.schema_ == {"$schema": draft, "type": "object"}
