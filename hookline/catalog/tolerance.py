"""What the GitHub catalog's schemas check, and what they deliberately do not (issue 11 §1).

GitHub never retries a delivery the receiver answers 422: a schema that refuses a real
payload loses that event. GitHub's description (`@octokit/openapi-webhooks`) is of
today's github.com payloads, so it refuses older and newer ones alike: it requires
fields GitHub added later (`repository.has_discussions`, `release.immutable`, ...),
enumerates the values it knows today (`price_model`, each event's `action`), and types
some timestamps as strings that GitHub has sent as Unix seconds. Of the 329 payloads
`@octokit/webhooks-examples` publishes, 114 were refused.

So, applied by the generator to every cleaned schema (`tolerate`):

- kept: `type` (and the shape of objects and arrays: `properties`, `items`,
  `additionalProperties` schemas, `anyOf`/`allOf`) - a body whose `repository` is a
  number is still not a `push`;
- dropped: `required`, `dependentRequired`, `enum`, `const`, numeric and length bounds,
  `pattern`, `uniqueItems`: each refuses a payload GitHub sends once it adds a field
  or a value. An `enum`'s or `const`'s values become `examples`, so the schema still
  documents them, and give the `type` when the source has none;
- a `format: date-time` string also accepts an integer (Unix seconds): GitHub sends
  push's `repository.created_at` so, and has sent `installation.created_at` so, which
  its description types as a string only;
- `allOf: [X]` typed `null` only (the source's spelling of "X or null" in a few
  places, which nothing can satisfy) becomes `anyOf: [X, null]`.

And for an event with actions, the actions' schemas are merged into one object schema
(`merge`): any action validates, one GitHub adds later included, and an error names the
field (`$.repository: 5 is not of type "object"`) instead of "not valid under any of
the given schemas" at the root.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["merge", "tolerate"]

# Keywords that refuse a payload GitHub may send tomorrow: dropped.
_REFUSING = frozenset(
    {
        "dependentRequired",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxContains",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minContains",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
        "pattern",
        "required",
        "uniqueItems",
    }
)
# Their values are kept as `examples`.
_VALUES = frozenset({"const", "enum"})
# A subschema whose meaning a relaxation would turn around (`not: {enum: [x]}` without
# its enum refuses everything): the source has none; refuse rather than guess.
_INVERTING = frozenset({"not", "if", "then", "else", "contains"})
_SUBSCHEMA = frozenset({"additionalProperties", "items", "propertyNames", "unevaluatedItems"})
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP = frozenset({"$defs", "dependentSchemas", "patternProperties", "properties"})

_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: True is an int in Python
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (type(None), "null"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    raise ValueError(f"not JSON data: {value!r}")


def _types(node: dict[str, Any]) -> list[str] | None:
    found = node.get("type")
    if found is None:
        return None
    return [found] if isinstance(found, str) else list(found)


def _set_types(node: dict[str, Any], types: list[str]) -> None:
    unique = sorted(set(types))
    node["type"] = unique[0] if len(unique) == 1 else unique


def _unique(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out: list[Any] = []
    for value in values:
        key = _key(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tolerate(node: Any) -> Any:
    """A copy of a cleaned (plain 2020-12, key-sorted) schema that checks types only."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise ValueError(f"not a schema: {_key(node)[:80]}")
    out: dict[str, Any] = {}
    values: list[Any] = []
    for key, value in node.items():
        if key in _INVERTING:
            raise ValueError(f"{key}: relaxing inside it would change what it means")
        if key in _REFUSING:
            continue
        if key in _VALUES:
            values.extend(value if key == "enum" else [value])
        elif key == "examples":
            values.extend(value)
        elif key in _SUBSCHEMA:
            out[key] = tolerate(value)
        elif key in _SUBSCHEMA_LIST:
            out[key] = [tolerate(item) for item in value]
        elif key in _SUBSCHEMA_MAP:
            out[key] = {name: tolerate(item) for name, item in value.items()}
        else:
            out[key] = value
    if values:
        out["examples"] = _unique(values)
        scalars = [_json_type(v) for v in values if not isinstance(v, list | dict)]
        if scalars and "type" not in out and not any(k in out for k in ("$ref", "allOf", "anyOf")):
            _set_types(out, scalars)
    types = _types(out)
    if out.get("format") == "date-time" and types is not None and "string" in types:
        _set_types(out, [*types, "integer"])  # Unix seconds (installation.created_at)
    if "allOf" in out and types == ["null"]:
        # `{allOf: [X], type: [null]}` admits nothing (X is an object): "X or null".
        del out["type"]
        rest = {k: out.pop(k) for k in list(out) if k in ("description", "readOnly", "title")}
        out = {"anyOf": [out, {"type": "null"}], **rest}
    return {key: out[key] for key in sorted(out)}


# --- merging the actions of one event --------------------------------------------------

# What a structural merge understands; anything else is merged as an `anyOf`.
_MERGEABLE = frozenset(
    {
        "additionalProperties",
        "default",
        "deprecated",
        "description",
        "examples",
        "format",
        "items",
        "properties",
        "readOnly",
        "title",
        "type",
    }
)
# Documentation: kept where every variant says the same.
_ANNOTATIONS = frozenset({"default", "deprecated", "description", "format", "readOnly", "title"})


def _variants(schemas: list[Any]) -> list[Any]:
    """The distinct alternatives, a bare `anyOf` (only annotations beside it) flattened."""
    found: list[Any] = []
    for schema in schemas:
        if (
            isinstance(schema, dict)
            and "anyOf" in schema
            and set(schema) - _ANNOTATIONS == {"anyOf"}
        ):
            found.extend(_variants(schema["anyOf"]))
        else:
            found.append(schema)
    return _unique(found)


def _accepts_anything(schema: Any) -> bool:
    return schema is True or (isinstance(schema, dict) and not set(schema) - _ANNOTATIONS)


def merge(schemas: list[Any]) -> Any:
    """One schema that accepts what any of `schemas` (tolerated) accepts, and checks
    each field's type as the variants that describe the field say.

    Plain object/array/scalar schemas merge field by field: the union of their types
    and properties, a property's schema merged from the variants that have it (an
    action that does not describe `changes` does not send one). Variants that are a
    `$ref` or a combination stay alternatives, under one `anyOf`.
    """
    variants = _variants(schemas)
    if not variants:
        raise ValueError("nothing to merge")
    if len(variants) == 1:
        return variants[0]
    if any(_accepts_anything(v) for v in variants):
        return {}
    if not all(isinstance(v, dict) and set(v) <= _MERGEABLE for v in variants):
        return {"anyOf": variants}
    out: dict[str, Any] = {}
    if all("type" in v for v in variants):
        _set_types(out, [t for v in variants for t in _types(v) or []])
    names = sorted({name for v in variants for name in v.get("properties", {})})
    if names:
        out["properties"] = {
            name: merge(
                [v["properties"][name] for v in variants if name in v.get("properties", {})]
            )
            for name in names
        }
    items = [v["items"] for v in variants if "items" in v]
    if items:
        out["items"] = merge(items)
    extra = [v["additionalProperties"] for v in variants if "additionalProperties" in v]
    if extra and len(extra) == len(variants):
        # Only where every variant has it: another's unlisted fields may be anything.
        out["additionalProperties"] = merge(extra)
    examples = _unique([e for v in variants for e in v.get("examples", [])])
    if examples:
        out["examples"] = examples
    for keyword in _ANNOTATIONS:
        said = _unique([v.get(keyword) for v in variants])
        if len(said) == 1 and said[0] is not None:
            out[keyword] = said[0]
    return {key: out[key] for key in sorted(out)}
