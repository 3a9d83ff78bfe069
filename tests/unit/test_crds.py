"""The committed CRDs are what the models generate, valid Kubernetes objects with
structural schemas, and every example resource passes them as an API server would."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hookline.api.crd import KINDS, crd_files
from hookline.api.manifests import manifest_files
from hookline.cli import main
from tests.conftest import EXAMPLES, ROOT
from tests.support.crd_schema import openapi_schema, structural_problems, validate_object

CRD_DIRS = [ROOT / "crds", ROOT / "charts/hookline/crds"]


def _crds() -> dict[str, dict[str, Any]]:
    return {
        doc["spec"]["names"]["kind"]: doc
        for doc in (yaml.safe_load(text) for text in crd_files().values())
    }


@pytest.mark.parametrize("directory", CRD_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_crds_equal_the_committed_ones(directory: Path) -> None:
    generated = crd_files()
    committed = {p.name: p.read_text() for p in directory.glob("*.yaml")}
    assert committed == generated, "run `hookline crds` and commit the result"


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_crd_is_a_valid_kubernetes_object(kind: str) -> None:
    crd = _crds()[kind]
    kubernetes_validate.validate(crd, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_crd_schema_is_structural(kind: str) -> None:
    schema = openapi_schema(_crds()[kind])
    assert structural_problems(schema) == []


def test_structural_check_catches_what_kubernetes_refuses() -> None:
    # The check itself must be able to fail, or the test above proves nothing.
    bad = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"type": "object", "additionalProperties": False},
            "c": {"$ref": "#/$defs/X"},
        },
    }
    problems = structural_problems(bad)
    assert len(problems) == 5, problems


def test_crd_names_columns_and_status() -> None:
    crds = _crds()
    webhook = crds["Webhook"]["spec"]
    assert webhook["group"] == "hookline.dev"
    assert webhook["names"]["categories"] == ["hookline"]
    assert "wh" in webhook["names"]["shortNames"]
    version = webhook["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "URL",
        "Ready",
        "Received",
        "Failed",
        "Last delivery",
        "Age",
    ]
    columns = {
        k: [c["name"] for c in crds[k]["spec"]["versions"][0]["additionalPrinterColumns"]]
        for k in ("EventFilter", "EventType")
    }
    assert columns == {
        "EventFilter": ["Matched", "Dropped", "Ready", "Age"],
        "EventType": ["Type", "Version", "Invalid", "Ready", "Age"],
    }
    for kind in crds.values():
        status = openapi_schema(kind)["properties"]["status"]["properties"]
        assert {"observedGeneration", "conditions"} <= set(status)
        condition = status["conditions"]["items"]
        assert set(condition["required"]) == {"type", "status", "reason", "lastTransitionTime"}


def _example_resources() -> list[dict[str, Any]]:
    docs = []
    for path in manifest_files([EXAMPLES]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"].startswith("hookline.dev/"):
                docs.append(doc)
    return docs


@pytest.mark.parametrize(
    "doc", _example_resources(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_every_example_passes_its_crd(doc: dict[str, Any]) -> None:
    assert validate_object(_crds()[doc["kind"]], doc) == []


def _webhook(**spec: Any) -> dict[str, Any]:
    base = {"auth": {"type": "github", "secretRef": {"name": "s"}}}
    return {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": "w"},
        "spec": {**base, **spec},
    }


ADMISSION_REFUSALS = [
    (
        _webhook(
            github={"repository": "a/b", "organization": "a", "tokenSecretRef": {"name": "t"}}
        ),
        "exactly one of repository or organization",
    ),
    (
        _webhook(github={"tokenSecretRef": {"name": "t"}}),
        "exactly one of repository or organization",
    ),
    (_webhook(github={"repository": "a/b"}), "exactly one of tokenSecretRef or app"),
    (
        _webhook(
            github={
                "repository": "a/b",
                "tokenSecretRef": {"name": "t"},
                "app": {"appID": 1, "installationID": 2, "privateKeySecretRef": {"name": "k"}},
            }
        ),
        "exactly one of tokenSecretRef or app",
    ),
    (
        _webhook(destinations=[{"name": "d", "url": "http://a", "service": {"name": "s"}}]),
        "exactly one of url or service",
    ),
    (
        _webhook(destinations=[{"name": "d", "url": "http://a"}, {"name": "d", "url": "http://b"}]),
        "duplicate entry",
    ),
    (
        _webhook(
            destinations=[
                {"name": "d", "url": "http://a", "retry": {"maxAttempts": 3, "schedule": ["1s"]}}
            ]
        ),
        "alternatives",
    ),
    (
        _webhook(
            auth={"type": "hmac", "secretRef": {"name": "s"}},
            github={"repository": "a/b", "tokenSecretRef": {"name": "t"}},
        ),
        "needs auth.type github",
    ),
    (
        _webhook(
            destinations=[
                {
                    "name": "d",
                    "url": "http://a",
                    "circuitBreaker": {"coolDown": "10m", "maxCoolDown": "5m"},
                }
            ]
        ),
        "coolDown must not be longer than maxCoolDown",
    ),
    (
        _webhook(
            destinations=[{"name": "d", "url": "http://a", "circuitBreaker": {"failureRate": 0}}]
        ),
        "failureRate",
    ),
    (
        _webhook(
            destinations=[{"name": "d", "url": "http://a", "circuitBreaker": {"window": "1 min"}}]
        ),
        "window",
    ),
    (_webhook(auth={"type": "oauth"}), "auth.type"),
    (_webhook(retention="30 days"), "retention"),
    (_webhook(eventTypes=[{"name": "a", "type": "b"}]), "by name or by type"),
]


@pytest.mark.parametrize(("doc", "words"), ADMISSION_REFUSALS)
def test_crd_refuses_at_admission_what_the_models_refuse(doc: dict[str, Any], words: str) -> None:
    errors = validate_object(_crds()["Webhook"], doc)
    assert any(words in e for e in errors), errors


def test_crd_keeps_nested_filter_rules() -> None:
    doc = {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": "EventFilter",
        "metadata": {"name": "f"},
        "spec": {
            "rules": [
                {
                    "any": [
                        {
                            "all": [
                                {
                                    "any": [
                                        {
                                            "all": [
                                                {"field": "$.a", "operator": "equals", "value": 1}
                                            ]
                                        }
                                    ]
                                }
                            ]
                        }
                    ]
                }
            ]
        },
    }
    assert validate_object(_crds()["EventFilter"], doc) == []


def test_crds_check_fails_and_shows_the_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["crds", "--out", str(tmp_path)]) == 0
    assert main(["crds", "--check", "--out", str(tmp_path)]) == 0
    target = tmp_path / "webhooks.hookline.dev.yaml"
    stale = yaml.safe_load(target.read_text())
    stale_copy = copy.deepcopy(stale)
    stale_copy["spec"]["names"]["shortNames"] = ["old"]
    target.write_text(yaml.safe_dump(stale_copy, sort_keys=False))
    capsys.readouterr()
    assert main(["crds", "--check", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "+    - wh" in out and "out of date" in err
