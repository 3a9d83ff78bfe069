"""The EventFilter resource: reusable rules that decide whether an event goes on."""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import cel
from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from .common import (
    HEADER_NAME_PATTERN,
    Condition,
    Model,
    compile_jsonpath,
    compile_regex,
)
from .resource import Resource


class Operator(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    REGEX_MATCH = "regex_match"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"


META_FIELDS = ("meta:eventType", "meta:sourceIP")
_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)


def check_field(field: str) -> str:
    """A rule's field: an RFC 9535 JSONPath, header:<Name>, meta:eventType or meta:sourceIP."""
    if field.startswith("$"):
        compile_jsonpath(field)
    elif field.startswith("header:"):
        if not _HEADER_NAME.match(field.removeprefix("header:")):
            raise ValueError(f"field {field!r}: header:<Name> needs an HTTP header name")
    elif field not in META_FIELDS:
        raise ValueError(
            f"field {field!r} must be a JSONPath ($.…), header:<Name>, meta:eventType or "
            "meta:sourceIP"
        )
    return field


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or "t" in value


def check_value(operator: Operator, value: Any) -> None:
    """Refuse a value of the wrong kind for its operator (issue 4: at validation)."""
    op = operator.value
    if operator is Operator.EXISTS:
        if value is not None and not isinstance(value, bool):
            raise ValueError("exists takes true, false or no value")
    elif operator in (Operator.IN, Operator.NOT_IN):
        if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
            raise ValueError(f"{op} needs a non-empty list of strings, numbers or booleans")
    elif operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if not (_is_number(value) or _is_time(value)):
            raise ValueError(f"{op} needs a number or an RFC 3339 time, got {value!r}")
    elif operator is Operator.REGEX_MATCH:
        if not isinstance(value, str):
            raise ValueError("regex_match needs a regex string")
        compile_regex(value)
    elif operator in (Operator.STARTS_WITH, Operator.ENDS_WITH):
        if not isinstance(value, str):
            raise ValueError(f"{op} needs a string")
    elif value is None and operator in (Operator.CONTAINS, Operator.NOT_CONTAINS):
        raise ValueError(f"{op} needs a value")
    elif not _is_scalar(value):
        raise ValueError(f"{op} needs a string, number, boolean or null, not a list or object")


# `value` is any JSON value; the CRD keeps it as it is and the model checks its kind.
AnyJSON = Annotated[
    Any,
    WithJsonSchema(
        {"x-kubernetes-preserve-unknown-fields": True, "description": "Compared value."}
    ),
]


class Rule(Model):
    """`{field, operator, value}`, or a nested group `{all: [...]}` / `{any: [...]}`."""

    field: Annotated[str, AfterValidator(check_field)] | None = Field(default=None, max_length=1024)
    operator: Operator | None = None
    value: AnyJSON = None
    all_: list[Rule] | None = Field(default=None, alias="all", min_length=1, max_length=100)
    any_: list[Rule] | None = Field(default=None, alias="any", min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_form(self) -> Rule:
        forms = sum((self.field is not None, self.all_ is not None, self.any_ is not None))
        if forms != 1:
            raise ValueError(
                "a rule is one of {field, operator, value}, {all: [...]} or {any: [...]}"
            )
        if self.field is not None:
            if self.operator is None:
                raise ValueError(f"rule on {self.field!r} needs an operator")
            check_value(self.operator, self.value)
        elif self.operator is not None or self.value is not None:
            raise ValueError("a group (all/any) takes no operator or value")
        return self


def check_cel(expression: str) -> str:
    try:
        cel.compile(expression)
    except ValueError as exc:
        raise ValueError(f"expression does not compile: {exc}") from None
    return expression


class EventFilterSpec(Model):
    match: Literal["all", "any"] = Field(
        default="all", description="all: every rule must match; any: one is enough."
    )
    rules: list[Rule] = Field(default_factory=list, max_length=100)
    expression: Annotated[str, AfterValidator(check_cel)] | None = Field(
        default=None,
        max_length=8192,
        description="CEL over body, headers and meta; must also be true when set.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> EventFilterSpec:
        if not self.rules and self.expression is None:
            raise ValueError("an EventFilter needs rules, an expression, or both")
        return self


class EventFilterStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    evaluated: int = 0
    matched: int = 0
    dropped: int = 0


class EventFilter(Resource):
    kind: Literal["EventFilter"] = "EventFilter"
    spec: EventFilterSpec
    status: EventFilterStatus | None = None
