"""hookline/catalog/tolerance.py, piece by piece (issue 11 §1): the catalog's schemas
check types, never presence or values, and an event's actions merge into one object."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from hookline.catalog.tolerance import merge, tolerate


def _valid(schema: Any, instance: Any) -> bool:
    return bool(jsonschema_rs.Draft202012Validator(schema).is_valid(instance))


def test_tolerate_keeps_types_and_drops_what_refuses_later_payloads() -> None:
    strict = {
        "type": "object",
        "required": ["state", "count"],
        "properties": {
            "state": {"type": "string", "enum": ["open", "closed"]},
            "count": {"type": "integer", "minimum": 0, "maximum": 10, "multipleOf": 2},
            "name": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "kind": {"const": "bot"},
            "level": {"enum": ["low", 1, None]},
        },
    }
    tolerant = tolerate(strict)
    assert tolerant == {
        "properties": {
            "count": {"type": "integer"},
            "kind": {"examples": ["bot"], "type": "string"},
            "level": {"examples": ["low", 1, None], "type": ["integer", "null", "string"]},
            "name": {"type": "string"},
            "state": {"examples": ["open", "closed"], "type": "string"},
            "tags": {"items": {"type": "string"}, "type": "array"},
        },
        "type": "object",
    }
    later = {"state": "merged", "count": 13, "name": "bbbb", "tags": [], "kind": "user"}
    assert not _valid(strict, later) and _valid(tolerant, later)
    assert _valid(tolerant, {})
    assert not _valid(tolerant, {"count": "13"})
    assert not _valid(tolerant, {"tags": [1]})
    assert not _valid(tolerant, {"level": True})


def test_a_date_time_also_accepts_unix_seconds() -> None:
    # GitHub sent installation.created_at as 1557933591; its description says a string.
    assert tolerate({"type": "string", "format": "date-time"}) == {
        "format": "date-time",
        "type": ["integer", "string"],
    }
    assert tolerate({"type": ["string", "null"], "format": "date-time"})["type"] == [
        "integer",
        "null",
        "string",
    ]
    assert tolerate({"type": "string", "format": "uri"}) == {"format": "uri", "type": "string"}


def test_all_of_typed_null_only_means_or_null() -> None:
    # The source's repository_advisory.author: nothing satisfies `object and null`.
    odd = {"allOf": [{"$ref": "#/$defs/user"}], "description": "The author.", "type": ["null"]}
    assert tolerate(odd) == {
        "anyOf": [{"allOf": [{"$ref": "#/$defs/user"}]}, {"type": "null"}],
        "description": "The author.",
    }


def test_tolerate_refuses_what_relaxing_would_turn_around() -> None:
    with pytest.raises(ValueError, match="not: relaxing inside it"):
        tolerate({"not": {"enum": ["x"]}})
    assert tolerate(True) is True
    # Values that are arrays or objects document, but do not name, a type.
    assert tolerate({"enum": [[1], [2]]}) == {"examples": [[1], [2]]}


def test_merge_unions_fields_and_types() -> None:
    created = {
        "type": "object",
        "description": "created",
        "properties": {
            "action": {"type": "string", "examples": ["created"]},
            "n": {"type": "integer"},
        },
    }
    edited = {
        "type": "object",
        "description": "edited",
        "properties": {
            "action": {"type": "string", "examples": ["edited"]},
            "n": {"type": ["integer", "null"]},
            "changes": {"type": "object", "properties": {"from": {"type": "string"}}},
        },
    }
    merged = merge([created, edited])
    assert merged == {
        "properties": {
            "action": {"examples": ["created", "edited"], "type": "string"},
            "changes": {"properties": {"from": {"type": "string"}}, "type": "object"},
            "n": {"type": ["integer", "null"]},
        },
        "type": "object",
    }
    assert _valid(merged, {"action": "deleted", "n": None})
    assert not _valid(merged, {"changes": {"from": 1}})


def test_merge_keeps_references_and_combinations_as_alternatives() -> None:
    ref = {"$ref": "#/$defs/user"}
    assert merge([ref, ref]) == ref
    assert merge([ref, {"anyOf": [ref, {"type": "null"}]}]) == {"anyOf": [ref, {"type": "null"}]}
    assert merge([ref, {"type": "string"}]) == {"anyOf": [ref, {"type": "string"}]}
    # A variant that says nothing about a field accepts anything there.
    assert merge([{"type": "string"}, {"description": "anything"}]) == {}
    # additionalProperties only where every variant has it: another's may be anything.
    open_map = {"type": "object", "additionalProperties": {"type": "string"}}
    assert merge([open_map, {"type": "object", "properties": {"a": {"type": "integer"}}}]) == {
        "properties": {"a": {"type": "integer"}},
        "type": "object",
    }
    assert merge([open_map, {**open_map, "title": "Map"}]) == {**open_map}
    with pytest.raises(ValueError, match="nothing to merge"):
        merge([])
