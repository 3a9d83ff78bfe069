"""Generate the CustomResourceDefinitions from the pydantic models.

pydantic writes JSON Schema with `$ref`, `anyOf` for optionals and `title`s; Kubernetes
wants a *structural* OpenAPI v3 schema: every node typed, no references, no type
unions, recursion unrolled. This module does that translation, adds printer columns,
short names and the `hookline` category, and is the only writer of crds/.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from .common import GROUP, VERSION
from .eventfilter import EventFilterSpec, EventFilterStatus
from .eventtype import EventTypeSpec, EventTypeStatus
from .webhook import WebhookSpec, WebhookStatus

# Formats the API server understands; pydantic's others (uri, ...) are dropped.
_K8S_FORMATS = {"date-time", "int32", "int64", "float", "double", "byte", "date"}
# How deep a recursive model (EventFilter rules nest all/any) is spelt out before the
# rest is kept as-is; the model validates every level regardless.
RECURSION_DEPTH = 3
_READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: list[dict[str, Any]] = field(default_factory=list)


KINDS = [
    Kind(
        kind="Webhook",
        plural="webhooks",
        short_names=["wh", "whk"],
        spec=WebhookSpec,
        status=WebhookStatus,
        description=(
            "An inbound webhook endpoint: its path, how callers authenticate, which event "
            "types and filters apply, where accepted events go, and the upstream GitHub "
            "hook that points at it."
        ),
        columns=[
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Received", "type": "integer", "jsonPath": ".status.deliveries.received"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.deliveries.failed"},
            {
                "name": "Last delivery",
                "type": "date",
                "jsonPath": ".status.deliveries.lastReceivedAt",
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Kind(
        kind="EventFilter",
        plural="eventfilters",
        short_names=["ef", "evf"],
        spec=EventFilterSpec,
        status=EventFilterStatus,
        description="A reusable set of rules that decides whether an event goes on.",
        columns=[
            {"name": "Matched", "type": "integer", "jsonPath": ".status.matched"},
            {"name": "Dropped", "type": "integer", "jsonPath": ".status.dropped"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
    Kind(
        kind="EventType",
        plural="eventtypes",
        short_names=["et", "evt"],
        spec=EventTypeSpec,
        status=EventTypeStatus,
        description=(
            "A named, versioned event with a JSON Schema and a rule that recognises it in "
            "an incoming request."
        ),
        columns=[
            {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
            {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
            {"name": "Invalid", "type": "integer", "jsonPath": ".status.invalid"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
]


class _Structural:
    """Rewrites one pydantic JSON Schema into a structural schema."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = root.get("$defs", {})

    def convert(self, node: dict[str, Any], stack: tuple[str, ...] = ()) -> dict[str, Any]:
        node = copy.deepcopy(node)
        if "$ref" in node:
            name = node.pop("$ref").rsplit("/", 1)[-1]
            if stack.count(name) >= RECURSION_DEPTH:
                return {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "description": "Nested deeper than the schema spells out; hookline checks it.",
                }
            target = {**self.defs[name], **node}  # a sibling description wins
            return self.convert(target, (*stack, name))
        any_of = node.pop("anyOf", None)
        if any_of is not None:
            options = [o for o in any_of if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"a type union cannot be structural: {any_of}")
            merged = {**options[0], **node}
            return self.convert(merged, stack)
        for key in ("title", "examples", "example", "$defs", "propertyNames"):
            node.pop(key, None)
        if node.get("default") is None:
            node.pop("default", None)
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            # JSON Schema's numeric exclusive bound is OpenAPI 3.0's boolean flag.
            if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
                node[limit] = node[bound]
                node[bound] = True
        if "const" in node:
            node["enum"] = [node.pop("const")]
        if "enum" in node and "type" not in node:
            node["type"] = "string"
        if node.get("format") not in _K8S_FORMATS:
            node.pop("format", None)
        if node.get("type") == "object":
            pattern_properties = node.pop("patternProperties", None)
            if pattern_properties:
                # Structural schemas have no patternProperties: keep the value type;
                # the model checks the key pattern.
                (node["additionalProperties"],) = pattern_properties.values()
            if node.get("additionalProperties") is False:
                node.pop("additionalProperties")
            if "properties" in node:
                node["properties"] = {
                    k: self.convert(v, stack) for k, v in node["properties"].items()
                }
                node.pop("additionalProperties", None)
            elif isinstance(node.get("additionalProperties"), dict):
                node["additionalProperties"] = self.convert(node["additionalProperties"], stack)
        if node.get("type") == "array" and "items" in node:
            node["items"] = self.convert(node["items"], stack)
        if (
            "type" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and not node.get("x-kubernetes-int-or-string")
        ):
            # pydantic's `Any`: keep whatever JSON the user wrote.
            node["x-kubernetes-preserve-unknown-fields"] = True
        return node


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _Structural(raw).convert(raw)


def build_crd(kind: Kind) -> dict[str, Any]:
    """One CustomResourceDefinition as a dict (pure: the same models give the same CRD)."""
    spec = openapi_schema(kind.spec)
    status = openapi_schema(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "hookline",
                "app.kubernetes.io/part-of": "hookline",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": kind.short_names,
                "categories": ["hookline"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_files() -> dict[str, str]:
    """File name -> YAML text of every CRD, exactly as committed in crds/."""
    header = "# Generated by `hookline crds` from hookline/api; do not edit by hand.\n"
    return {
        f"{kind.plural}.{GROUP}.yaml": header
        + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100, allow_unicode=True)
        for kind in KINDS
    }
