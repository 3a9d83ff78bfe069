"""The Webhook resource: an inbound endpoint, how callers authenticate, what applies to
its events, where accepted events go, and the upstream GitHub hook that points at it."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from .common import (
    CIDR,
    Condition,
    HeaderName,
    JSONPath,
    LabelName,
    Model,
    ObjectName,
    PositiveDuration,
    Regex,
    SecretKey,
    SecretKeyRef,
    cel,
    parse_duration,
    pattern_check,
)
from .resource import Resource

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# GitHub caps webhook payloads at 25 MB; nothing legitimate needs more.
MAX_BODY_BYTES_CEILING = 25 * 1024 * 1024


class AuthType(StrEnum):
    GITHUB = "github"
    HMAC = "hmac"
    STANDARD_WEBHOOKS = "standard-webhooks"
    BASIC = "basic"
    BEARER = "bearer"
    API_KEY = "api-key"
    NONE = "none"


# Which optional auth fields each type accepts; anything else set is a mistake.
_AUTH_FIELDS: dict[AuthType, set[str]] = {
    AuthType.GITHUB: set(),
    AuthType.HMAC: {"header", "algorithm", "encoding", "prefix", "timestamp_header", "tolerance"},
    AuthType.STANDARD_WEBHOOKS: {"tolerance"},
    AuthType.BASIC: {"username"},
    AuthType.BEARER: set(),
    AuthType.API_KEY: {"header"},
    AuthType.NONE: set(),
}


class WebhookAuth(Model):
    """How callers prove who they are. Secrets are read from `secretRef`, never copied."""

    type: AuthType = Field(
        description="github | hmac | standard-webhooks | basic | bearer | api-key | none"
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "The shared secret, password, token or key. When absent for a type that needs "
            "one, the operator generates a Secret owned by the Webhook."
        ),
    )
    header: HeaderName | None = Field(
        default=None,
        description=(
            "hmac: signature header (default X-Signature); api-key: key header (default X-API-Key)."
        ),
    )
    algorithm: Literal["sha256", "sha512"] | None = Field(
        default=None, description="hmac: digest (default sha256)."
    )
    encoding: Literal["hex", "base64"] | None = Field(
        default=None, description="hmac: signature encoding (default hex)."
    )
    prefix: str | None = Field(
        default=None,
        max_length=64,
        description="hmac: prefix before the signature, e.g. 'sha256='.",
    )
    timestamp_header: HeaderName | None = Field(
        default=None,
        description=(
            "hmac: header carrying a Unix timestamp; when set, the signed content is "
            "'<timestamp>.<body>' and requests older than `tolerance` are refused."
        ),
    )
    tolerance: PositiveDuration | None = Field(
        default=None,
        description=(
            "hmac (with timestampHeader) and standard-webhooks: allowed clock skew (default 5m)."
        ),
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[^:]+$",
        description="basic: the user name; the password is the secret.",
    )

    @model_validator(mode="after")
    def _fields_fit_type(self) -> WebhookAuth:
        allowed = _AUTH_FIELDS[self.type]
        for name in (
            "header",
            "algorithm",
            "encoding",
            "prefix",
            "timestamp_header",
            "tolerance",
            "username",
        ):
            if getattr(self, name) is not None and name not in allowed:
                alias = type(self).model_fields[name].alias or name
                raise ValueError(f"{alias} does not apply to auth type {self.type.value}")
        if self.type is AuthType.NONE and self.secret_ref is not None:
            raise ValueError("auth type none takes no secretRef")
        if self.type is AuthType.BASIC and self.username is None:
            raise ValueError("auth type basic needs a username")
        if self.tolerance is not None and self.type is AuthType.HMAC and not self.timestamp_header:
            raise ValueError("tolerance needs timestampHeader for auth type hmac")
        return self

    @property
    def needs_secret(self) -> bool:
        return self.type is not AuthType.NONE


_REPOSITORY = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
_ORGANIZATION = r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$"
# GitHub webhook event names: lowercase words joined by underscores, or "*" for all.
_GITHUB_EVENT = r"^(\*|[a-z]+(_[a-z]+)*)$"


class TokenSecretRef(SecretKeyRef):
    """A GitHub token in a Secret of the same namespace."""

    key: SecretKey = Field(default="token", description="Key within the Secret's data.")


class PrivateKeySecretRef(SecretKeyRef):
    """A GitHub App's private key (PEM) in a Secret of the same namespace."""

    key: SecretKey = Field(default="private-key.pem", description="Key within the Secret's data.")


class GitHubApp(Model):
    """Credentials of a GitHub App installation (issue 12): the operator signs a JWT with
    the App's private key (RS256) and exchanges it for short-lived installation tokens."""

    app_id: int = Field(alias="appID", ge=1, description="The App's id (its settings page).")
    installation_id: int = Field(
        alias="installationID", ge=1, description="The installation on the repository's owner."
    )
    private_key_secret_ref: PrivateKeySecretRef = Field(
        description="The App's private key, a PEM file as GitHub generates it."
    )


class GitHubHook(Model):
    """The upstream GitHub hook the operator creates and repairs, pointing at this Webhook."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.repository) != has(self.organization)",
            "set exactly one of repository or organization",
            "has(self.tokenSecretRef) != has(self.app)",
            "set exactly one of tokenSecretRef or app",
        )
    )

    repository: (
        Annotated[str, pattern_check(_REPOSITORY, "a repository as owner/name", 200)] | None
    ) = Field(default=None, description="owner/name", json_schema_extra={"pattern": _REPOSITORY})
    organization: (
        Annotated[str, pattern_check(_ORGANIZATION, "a GitHub organization login", 39)] | None
    ) = Field(default=None, json_schema_extra={"pattern": _ORGANIZATION})
    events: list[Annotated[str, Field(pattern=_GITHUB_EVENT, max_length=64)]] = Field(
        # Issue 12: the seed use is learning a dispatched workflow's run id.
        default_factory=lambda: ["workflow_run"],
        min_length=1,
        max_length=100,
        description="GitHub events the hook subscribes to ('*' for all).",
    )
    token_secret_ref: TokenSecretRef | None = Field(
        default=None,
        description=(
            "A token allowed to manage hooks (classic: admin:repo_hook or admin:org_hook; "
            "fine-grained: Webhooks read and write)."
        ),
    )
    app: GitHubApp | None = Field(
        default=None, description="A GitHub App installation instead of a token."
    )
    api_url: Annotated[str, AfterValidator(lambda v: _http_url(v, "apiURL"))] = Field(
        default="https://api.github.com",
        alias="apiURL",
        description="GitHub REST API base; GitHub Enterprise Server is https://HOST/api/v3.",
    )
    active: bool = True
    insecure_ssl: bool = Field(default=False, alias="insecureSSL")

    @model_validator(mode="after")
    def _exactly_one_target(self) -> GitHubHook:
        if (self.repository is None) == (self.organization is None):
            raise ValueError("set exactly one of repository or organization")
        if (self.token_secret_ref is None) == (self.app is None):
            raise ValueError("set exactly one of tokenSecretRef or app")
        return self

    @property
    def credential_ref(self) -> tuple[str, SecretKeyRef]:
        """(field path, reference) of the Secret the operator authenticates with."""
        if self.app is not None:
            return "spec.github.app.privateKeySecretRef", self.app.private_key_secret_ref
        assert self.token_secret_ref is not None  # the validator above
        return "spec.github.tokenSecretRef", self.token_secret_ref


class EventTypeRef(Model):
    """An EventType by its object name, or by `{type, version}`."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.name) != has(self.type)",
            "refer to an EventType by name or by type (and version), not both",
            "!has(self.version) || has(self.type)",
            "version needs type",
        )
    )

    name: ObjectName | None = None
    type: str | None = Field(default=None, min_length=1, max_length=253)
    version: str | None = Field(default=None, min_length=1, max_length=63)

    @model_validator(mode="after")
    def _name_or_type(self) -> EventTypeRef:
        if (self.name is None) == (self.type is None):
            raise ValueError("refer to an EventType by name or by type (and version), not both")
        if self.version is not None and self.type is None:
            raise ValueError("version needs type")
        return self


class FilterRef(Model):
    name: ObjectName


class Correlation(Model):
    """Pulls a correlation id out of each event, e.g. the dispatch id in a run name."""

    path: JSONPath = Field(description="RFC 9535 JSONPath of the field to read.")
    pattern: Regex | None = Field(
        default=None,
        description=(
            "RE2 regex applied to the field; the group named 'id' (or the whole match) is the id."
        ),
    )


class IdempotencyKey(Model):
    """Where a caller's idempotency key is, when it is not a delivery id hookline knows."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.header) != has(self.path)", "set exactly one of header or path"
        )
    )

    header: HeaderName | None = None
    path: JSONPath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> IdempotencyKey:
        if (self.header is None) == (self.path is None):
            raise ValueError("set exactly one of header or path")
        return self


def _http_url(value: str, what: str = "url") -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what} {value!r} must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{what} {value!r} has no host")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials; use headers or signing")
    return value


HttpURL = Annotated[str, AfterValidator(_http_url), Field(max_length=2048)]


class ServiceRef(Model):
    """An in-cluster Service, resolved to <name>.<namespace>.svc."""

    name: LabelName
    namespace: LabelName | None = Field(
        default=None, description="Default: the Webhook's namespace."
    )
    port: int = Field(default=80, ge=1, le=65535)
    path: str = Field(default="/", pattern=r"^/", max_length=1024)
    scheme: Literal["http", "https"] = "http"


class Signing(Model):
    """How hookline signs what it sends, so the destination can trust it."""

    scheme: Literal["standard-webhooks", "hmac-sha256"]
    secret_ref: SecretKeyRef


class Retry(Model):
    """Backoff with full jitter until a delivery is maxAge old, or a schedule, or maxAttempts."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!(has(self.maxAttempts) && has(self.schedule))",
            "maxAttempts and schedule are alternatives: set one",
        )
    )

    initial_backoff: PositiveDuration = "1s"
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff: PositiveDuration = "1h"
    max_age: PositiveDuration = "72h"
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    schedule: list[PositiveDuration] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Explicit delays between attempts, instead of exponential backoff.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Retry:
        if self.max_attempts is not None and self.schedule is not None:
            raise ValueError("maxAttempts and schedule are alternatives: set one")
        if parse_duration(self.initial_backoff) > parse_duration(self.max_backoff):
            raise ValueError(
                f"initialBackoff {self.initial_backoff} is longer than "
                f"maxBackoff {self.max_backoff}"
            )
        return self


class CircuitBreaker(Model):
    """When the dispatcher stops sending to a destination for a while (issue 11 §2).

    A breaker spares a destination that is down; it must not starve one that works
    part of the time (a pool with one of two pods down answers 503 to half). So it
    trips on a failure rate over a window of recent requests, not on a handful of
    failures in a row, or on a run of network errors (nothing answers at all). Open,
    it waits a cool-down, then lets `halfOpenProbes` requests through and closes if at
    least `successRate` of them succeeded; otherwise it opens again with the cool-down
    doubled, up to `maxCoolDown`.
    """

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.coolDown) || !has(self.maxCoolDown) || "
            "duration(self.coolDown) <= duration(self.maxCoolDown)",
            "coolDown must not be longer than maxCoolDown",
        )
    )

    failure_rate: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description=(
            "Trip when at least this share (0..1] of the requests in the window failed "
            "(5xx, 408, 429, timeouts, network errors)."
        ),
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        le=100000,
        description="Requests the window must hold before its failure rate can trip it.",
    )
    window: PositiveDuration = Field(
        default="1m", description="How far back the failure rate counts."
    )
    consecutive_network_errors: int = Field(
        default=5,
        ge=0,
        le=100000,
        description=(
            "Also trip after this many network errors in a row (connection refused, "
            "reset, timed out: no HTTP answer), however few requests; 0 turns this off."
        ),
    )
    cool_down: PositiveDuration = Field(
        default="30s", description="How long the breaker stays open before probing."
    )
    max_cool_down: PositiveDuration = Field(
        default="5m",
        description="The cool-down doubles each time the probes fail, up to this.",
    )
    half_open_probes: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Requests let through after a cool-down to test the destination.",
    )
    success_rate: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description=(
            "Close when at least this share (0..1] of the probes succeeded; otherwise open again."
        ),
    )

    @model_validator(mode="after")
    def _cool_down_bounds(self) -> CircuitBreaker:
        if parse_duration(self.cool_down) > parse_duration(self.max_cool_down):
            raise ValueError(
                f"coolDown {self.cool_down} is longer than maxCoolDown {self.max_cool_down}"
            )
        return self


class Destination(Model):
    """Where accepted events go."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.url) != has(self.service)", "set exactly one of url or service"
        )
    )

    name: LabelName
    url: HttpURL | None = None
    service: ServiceRef | None = None
    event_types: list[ObjectName] = Field(
        default_factory=list,
        max_length=100,
        description="Only events of these EventTypes (by name) go here; empty: all.",
    )
    format: Literal["raw", "cloudevents", "envelope"] = "raw"
    cloud_events_mode: Literal["binary", "structured"] = "binary"
    timeout: PositiveDuration = "10s"
    headers: dict[HeaderName, str] = Field(
        default_factory=dict, description="Headers added to each request."
    )
    signing: Signing | None = None
    retry: Retry = Field(default_factory=Retry)
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker,
        description=(
            "When sends to this destination pause: a failure rate over a window, or a "
            "run of network errors, opens the breaker; probes after a cool-down close it."
        ),
    )

    @model_validator(mode="after")
    def _url_or_service(self) -> Destination:
        if (self.url is None) == (self.service is None):
            raise ValueError("set exactly one of url or service")
        return self


class DestinationPolicy(Model):
    """Which destination addresses this Webhook may send to (issue 5, SSRF guard)."""

    allow_link_local: bool = Field(
        default=False,
        description=(
            "Allow destinations that resolve to link-local addresses, cloud metadata "
            "endpoints included (169.254.0.0/16, fe80::/10). Off: such sends are refused."
        ),
    )


class Limits(Model):
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1, le=MAX_BODY_BYTES_CEILING)
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        le=100000,
        description="Per-Webhook rate limit; unset: no limit (GitHub does not retry a 429).",
    )
    burst: int | None = Field(
        default=None, ge=1, le=1000000, description="Default: 2 x requestsPerSecond."
    )
    source_cidrs: list[CIDR] = Field(
        default_factory=list,
        alias="sourceCIDRs",
        max_length=1000,
        description="Callers allowed by source address; empty: any.",
    )

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> Limits:
        if self.burst is not None and self.requests_per_second is None:
            raise ValueError("burst needs requestsPerSecond")
        return self


class Alerts(Model):
    """When the Webhook is Degraded (issue 6): too many forwarding outcomes failed over a
    window, or deliveries were dead-lettered in it.

    The rate counts finished outbox rows (delivered, failed, dead-lettered) of all the
    Webhook's destinations, from the receiver's cumulative counters; retries still in
    flight are not outcomes yet. `minDeliveries` keeps one failure out of two from
    flagging a quiet Webhook.
    """

    failure_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description=(
            "Degraded when more than this fraction (0..1) of the forwarding outcomes in the "
            "window failed or were dead-lettered; 1 turns the rate alert off."
        ),
    )
    window: PositiveDuration = Field(
        default="15m", description="How far back the failure rate and dead letters count."
    )
    min_deliveries: int = Field(
        default=10,
        ge=1,
        le=1000000,
        description="Outcomes the window needs before its failure rate counts.",
    )

    @field_validator("window")
    @classmethod
    def _window_bounds(cls, window: str) -> str:
        # The operator keeps the window's samples in memory; a week is plenty for an alert.
        if parse_duration(window).total_seconds() > 7 * 24 * 3600:
            raise ValueError(f"window {window!r} is longer than 168h")
        return window

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window).total_seconds()


_PATH_SEGMENT = r"[A-Za-z0-9._~-]+"
WEBHOOK_PATH_PATTERN = rf"^{_PATH_SEGMENT}(/{_PATH_SEGMENT})*$"


def _check_path(value: str) -> str:
    if value.startswith("/"):
        raise ValueError(f"path {value!r} must not start with '/': it is relative to /hooks/")
    if not re.match(WEBHOOK_PATH_PATTERN, value):
        raise ValueError(
            f"path {value!r} may hold only letters, digits, '.', '_', '~', '-' and '/' "
            "between non-empty segments"
        )
    if any(segment in (".", "..") for segment in value.split("/")):
        raise ValueError(f"path {value!r} must not contain '.' or '..' segments")
    return value


WebhookPath = Annotated[
    str,
    AfterValidator(_check_path),
    Field(max_length=512, json_schema_extra={"pattern": WEBHOOK_PATH_PATTERN}),
]


class WebhookSpec(Model):
    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.github) || self.auth.type == 'github'",
            "a managed GitHub hook needs auth.type github",
        )
    )

    path: WebhookPath | None = Field(
        default=None, description="Served at /hooks/<path>. Default: <namespace>/<name>."
    )
    auth: WebhookAuth
    github: GitHubHook | None = None
    event_types: list[EventTypeRef] = Field(
        default_factory=list, max_length=200, description="Allowed event types; empty allows any."
    )
    unknown_event_types: Literal["accept", "reject"] = Field(
        default="accept", description="What a delivery of no known type gets."
    )
    filters: list[FilterRef] = Field(
        default_factory=list, max_length=50, description="EventFilters that must all match."
    )
    correlation: Correlation | None = None
    idempotency_key: IdempotencyKey | None = None
    destinations: list[Destination] = Field(
        default_factory=list,
        max_length=50,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    destination_policy: DestinationPolicy = Field(default_factory=DestinationPolicy)
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    limits: Limits = Field(default_factory=Limits)
    retention: PositiveDuration = Field(default="720h", description="How long deliveries are kept.")
    alerts: Alerts = Field(
        default_factory=Alerts,
        description="When the operator sets the Degraded condition (failure rate, dead letters).",
    )

    @field_validator("destinations")
    @classmethod
    def _unique_destination_names(cls, destinations: list[Destination]) -> list[Destination]:
        seen: set[str] = set()
        for dest in destinations:
            if dest.name in seen:
                raise ValueError(f"name {dest.name!r} is used twice")
            seen.add(dest.name)
        return destinations

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSpec:
        if self.github is not None and self.auth.type is not AuthType.GITHUB:
            raise ValueError(
                "github: a managed GitHub hook signs with X-Hub-Signature-256, so auth.type "
                f"must be github, not {self.auth.type.value}"
            )
        return self


class GitHubResponse(Model):
    """GitHub's own record of its last delivery to the hook (`last_response`)."""

    code: int | None = None
    status: str | None = None
    message: str | None = None


class GitHubStatus(Model):
    """The upstream hook as the operator last saw it (issue 12). No secret: only a salted
    digest that says whether the hook's secret is the Secret's current value."""

    hook_id: int | None = Field(default=None, alias="hookID")
    last_ping_at: datetime | None = None
    last_response: GitHubResponse | None = None
    secret_digest: str | None = None
    redelivered: int = 0
    last_checked_at: datetime | None = None


class DeliveryCounts(Model):
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    filtered: int = 0
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    last_received_at: datetime | None = None
    last_delivery_id: str | None = Field(default=None, alias="lastDeliveryID")
    last_error: str | None = None


class ReplayStatus(Model):
    request: str
    count: int = 0
    time: datetime
    message: str = ""


class WebhookStatus(Model):
    url: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    github: GitHubStatus | None = None
    deliveries: DeliveryCounts | None = None
    last_replay: ReplayStatus | None = None


class Webhook(Resource):
    kind: Literal["Webhook"] = "Webhook"
    spec: WebhookSpec
    status: WebhookStatus | None = None

    @property
    def path(self) -> str:
        return self.spec.path or f"{self.metadata.namespace or 'default'}/{self.metadata.name}"

    @property
    def retention_seconds(self) -> float:
        return parse_duration(self.spec.retention).total_seconds()
