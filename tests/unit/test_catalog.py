"""The GitHub EventType catalog (issue 4): generated faithfully from GitHub's own OpenAPI
description of its webhooks, valid, accepting real GitHub payloads and fields GitHub adds
later, and refusing what breaks the description.

Runs offline from tests/data/github-examples/: the pinned source and the example payloads
(see the README there).
"""

from __future__ import annotations

import copy
import gzip
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from hookline.api.eventtype import EventType
from hookline.catalog import CATALOGS, catalog_yaml, github_catalog, load_catalog
from hookline.catalog import generate as gen
from hookline.receiver.eventtypes import CompiledEventType, compile_event_type

DATA = Path(__file__).resolve().parent.parent / "data" / "github-examples"
CATALOG_DIR = Path(gen.__file__).resolve().parent / "github"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# A DNS-1123 label: valid for any object name, and for the label values users derive.
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Events @octokit/webhooks-schemas (the previous source) did not have.
ADDED_BY_OPENAPI_SOURCE = {
    "issue_dependencies",
    "personal_access_token_request",
    "projects_v2",
    "projects_v2_status_update",
    "repository_advisory",
    "repository_ruleset",
    "secret_scanning_scan",
    "security_and_analysis",
    "sub_issues",
}
# Events GitHub describes but the examples package has no payload for (GitHub's own
# description carries one for secret_scanning_alert_location, tested below).
EVENTS_WITHOUT_EXAMPLES = ADDED_BY_OPENAPI_SOURCE | {
    "branch_protection_configuration",
    "custom_property",
    "custom_property_values",
    "deployment_protection_rule",
    "installation_target",
    "registry_package",
    "secret_scanning_alert",
    "secret_scanning_alert_location",
}
# Actions that are not a fixed list: a repository_dispatch's action is the `event_type`
# the caller of POST /repos/{owner}/{repo}/dispatches chose.
FREE_FORM_ACTIONS = {"repository_dispatch"}

# --- example payloads that genuinely do not match GitHub's description -----------------
#
# Each entry: (event, index in examples.json.gz) -> (reason, one error that proves it).
# Everything else must validate; an entry that starts validating, or fails for another
# reason, fails the test too, so this list cannot go stale.
#
# The examples package holds, per event, the sample from GitHub's webhook docs and then
# payloads octokit recorded from real deliveries; their newest timestamps are from
# 2017-2023, two thirds from 2019. GitHub's description is of today's payloads: it
# requires fields GitHub added since (`repository.has_discussions`,
# `discussion.state_reason`, `release.immutable`, ...), which these older payloads lack.
# A delivery that lacks a field the description requires is what the catalog refuses.
OLDER = "older than GitHub's description: lacks a field it now requires"
# GitHub sent these installation timestamps as Unix seconds (1557933591); its
# description says date-time strings.
UNIX_TIMES = "installation created_at/updated_at as Unix seconds, described as strings"
# The marketplace docs samples spell the price model `flat-rate` / `per-unit`;
# GitHub's description enumerates FREE, FLAT_RATE, PER_UNIT.
PRICE_MODEL = "docs sample spells price_model in lower case, the description's enum does not"

_DISCUSSIONS = 'repo: "has_discussions" is a required property'
_STATE_REASON = 'discussion: "state_reason" is a required property'
_RELEASE = 'release: "immutable" is a required property'
_DISABLED = 'repository: "disabled" is a required property'
_UNIX = 'installation/created_at: 1557933591 is not of type "string"'
_UNIX_2018 = 'installation/created_at: 1525109898 is not of type "string"'


def _each(
    event: str, indices: list[int], reason: str, evidence: str
) -> dict[tuple[str, int], tuple[str, str]]:
    return {(event, index): (reason, evidence) for index in indices}


KNOWN_INVALID: dict[tuple[str, int], tuple[str, str]] = {
    **_each(
        "branch_protection_rule",
        [0, 1, 2, 3, 4],
        OLDER,
        'rule: "lock_branch_enforcement_level" is a required property',
    ),
    **_each("check_run", [7, 8], OLDER, 'check_run: "node_id" is a required property'),
    **_each("deploy_key", [0, 1], OLDER, _DISABLED),
    ("deployment", 0): (OLDER, '(root): "workflow_run" is a required property'),
    ("deployment", 1): (OLDER, 'workflow_run: "display_title" is a required property'),
    ("deployment_status", 1): (OLDER, 'workflow_run: "display_title" is a required property'),
    **_each("discussion", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], OLDER, _STATE_REASON),
    **_each("discussion_comment", [0, 1, 2, 3], OLDER, _STATE_REASON),
    ("fork", 0): (OLDER, 'forkee: "visibility" is a required property'),
    **_each("installation", [0, 3], UNIX_TIMES, _UNIX_2018),
    **_each("installation", [1, 2, 4], UNIX_TIMES, _UNIX),
    ("installation_repositories", 0): (UNIX_TIMES, _UNIX),
    ("installation_repositories", 1): (UNIX_TIMES, _UNIX),
    ("installation_repositories", 2): (UNIX_TIMES, _UNIX_2018),
    ("issue_comment", 0): (OLDER, 'issue: "active_lock_reason" is a required property'),
    ("issues", 0): (OLDER, 'issue: "active_lock_reason" is a required property'),
    ("issues", 21): (OLDER, 'changes/new_repository: "has_discussions" is a required property'),
    ("label", 0): (OLDER, 'label: "description" is a required property'),
    ("marketplace_purchase", 0): (OLDER, 'sender: "node_id" is a required property'),
    ("marketplace_purchase", 1): (PRICE_MODEL, 'price_model: "flat-rate" is not one of'),
    **_each("marketplace_purchase", [2, 3], PRICE_MODEL, 'price_model: "per-unit" is not one of'),
    ("member", 3): (OLDER, _DISABLED),
    **_each("meta", [0, 1], OLDER, _DISABLED),
    ("pull_request", 0): (OLDER, 'pull_request: "auto_merge" is a required property'),
    **_each(
        "pull_request",
        [1, 2, 8, 9, 10, 11, 20, 21, 22, 23, 24, 25, 26, 27, 28],
        OLDER,
        "pull_request/base/" + _DISCUSSIONS,
    ),
    **_each("pull_request_review", [0, 1, 2, 3], OLDER, "pull_request/base/" + _DISCUSSIONS),
    ("pull_request_review_comment", 0): (OLDER, 'comment: "line" is a required property'),
    **_each(
        "pull_request_review_comment", [1, 2, 3, 4], OLDER, "pull_request/base/" + _DISCUSSIONS
    ),
    **_each("pull_request_review_thread", [0, 1, 2], OLDER, "pull_request/base/" + _DISCUSSIONS),
    **_each("push", [0, 1, 2, 3, 4, 5, 6], OLDER, "repository: " + _DISCUSSIONS[6:]),
    **_each("release", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], OLDER, _RELEASE),
    **_each("repository_dispatch", [0, 1], OLDER, _DISABLED),
    **_each("repository_import", [0, 1], OLDER, _DISABLED),
    ("repository_vulnerability_alert", 0): (OLDER, 'alert: "number" is a required property'),
    ("security_advisory", 0): (OLDER, 'security_advisory: "cwes" is a required property'),
    ("sponsorship", 1): (OLDER, 'changes/tier/from: "is_one_time" is a required property'),
    **_each(
        "status",
        [0, 1, 2, 3],
        OLDER,
        'commit/commit/verification: "verified_at" is a required property',
    ),
    ("team", 0): (OLDER, 'repository: "visibility" is a required property'),
    ("workflow_dispatch", 1): (OLDER, _DISABLED),
    ("workflow_job", 0): (OLDER, 'workflow_job: "run_attempt" is a required property'),
    ("workflow_run", 0): (OLDER, 'workflow_run: "triggering_actor" is a required property'),
}


# --- shared fixtures (module-level caches: the catalog is megabytes) ------------------


def _read_gz_json(name: str) -> Any:
    return json.loads(gzip.decompress((DATA / name).read_bytes()))


@cache
def source() -> dict[str, Any]:
    data: dict[str, Any] = _read_gz_json("source.json.gz")
    return data


@cache
def examples() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = _read_gz_json("examples.json.gz")
    return data


@cache
def recorded() -> dict[str, str]:
    data: dict[str, str] = json.loads((DATA / "SOURCE.json").read_text())
    return data


@cache
def manifests() -> list[dict[str, Any]]:
    """github_catalog(), read once: parsing megabytes of YAML takes a while."""
    return github_catalog()


@cache
def catalog() -> dict[str, dict[str, Any]]:
    """Event name (the X-GitHub-Event value) -> manifest."""
    return {m["spec"]["match"]["header"]["value"]: m for m in manifests()}


@cache
def resource(event: str) -> EventType:
    # The costly part of the suite: the model checks each schema against the 2020-12
    # meta-schema with the pure-Python `jsonschema`, about 0.3 s per manifest here.
    return EventType.model_validate(catalog()[event])


@cache
def compiled(event: str) -> CompiledEventType:
    """The EventType exactly as the receiver compiles it."""
    return compile_event_type(resource(event))


def refused(event: str, payload: Any) -> bool:
    return bool(compiled(event).validate(payload))


@cache
def _explainer(event: str) -> Any:
    # The receiver's settings (hookline/receiver/eventtypes.py): `format` an annotation,
    # no network for a $ref.
    schema = catalog()[event]["spec"]["schema"]
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, offline=True)


def explain(event: str, payload: Any) -> list[str]:
    """Every error of `payload`, as "path: message", looking inside `anyOf`.

    The receiver reports the first errors only; at an `anyOf` (the event's actions, a
    nullable object) that is "not valid under any of the schemas". Here the branches
    that cannot be meant (another action, `null` for an object) are left out and the
    errors of the others are listed, which says what is actually wrong.
    """
    return sorted(set(_flatten(_explainer(event).iter_errors(payload))))


def _flatten(errors: Any) -> Iterator[str]:
    for error in errors:
        at = list(error.instance_path)
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.AnyOf):
            meant = [b for b in error.kind.context if not _other_branch(b, at)]
            if meant:
                for branch in meant:
                    yield from _flatten(branch)
                continue
        yield f"{'/'.join(map(str, at)) or '(root)'}: {error.message}"


def _other_branch(errors: list[Any], at: list[Any]) -> bool:
    """A branch of another type, or of another action, than the instance's."""
    for error in errors:
        path = list(error.instance_path)
        if path == at and isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Type):
            return True
        if path == [*at, "action"] and isinstance(
            error.kind, jsonschema_rs.ValidationErrorKind.Enum
        ):
            return True
    return False


def valid_examples(event: str) -> list[dict[str, Any]]:
    return [
        copy.deepcopy(payload)
        for index, payload in enumerate(examples().get(event, []))
        if (event, index) not in KNOWN_INVALID
    ]


def valid_example(event: str, action: str | None = None) -> dict[str, Any]:
    for payload in valid_examples(event):
        if payload.get("action") == action:
            return payload
    raise AssertionError(f"no valid {event} example with action {action}")


# --- the manifests ---------------------------------------------------------------------


def test_one_event_type_per_event_in_the_source() -> None:
    source_events = set(gen.events(source()))
    assert len(source_events) == 75
    assert set(catalog()) == source_events
    assert len(manifests()) == len(source_events)  # and none twice
    names = [m["metadata"]["name"] for m in manifests()]
    assert len(set(names)) == len(names)


def test_the_events_the_previous_source_lacked_are_there() -> None:
    assert ADDED_BY_OPENAPI_SOURCE <= set(catalog())
    # Spelt as GitHub sends them, though the source writes some with `-`.
    assert catalog()["sub_issues"]["metadata"]["name"] == "github-sub-issues"
    assert catalog()["issue_dependencies"]["spec"]["type"] == "github.issue_dependencies"


def test_every_manifest_is_a_valid_event_type() -> None:
    version = recorded()["version"]
    for event, manifest in catalog().items():
        et = resource(event)
        name = et.metadata.name
        assert name == "github-" + event.replace("_", "-")
        assert DNS_1123_LABEL.match(name) and len(name) <= 63, name
        assert et.spec.type == f"github.{event}"
        assert et.spec.version == "v1"
        assert not et.spec.deprecated
        assert et.spec.description.startswith(f"GitHub webhook event `{event}`")
        assert len(et.spec.description) > 100, event  # GitHub's own summary is there
        assert et.spec.match.header is not None
        assert et.spec.match.header.name == "X-GitHub-Event"
        assert et.spec.match.header.value == event
        assert et.spec.match.body is None
        assert et.metadata.annotations == {
            "hookline.dev/source": f"npm:@octokit/openapi-webhooks@{version}",
            "hookline.dev/generated-by": "hookline/catalog/generate.py",
        }
        assert et.metadata.labels == {"hookline.dev/catalog": "github"}
        # No namespace: `kubectl apply -f -` puts them in the namespace the user picks.
        assert et.metadata.namespace is None
        assert manifest["spec"]["schema"]["$schema"] == DRAFT_2020_12


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for k, v in node.items() if k not in ("enum", "const")))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _keywords(node: Any) -> Iterator[tuple[str, Any]]:
    """(keyword, value) of every subschema, property names and data left out."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        yield key, value
        if key in ("properties", "patternProperties", "$defs", "dependentSchemas"):
            for sub in value.values():
                yield from _keywords(sub)
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            for sub in value:
                yield from _keywords(sub)
        elif isinstance(value, dict) and key not in ("enum", "const", "default"):
            yield from _keywords(value)


def test_schemas_are_self_contained_relaxed_2020_12() -> None:
    openapi_only = {"example", "examples", "discriminator", "xml", "externalDocs", "nullable"}
    for event, manifest in catalog().items():
        schema = manifest["spec"]["schema"]
        defs = schema.get("$defs", {})
        refs = _refs(schema)
        # Every reference resolves inside the document, and nothing unused is carried.
        assert all(r.startswith("#/$defs/") for r in refs), event
        assert {r.removeprefix("#/$defs/") for r in refs} == set(defs), event
        for keyword, value in _keywords(schema):
            assert keyword not in openapi_only and not keyword.startswith("x-"), (event, keyword)
            assert keyword != "oneOf", event
            if keyword in ("additionalProperties", "unevaluatedProperties"):
                assert value is not False, event


def test_the_source_was_strict_where_the_catalog_is_not() -> None:
    """The relaxation is real: the source closes objects that the catalog leaves open."""
    text = json.dumps(source()["components"]["schemas"])
    assert text.count('"additionalProperties": false') == 12
    assert '"nullable"' not in text  # OpenAPI 3.1: nullable fields are type arrays


def test_every_manifest_fits_client_side_kubectl_apply() -> None:
    # kubectl apply (client-side) stores the object as JSON in an annotation; all of a
    # object's annotations together may hold 256 KiB.
    for event, manifest in catalog().items():
        size = len(json.dumps(manifest, separators=(",", ":")).encode())
        assert size < 256 * 1024 - 4096, (event, size)


# --- real payloads ---------------------------------------------------------------------


def test_examples_cover_every_event_that_has_them() -> None:
    assert set(examples()) == set(catalog()) - EVENTS_WITHOUT_EXAMPLES
    assert sum(len(payloads) for payloads in examples().values()) == 329
    assert (
        recorded()["examples"] == f"npm:@octokit/webhooks-examples@{recorded()['examples_version']}"
    )


@pytest.mark.parametrize(
    "event", sorted(json.loads(gzip.decompress((DATA / "examples.json.gz").read_bytes())))
)
def test_real_github_payloads_validate(event: str) -> None:
    unexpected: list[str] = []
    for index, payload in enumerate(examples()[event]):
        issues = compiled(event).validate(payload)
        known = KNOWN_INVALID.get((event, index))
        label = f"{event}[{index}] (action {payload.get('action')})"
        if known is None and issues:
            found = explain(event, payload)
            unexpected.append(f"{label} is refused:\n    " + "\n    ".join(found))
        elif known is not None and not issues:
            unexpected.append(f"{label} now validates: remove it from KNOWN_INVALID")
        elif known is not None:
            reason, evidence = known
            found = explain(event, payload)
            if not any(evidence in line for line in found):
                unexpected.append(
                    f"{label} fails, but not for the recorded reason ({reason}: {evidence!r}):"
                    + "\n    "
                    + "\n    ".join(found)
                )
    assert not unexpected, "\n".join(unexpected)


def test_known_invalid_examples_exist() -> None:
    for event, index in KNOWN_INVALID:
        assert index < len(examples()[event]), (event, index)


def test_githubs_own_examples_validate() -> None:
    """The payloads in the description itself (components/examples)."""
    hooks = {hook.key: hook for hook in gen.webhooks(source())}
    own = source()["components"]["examples"]
    assert len(own) == 6
    for key, example in own.items():
        event = hooks[key].event
        assert compiled(event).validate(example["value"]) == [], (
            key,
            explain(event, example["value"]),
        )


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
    """Every valid example still validates with an unknown field in each of its objects.

    Among them dependabot_alert, whose alert objects the source closes with
    `additionalProperties: false`.
    """
    checked = 0
    for event in sorted(examples()):
        for payload in valid_examples(event):
            assert _add_unknown_fields(payload) > 1
            assert compiled(event).validate(payload) == [], (event, explain(event, payload))
            checked += 1
    assert checked == 329 - len(KNOWN_INVALID)
    assert "dependabot_alert" in examples() and valid_examples("dependabot_alert")


def test_a_missing_required_field_is_refused() -> None:
    create = valid_example("create")
    assert not refused("create", create)
    del create["ref"]
    issues = compiled("create").validate(create)
    assert [(i.path, i.message) for i in issues] == [("$", '"ref" is a required property')]

    run = valid_example("workflow_run", "completed")
    del run["workflow_run"]["conclusion"]
    assert refused("workflow_run", run)
    assert 'workflow_run: "conclusion" is a required property' in explain("workflow_run", run)


def test_a_wrong_type_is_refused() -> None:
    create = valid_example("create")
    create["ref"] = 42
    issues = compiled("create").validate(create)
    assert [(i.path, i.message) for i in issues] == [("$.ref", '42 is not of type "string"')]

    run = valid_example("workflow_run", "completed")
    run["workflow_run"]["run_attempt"] = "second"
    assert refused("workflow_run", run)


def test_a_value_outside_an_enum_is_refused() -> None:
    run = valid_example("workflow_run", "completed")
    run["workflow_run"]["conclusion"] = "exploded"
    assert refused("workflow_run", run)
    assert any(e.startswith("workflow_run/conclusion:") for e in explain("workflow_run", run))


def _action_enums(schema: dict[str, Any]) -> list[list[str] | None]:
    """Per branch of the event's anyOf: the `action` values it allows (None: any)."""
    defs = schema["$defs"]
    found: list[list[str] | None] = []
    for branch in schema["anyOf"]:
        body = defs[branch["$ref"].removeprefix("#/$defs/")]
        for shape in body.get("anyOf", [body]):  # review_requested: a user or a team
            if "$ref" in shape:
                shape = defs[shape["$ref"].removeprefix("#/$defs/")]
            found.append(shape["properties"]["action"].get("enum"))
    return found


def test_an_unknown_action_is_refused() -> None:
    with_actions = {e for e, m in catalog().items() if "anyOf" in m["spec"]["schema"]}
    assert len(with_actions) == 62  # 13 events have no actions
    for event in sorted(with_actions):
        enums = _action_enums(catalog()[event]["spec"]["schema"])
        if event in FREE_FORM_ACTIONS:
            assert enums == [None], event
            continue
        assert all(enum is not None and len(enum) == 1 for enum in enums), event
        for payload in valid_examples(event)[:1]:
            assert not refused(event, payload)
            payload["action"] = "hookline_no_such_action"
            assert refused(event, payload), event
    # Events without actions have one schema, not a union.
    for event in ("push", "create", "fork", "ping"):
        assert "anyOf" not in catalog()[event]["spec"]["schema"]


def test_formats_are_documentation_not_checks() -> None:
    create = valid_example("create")
    schema = catalog()["create"]["spec"]["schema"]
    assert "format" in json.dumps(schema)
    create["repository"]["created_at"] = "not a date"  # `format: date-time` upstream
    create["repository"]["html_url"] = "not a uri"
    assert compiled("create").validate(create) == []


def test_a_payload_of_another_event_is_refused() -> None:
    assert refused("workflow_run", valid_example("create"))


# --- generation ------------------------------------------------------------------------


@cache
def rendered() -> dict[str, str]:
    return gen.render_catalog(source(), recorded()["version"])


def test_the_shipped_files_are_the_generators_output() -> None:
    """Regenerated here (another process, another hash seed than the one that wrote them),
    the files are byte for byte the committed ones: stable, and not edited by hand."""
    before = json.dumps(source(), sort_keys=True)
    files = rendered()
    assert json.dumps(source(), sort_keys=True) == before, "the transform mutated its input"
    shipped = {p.name: p.read_text(encoding="utf-8") for p in CATALOG_DIR.iterdir()}
    regenerate = f"python -m hookline.catalog.generate --version {recorded()['version']}"
    assert sorted(shipped) == sorted(files), f"run: {regenerate}"
    drifted = sorted(name for name in files if shipped[name] != files[name])
    assert not drifted, f"shipped files differ from the generator's output: {drifted}"
    assert recorded()["source"] == f"npm:@octokit/openapi-webhooks@{recorded()['version']}"
    assert source()["info"]["version"] == recorded()["version"]


def _reversed_order(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _reversed_order(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [_reversed_order(item) for item in node]
    return node


def test_output_does_not_depend_on_the_sources_key_order() -> None:
    some = {"pull_request", "push", "dependabot_alert", "repository_dispatch", "sub_issues"}
    subset = copy.deepcopy(source())
    subset["webhooks"] = {
        key: item
        for key, item in subset["webhooks"].items()
        if item["post"]["x-github"]["subcategory"].replace("-", "_") in some
    }
    files = gen.render_catalog(_reversed_order(subset), recorded()["version"])
    assert sorted(files) == sorted([gen.resource_name(e) + ".yaml" for e in some] + ["SOURCE.md"])
    for name, text in files.items():
        if name != "SOURCE.md":
            assert text == rendered()[name], name


def test_the_yaml_says_what_the_generator_meant() -> None:
    """Literal blocks and one-line mappings read back as the same data."""
    hooks = gen.events(source())
    for event in ("push", "pull_request", "repository_dispatch"):
        meant = gen.manifest(source(), event, hooks[event], recorded()["version"])
        assert json.loads(json.dumps(meant)) == catalog()[event]


# --- the transform, piece by piece ------------------------------------------------------


def test_clean_makes_plain_relaxed_2020_12() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "unevaluatedProperties": False,
        "example": {"a": 1},
        "examples": [{"a": 1}],
        "externalDocs": {"url": "https://docs.github.com"},
        "discriminator": {"propertyName": "kind"},
        "x-github-breaking-changes": [],
        "required": ["a"],
        "properties": {
            # Property names are names, even when spelt like a dropped keyword.
            "example": {"type": "string", "format": "uri"},
            "a": {"oneOf": [{"$ref": "#/components/schemas/thing"}, {"type": "null"}]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "open": {"type": "object", "additionalProperties": True},
        },
        "enum": [{"oneOf": 1, "example": 2}],  # data is data: neither cleaned nor renamed
    }
    assert gen._clean(schema) == {
        "enum": [{"example": 2, "oneOf": 1}],
        "properties": {
            "a": {"anyOf": [{"$ref": "#/$defs/thing"}, {"type": "null"}]},
            "example": {"format": "uri", "type": "string"},
            "labels": {"additionalProperties": {"type": "string"}, "type": "object"},
            "open": {"additionalProperties": True, "type": "object"},
        },
        "required": ["a"],
        "type": "object",
    }


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "nullable": True}, "unknown keyword 'nullable'"),
        ({"type": "object", "frobnicate": 1}, "unknown keyword 'frobnicate'"),
        ({"oneOf": [], "anyOf": []}, "both oneOf and anyOf"),
        ({"items": [{"type": "string"}]}, "items: expected one schema"),
        ({"$ref": "other.json#/components/schemas/x"}, "unsupported \\$ref"),
        ({"$ref": "#/components/schemas/a/properties/b"}, "unsupported \\$ref"),
    ],
)
def test_clean_refuses_what_it_does_not_know(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gen._clean(schema)


def _tiny_source(**webhooks: tuple[str, str]) -> dict[str, Any]:
    """A source with webhooks `key=(operationId, component)` and a few components."""
    fields: dict[str, Any] = {f"field_{i}": {"type": "string"} for i in range(40)}
    user = {"title": "User", "type": "object", "required": ["login"], "properties": fields}
    return {
        "openapi": "3.1.0",
        "info": {"version": "0.0.0", "title": "tiny"},
        "webhooks": {
            key: {
                "post": {
                    "operationId": operation,
                    "summary": "Something happened.",
                    "description": f"The {key} action.",
                    "x-github": {"subcategory": operation.split("/")[0]},
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{component}"}
                            }
                        }
                    },
                }
            }
            for key, (operation, component) in webhooks.items()
        },
        "components": {
            "schemas": {
                "webhook-thing-made": {
                    "type": "object",
                    "required": ["action", "by"],
                    "properties": {
                        "action": {"type": "string", "enum": ["made"]},
                        "by": {**copy.deepcopy(user), "title": "Maker"},
                        "for": {**copy.deepcopy(user), "title": "Maker"},
                    },
                },
                "webhook-thing-lost": {
                    "type": "object",
                    "properties": {
                        "action": {"type": "string", "enum": ["lost"]},
                        "user": {"$ref": "#/components/schemas/simple-user"},
                        "also": copy.deepcopy(user),
                    },
                },
                "webhook-poke": {"type": "object", "properties": {"n": {"type": "integer"}}},
                "simple-user": copy.deepcopy(user),
                "unused": {"type": "null"},
            }
        },
    }


def test_events_group_actions_and_spell_events_as_github_sends_them() -> None:
    tiny = _tiny_source(
        **{
            "sub-thing-made": ("sub-thing/made", "webhook-thing-made"),
            "sub-thing-lost": ("sub-thing/lost", "webhook-thing-lost"),
            "poke": ("poke", "webhook-poke"),
        }
    )
    grouped = gen.events(tiny)
    assert sorted(grouped) == ["poke", "sub_thing"]
    assert [h.key for h in grouped["sub_thing"]] == ["sub-thing-lost", "sub-thing-made"]
    assert [h.has_action for h in grouped["sub_thing"]] == [True, True]
    assert grouped["poke"][0].has_action is False

    with pytest.raises(ValueError, match=r"OpenAPI 3\.1 only"):
        gen.events({**tiny, "openapi": "3.0.3"})
    tiny["webhooks"]["poke"]["post"]["x-github"]["subcategory"] = "prod"
    with pytest.raises(ValueError, match="operationId 'poke', event 'prod'"):
        gen.events(tiny)


def test_bundle_takes_the_closure_and_shares_repeats() -> None:
    tiny = _tiny_source(
        **{
            "thing-made": ("thing/made", "webhook-thing-made"),
            "thing-lost": ("thing/lost", "webhook-thing-lost"),
        }
    )
    schema = gen.bundle(tiny, gen.events(tiny)["thing"])
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["anyOf"] == [
        {"$ref": "#/$defs/webhook-thing-lost"},
        {"$ref": "#/$defs/webhook-thing-made"},
    ]
    defs = schema["$defs"]
    # `unused` is not carried; the repeated "Maker" is kept once; the inline copy of the
    # simple-user component refers to the component.
    assert sorted(defs) == [
        "shared-maker",
        "simple-user",
        "webhook-thing-lost",
        "webhook-thing-made",
    ]
    made, lost = defs["webhook-thing-made"], defs["webhook-thing-lost"]
    assert made["properties"]["by"] == made["properties"]["for"] == {"$ref": "#/$defs/shared-maker"}
    assert (
        lost["properties"]["also"] == lost["properties"]["user"] == {"$ref": "#/$defs/simple-user"}
    )
    assert defs["shared-maker"]["title"] == "Maker"
    # Each action's schema carries GitHub's description of the action.
    assert made["description"] == "The thing-made action."

    # Sharing changes the size, not the meaning.
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=False)
    maker = {"login": "octocat", "field_1": "x"}
    assert validator.is_valid({"action": "made", "by": maker, "for": maker})
    assert not validator.is_valid({"action": "made", "by": maker, "for": {"field_1": "x"}})
    assert not validator.is_valid({"action": "lost", "also": {"field_1": "x"}})
    assert not validator.is_valid({"action": "lost", "user": {"login": "octocat", "field_2": 2}})
    assert not validator.is_valid({"action": "found", "by": maker})


def test_an_event_without_actions_is_its_one_schema() -> None:
    tiny = _tiny_source(poke=("poke", "webhook-poke"))
    assert gen.bundle(tiny, gen.events(tiny)["poke"]) == {
        "$schema": DRAFT_2020_12,
        "description": "The poke action.",
        "properties": {"n": {"type": "integer"}},
        "type": "object",
    }


def test_bundle_refuses_a_dangling_reference() -> None:
    tiny = _tiny_source(poke=("poke", "webhook-poke"))
    tiny["components"]["schemas"]["webhook-poke"]["properties"]["m"] = {
        "$ref": "#/components/schemas/missing"
    }
    with pytest.raises(ValueError, match="missing component 'missing'"):
        gen.bundle(tiny, gen.events(tiny)["poke"])


def test_the_generator_refuses_a_version_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gen.main(["--version", "^12"])
    assert "give an exact version" in capsys.readouterr().err


# --- the API behind `hookline catalog github` -------------------------------------------


def test_catalog_yaml_round_trips() -> None:
    text = catalog_yaml("github")
    assert text.startswith("---\n")
    docs = list(yaml.load_all(text, Loader=_Loader))
    assert docs == manifests()
    names = [d["metadata"]["name"] for d in docs]
    assert names == sorted(names)
    assert CATALOGS == {"github": "github"}


def test_unknown_catalog_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown catalog 'nope': known catalogs are github"):
        catalog_yaml("nope")
    with pytest.raises(ValueError, match="unknown catalog"):
        load_catalog("nope")
