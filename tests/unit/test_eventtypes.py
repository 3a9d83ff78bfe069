"""EventType recognition, versions and JSON Schema validation (issue 4)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import ValidationError

from hookline.api import EventType, Webhook
from hookline.api.versions import version_key
from hookline.receiver.eventtypes import (
    CompiledEventType,
    SchemaIssue,
    compile_event_type,
    jsonpath_of,
    registry_for,
)

DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"
GITHUB_RUN = {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}}
GITHUB_PUSH = {"header": {"name": "X-GitHub-Event", "value": "push"}}


def event_type(
    name: str,
    match: dict[str, Any] | None = None,
    *,
    type_: str = "github.workflow_run",
    version: str = "v1",
    schema: dict[str, Any] | None = None,
    deprecated: bool = False,
) -> EventType:
    spec: dict[str, Any] = {
        "type": type_,
        "version": version,
        "match": match or GITHUB_RUN,
        "deprecated": deprecated,
    }
    if schema is not None:
        spec["schema"] = schema
    return EventType.model_validate(
        {"kind": "EventType", "metadata": {"name": name, "namespace": "ci"}, "spec": spec}
    )


def compiled(*args: Any, **kwargs: Any) -> CompiledEventType:
    return compile_event_type(event_type(*args, **kwargs))


def webhook(event_types: list[dict[str, str]]) -> Webhook:
    return Webhook.model_validate(
        {
            "kind": "Webhook",
            "metadata": {"name": "ci-runs", "namespace": "ci"},
            "spec": {
                "auth": {"type": "github", "secretRef": {"name": "s"}},
                "eventTypes": event_types,
                "destinations": [{"name": "bot", "url": "http://bot.ci.svc/events"}],
            },
        }
    )


# --- recognition -----------------------------------------------------------------------


def test_header_match_is_exact_and_name_is_case_insensitive() -> None:
    et = compiled("run")
    assert et.matches({"X-GitHub-Event": "workflow_run"}, None)
    assert et.matches({"x-github-event": "workflow_run"}, {})  # plain dict, other case
    assert et.matches(CIMultiDict({"X-GITHUB-EVENT": "workflow_run"}), {})
    assert not et.matches({"X-GitHub-Event": "Workflow_Run"}, {})  # the value is exact
    assert not et.matches({"X-GitHub-Event": "workflow_run "}, {})
    assert not et.matches({"X-GitHub-Event": "workflow_job"}, {})
    assert not et.matches({}, {})


def test_body_match_reads_the_jsonpath() -> None:
    et = compiled("done", {"body": {"path": "$.type", "value": "workflow.execution.completed"}})
    assert et.matches({}, {"type": "workflow.execution.completed"})
    assert not et.matches({}, {"type": "workflow.execution.started"})
    assert not et.matches({}, {"other": 1})
    assert not et.matches({}, None)  # not JSON: a body rule cannot match
    assert not et.matches({}, ["workflow.execution.completed"])


@pytest.mark.parametrize(
    ("expected", "actual", "match"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1.5, 1.5, True),
        (1, "1", False),
        ("1", 1, False),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        ("true", True, False),
        ("x", ["x"], False),
        ("x", {"x": 1}, False),
        (0, None, False),
    ],
)
def test_body_compare_uses_strict_json_types(expected: Any, actual: Any, match: bool) -> None:
    et = compiled("n", {"body": {"path": "$.a.b", "value": expected}})
    assert et.matches({}, {"a": {"b": actual}}) is match


def test_body_match_uses_the_first_node() -> None:
    et = compiled("first", {"body": {"path": "$.items[*].kind", "value": "a"}})
    assert et.matches({}, {"items": [{"kind": "a"}, {"kind": "b"}]})
    assert not et.matches({}, {"items": [{"kind": "b"}, {"kind": "a"}]})


def test_header_and_body_must_both_match() -> None:
    et = compiled(
        "both",
        {**GITHUB_RUN, "body": {"path": "$.action", "value": "completed"}},
    )
    headers = {"X-GitHub-Event": "workflow_run"}
    assert et.matches(headers, {"action": "completed"})
    assert not et.matches(headers, {"action": "requested"})
    assert not et.matches({"X-GitHub-Event": "push"}, {"action": "completed"})
    assert not et.matches(headers, None)


def test_first_match_wins_in_webhook_order() -> None:
    broad = event_type("any-run", type_="github.run")
    narrow = event_type(
        "completed-run",
        {**GITHUB_RUN, "body": {"path": "$.action", "value": "completed"}},
        type_="github.run.completed",
    )
    headers, payload = {"X-GitHub-Event": "workflow_run"}, {"action": "completed"}
    first = registry_for(webhook([{"name": "completed-run"}, {"name": "any-run"}]), [broad, narrow])
    assert [e.name for e in first.allowed] == ["completed-run", "any-run"]
    found = first.recognise(headers, payload)
    assert found is not None and found.name == "completed-run"
    second = registry_for(
        webhook([{"name": "any-run"}, {"name": "completed-run"}]), [broad, narrow]
    )
    found = second.recognise(headers, payload)
    assert found is not None and found.name == "any-run"
    assert second.recognise({"X-GitHub-Event": "push"}, payload) is None


def test_registry_leaves_out_types_the_webhook_does_not_allow() -> None:
    run, push = (
        event_type("run"),
        event_type("push", GITHUB_PUSH, type_="github.push"),
    )
    registry = registry_for(webhook([{"name": "run"}, {"name": "missing"}]), [run, push])
    assert [e.name for e in registry.allowed] == ["run"]
    assert registry.recognise({"X-GitHub-Event": "push"}, {}) is None


# --- versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("v1", "v2"),
        ("v9", "v10"),
        ("1.9", "1.10"),
        ("2023-01-01", "2024-05-01"),
        ("2024-05-01", "2024-05-02"),
        ("v1alpha1", "v1beta1"),
        ("v1beta1", "v1beta2"),
        ("v1beta2", "v1"),
        ("v1", "v1.1"),
        ("v2alpha1", "v1"),  # stable outranks any pre-release, as Kubernetes ranks them
        ("v1", "v2"),
    ],
)
def test_version_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def versions() -> list[EventType]:
    return [
        event_type("run-v9", version="v9", deprecated=True),
        event_type("run-v10", version="v10"),
        event_type("run-v2", version="v2"),
        event_type("run-v1beta1", version="v1beta1"),
    ]


def test_reference_by_type_and_version() -> None:
    registry = registry_for(webhook([{"type": "github.workflow_run", "version": "v2"}]), versions())
    assert [e.name for e in registry.allowed] == ["run-v2"]


def test_reference_by_type_alone_takes_the_newest_version() -> None:
    registry = registry_for(webhook([{"type": "github.workflow_run"}]), versions())
    assert [(e.name, e.version) for e in registry.allowed] == [("run-v10", "v10")]


def test_empty_event_types_allows_any_in_a_stable_order() -> None:
    types = [
        *versions(),
        event_type("push", GITHUB_PUSH, type_="github.push"),
        event_type("run-v10-copy", version="v10"),
    ]
    expected = ["push", "run-v10", "run-v10-copy", "run-v9", "run-v2", "run-v1beta1"]
    for order in (types, types[::-1]):
        registry = registry_for(webhook([]), order)
        assert [e.name for e in registry.allowed] == expected
    found = registry_for(webhook([]), types).recognise({"X-GitHub-Event": "workflow_run"}, {})
    assert found is not None and found.version == "v10"


def test_deprecated_types_still_recognise_and_validate() -> None:
    registry = registry_for(webhook([{"name": "run-v9"}]), versions())
    found = registry.recognise({"X-GitHub-Event": "workflow_run"}, {})
    assert found is not None and found.deprecated and found.validate({}) == []
    assert not compiled("current").deprecated


def test_registry_reuses_shared_compiled_types() -> None:
    types = versions()
    shared = {t.metadata.name: compile_event_type(t) for t in types}
    registry = registry_for(webhook([{"name": "run-v2"}]), types, shared)
    assert registry.allowed[0] is shared["run-v2"]
    assert registry_for(webhook([]), types, shared).allowed[0] is shared["run-v10"]


# --- schemas ---------------------------------------------------------------------------

# prefixItems/$defs exist only in 2020-12; the array form of items and `definitions`
# ($ref-ed) only mean the same in draft-07. Each schema passes only under its own draft.
SCHEMA_2020 = {
    "type": "object",
    "required": ["pair"],
    "properties": {
        "pair": {"type": "array", "prefixItems": [{"$ref": "#/$defs/id"}, {"type": "string"}]}
    },
    "$defs": {"id": {"type": "integer"}},
}
SCHEMA_07 = {
    "$schema": DRAFT7,
    "type": "object",
    "required": ["pair"],
    "properties": {
        "pair": {"type": "array", "items": [{"$ref": "#/definitions/id"}, {"type": "string"}]}
    },
    "definitions": {"id": {"type": "integer"}},
}


@pytest.mark.parametrize("schema", [SCHEMA_2020, {**SCHEMA_2020, "$schema": DRAFT2020}, SCHEMA_07])
def test_schema_pass_and_fail_in_both_drafts(schema: dict[str, Any]) -> None:
    et = compiled("pair", schema=schema)
    assert et.validate({"pair": [1, "one"]}) == []
    assert et.validate({"pair": ["one", 1]}) == [
        SchemaIssue("$.pair[0]", '"one" is not of type "integer"'),
        SchemaIssue("$.pair[1]", '1 is not of type "string"'),
    ]
    assert et.validate({}) == [SchemaIssue("$", '"pair" is a required property')]


def test_the_draft_comes_from_dollar_schema() -> None:
    # The same schema read under the other draft gives the other answer.
    as_07 = compiled("p7", schema={**SCHEMA_2020, "$schema": DRAFT7})
    assert as_07.validate({"pair": ["one", 1]}) == []  # prefixItems means nothing in 07
    ref_sibling = {
        "properties": {"n": {"$ref": "#/definitions/id", "maximum": 5}},
        "definitions": {"id": {"type": "integer"}},
    }
    # draft-07 ignores every keyword beside $ref; 2020-12 applies them.
    assert compiled("r7", schema={**ref_sibling, "$schema": DRAFT7}).validate({"n": 9}) == []
    [issue] = compiled("r2020", schema=ref_sibling).validate({"n": 9})
    assert issue.path == "$.n" and "maximum" in issue.message
    # dependentRequired is 2019-09 and later.
    dependent = {"dependentRequired": {"a": ["b"]}}
    assert compiled("d7", schema={**dependent, "$schema": DRAFT7}).validate({"a": 1}) == []
    assert compiled("d2020", schema=dependent).validate({"a": 1}) != []


@pytest.mark.parametrize(
    "draft",
    [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-06/schema#",
        "https://json-schema.org/draft/2019-09/schema",
    ],
)
def test_the_other_drafts_the_model_allows(draft: str) -> None:
    et = compiled("old", schema={"$schema": draft, "required": ["id"]})
    assert et.validate({"id": 1}) == []
    assert et.validate({}) == [SchemaIssue("$", '"id" is a required property')]


def test_issue_paths_quote_names_that_are_not_identifiers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "workflow_run": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "x-y": {
                "type": "array",
                "items": {"type": "object", "properties": {"it's": {"type": "boolean"}}},
            },
        },
    }
    et = compiled("paths", schema=schema)
    payload = {"workflow_run": {"id": "12"}, "x-y": [{"it's": True}, {"it's": "no"}]}
    assert [i.path for i in et.validate(payload)] == ["$.workflow_run.id", "$['x-y'][1]['it\\'s']"]
    assert jsonpath_of([]) == "$"
    assert jsonpath_of(["a", "_b", "é", "1a", 10, "tab\t"]) == "$.a._b.é['1a'][10]['tab\\t']"


def test_limit_and_order_of_issues() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    et = compiled("ints", schema=schema)
    payload = [str(i) for i in range(12)]
    issues = et.validate(payload)
    assert [i.path for i in issues] == ["$[0]", "$[1]", "$[2]", "$[3]", "$[4]"]  # default 5
    assert len(et.validate(payload, limit=20)) == 12
    assert [i.path for i in et.validate(payload, limit=20)][9:11] == ["$[9]", "$[10]"]
    assert [i.path for i in et.validate(payload, limit=1)] == ["$[0]"]
    assert et.validate(payload, limit=0) == []


def test_long_values_are_truncated_in_one_line() -> None:
    et = compiled("s", schema={"type": "object", "properties": {"a": {"type": "string"}}})
    [issue] = et.validate({"a": {"text": "line\n" * 200}})
    assert issue.path == "$.a"
    assert "\n" not in issue.message and len(issue.message) < 200
    assert issue.message.endswith('is not of type "string"')


def test_an_invalid_body_nested_too_deeply_to_report_is_still_an_issue() -> None:
    et = compiled("deep", schema={"properties": {"n": {"type": "integer"}}})
    deep: Any = []
    for _ in range(400):  # past the 255 levels jsonschema-rs copies into an error
        deep = [deep]
    [issue] = et.validate({"n": deep})
    assert issue.path == "$" and "nested too deeply" in issue.message
    assert et.validate({"n": 1}) == []


def test_no_schema_means_always_valid() -> None:
    et = compiled("free")
    assert et.validate({"anything": [1, 2]}) == [] and et.validate(None) == []


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/missing"},  # a pointer to nothing
        {"type": "string", "pattern": "a\\Z"},  # Python's re accepts \Z, Rust's does not
        {"$ref": "https://schemas.example.invalid/x.json"},  # never fetched
    ],
)
def test_a_schema_jsonschema_rs_refuses_is_a_value_error(schema: dict[str, Any]) -> None:
    # The model compiles the schema as the receiver will, so it refuses it up front...
    with pytest.raises(ValidationError, match="schema does not compile") as refused:
        event_type("broken", schema=schema)
    if "$ref" in schema and str(schema["$ref"]).startswith("https:"):
        # Refused without a network request: loading configuration never fetches.
        assert "Retrieval is disabled" in str(refused.value)
    # ...and an object that got past an older model fails to compile, not to serve.
    valid = event_type("broken")
    bypassed = valid.model_copy(update={"spec": valid.spec.model_copy(update={"schema_": schema})})
    with pytest.raises(ValueError, match="EventType 'broken': schema does not compile"):
        compile_event_type(bypassed)
