"""Every published GitHub example payload validates against the catalog (issue 11 §1).

GitHub never retries a delivery answered 422, so an example the catalog refuses is an
event lost. The corpus is `@octokit/webhooks-examples` (pinned, installed by
scripts/test-data.sh; tests/support/github_corpus.py): 329 github.com payloads, from the
sample in GitHub's docs to deliveries recorded from 2017 on, and the GitHub Enterprise
Server 3.1-3.5 payloads beside them. Each must validate against the EventType its
`X-GitHub-Event` selects, as the receiver compiles it. And the catalog still refuses
what is not that event: a top-level field of the wrong type.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hookline.receiver.eventtypes import jsonpath_of
from tests.support.github_corpus import (
    ENV,
    GHES,
    GITHUB_COM,
    CorpusMissing,
    Example,
    catalog,
    compiled,
    corpus,
    every_example,
    examples_dir,
    recorded,
)

# GitHub Enterprise Server events that github.com does not send: GitHub's description
# of github.com (the catalog's source) has no schema for them, so no EventType.
GHES_ONLY = {"cache_sync", "content_reference", "enterprise", "user"}
IN_CATALOG = tuple(e for e in every_example() if e.event not in GHES_ONLY)


def test_the_corpus_is_the_pinned_package() -> None:
    assert examples_dir().name == f"webhooks-examples-{recorded()['examples_version']}"
    assert recorded()["examples"] == "npm:@octokit/webhooks-examples@7.6.1"
    assert len(corpus(GITHUB_COM)) == 329
    assert len({e.event for e in corpus(GITHUB_COM)}) == 58
    assert [len(corpus(host)) for host in GHES] == [49, 49, 50, 124, 125]


def test_only_ghes_only_events_lack_an_event_type() -> None:
    without = {e.event for e in every_example()} - set(catalog())
    assert without == GHES_ONLY
    assert {e.event for e in corpus(GITHUB_COM)} <= set(catalog())


@pytest.mark.parametrize("example", IN_CATALOG, ids=lambda e: e.id)
def test_a_real_github_payload_validates(example: Example) -> None:
    issues = compiled(example.event).validate(example.payload)
    assert issues == [], f"{example.id} (action {example.payload.get('action')}): {issues}"


def test_every_github_com_payload_is_checked() -> None:
    checked = [e for e in IN_CATALOG if e.host == GITHUB_COM]
    assert len(checked) == 329


def _add_unknown_fields(node: Any) -> int:
    """Add a field GitHub might add tomorrow to every object in `node`; how many."""
    added = 0
    if isinstance(node, dict):
        for value in list(node.values()):
            added += _add_unknown_fields(value)
        node["hookline_field_added_later"] = "a string, as open maps allow"
        added += 1
    elif isinstance(node, list):
        for item in node:
            added += _add_unknown_fields(item)
    return added


def test_fields_github_adds_later_are_accepted() -> None:
    """Every example still validates with an unknown field in each of its objects, among
    them dependabot_alert's, which the source closes with `additionalProperties: false`."""
    for example in corpus(GITHUB_COM):
        payload = copy.deepcopy(example.payload)
        assert _add_unknown_fields(payload) > 1
        assert compiled(example.event).validate(payload) == [], example.id
    assert any(e.event == "dependabot_alert" for e in corpus(GITHUB_COM))


# --- what the catalog still refuses ------------------------------------------------------

_WRONG: tuple[tuple[str, Any], ...] = (
    ("integer", 5),
    ("string", "not this"),
    ("boolean", True),
    ("array", []),
    ("object", {}),
)


def _declared(schema: Any, defs: dict[str, Any]) -> set[str] | None:
    """The JSON types a property's schema allows; None where it does not say."""
    if not isinstance(schema, dict):
        return None
    if "type" in schema:
        types = schema["type"]
        return {types} if isinstance(types, str) else set(types)
    if "$ref" in schema:
        return _declared(defs[schema["$ref"].removeprefix("#/$defs/")], defs)
    if "anyOf" in schema:
        branches = [_declared(branch, defs) for branch in schema["anyOf"]]
        if all(b is not None for b in branches):
            return set().union(*(b for b in branches if b is not None))
    return None


def _wrong_value(types: set[str]) -> Any:
    for name, value in _WRONG:
        if name not in types and not (name == "integer" and "number" in types):
            return value
    return None


def _first_examples() -> list[Example]:
    seen: dict[str, Example] = {}
    for example in corpus(GITHUB_COM):
        seen.setdefault(example.event, example)
    return sorted(seen.values(), key=lambda e: e.event)


@pytest.mark.parametrize("example", _first_examples(), ids=lambda e: e.event)
def test_a_wrong_type_at_a_top_level_field_is_refused(example: Example) -> None:
    """For each event: every top-level field of a real payload whose type the catalog
    declares, given a value of another type, is refused at that field's path."""
    schema = catalog()[example.event]["spec"]["schema"]
    defs = schema.get("$defs", {})
    tried = 0
    for field in example.payload:
        types = _declared(schema["properties"].get(field), defs)
        wrong = None if types is None else _wrong_value(types)
        if wrong is None:
            continue
        body = {**copy.deepcopy(example.payload), field: wrong}
        issues = compiled(example.event).validate(body)
        assert jsonpath_of([field]) in {i.path for i in issues}, (field, wrong, issues)
        tried += 1
    assert tried >= 1 + ("repository" in example.payload), example.id


def test_repository_and_action_of_the_wrong_type_are_refused() -> None:
    (protection,) = [e for e in _first_examples() if e.event == "branch_protection_rule"]
    assert compiled("branch_protection_rule").validate(protection.payload) == []
    for field, value, message in (
        ("repository", 5, '5 is not of type "object"'),
        ("action", 3, '3 is not of type "string"'),
        ("sender", "octocat", '"octocat" is not of type "object"'),
    ):
        body = {**protection.payload, field: value}
        issues = compiled("branch_protection_rule").validate(body)
        assert [(i.path, i.message) for i in issues] == [(f"$.{field}", message)]


def test_a_missing_corpus_fails_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    with pytest.raises(CorpusMissing, match=r"run `source scripts/test-data.sh`"):
        examples_dir()
    (tmp_path / "package.json").write_text('{"version": "7.5.0"}')
    with pytest.raises(CorpusMissing, match=r"found 7\.5\.0"):
        examples_dir()
