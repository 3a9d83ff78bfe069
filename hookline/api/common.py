"""Building blocks shared by the three resources: base model, durations, references,
conditions, and the syntax checks (JSONPath, regex, CIDR) that all of them use.

The pydantic models in this package are the one source of truth: the CRDs in crds/ are
generated from them (hookline.api.crd), and the operator and receiver parse every
resource through them.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

import jsonpath_rfc9535
import re2
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "hookline.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Model(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields refused.

    Refusing unknown fields catches a misspelt key (``maxBodyByte``) at validation
    instead of silently ignoring it, the same as `kubectl apply --validate=strict`.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(*rule_message: str) -> dict[str, Any]:
    """CRD `x-kubernetes-validations` (CEL) for a model: pairs of rule, message.

    These run at admission in the API server, so `kubectl apply` refuses the mistake
    before any controller sees it; the model validators check the same in Python.
    """
    pairs = zip(rule_message[::2], rule_message[1::2], strict=True)
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in pairs]}


# --- durations -----------------------------------------------------------------------

# Go / metav1.Duration syntax ("1s", "1h30m", "720h"), the form Kubernetes users already
# write in Flux intervals and probe timeouts.
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$"


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration; raise ValueError with a message a person can act on."""
    if not isinstance(text, str) or not text:
        raise ValueError("must be a duration such as 30s, 5m or 72h")
    pos = 0
    total = 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        pos = part.end()
    if pos != len(text):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (ns, us, ms, s, m, h), "
            "e.g. 30s, 5m, 72h or 1h30m"
        )
    return timedelta(seconds=total)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _schema_pattern(pattern: str) -> Any:
    """Put a pattern into the generated CRD schema only.

    The API server enforces it at admission; in Python the AfterValidator beside it
    gives the friendlier message ("'5 minutes' is not a duration ...") instead of
    pydantic's "String should match pattern".
    """
    return Field(json_schema_extra={"pattern": pattern})


Duration = Annotated[str, AfterValidator(_check_duration), _schema_pattern(DURATION_PATTERN)]


def _positive_duration(text: str) -> str:
    if parse_duration(text) <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return text


PositiveDuration = Annotated[Duration, AfterValidator(_positive_duration)]


# --- syntax checks -------------------------------------------------------------------


def _re2_options() -> re2.Options:
    options = re2.Options()
    # RE2 otherwise prints every parse error to stderr through absl; the error is
    # reported to the user through the validation message instead.
    options.log_errors = False
    return options


RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> Any:
    """Compile with RE2, the linear-time engine the receiver uses (issue 4).

    Validation uses the same engine as evaluation, so a pattern that passes here can
    never fail later (PCRE-only syntax such as look-behind is refused up front).
    """
    try:
        return re2.compile(pattern, options=RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise ValueError(f"regex {pattern!r} does not compile: {detail}") from None


def _check_regex(pattern: str) -> str:
    compile_regex(pattern)
    return pattern


Regex = Annotated[str, AfterValidator(_check_regex)]


@lru_cache(maxsize=4096)
def compile_jsonpath(path: str) -> jsonpath_rfc9535.JSONPathQuery:
    """Compile an RFC 9535 JSONPath query; raise ValueError naming the problem."""
    try:
        return jsonpath_rfc9535.compile(path)
    except jsonpath_rfc9535.JSONPathError as exc:
        raise ValueError(f"JSONPath {path!r} does not parse: {exc}") from None


def _check_jsonpath(path: str) -> str:
    if not path.startswith("$"):
        raise ValueError(f"JSONPath {path!r} must start with $ (e.g. $.action)")
    compile_jsonpath(path)
    return path


JSONPath = Annotated[str, AfterValidator(_check_jsonpath), Field(min_length=1)]


def _check_cidr(text: str) -> str:
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a CIDR such as 10.0.0.0/8: {exc}") from None
    return text


CIDR = Annotated[str, AfterValidator(_check_cidr)]


def pattern_check(pattern: str, what: str, max_length: int) -> Any:
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if len(text) > max_length or not compiled.match(text):
            raise ValueError(f"{text!r} is not {what}")
        return text

    return AfterValidator(check)


def _token_schema(pattern: str, max_length: int) -> Any:
    return Field(json_schema_extra={"pattern": pattern, "maxLength": max_length})


# RFC 9110 token: what an HTTP header name may contain.
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HeaderName = Annotated[
    str,
    pattern_check(HEADER_NAME_PATTERN, "an HTTP header name", 256),
    _token_schema(HEADER_NAME_PATTERN, 256),
]

# A Kubernetes object name (DNS-1123 subdomain) and a DNS-1123 label.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[
    str,
    pattern_check(NAME_PATTERN, "a Kubernetes name (lowercase letters, digits, '-', '.')", 253),
    _token_schema(NAME_PATTERN, 253),
]
LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LabelName = Annotated[
    str,
    pattern_check(LABEL_PATTERN, "a DNS label (lowercase letters, digits and '-')", 63),
    _token_schema(LABEL_PATTERN, 63),
]
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
SecretKey = Annotated[
    str,
    pattern_check(SECRET_KEY_PATTERN, "a Secret key (letters, digits, '-', '_', '.')", 253),
    _token_schema(SECRET_KEY_PATTERN, 253),
]


# --- references ----------------------------------------------------------------------


class SecretKeyRef(Model):
    """A key of a Secret in the resource's own namespace."""

    name: ObjectName = Field(description="Name of the Secret, in the same namespace.")
    key: SecretKey = Field(default="secret", description="Key within the Secret's data.")


class LocalObjectRef(Model):
    """A reference by name to an object of a known kind in the same namespace."""

    name: ObjectName


# --- status --------------------------------------------------------------------------


# The patterns of metav1.Condition's type and reason, as in the upstream OpenAPI.
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(Model):
    """metav1.Condition, so kstatus tools (Argo CD, Flux, kubectl wait) read it."""

    type: str = Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024, min_length=1, pattern=CONDITION_REASON_PATTERN)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)
