"""Check objects against the generated CRDs the way the API server would.

Used by the CRD tests and, later, by the KMock fixtures so that every write the
operator makes is validated against the CRD schema (DESIGN: make the emulator strict).
It applies the openAPIV3Schema (OpenAPI 3.0 semantics, i.e. JSON Schema draft 4 with
boolean exclusive bounds), the CEL `x-kubernetes-validations` rules, and list-map key
uniqueness; and it checks that a schema is structural.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cel
import jsonschema


def openapi_schema(crd: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Violations of Kubernetes' structural-schema rules (the subset we can produce)."""
    problems = []
    for key in ("$ref", "$defs", "definitions", "patternProperties", "oneOf", "anyOf", "allOf"):
        if key in schema:
            problems.append(f"{path or '/'}: {key} is not allowed")
    if (
        "type" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and not schema.get("x-kubernetes-int-or-string")
    ):
        problems.append(f"{path or '/'}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    if schema.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false")
    if schema.get("x-kubernetes-list-type") == "map":
        item = schema.get("items", {})
        for key in schema.get("x-kubernetes-list-map-keys", []):
            if key not in item.get("required", []) and "default" not in item.get(
                "properties", {}
            ).get(key, {}):
                problems.append(f"{path}: list-map key {key} must be required")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        problems += structural_problems(schema["items"], f"{path}[]")
    return problems


def _walk(
    schema: dict[str, Any], value: Any, path: str
) -> Iterator[tuple[dict[str, Any], Any, str]]:
    yield schema, value, path
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _walk(sub, value[name], f"{path}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                yield from _walk(extra, item, f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _walk(schema["items"], item, f"{path}[{i}]")


def validate_object(crd: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Every way `obj` would be refused by an API server serving `crd`; empty if none."""
    schema = openapi_schema(crd)
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in jsonschema.Draft4Validator(schema).iter_errors(obj)
    ]
    for node, value, path in _walk(schema, obj, ""):
        for rule in node.get("x-kubernetes-validations", []):
            try:
                ok = cel.evaluate(rule["rule"], cel.Context(variables={"self": value}))
            except Exception as exc:  # a rule that cannot run is a broken CRD
                errors.append(f"{path}: rule {rule['rule']!r} failed to run: {exc}")
                continue
            if ok is not True:
                errors.append(f"{path}: {rule.get('message', rule['rule'])}")
        if node.get("x-kubernetes-list-type") == "map" and isinstance(value, list):
            keys = node.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for item in value:
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    errors.append(f"{path}: duplicate entry {dict(zip(keys, key, strict=True))}")
                seen.add(key)
    return errors
