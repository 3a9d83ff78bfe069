"""Compiling resources into the receiver's routes: what is served, what is left out
and why, and when the configuration version changes."""

from __future__ import annotations

from typing import Any

from hookline.api import EventFilter, EventType, Webhook
from hookline.receiver.config import compile_config

SECRETS = {("ci", "s"): {"secret": b"x"}}


def _webhook(name: str, **spec: Any) -> Webhook:
    spec.setdefault("auth", {"type": "github", "secretRef": {"name": "s"}})
    return Webhook.model_validate({"metadata": {"name": name, "namespace": "ci"}, "spec": spec})


def _type(name: str, schema: dict[str, Any] | None = None, version: str = "v1") -> EventType:
    spec: dict[str, Any] = {
        "type": "github.push",
        "version": version,
        "match": {"header": {"name": "X-GitHub-Event", "value": "push"}},
    }
    if schema is not None:
        spec["schema"] = schema
    return EventType.model_validate({"metadata": {"name": name, "namespace": "ci"}, "spec": spec})


def _unusable_type(name: str) -> EventType:
    """An EventType whose schema cannot compile. The model refuses such a schema, so
    this one bypasses it, as an object stored by an older hookline could."""
    valid = _type(name)
    spec = valid.spec.model_copy(update={"schema_": {"$ref": "#/$defs/nowhere"}})
    return valid.model_copy(update={"spec": spec})


def _filter(name: str, value: str = "main") -> EventFilter:
    return EventFilter.model_validate(
        {
            "metadata": {"name": name, "namespace": "ci"},
            "spec": {"rules": [{"field": "$.ref", "operator": "equals", "value": value}]},
        }
    )


def test_served_routes_and_their_parts() -> None:
    config = compile_config(
        [_webhook("a", eventTypes=[{"name": "push"}], filters=[{"name": "f"}])],
        [_filter("f")],
        [_type("push")],
        SECRETS,
    )
    route = config.routes["ci/a"]
    assert route.key == "ci/a" and route.dedup_header == "X-GitHub-Delivery"
    assert [c.name for c in route.event_types.allowed] == ["push"]
    assert [key for key, _ in route.filters] == ["ci/f"]
    assert route.requires_json  # filters read the body
    assert config.problems == []


def test_left_out_with_reasons() -> None:
    config = compile_config(
        [
            _webhook("missing-filter", filters=[{"name": "nope"}]),
            _webhook("missing-type", eventTypes=[{"name": "nope"}]),
            _webhook("missing-secret", auth={"type": "github", "secretRef": {"name": "gone"}}),
            _webhook("no-secret-ref", auth={"type": "bearer"}),
            _webhook("first", path="same"),
            _webhook("second", path="same"),
            _webhook("broken-type", eventTypes=[{"name": "broken"}]),
        ],
        [],
        [_unusable_type("broken")],
        SECRETS,
    )
    reasons = {(p.kind, p.webhook): p.reason for p in config.problems}
    assert reasons == {
        ("Webhook", "ci/missing-filter"): "FilterNotFound",
        ("Webhook", "ci/missing-type"): "EventTypeNotFound",
        ("Webhook", "ci/missing-secret"): "SecretNotFound",
        ("Webhook", "ci/no-secret-ref"): "SecretRefRequired",
        ("Webhook", "ci/second"): "PathConflict",
        ("Webhook", "ci/broken-type"): "EventTypeInvalid",
        ("EventType", "ci/broken"): "EventTypeInvalid",
    }
    assert list(config.routes) == ["same"]
    assert config.routes["same"].key == "ci/first"


def test_version_changes_with_what_is_served() -> None:
    def version(**changes: Any) -> str:
        webhooks = changes.get("webhooks", [_webhook("a", filters=[{"name": "f"}])])
        filters = changes.get("filters", [_filter("f")])
        types = changes.get("types", [_type("push")])
        secrets = changes.get("secrets", SECRETS)
        return compile_config(webhooks, filters, types, secrets).version

    base = version()
    assert base == version()  # pure: the same input, the same version
    assert version(filters=[_filter("f", "dev")]) != base
    assert version(types=[_type("push", {"type": "object"})]) != base
    assert version(secrets={("ci", "s"): {"secret": b"rotated"}}) != base
    assert version(webhooks=[_webhook("a", filters=[{"name": "f"}], retention="1h")]) != base


def test_version_reveals_no_secret() -> None:
    config = compile_config([_webhook("a")], [], [], SECRETS)
    assert len(config.version) == 16 and all(c in "0123456789abcdef" for c in config.version)
