"""GitHub's published REST description (`@octokit/openapi`, pinned in
tests/data/github-openapi/SOURCE.json) as a validator of requests and answers (issue 12).

The fake GitHub API checks every request body the operator sends, and every answer it
gives itself, against the operation GitHub documents for that method and path. The
description is OpenAPI 3.0 (`nullable`, not JSON Schema's null type): it is turned into
JSON Schema draft 4 once per process, $refs left to the `referencing` registry.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.conftest import ROOT

SOURCE = json.loads((ROOT / "tests/data/github-openapi/SOURCE.json").read_text())
BASE = "urn:github-openapi"
# Statuses GitHub answers on any operation whether or not it lists them there (auth,
# rate limits, outages), with its basic-error body; and 304 for a conditional GET.
GENERIC = {304, 401, 403, 429, 500, 502, 503}


def description_path(name: str = "api.github.com") -> Path:
    root = os.environ.get("HOOKLINE_TEST_GITHUB_OPENAPI")
    if not root:
        raise RuntimeError(
            "HOOKLINE_TEST_GITHUB_OPENAPI is not set: run the tests with ./scripts/test.sh "
            f"(scripts/test-data.sh installs {SOURCE['package']}@{SOURCE['openapi_version']})"
        )
    return Path(root) / "generated" / f"{name}.json"


def _draft4(node: Any) -> Any:
    """OpenAPI 3.0 schema keywords as JSON Schema draft 4 (in place)."""
    if isinstance(node, list):
        for item in node:
            _draft4(item)
        return node
    if not isinstance(node, dict):
        return node
    for value in node.values():
        _draft4(value)
    if node.pop("nullable", False) is True:
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        elif "$ref" in node or any(k in node for k in ("allOf", "oneOf", "anyOf")):
            inner = {k: node.pop(k) for k in list(node) if k in ("$ref", "allOf", "oneOf", "anyOf")}
            node["anyOf"] = [inner, {"type": "null"}]
    return node


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # as in the description: /repos/{owner}/{repo}/hooks


class Description:
    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = _draft4(json.loads(path.read_text()))
        self.registry: Registry[Any] = Registry().with_resource(
            BASE, DRAFT4.create_resource(self.doc)
        )
        self._routes = [
            (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in self.doc["paths"]
        ]
        self._validators: dict[str, Draft4Validator] = {}

    def operation(self, method: str, path: str) -> Operation | None:
        # The most literal template first: /hooks/{hook_id}/pings before /{a}/{b}/{c}.
        found = [t for rx, t in self._routes if rx.match(path)]
        found = [t for t in found if method.lower() in self.doc["paths"][t]]
        if not found:
            return None
        return Operation(method.lower(), min(found, key=lambda t: t.count("{")))

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
            target: Any = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _validate(self, pointer: str, value: Any) -> list[str]:
        validator = self._validators.get(pointer)
        if validator is None:
            validator = Draft4Validator({"$ref": f"{BASE}#/{pointer}"}, registry=self.registry)
            self._validators[pointer] = validator
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:200]}"
            for e in validator.iter_errors(value)
        ]

    def check_request(self, op: Operation, body: Any) -> list[str]:
        spec = self.doc["paths"][op.template][op.method]
        request = self._resolve(spec.get("requestBody"))
        if request is None:
            return [] if body is None else ["a body where the operation takes none"]
        if body is None:
            return ["a required body is missing"] if request.get("required") else []
        pointer = _pointer(
            "paths", op.template, op.method, "requestBody", "content", "application/json", "schema"
        )
        if "$ref" in spec["requestBody"]:
            return ["requestBody by $ref is not supported here"]
        return self._validate(pointer, body)

    def check_response(self, op: Operation, status: int, body: Any) -> list[str]:
        spec = self.doc["paths"][op.template][op.method]
        responses = spec.get("responses", {})
        if str(status) not in responses:
            if status not in GENERIC:
                return [f"status {status} is not documented for {op.method.upper()} {op.template}"]
            if body is None:
                return []
            return self._validate(_pointer("components", "schemas", "basic-error"), body)
        response = self._resolve(responses[str(status)])
        content = (response.get("content") or {}).get("application/json")
        if content is None:
            return [] if body is None else [f"a body on a {status}, which has none"]
        ref = responses[str(status)].get("$ref")
        if ref:
            pointer = ref[2:] + "/" + _pointer("content", "application/json", "schema")
        else:
            pointer = _pointer(
                "paths",
                op.template,
                op.method,
                "responses",
                str(status),
                "content",
                "application/json",
                "schema",
            )
        return self._validate(pointer, body)


@cache
def description(name: str = "api.github.com") -> Description:
    """Loaded once per process: the file is 13 MB."""
    return Description(description_path(name))
