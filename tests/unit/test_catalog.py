"""The GitHub EventType catalog (issue 4, issue 11 §1): generated faithfully from GitHub's
own OpenAPI description of its webhooks, valid, and tolerant: it checks the type of each
field a payload has, never which fields it has nor which values (hookline/catalog/
tolerance.py), so that no payload GitHub sends, older or newer, is answered 422.

The generator runs offline from tests/data/github-examples/ (the pinned source); the real
payloads are the installed `@octokit/webhooks-examples` (tests/support/github_corpus.py),
checked one by one in tests/unit/test_catalog_payloads.py.
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

from hookline.catalog import CATALOGS, catalog_yaml, load_catalog
from hookline.catalog import generate as gen
from tests.support.github_corpus import (
    TEST_DATA,
    catalog,
    compiled,
    corpus,
    manifests,
    recorded,
    resource,
)

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
# Events GitHub describes but the examples package has no github.com payload for
# (GitHub's own description carries one for secret_scanning_alert_location, tested below).
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
# Keywords that refuse a payload once GitHub adds a field or a value (issue 11 §1): the
# catalog has none of them.
REFUSING = {
    "const",
    "dependentRequired",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxItems",
    "maxLength",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "multipleOf",
    "pattern",
    "required",
    "uniqueItems",
}


# --- shared fixtures (module-level caches: the catalog is megabytes) ------------------


@cache
def source() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress((TEST_DATA / "source.json.gz").read_bytes()))
    return data


def refused(event: str, payload: Any) -> bool:
    return bool(compiled(event).validate(payload))


def example(event: str, action: str | None = None) -> dict[str, Any]:
    """A copy of the first github.com example of `event` (with that action)."""
    for found in corpus():
        if found.event == event and found.payload.get("action") == action:
            return copy.deepcopy(found.payload)
    raise AssertionError(f"no {event} example with action {action}")


@cache
def _validator(event: str) -> Any:
    # The receiver's settings (hookline/receiver/eventtypes.py): `format` an annotation,
    # no network for a $ref.
    schema = catalog()[event]["spec"]["schema"]
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, offline=True)


def explain(event: str, payload: Any) -> list[str]:
    """Every error of `payload`, as "path: message"."""
    return sorted(
        f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}"
        for e in _validator(event).iter_errors(payload)
    )


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
        data = ("enum", "const", "examples", "default")
        return found.union(*(_refs(v) for k, v in node.items() if k not in data))
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
        elif isinstance(value, dict) and key not in ("enum", "const", "default", "examples"):
            yield from _keywords(value)


def test_schemas_are_self_contained_tolerant_2020_12() -> None:
    openapi_only = {"example", "discriminator", "xml", "externalDocs", "nullable"}
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
            assert keyword not in REFUSING, (event, keyword)  # issue 11 §1
            if keyword == "examples":  # what an enum or const said, as documentation
                assert isinstance(value, list) and value, event
            if keyword in ("additionalProperties", "unevaluatedProperties"):
                assert value is not False, event


def test_the_source_was_strict_where_the_catalog_is_not() -> None:
    """The relaxation is real: the source closes objects, requires fields and enumerates
    values, where the catalog does neither (test above)."""
    text = json.dumps(source()["components"]["schemas"])
    assert text.count('"additionalProperties": false') == 12
    assert text.count('"required": [') > 1000
    assert text.count('"enum": [') > 1000
    assert '"nullable"' not in text  # OpenAPI 3.1: nullable fields are type arrays


def test_every_manifest_fits_client_side_kubectl_apply() -> None:
    # kubectl apply (client-side) stores the object as JSON in an annotation; all of a
    # object's annotations together may hold 256 KiB.
    for event, manifest in catalog().items():
        size = len(json.dumps(manifest, separators=(",", ":")).encode())
        assert size < 256 * 1024 - 4096, (event, size)


# --- real payloads, and what the catalog checks of them --------------------------------


def test_examples_cover_every_event_that_has_them() -> None:
    assert {e.event for e in corpus()} == set(catalog()) - EVENTS_WITHOUT_EXAMPLES


def test_githubs_own_examples_validate() -> None:
    """The payloads in the description itself (components/examples)."""
    hooks = {hook.key: hook for hook in gen.webhooks(source())}
    own = source()["components"]["examples"]
    assert len(own) == 6
    for key, found in own.items():
        event = hooks[key].event
        assert compiled(event).validate(found["value"]) == [], (key, explain(event, found["value"]))


def test_a_field_github_added_later_is_not_required() -> None:
    """A payload from before GitHub added a field its description now requires."""
    push = example("push")
    assert "has_discussions" in json.dumps(source()["components"]["schemas"]["webhook-push"])
    push["repository"].pop("has_discussions", None)
    del push["ref"]  # required by GitHub's description of push
    assert compiled("push").validate(push) == []

    run = example("workflow_run", "completed")
    del run["workflow_run"]["conclusion"]
    assert compiled("workflow_run").validate(run) == []


def test_a_wrong_type_is_refused() -> None:
    create = example("create")
    create["ref"] = 42
    issues = compiled("create").validate(create)
    assert [(i.path, i.message) for i in issues] == [("$.ref", '42 is not of type "string"')]

    run = example("workflow_run", "completed")
    run["workflow_run"]["run_attempt"] = "second"
    assert refused("workflow_run", run)
    assert 'workflow_run/run_attempt: "second" is not of type "integer"' in explain(
        "workflow_run", run
    )


def test_a_value_github_adds_later_is_accepted_and_the_known_ones_documented() -> None:
    run = example("workflow_run", "completed")
    run["workflow_run"]["conclusion"] = "a_conclusion_github_adds_later"
    assert compiled("workflow_run").validate(run) == []
    run_schema = catalog()["workflow_run"]["spec"]["schema"]["properties"]["workflow_run"]
    conclusion = run_schema["properties"]["conclusion"]
    assert conclusion["type"] == ["null", "string"]
    assert {"success", "failure", "startup_failure", None} <= set(conclusion["examples"])
    # The docs sample of marketplace_purchase spells the price model `flat-rate`, the
    # description enumerates FREE, FLAT_RATE, PER_UNIT: both are accepted.
    purchase = example("marketplace_purchase", "cancelled")
    assert "flat-rate" in json.dumps(purchase)
    assert compiled("marketplace_purchase").validate(purchase) == []


def test_timestamps_are_accepted_as_strings_and_as_unix_seconds() -> None:
    installation = example("installation", "created")
    assert isinstance(installation["installation"]["created_at"], int)  # as GitHub sent it
    assert compiled("installation").validate(installation) == []
    installation["installation"]["created_at"] = "2019-05-15T15:19:51Z"
    assert compiled("installation").validate(installation) == []
    installation["installation"]["created_at"] = True
    assert refused("installation", installation)


def test_any_action_validates_a_new_one_too() -> None:
    """Each event's actions are merged into one object schema: no `anyOf` at the root,
    `action` a string whose known values are documented as examples."""
    hooks = gen.events(source())
    with_actions = sorted(e for e, h in hooks.items() if h[0].has_action)
    assert len(with_actions) == 62  # 13 events have no actions
    for event in with_actions:
        schema = catalog()[event]["spec"]["schema"]
        assert "anyOf" not in schema and schema["type"] == "object", event
        action = schema["properties"]["action"]
        assert action["type"] == "string", event
        if event != "repository_dispatch":  # its action is the caller's `event_type`
            assert action["examples"] == gen._actions(source(), hooks[event]), event
        assert "Any `action` is accepted" in schema["description"], event
    for found in corpus():
        if found.event in with_actions and found.payload.get("action"):
            payload = {**found.payload, "action": "an_action_github_adds_later"}
            assert compiled(found.event).validate(payload) == [], found.id


def test_formats_are_documentation_not_checks() -> None:
    create = example("create")
    schema = catalog()["create"]["spec"]["schema"]
    assert "format" in json.dumps(schema)
    create["repository"]["created_at"] = "not a date"  # `format: date-time` upstream
    create["repository"]["html_url"] = "not a uri"
    assert compiled("create").validate(create) == []


def test_a_payload_of_another_event_is_refused_only_by_a_conflicting_field() -> None:
    """What tolerance costs: no field is required, so a body of another event passes
    unless a field of the same name has another type. The event is the header's."""
    assert compiled("workflow_run").validate(example("create")) == []
    issue = example("issues", "opened")
    issues = compiled("pull_request").validate({**issue, "number": "1"})
    assert [i.path for i in issues] == ["$.number"]


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
    # The actions merged into one object (issue 11 §1), GitHub's description of each
    # action kept in the root's.
    assert "anyOf" not in schema and schema["type"] == "object"
    assert schema["description"] == (
        "Any `action` is accepted, a new one too; GitHub describes these:\n"
        "- `lost`: The thing-lost action.\n- `made`: The thing-made action."
    )
    assert schema["properties"] == {
        "action": {"examples": ["lost", "made"], "type": "string"},
        "also": {"$ref": "#/$defs/simple-user"},
        "by": {"$ref": "#/$defs/shared-maker"},
        "for": {"$ref": "#/$defs/shared-maker"},
        "user": {"$ref": "#/$defs/simple-user"},
    }
    defs = schema["$defs"]
    # `unused` and the merged action bodies are not carried; the repeated "Maker" is
    # kept once; the inline copy of the simple-user component refers to the component.
    assert sorted(defs) == ["shared-maker", "simple-user"]
    assert defs["shared-maker"]["title"] == "Maker"
    assert "required" not in json.dumps(defs)

    # Sharing changes the size, not the meaning; types are checked, presence is not.
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=False)
    maker = {"login": "octocat", "field_1": "x"}
    assert validator.is_valid({"action": "made", "by": maker, "for": maker})
    assert validator.is_valid({"action": "made", "by": maker, "for": {"field_1": "x"}})
    assert validator.is_valid({"action": "found", "by": maker})
    assert validator.is_valid({})
    assert not validator.is_valid({"action": "lost", "also": {"field_1": 1}})
    assert not validator.is_valid({"action": "lost", "user": {"login": "octocat", "field_2": 2}})
    assert not validator.is_valid({"action": 3, "by": maker})
    assert not validator.is_valid({"action": "made", "for": "octocat"})


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
    assert docs == list(manifests())
    names = [d["metadata"]["name"] for d in docs]
    assert names == sorted(names)
    assert CATALOGS == {"github": "github"}


def test_unknown_catalog_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown catalog 'nope': known catalogs are github"):
        catalog_yaml("nope")
    with pytest.raises(ValueError, match="unknown catalog"):
        load_catalog("nope")


def test_the_strict_baseline_is_githubs_description_as_it_stands() -> None:
    """bench/catalog.py's baseline, `bundle(..., tolerant=False)`: the catalog before
    issue 11, which refused an example the tolerant schema accepts."""
    hooks = gen.events(source())["branch_protection_rule"]
    strict = gen.bundle(source(), hooks, tolerant=False)
    assert [b["$ref"] for b in strict["anyOf"]] == [
        "#/$defs/webhook-branch-protection-rule-created",
        "#/$defs/webhook-branch-protection-rule-deleted",
        "#/$defs/webhook-branch-protection-rule-edited",
    ]
    assert '"required"' in json.dumps(strict) and '"enum"' in json.dumps(strict)
    payload = example("branch_protection_rule", "created")
    validator = jsonschema_rs.Draft202012Validator(strict, validate_formats=False)
    assert not validator.is_valid(payload)
    assert compiled("branch_protection_rule").validate(payload) == []
