"""The EventType resource: a named, versioned event with a JSON Schema and a rule that
recognises it in an incoming request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import jsonschema_rs
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator

from .common import Condition, HeaderName, JSONPath, Model, cel
from .resource import Resource

# The drafts jsonschema-rs implements; users bring draft-07 and 2020-12 most often
# (issue 4). No $schema means 2020-12.
DEFAULT_DRAFT = "https://json-schema.org/draft/2020-12/schema"
SUPPORTED_DRAFTS: dict[str, Any] = {
    "http://json-schema.org/draft-04/schema": jsonschema_rs.Draft4Validator,
    "http://json-schema.org/draft-06/schema": jsonschema_rs.Draft6Validator,
    "http://json-schema.org/draft-07/schema": jsonschema_rs.Draft7Validator,
    "https://json-schema.org/draft/2019-09/schema": jsonschema_rs.Draft201909Validator,
    "https://json-schema.org/draft/2020-12/schema": jsonschema_rs.Draft202012Validator,
}


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def compile_schema(schema: dict[str, Any]) -> Any:
    """A jsonschema-rs validator for `schema`; ValueError says what is wrong with it.

    The one place schemas are checked and compiled: the model (at validation, so
    `hookline validate` and the operator refuse what the receiver could not use) and
    the receiver (once per configuration load) call it alike.
    """
    draft = str(schema.get("$schema", DEFAULT_DRAFT)).rstrip("#")
    validator_cls = SUPPORTED_DRAFTS.get(draft)
    if validator_cls is None:
        raise ValueError(
            f"$schema {schema.get('$schema')!r} is not supported: use draft-07 "
            "(http://json-schema.org/draft-07/schema#) or 2020-12 "
            "(https://json-schema.org/draft/2020-12/schema)"
        )
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(p) for p in exc.instance_path) or "(root)"
        raise ValueError(f"not a valid JSON Schema at {where}: {_first_line(exc)}") from None
    try:
        # offline: a $ref to a URL is refused, never fetched while loading configuration.
        # validate_formats=False: `format` is an annotation (the 2020-12 default, allowed
        # by draft-07), so every draft behaves alike and a draft-07 `format: uri` does
        # not reject GitHub's templated URLs.
        return validator_cls(schema, validate_formats=False, offline=True)
    except jsonschema_rs.ValidationError as exc:
        raise ValueError(f"schema does not compile: {_first_line(exc)}") from None


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Refuse a schema the receiver could not compile (issue 4: bad input is refused
    at validation, with the field path)."""
    compile_schema(schema)
    return schema


JSONSchema = Annotated[
    dict[str, Any],
    AfterValidator(check_schema),
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "JSON Schema (draft-07 or 2020-12) the event body must satisfy.",
        }
    ),
]

Scalar = Annotated[
    str | int | float | bool,
    WithJsonSchema(
        {"x-kubernetes-preserve-unknown-fields": True, "description": "string, number or boolean"}
    ),
]


class HeaderMatch(Model):
    name: HeaderName
    value: str = Field(max_length=1024)


class BodyMatch(Model):
    path: JSONPath
    value: Scalar


class EventTypeMatch(Model):
    """How a request is recognised as this type: a header, a body field, or both."""

    model_config = ConfigDict(
        json_schema_extra=cel("has(self.header) || has(self.body)", "set header, body or both")
    )

    header: HeaderMatch | None = None
    body: BodyMatch | None = None

    @model_validator(mode="after")
    def _something(self) -> EventTypeMatch:
        if self.header is None and self.body is None:
            raise ValueError("set header, body or both")
        return self


TYPE_PATTERN = r"^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$"
VERSION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"


class EventTypeSpec(Model):
    type: str = Field(pattern=TYPE_PATTERN, max_length=253, description="e.g. github.workflow_run")
    version: str = Field(default="v1", pattern=VERSION_PATTERN, max_length=63)
    description: str = Field(default="", max_length=4096)
    match: EventTypeMatch
    schema_: JSONSchema | None = Field(default=None, alias="schema")
    deprecated: bool = False


class EventTypeStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    validated: int = 0
    invalid: int = 0
    last_validation_error: str | None = None
    last_validation_error_at: datetime | None = None


class EventType(Resource):
    kind: Literal["EventType"] = "EventType"
    spec: EventTypeSpec
    status: EventTypeStatus | None = None
