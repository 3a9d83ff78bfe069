"""The EventFilter engine: every operator, field source, group, CEL, and the guards."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cel
import jsonpath_rfc9535
import pytest
import re2
import yaml
from multidict import CIMultiDict

from hookline.api.eventfilter import EventFilter
from hookline.receiver import fieldpath
from hookline.receiver import filters as filters_module
from hookline.receiver.context import EventContext
from hookline.receiver.fieldpath import (
    MISSING,
    cel_body_paths,
    compile_field,
    prune_body,
    simple_steps,
    walk,
)
from hookline.receiver.filters import CompiledFilter, FilterResult, compile_filter, regex_tester
from tests.conftest import EXAMPLES

ABSENT = object()  # "no such key in the payload" / "no value in the rule"


def make(
    rules: list[dict[str, Any]] | None = None,
    match: str = "all",
    expression: str | None = None,
) -> CompiledFilter:
    spec: dict[str, Any] = {"match": match}
    if rules is not None:
        spec["rules"] = rules
    if expression is not None:
        spec["expression"] = expression
    resource = EventFilter.model_validate(
        {
            "apiVersion": "hookline.dev/v1alpha1",
            "kind": "EventFilter",
            "metadata": {"name": "f", "namespace": "ci"},
            "spec": spec,
        }
    )
    return compile_filter(resource)


def ctx(
    payload: Any = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    event_type: str | None = None,
    source_ip: str = "",
) -> EventContext:
    return EventContext(payload, CIMultiDict(headers or {}), event_type, source_ip)


def rule(field: str, operator: str, value: Any = ABSENT) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "operator": operator}
    if value is not ABSENT:
        out["value"] = value
    return out


def on_value(operator: str, value: Any, got: Any) -> FilterResult:
    """One rule on `$.v`, with the payload's `v` set to `got` (or absent)."""
    payload = {} if got is ABSENT else {"v": got}
    return make([rule("$.v", operator, value)]).evaluate(ctx(payload))


# --- operators ---------------------------------------------------------------------------

# (operator, rule value, payload value, matched). Every positive operator that has a
# negative twin is checked for both: the twin must give exactly the opposite.
EQUALS = [
    ("a", "a", True),
    ("a", "b", False),
    ("a", "A", False),
    ("1", 1, False),  # strict: a string is not a number
    (1, "1", False),
    (1, 1.0, True),  # one JSON number type
    (1.5, 1.5, True),
    (1, 2, False),
    (True, 1, False),  # booleans are not numbers
    (1, True, False),
    (0, False, False),
    (True, True, True),
    (False, False, True),
    (True, False, False),
    (None, None, True),
    (None, False, False),
    (None, "", False),
    ("a", ["a"], False),  # arrays and objects never equal a scalar
    ("a", {"a": "a"}, False),
    ("a", ABSENT, False),
    (None, ABSENT, False),  # missing is not null
]
CONTAINS = [
    ("ell", "hello", True),  # substring
    ("x", "hello", False),
    ("", "hello", True),
    ("a", ["a", "b"], True),  # element equality
    ("c", ["a", "b"], False),
    (1, [1, 2], True),
    (1, [1.0], True),
    (1, [True], False),
    (True, [1], False),
    ("1", [1], False),
    ("a", [["a"]], False),  # not flattened
    ("k", {"k": 1}, True),  # key presence
    ("z", {"k": 1}, False),
    (1, {"1": 1}, False),
    (1, "a1", False),  # a number is not a substring of a JSON string
    ("a", 5, False),
    ("a", None, False),
    ("a", True, False),
    ("a", ABSENT, False),
]
IN = [
    (["a", "b"], "a", True),
    (["a", "b"], "c", False),
    ([1, 2], 1.0, True),
    ([1, 2], True, False),
    ([True], 1, False),
    ([True], True, True),
    ([False, 0], 0, True),
    ([False], 0, False),
    ([None], None, True),
    (["a"], None, False),
    (["1"], 1, False),
    ([1], "1", False),
    (["a"], ["a"], False),
    (["a"], {"a": 1}, False),
    (["a"], ABSENT, False),
]
NEGATIONS = {"equals": "not_equals", "contains": "not_contains", "in": "not_in"}


@pytest.mark.parametrize(
    ("operator", "value", "got", "matched"),
    [("equals", *case) for case in EQUALS]
    + [("contains", *case) for case in CONTAINS]
    + [("in", *case) for case in IN],
)
def test_operator_and_its_negation(operator: str, value: Any, got: Any, matched: bool) -> None:
    assert on_value(operator, value, got).matched is matched
    assert on_value(NEGATIONS[operator], value, got).matched is not matched


T0 = "2025-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("operator", "value", "got", "matched"),
    [
        ("starts_with", "re", "release/1", True),
        ("starts_with", "1", "release/1", False),
        ("starts_with", "", "x", True),
        ("starts_with", "1", 12, False),
        ("starts_with", "a", ["abc"], False),
        ("starts_with", "a", ABSENT, False),
        ("ends_with", "/1", "release/1", True),
        ("ends_with", "re", "release/1", False),
        ("ends_with", "2", 12, False),
        ("ends_with", "a", None, False),
        ("ends_with", "a", ABSENT, False),
        ("regex_match", r"^rel.*\d$", "release/1", True),
        ("regex_match", "eas", "release/1", True),  # search: unanchored
        ("regex_match", "^eas", "release/1", False),
        ("regex_match", "(?i)RELEASE", "release", True),
        ("regex_match", "^é.$", "éa", True),  # code points, not bytes
        ("regex_match", r"\d+", 123, False),  # numbers are not stringified
        ("regex_match", "a", ["a"], False),
        ("regex_match", "a", ABSENT, False),
        ("greater_than", 5, 6, True),
        ("greater_than", 5, 5, False),
        ("greater_than", 5, 4, False),
        ("greater_than", 5, 5.5, True),
        ("greater_than", 5.5, 6, True),
        ("greater_than", 2**62, 2**62 + 1, True),  # exact for large integers
        ("greater_than", 5, "6", False),  # other types: false, never an error
        ("greater_than", 5, True, False),
        ("greater_than", 0, None, False),
        ("greater_than", 5, [6], False),
        ("greater_than", 5, {"a": 6}, False),
        ("greater_than", 5, T0, False),
        ("greater_than", 5, ABSENT, False),
        ("less_than", 5, 4, True),
        ("less_than", 5, 5, False),
        ("less_than", 5, 4.99, True),
        ("less_than", -1, -2, True),
        ("less_than", 5, "4", False),
        ("less_than", 1, False, False),
        ("less_than", 5, ABSENT, False),
        # times: the rule's value is a time, so the payload's strings are read as times
        ("greater_than", T0, "2025-01-01T00:00:01Z", True),
        ("greater_than", T0, "2024-12-31T23:59:59Z", False),
        ("greater_than", T0, T0, False),
        ("greater_than", T0, "2025-01-01T00:30:00+01:00", False),  # = 2024-12-31T23:30Z
        ("greater_than", "2025-01-01T00:00:00+01:00", "2024-12-31T23:30:00Z", True),
        ("greater_than", T0, "2025-01-01T00:00:00.5Z", True),
        ("greater_than", T0, "2025-01-01t00:00:01z", True),  # RFC 3339 allows lower case
        ("greater_than", T0, "2025-01-01T00:00:01", True),  # no offset: UTC
        ("greater_than", T0, "tomorrow", False),
        ("greater_than", T0, "2026-01-01", False),  # a date is not a date-time
        ("greater_than", T0, 1_800_000_000, False),  # epoch numbers are not times
        ("greater_than", T0, ABSENT, False),
        ("less_than", T0, "2024-12-31T23:59:59.999Z", True),
        ("less_than", T0, "2025-01-01T01:00:00+02:00", True),
        ("less_than", T0, "2025-01-01T00:00:01Z", False),
        ("exists", True, "a", True),
        ("exists", True, None, True),  # a key with null exists
        ("exists", True, ABSENT, False),
        ("exists", ABSENT, 0, True),
        ("exists", ABSENT, ABSENT, False),
        ("exists", False, ABSENT, True),
        ("exists", False, None, False),
        ("exists", False, "a", False),
    ],
)
def test_operator(operator: str, value: Any, got: Any, matched: bool) -> None:
    assert on_value(operator, value, got).matched is matched


# One valid value per operator, for the missing-field and several-nodes sweeps.
ALL_OPERATORS = {
    "equals": "a",
    "not_equals": "a",
    "contains": "a",
    "not_contains": "a",
    "starts_with": "a",
    "ends_with": "a",
    "regex_match": "a",
    "greater_than": 1,
    "less_than": 1,
    "in": ["a"],
    "not_in": ["a"],
    "exists": True,
}


@pytest.mark.parametrize("operator", sorted(ALL_OPERATORS))
@pytest.mark.parametrize(
    "field", ["$.missing", "$.a.b[3]", "$.list[*].nothing", "header:X-Missing", "meta:eventType"]
)
def test_missing_field_positive_false_negative_true(operator: str, field: str) -> None:
    payload = {"a": {"b": [1]}, "list": [{"x": 1}]}
    result = make([rule(field, operator, ALL_OPERATORS[operator])]).evaluate(ctx(payload))
    assert result.matched is operator.startswith("not_")
    if not result.matched:
        assert result.detail.endswith(": field is missing")
    assert make([rule(field, "exists", False)]).evaluate(ctx(payload)).matched


# --- field sources -----------------------------------------------------------------------

LABELS = {"labels": [{"name": "ci"}, {"name": "bug"}], "items": [{"p": 5}, {"p": 20}]}


@pytest.mark.parametrize(
    ("field", "operator", "value", "matched"),
    [
        ("$.labels[*].name", "equals", "bug", True),  # any node
        ("$.labels[*].name", "not_equals", "bug", False),  # NOT of "any node equals"
        ("$.labels[*].name", "equals", "docs", False),
        ("$.labels[*].name", "not_equals", "docs", True),
        ("$.labels[*].name", "in", ["bug", "docs"], True),
        ("$.labels[*].name", "not_in", ["bug", "docs"], False),
        ("$.labels[*].name", "starts_with", "b", True),
        ("$..name", "regex_match", "^c", True),
        ("$.items[?@.p > 10].p", "equals", 20, True),
        ("$.items[?@.p > 10].p", "equals", 5, False),
        ("$.items[?@.p > 100].p", "exists", True, False),
        ("$.items[*].p", "greater_than", 10, True),
        ("$.items[*].p", "less_than", 5, False),
        ("$.items[0:1].p", "equals", 5, True),
        ("$.items[-1].p", "equals", 20, True),
        ("$['labels'][1]['name']", "equals", "bug", True),
        ("$.labels[*]", "contains", "name", True),
    ],
)
def test_jsonpath_several_nodes(field: str, operator: str, value: Any, matched: bool) -> None:
    assert make([rule(field, operator, value)]).evaluate(ctx(LABELS)).matched is matched


def test_several_nodes_detail_lists_them() -> None:
    result = make([rule("$.labels[*].name", "equals", "docs")]).evaluate(ctx(LABELS))
    assert result.detail == "$.labels[*].name equals 'docs': got 2 values ['ci', 'bug']"


@pytest.mark.parametrize("name", ["X-GitHub-Event", "x-github-event", "X-GITHUB-EVENT"])
def test_header_names_are_case_insensitive(name: str) -> None:
    compiled = make([rule(f"header:{name}", "equals", "workflow_run")])
    assert compiled.evaluate(ctx({}, {"X-Github-Event": "workflow_run"})).matched
    assert not compiled.evaluate(ctx({}, {"X-Github-Event": "push"})).matched
    # A plain dict (the CLI's --header) is matched case-insensitively too.
    plain = EventContext({}, {"x-github-event": "workflow_run"})
    assert compiled.evaluate(plain).matched


def test_repeated_header_matches_any_value() -> None:
    headers = [("X-Tag", "a"), ("x-tag", "b")]
    assert make([rule("header:X-Tag", "equals", "b")]).evaluate(ctx({}, headers)).matched
    assert not make([rule("header:X-Tag", "not_equals", "b")]).evaluate(ctx({}, headers)).matched


@pytest.mark.parametrize(
    ("operator", "value", "header", "matched"),
    [
        ("equals", 5, "5", True),  # rule values compare by their JSON text
        ("equals", 5, "5.0", False),
        ("equals", 5, "05", False),
        ("equals", True, "true", True),
        ("equals", True, "True", False),
        ("equals", None, "null", True),
        ("in", [5, "six"], "5", True),
        ("in", [5, "six"], "six", True),
        ("not_in", [5, "six"], "7", True),
        ("contains", 5, "a5b", True),
        ("greater_than", 5, "6", True),  # ordering reads the text as a JSON number
        ("greater_than", 5, "6.5", True),
        ("greater_than", 5, "1e3", True),
        ("greater_than", 5, "4", False),
        ("greater_than", 5, " 6", False),
        ("greater_than", 5, "abc", False),
        ("greater_than", 5, "NaN", False),
        ("less_than", 5, "-1", True),
        ("greater_than", T0, "2025-06-01T00:00:00Z", True),
        ("less_than", T0, "2025-06-01T00:00:00Z", False),
        ("regex_match", r"^\d+$", "123", True),
        ("starts_with", "sha256=", "sha256=abc", True),
        ("ends_with", "abc", "sha256=abc", True),
        ("exists", False, "", False),  # an empty header is present
    ],
)
def test_header_values_are_text(operator: str, value: Any, header: str, matched: bool) -> None:
    compiled = make([rule("header:X-Value", operator, value)])
    assert compiled.evaluate(ctx({}, {"X-Value": header})).matched is matched


def test_meta_fields() -> None:
    typed = ctx({}, event_type="github.workflow_run", source_ip="10.1.2.3")
    for r, matched in [
        (rule("meta:eventType", "equals", "github.workflow_run"), True),
        (rule("meta:eventType", "starts_with", "github."), True),
        (rule("meta:eventType", "in", ["github.push"]), False),
        (rule("meta:sourceIP", "starts_with", "10."), True),
        (rule("meta:sourceIP", "regex_match", r"^10\.1\."), True),
        (rule("meta:sourceIP", "equals", "10.1.2.4"), False),
    ]:
        assert make([r]).evaluate(typed).matched is matched, r
    untyped = ctx({})  # before recognition, and with no known source address
    assert not make([rule("meta:eventType", "exists")]).evaluate(untyped).matched
    assert make([rule("meta:eventType", "not_equals", "x")]).evaluate(untyped).matched
    assert not make([rule("meta:sourceIP", "exists")]).evaluate(untyped).matched


# --- groups, match and decided_by ---------------------------------------------------------

A_TRUE = rule("$.a", "equals", 1)
A_FALSE = rule("$.a", "equals", 2)
B_TRUE = rule("$.b", "equals", "x")
B_FALSE = rule("$.b", "equals", "y")
AB = {"a": 1, "b": "x"}


def test_match_all_versus_any() -> None:
    assert not make([A_TRUE, B_FALSE], match="all").evaluate(ctx(AB)).matched
    assert make([A_TRUE, B_FALSE], match="any").evaluate(ctx(AB)).matched
    assert make([A_TRUE, B_TRUE], match="all").evaluate(ctx(AB)).matched
    assert not make([A_FALSE, B_FALSE], match="any").evaluate(ctx(AB)).matched


def test_decided_by_and_detail() -> None:
    assert make([A_TRUE, B_FALSE]).evaluate(ctx(AB)) == FilterResult(
        False, "rules[1]", "$.b equals 'y': got 'x'"
    )
    assert make([A_TRUE, B_TRUE]).evaluate(ctx(AB)) == FilterResult(True, "", "all 2 rules matched")
    assert make([A_FALSE, B_FALSE], match="any").evaluate(ctx(AB)) == FilterResult(
        False, "rules", "no rule matched"
    )
    assert make([A_FALSE, B_TRUE], match="any").evaluate(ctx(AB)) == FilterResult(
        True, "rules[1]", "$.b equals 'x': got 'x'"
    )


def test_nested_groups_all_in_any_in_all() -> None:
    spec = [
        A_TRUE,
        {"any": [{"all": [B_TRUE, rule("$.c", "greater_than", 2)]}, rule("$.d", "exists")]},
    ]
    compiled = make(spec)
    assert compiled.evaluate(ctx({**AB, "c": 3})).matched
    assert compiled.evaluate(ctx({**AB, "c": 1, "d": None})).matched
    result = compiled.evaluate(ctx({**AB, "c": 1}))
    assert result == FilterResult(False, "rules[1].any", "no rule matched")
    assert compiled.evaluate(ctx({"a": 2, "c": 3})).decided_by == "rules[0]"


def test_nested_decided_by_paths() -> None:
    failing = make([{"all": [A_TRUE, {"all": [B_TRUE, A_FALSE]}]}]).evaluate(ctx(AB))
    assert failing == FilterResult(False, "rules[0].all[1].all[1]", "$.a equals 2: got 1")
    matched = make([A_FALSE, {"any": [B_FALSE, {"any": [A_FALSE, B_TRUE]}]}], match="any")
    assert matched.evaluate(ctx(AB)).decided_by == "rules[1].any[1].any[1]"
    group = make([A_FALSE, {"all": [A_TRUE, B_TRUE]}], match="any").evaluate(ctx(AB))
    assert group == FilterResult(True, "rules[1]", "all 2 rules matched")


DEEP: dict[str, Any] = {"x": 1}
for _ in range(150):
    DEEP = {"a": DEEP}


def test_unevaluable_field_fails_closed_and_groups_short_circuit() -> None:
    # `$..x` on a payload nested past the RFC 9535 engine's recursion limit cannot be
    # evaluated: the filter does not match (even for a negative operator) and says why.
    deep_rule = rule("$..x", "not_equals", 1)
    result = make([A_TRUE, deep_rule]).evaluate(ctx({"a": 1, "deep": DEEP}))
    assert result.matched is False
    assert result.decided_by == "rules[1]"
    assert "$..x cannot be evaluated: recursion limit exceeded" in result.detail
    # Short-circuit: a decided all/any never reaches the rule that would fail.
    deep = ctx({"a": 1, "deep": DEEP})
    assert make([A_FALSE, deep_rule]).evaluate(deep).decided_by == "rules[0]"
    assert make([A_TRUE, deep_rule], match="any").evaluate(deep).matched
    assert make([{"any": [A_TRUE, deep_rule]}]).evaluate(deep).matched
    assert not make([{"all": [A_TRUE, deep_rule]}], match="any").evaluate(deep).matched


def test_detail_is_one_short_line() -> None:
    long_value = "x" * 10_000
    result = make([rule("$.v", "in", ["y" * 500, "z"])]).evaluate(ctx({"v": long_value}))
    assert not result.matched
    assert "\n" not in result.detail
    assert len(result.detail) < 250
    assert result.detail.startswith("$.v in ['yyy")
    assert "…" in result.detail


def test_example_filter_on_a_workflow_run() -> None:
    manifest = yaml.safe_load((EXAMPLES / "github-workflow-runs" / "eventfilter.yaml").read_text())
    compiled = compile_filter(EventFilter.model_validate(manifest))
    assert compiled.name == "failed-runs"
    run = {"action": "completed", "workflow_run": {"conclusion": "success", "head_branch": "x"}}
    assert compiled.evaluate(ctx(run)) == FilterResult(
        False,
        "rules[1]",
        "$.workflow_run.conclusion in ['failure', 'timed_out', 'startup_failure']: got 'success'",
    )
    run["workflow_run"] = {"conclusion": "failure", "head_branch": "release/2.1"}
    assert compiled.evaluate(ctx(run)).matched


# --- CEL -----------------------------------------------------------------------------------


def test_expression_true_false_error_and_non_bool() -> None:
    payload = {"workflow_run": {"conclusion": "failure", "run_attempt": 1}}
    true = make(expression='body.workflow_run.conclusion == "failure"').evaluate(ctx(payload))
    assert true == FilterResult(True, "", "expression is true")
    false = make(expression="body.workflow_run.run_attempt > 1").evaluate(ctx(payload))
    assert false == FilterResult(False, "expression", "expression is false")
    missing = make(expression="body.workflow_run.missing == 1").evaluate(ctx(payload))
    assert missing == FilterResult(False, "expression", "expression failed: no such key 'missing'")
    wrong = make(expression="body.workflow_run.conclusion + 1 == 2").evaluate(ctx(payload))
    assert wrong.decided_by == "expression"
    assert wrong.detail.startswith("expression failed: Unsupported operation: string + int")
    assert len(wrong.detail) < 250
    text = make(expression="body.workflow_run.conclusion").evaluate(ctx(payload))
    assert text == FilterResult(False, "expression", "expression gave str 'failure', not a boolean")
    number = make(expression="1 + 1").evaluate(ctx(payload))
    assert number.detail == "expression gave int 2, not a boolean"


def test_expression_sees_headers_lower_cased_and_meta() -> None:
    headers = [("X-GitHub-Event", "workflow_run"), ("X-Tag", "a"), ("x-tag", "b")]
    delivery = ctx({}, headers, event_type="github.workflow_run", source_ip="10.0.0.1")
    for expression, matched in [
        ('headers["x-github-event"] == "workflow_run"', True),
        ('"X-GitHub-Event" in headers', False),
        ('headers["x-tag"] == "a, b"', True),  # repeats joined as RFC 9110 does
        ('meta.eventType == "github.workflow_run"', True),
        ('meta.sourceIP.startsWith("10.")', True),
    ]:
        assert make(expression=expression).evaluate(delivery).matched is matched, expression
    assert make(expression="meta.eventType == null").evaluate(ctx({})).matched


def test_expression_with_rules() -> None:
    both = make([A_TRUE], expression='body.b == "x"')
    assert both.evaluate(ctx(AB)) == FilterResult(
        True, "", "all 1 rules matched; expression is true"
    )
    assert both.evaluate(ctx({"a": 1, "b": "y"})).decided_by == "expression"
    # Rules first: a failing rule decides and the expression (which would error) is not run.
    guarded = make([A_TRUE], expression="body.nothing.here")
    assert guarded.evaluate(ctx({"a": 2})).decided_by == "rules[0]"
    assert guarded.evaluate(ctx({"a": 1})).detail.startswith("expression failed")
    any_rule = make([A_FALSE, B_TRUE], match="any", expression="body.a == 1")
    assert any_rule.evaluate(ctx(AB)) == FilterResult(
        True, "rules[1]", "$.b equals 'x': got 'x'; expression is true"
    )
    # An expression alone works with match: any (no rules is not "no rule matched").
    assert make(match="any", expression="body.a == 1").evaluate(ctx(AB)).matched


GITHUB_RUN: dict[str, Any] = {
    "action": "completed",
    "workflow_run": {
        "conclusion": "failure",
        "head_branch": "feature/x",
        "pull_requests": [{"number": 482, "head": {"ref": "feature/x"}}],
        "head_commit": {"message": "Retry budget\n\nbody.action"},
        "run_attempt": 2,
    },
    "repository": {"name": "app", "owner": {"login": "acme", "id": 5}},
    "body": {"action": "nested"},
    "n": None,
}

PRUNED_EXPRESSIONS = [
    ('body.workflow_run.conclusion == "failure"', {"workflow_run": {"conclusion": True}}),
    (
        "has(body.workflow_run.pull_requests) && "
        "body.workflow_run.pull_requests.exists(p, p.number > 400)",
        {"workflow_run": {"pull_requests": True}},
    ),
    ('body.workflow_run.pull_requests[0].head.ref.startsWith("feature/")', None),
    ('body.repository.owner.login == "acme" && body.repository.name == "app"', None),
    ("body.repository == body.repository && body.repository.owner.id == 5", None),
    ('body.workflow_run.head_commit.message.contains("budget")', None),
    ("body.workflow_run.all(k, k != '')", {"workflow_run": True}),  # macro on the map
    ("body.action.size() > 3", {"action": True}),  # method on the value
    ("has(body.missing) || has(body.workflow_run.nope)", None),
    ("body.missing.x == 1", None),
    ("body.n.x == 1", None),
    ("body.body.action == 'nested'", {"body": {"action": True}}),
    # Whole body needed: bare uses, indexes, calls on body, comprehension shadowing.
    ("size(body) == 5", "whole"),
    ('body["action"] == "completed"', "whole"),
    ('[body.action].exists(body, body == "completed")', "whole"),
    # `body.` inside strings and comments is not a use.
    ('"body.nothing" != body.action', {"action": True}),
    ("r'\\' + 'body.x' != body.action", {"action": True}),
    ("'''body.x''' != body.action && \"\\\"body.y\" != ''", {"action": True}),
    ('// body.nothing is a comment\nbody.action == "completed"', {"action": True}),
]


@pytest.mark.parametrize(("expression", "paths"), PRUNED_EXPRESSIONS)
def test_expression_sees_pruned_body_with_same_result(expression: str, paths: Any) -> None:
    found = cel_body_paths(expression)
    if paths == "whole":
        assert found is None
    elif paths is not None:
        assert found == paths
    program = cel.compile(expression)
    pruned = GITHUB_RUN if found is None else prune_body(GITHUB_RUN, found)

    def outcome(body: Any) -> Any:
        try:
            return program.execute({"body": body})
        except Exception as exc:
            return type(exc), str(exc)

    assert outcome(pruned) == outcome(GITHUB_RUN)


def test_expression_body_that_is_not_an_object() -> None:
    assert make(expression="size(body) == 2").evaluate(ctx([1, 2])).matched
    assert make(expression="body.a == 1").evaluate(ctx(None)).detail.startswith("expression failed")


# --- compiled once --------------------------------------------------------------------------


def test_evaluate_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = make(
        [
            rule("$.workflow_run.conclusion", "in", ["failure"]),
            rule("$..conclusion", "equals", "failure"),
            rule("$.workflow_run.head_branch", "regex_match", "^feature/"),
        ],
        expression='body.workflow_run.conclusion == "failure"',
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("compiled during evaluate")

    monkeypatch.setattr(jsonpath_rfc9535, "compile", refuse)
    monkeypatch.setattr(fieldpath, "compile_jsonpath", refuse)
    monkeypatch.setattr(re2, "compile", refuse)
    monkeypatch.setattr(cel, "compile", refuse)
    assert compiled.evaluate(ctx(GITHUB_RUN)).matched


# --- the fast path equals the RFC 9535 engine ----------------------------------------------

FIXED_PAYLOADS: list[Any] = [
    GITHUB_RUN,
    {"a": [1, {"b": [True, None, "s"]}], "": 0, "é": {"0": "zero"}, "a.b": 1, "s": "str"},
    [{"a": 1}, [2, 3], "x"],
    None,
    "scalar",
    {"d": {"0": 1}, "l": [], "t": True},
]
FIXED_PATHS = [
    "$",
    "$.a",
    "$.a[0]",
    "$.a[1].b[2]",
    "$.a[-1].b[-3]",
    "$.a[-3]",
    "$.a[5]",
    "$.a[1]['b'][0]",
    "$['']",
    "$['a.b']",
    '$["\\u00e9"]["0"]',
    "$.é",
    "$.a['0']",  # a name on an array selects nothing
    "$.s[0]",  # an index on a string selects nothing
    "$.d[0]",  # an index on an object selects nothing, even with a "0" key
    "$.t[0]",
    "$.l[0]",
    "$.l[-1]",
    "$[0].a",
    "$[1][1]",
    "$[-1]",
    "$.workflow_run.pull_requests[0].head.ref",
    "$.n",
    "$.n.x",
    "$.repository.owner",
]


def engine(path: str, payload: Any) -> list[Any]:
    return [node.value for node in jsonpath_rfc9535.compile(path).finditer(payload)]


def fast(path: str, payload: Any) -> list[Any]:
    steps = simple_steps(jsonpath_rfc9535.compile(path))
    assert steps is not None, path
    value = walk(payload, steps)
    return [] if value is MISSING else [value]


@pytest.mark.parametrize("path", FIXED_PATHS)
def test_fast_path_equals_engine(path: str) -> None:
    for payload in FIXED_PAYLOADS:
        assert fast(path, payload) == engine(path, payload), (path, payload)
        assert compile_field(path).many(ctx(payload)) == engine(path, payload)


def random_json(rng: random.Random, depth: int) -> Any:
    roll = rng.random() if depth > 0 else 1.0
    if roll < 0.45:
        keys = ["a", "0", "", "k"]
        return {rng.choice(keys): random_json(rng, depth - 1) for _ in range(rng.randrange(1, 4))}
    if roll < 0.75:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    return rng.choice([None, True, False, rng.randint(-3, 3), "a", "0", 1.5])


def random_paths(rng: random.Random, count: int) -> Iterator[str]:
    # The same names and small indexes as the payloads, so that most steps can succeed.
    for _ in range(count):
        steps = []
        for _ in range(rng.randrange(1, 5)):
            if rng.random() < 0.55:
                steps.append(rng.choice([".a", "['0']", "['']", ".k", ".b"]))
            else:
                steps.append(f"[{rng.randint(-3, 3)}]")
        yield "$" + "".join(steps)


def test_fast_path_equals_engine_on_random_payloads() -> None:
    rng = random.Random(9535)
    queries = [(path, jsonpath_rfc9535.compile(path)) for path in random_paths(rng, 200)]
    steps = [simple_steps(query) for _, query in queries]
    for _ in range(200):
        payload = random_json(rng, 4)
        for (path, query), path_steps in zip(queries, steps, strict=True):
            assert path_steps is not None
            value = walk(payload, path_steps)
            expected = [node.value for node in query.finditer(payload)]
            assert ([] if value is MISSING else [value]) == expected, (path, payload)


@pytest.mark.parametrize(
    "path", ["$.a[*]", "$..a", "$.a[0,1]", "$.a[1:]", "$[?@.x]", "$.*", "$.a[?@ > 1]"]
)
def test_other_paths_use_the_engine(path: str) -> None:
    assert simple_steps(jsonpath_rfc9535.compile(path)) is None
    for payload in FIXED_PAYLOADS:
        assert compile_field(path).many(ctx(payload)) == engine(path, payload)


# --- a regex cannot hang the receiver -------------------------------------------------------


def best_time(action: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [(r"(a|aa)+b", False), (r"(a+)+b", False), (r"(a+)+$", True), (r"(a*)*$", True)],
)
def test_catastrophic_regex_is_linear(pattern: str, matched: bool) -> None:
    # A backtracking engine takes time exponential in the input on these (see the next
    # test). RE2 is linear: doubling the input about doubles the time (5x allowed for
    # noise), and 100k characters cost about what a simple pattern scanning the same
    # input costs (50x allowed). No absolute wall-clock bound, which would flake.
    def timed(n: int, regex: str) -> float:
        compiled = make([rule("$.text", "regex_match", regex)])
        delivery = ctx({"text": "a" * n})
        assert compiled.evaluate(delivery).matched is (matched and regex == pattern)
        return best_time(lambda: compiled.evaluate(delivery))

    small, large = timed(100_000, pattern), timed(200_000, pattern)
    assert large < 5 * small + 0.01
    baseline = timed(100_000, r"[ab]+c")
    assert small < 50 * baseline + 0.02


REGEX_CASES = [
    (r"^rel.*\d$", ["release/1", "release/", "xrelease/1", ""]),
    ("", ["", "x"]),
    ("a*", ["", "bbb"]),
    ("^$", ["", "\n", "a"]),
    ("(?i)straße", ["STRASSE", "Straße", "STRAßE"]),
    ("^.$", ["é", "ab", "\U0001f600", "\ud800"]),  # \ud800: a lone surrogate from JSON
    (r"\bfoo\b", ["a foo b", "afoob"]),
    ("(?P<id>[0-9a-f-]{36})", ["run 0b1f3c2e-1234-4cde-8f00-0123456789ab", "run 42"]),
    ("(?s)a.b", ["a\nb"]),
    ("a.b", ["a\nb"]),
]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize(("pattern", "texts"), REGEX_CASES)
def test_regex_tester_equals_re2_search(
    pattern: str, texts: list[str], native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native:  # the wrapper's public search(), used if its internals ever change
        monkeypatch.setattr(filters_module, "_UNANCHORED", None)
    test = regex_tester(pattern)
    reference = re2.compile(pattern)
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        assert test(text) is (reference.search(data) is not None), (pattern, text)


def test_lone_surrogates_do_not_fail_a_request() -> None:
    bad = "\ud800x"  # json.loads('"\\ud800x"'); aiohttp's surrogateescape gives the like
    assert make([rule("$.v", "regex_match", "x$")]).evaluate(ctx({"v": bad})).matched
    assert make([rule("header:X-V", "regex_match", "x$")]).evaluate(ctx({}, {"X-V": bad})).matched
    assert make([rule("$.v", "greater_than", T0)]).evaluate(ctx({"v": bad})).matched is False
    failed = make(expression='body.v == "x"').evaluate(ctx({"v": bad}))
    assert failed.decided_by == "expression"
    assert failed.detail.startswith("expression failed")


def test_backtracking_engine_would_hang() -> None:
    # Python's `re` on the same pattern: every 4 more characters multiply the time by
    # about 16, so 100k characters would take longer than the universe has existed.
    # Only small inputs are run here, to show the growth.
    pattern = re.compile(r"(a+)+$")

    def timed(n: int) -> float:
        return best_time(lambda: pattern.search("a" * n + "!"))

    assert timed(16) > 4 * timed(12)


def test_docs_describe_every_operator(root: Path) -> None:
    text = (root / "docs" / "filters.md").read_text()
    for operator in ALL_OPERATORS:
        assert f"`{operator}`" in text, operator
