"""The EventType resource: a named, versioned event with a JSON Schema and a rule that
recognises it in an incoming request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import jsonschema
import jsonschema.protocols
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator

from .common import Condition, HeaderName, JSONPath, Model, cel
from .resource import Resource

# The drafts both validators we use (jsonschema, jsonschema-rs) implement; users bring
# draft-07 and 2020-12 most often (issue 4). No $schema means 2020-12.
SUPPORTED_DRAFTS: dict[str, type[jsonschema.protocols.Validator]] = {
    "http://json-schema.org/draft-04/schema": jsonschema.Draft4Validator,
    "http://json-schema.org/draft-06/schema": jsonschema.Draft6Validator,
    "http://json-schema.org/draft-07/schema": jsonschema.Draft7Validator,
    "https://json-schema.org/draft/2019-09/schema": jsonschema.Draft201909Validator,
    "https://json-schema.org/draft/2020-12/schema": jsonschema.Draft202012Validator,
}


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Refuse a schema that is not a valid JSON Schema of a supported draft."""
    draft = schema.get("$schema", "https://json-schema.org/draft/2020-12/schema")
    validator = SUPPORTED_DRAFTS.get(str(draft).rstrip("#"))
    if validator is None:
        raise ValueError(
            f"$schema {draft!r} is not supported: use draft-07 "
            "(http://json-schema.org/draft-07/schema#) or 2020-12 "
            "(https://json-schema.org/draft/2020-12/schema)"
        )
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
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
