"""How the operator runs and what receiver it manages (issue 6), read from HOOKLINE_* variables.

The Helm chart sets these variables on the operator Deployment from its values
(charts/hookline/values.yaml); tests construct :class:`OperatorSettings` directly or
call :meth:`OperatorSettings.from_env` with a dict. Every field's variable is
``HOOKLINE_`` + the field name in upper case (``receiver_replicas`` →
``HOOKLINE_RECEIVER_REPLICAS``); :data:`ENV_PREFIX` and :func:`env_name` say so in code.

Value syntax in the environment:

- booleans: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``);
- lists: comma- or whitespace-separated (``ci, payments``);
- maps and lists of objects (resources, node selector, tolerations, ...): JSON;
- intervals: seconds (``10``, ``0.5``) or a Go duration (``10s``, ``1m``);
- ``HOOKLINE_SECRET_OVERLAP``: a Go duration (``24h``), as in the resources' specs.

A bad value raises ``ValueError`` whose message names the variable, so a
crash-looping operator's one log line says which value to fix.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import __version__
from ..api.common import LABEL_PATTERN, NAME_PATTERN, SECRET_KEY_PATTERN, parse_duration

ENV_PREFIX = "HOOKLINE_"

# Kubernetes writes the pod's namespace here when a service account token is mounted:
# the operator's receiver goes next to the operator unless HOOKLINE_NAMESPACE says else.
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "hookline"

# Embedded SQLite (no store Secret): the database lives on this mount in the receiver Pod,
# a PersistentVolumeClaim when `sqlite_pvc` is set, an emptyDir otherwise.
SQLITE_DIR = "/var/lib/hookline"
SQLITE_URL = f"sqlite:///{SQLITE_DIR}/hookline.db"  # four slashes: an absolute path

# "-admin" is appended for the headless admin Service; Service names are DNS-1035
# labels of at most 63 characters.
_MAX_RECEIVER_NAME = 63 - len("-admin")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL = re.compile(LABEL_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)
# The priority range a replica derives from its pod name (see derived_priority).
_DERIVED_PRIORITY_MAX = 2**31 - 1


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return ENV_PREFIX + field.upper()


def pod_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str | None:
    """The namespace of the pod this process runs in, or None outside a cluster."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def kubeconfig_namespace(environ: Mapping[str, str]) -> str | None:
    """The namespace of the kubeconfig's current context, or None (issue 14).

    `hookline operator` run by a user (not in a pod) logs in with the kubeconfig, as
    kubectl does; its receiver goes where kubectl would put things. The file is the
    first of KUBECONFIG's list, else ~/.kube/config (HOME from `environ`). A missing or
    unreadable file, or one without a current context, is no answer: kopf says what is
    wrong with it when it logs in.
    """
    listed = [part for part in environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    if listed:
        path = Path(listed[0]).expanduser()
    else:
        path = Path(environ.get("HOME") or Path.home()) / ".kube" / "config"
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    current = config.get("current-context")
    for entry in config.get("contexts") or []:
        if isinstance(entry, dict) and current and entry.get("name") == current:
            context = entry.get("context")
            namespace = context.get("namespace") if isinstance(context, dict) else None
            return namespace if isinstance(namespace, str) and namespace else None
    return None


def derived_priority(pod_name: str) -> int:
    """A kopf peering priority from the pod name, in 1..2**31-1: replicas of one
    Deployment get different ones without configuration (issue 6: two operator replicas
    never act at once, and kopf pauses all of them on a tie)."""
    digest = hashlib.sha256(pod_name.encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % _DERIVED_PRIORITY_MAX


def _default_namespace() -> str:
    return pod_namespace() or DEFAULT_NAMESPACE


def _split(value: Any) -> Any:
    """A comma/whitespace separated string as a list; anything else unchanged."""
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return value


def _json(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not JSON: {exc}") from None
    return value


def _seconds(value: Any) -> Any:
    """Seconds as a number, or a Go duration such as 10s or 1m."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return parse_duration(value.strip()).total_seconds()
    return value


def _check_name(value: str, *, what: str = "a Kubernetes name") -> str:
    if len(value) > 253 or not _NAME.match(value):
        raise ValueError(f"{value!r} is not {what} (lowercase letters, digits, '-', '.')")
    return value


def _check_label(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ValueError(f"{value!r} is not a namespace name (a DNS label)")
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: a base URL takes no query or fragment")
    return value.rstrip("/")


class OperatorSettings(BaseModel):
    """The operator's settings: `HOOKLINE_<FIELD>` for each field (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # --- where things run -------------------------------------------------------------
    namespace: str = Field(
        default_factory=_default_namespace,
        description=(
            "HOOKLINE_NAMESPACE: the namespace the receiver Deployment, its Services, "
            "Ingress, NetworkPolicy and admin-token Secret go to. Default: the operator "
            "pod's own namespace, else the kubeconfig's current context's namespace "
            "(when HOOKLINE_KUBE_URL is unset), else 'hookline'."
        ),
    )
    operator_namespace: str | None = Field(
        default=None,
        description=(
            "HOOKLINE_OPERATOR_NAMESPACE: where the operator pods run, for the admin "
            "NetworkPolicy. Default: the pod's namespace, else `namespace`."
        ),
    )
    watch_namespaces: list[str] = Field(
        default_factory=list,
        description=(
            "HOOKLINE_WATCH_NAMESPACES: namespaces whose Webhooks, EventFilters and "
            "EventTypes are reconciled; empty means the whole cluster."
        ),
    )
    kube_url: str | None = Field(
        default=None,
        description=(
            "HOOKLINE_KUBE_URL: the API server to talk to without credentials (tests point "
            "it at an emulator). Unset: the in-cluster service account, else kubeconfig."
        ),
    )
    operator_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {
            "app.kubernetes.io/name": "hookline",
            "app.kubernetes.io/component": "operator",
        },
        description=(
            "HOOKLINE_OPERATOR_POD_LABELS (JSON): labels of the operator pods; the admin "
            "NetworkPolicy admits only pods carrying them."
        ),
    )

    # --- the receiver Deployment ------------------------------------------------------
    manage_receiver: bool = Field(
        default=True,
        description=(
            "HOOKLINE_MANAGE_RECEIVER: create and repair the receiver Deployment, Services, "
            "Ingress and NetworkPolicy. false: they are managed elsewhere (GitOps, tests) "
            "and the operator only pushes configuration to them."
        ),
    )
    receiver_name: str = Field(
        default="hookline-receiver",
        description=(
            "HOOKLINE_RECEIVER_NAME: name of the receiver Deployment, Service and Ingress; "
            "the admin Service is '<name>-admin'."
        ),
    )
    receiver_image: str = Field(
        default=f"hookline/hookline:{__version__}",
        description="HOOKLINE_RECEIVER_IMAGE: the receiver's container image (the hookline image).",
    )
    receiver_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="HOOKLINE_RECEIVER_IMAGE_PULL_POLICY."
    )
    receiver_image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="HOOKLINE_RECEIVER_IMAGE_PULL_SECRETS: Secret names for a private registry.",
    )
    receiver_replicas: int = Field(
        default=1,
        ge=1,
        description=(
            "HOOKLINE_RECEIVER_REPLICAS: receiver pods. More than one needs PostgreSQL "
            "(a store Secret holding a postgresql:// URL)."
        ),
    )
    receiver_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        description='HOOKLINE_RECEIVER_RESOURCES (JSON): {"requests": {...}, "limits": {...}}.',
    )
    receiver_service_account: str | None = Field(
        default=None,
        description=(
            "HOOKLINE_RECEIVER_SERVICE_ACCOUNT: the receiver pods' service account (its "
            "token is never mounted: the receiver needs no Kubernetes access)."
        ),
    )
    receiver_node_selector: dict[str, str] = Field(
        default_factory=dict, description="HOOKLINE_RECEIVER_NODE_SELECTOR (JSON)."
    )
    receiver_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="HOOKLINE_RECEIVER_TOLERATIONS (JSON list)."
    )
    receiver_affinity: dict[str, Any] = Field(
        default_factory=dict, description="HOOKLINE_RECEIVER_AFFINITY (JSON)."
    )
    receiver_priority_class_name: str | None = Field(
        default=None, description="HOOKLINE_RECEIVER_PRIORITY_CLASS_NAME."
    )
    receiver_pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="HOOKLINE_RECEIVER_POD_ANNOTATIONS (JSON): e.g. for a service mesh.",
    )
    receiver_env: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "HOOKLINE_RECEIVER_ENV (JSON list of EnvVar): more variables for the receiver, "
            "e.g. HTTPS_PROXY / NO_PROXY for destinations behind an egress proxy."
        ),
    )
    receiver_log_level: Literal["debug", "info", "warning"] = Field(
        default="info", description="HOOKLINE_RECEIVER_LOG_LEVEL."
    )
    receiver_trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "HOOKLINE_RECEIVER_TRUSTED_PROXIES: CIDRs of the ingress controller / load "
            "balancer whose X-Forwarded-For is believed (for sourceCIDRs and rate limits)."
        ),
    )
    receiver_bind_address: str = Field(
        default="0.0.0.0",
        description="HOOKLINE_RECEIVER_BIND_ADDRESS: '0.0.0.0', or '::' on IPv6 clusters.",
    )
    receiver_prestop_seconds: int = Field(
        default=5,
        ge=0,
        le=60,
        description=(
            "HOOKLINE_RECEIVER_PRESTOP_SECONDS: how long a stopping pod keeps serving "
            "before SIGTERM, so Service endpoints and ingress controllers drop it first."
        ),
    )
    receiver_max_outbox_backlog: int = Field(
        default=100_000,
        ge=0,
        description=(
            "HOOKLINE_RECEIVER_MAX_OUTBOX_BACKLOG: pending outbox rows one destination may "
            "have before new deliveries for it are answered 503 with Retry-After "
            "(the receiver's --max-outbox-backlog; 0: no bound)."
        ),
    )
    receiver_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="HOOKLINE_RECEIVER_SERVICE_TYPE: the ingest Service."
    )
    receiver_service_port: int = Field(
        default=80, ge=1, le=65535, description="HOOKLINE_RECEIVER_SERVICE_PORT: ingest Service."
    )
    ingest_port: int = Field(
        default=8080,
        ge=1024,
        le=65535,
        description=(
            "HOOKLINE_INGEST_PORT: the container's ingest port (1024 and up: the container "
            "runs as non-root with every capability dropped)."
        ),
    )
    admin_port: int = Field(
        default=8081,
        ge=1024,
        le=65535,
        description="HOOKLINE_ADMIN_PORT: the container's admin API port (never on the Service).",
    )

    # --- store ------------------------------------------------------------------------
    store_secret_name: str | None = Field(
        default=None,
        description=(
            "HOOKLINE_STORE_SECRET_NAME: Secret (in `namespace`) holding the store URL, "
            "e.g. postgresql://user:password@host/db; it reaches the receiver as "
            "HOOKLINE_STORE_URL. Unset: embedded SQLite at " + SQLITE_URL + "."
        ),
    )
    store_secret_key: str = Field(
        default="url", description="HOOKLINE_STORE_SECRET_KEY: the key in that Secret."
    )
    sqlite_pvc: str | None = Field(
        default=None,
        description=(
            "HOOKLINE_SQLITE_PVC: a PersistentVolumeClaim mounted at " + SQLITE_DIR + " for "
            "SQLite. Without it (and without a store Secret) the database is on an emptyDir "
            "and is lost with the pod: for trying hookline out only. SQLite means exactly "
            "one replica, and rollouts use Recreate (a ReadWriteOnce volume has one writer)."
        ),
    )

    # --- how callers reach it ---------------------------------------------------------
    public_base_url: str | None = Field(
        default=None,
        description=(
            "HOOKLINE_PUBLIC_BASE_URL: what callers use, e.g. https://hooks.example.com; "
            "status.url = base + '/hooks/' + path. Default: derived from the Ingress host."
        ),
    )
    ingress_enabled: bool = Field(default=False, description="HOOKLINE_INGRESS_ENABLED.")
    ingress_host: str | None = Field(
        default=None, description="HOOKLINE_INGRESS_HOST: required when the Ingress is enabled."
    )
    ingress_class_name: str | None = Field(default=None, description="HOOKLINE_INGRESS_CLASS_NAME.")
    ingress_tls_secret: str | None = Field(
        default=None, description="HOOKLINE_INGRESS_TLS_SECRET: TLS Secret for the host."
    )
    ingress_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="HOOKLINE_INGRESS_ANNOTATIONS (JSON): e.g. cert-manager's cluster-issuer.",
    )

    # --- admin API --------------------------------------------------------------------
    admin_token_secret: str = Field(
        default="hookline-receiver-admin-token",
        description=(
            "HOOKLINE_ADMIN_TOKEN_SECRET: Secret (in `namespace`) with the admin API bearer "
            "token, key 'token'; generated by the operator when absent."
        ),
    )
    receiver_admin_urls: list[str] = Field(
        default_factory=list,
        description=(
            "HOOKLINE_RECEIVER_ADMIN_URLS: fixed admin API base URLs (tests, receivers run "
            "outside the cluster). Empty: the pods behind the admin Service."
        ),
    )
    network_policy_enabled: bool = Field(
        default=True,
        description=(
            "HOOKLINE_NETWORK_POLICY_ENABLED: a NetworkPolicy that admits the admin port "
            "only from the operator pods (the ingest port stays open)."
        ),
    )
    admin_network_peers: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "HOOKLINE_ADMIN_NETWORK_PEERS (JSON list of NetworkPolicyPeer): more sources "
            "admitted to the admin port, e.g. Prometheus scraping /metrics."
        ),
    )

    # --- timing -----------------------------------------------------------------------
    stats_interval: float = Field(
        default=10.0,
        gt=0,
        description="HOOKLINE_STATS_INTERVAL: seconds between reads of the receivers' stats.",
    )
    config_debounce: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description=(
            "HOOKLINE_CONFIG_DEBOUNCE: seconds to gather changes into one configuration "
            "push; at most 5, the time in which a change must reach every replica."
        ),
    )
    secret_overlap: timedelta = Field(
        default=timedelta(hours=24),
        description=(
            "HOOKLINE_SECRET_OVERLAP (Go duration): how long a rotated secret's old value "
            "stays valid where the auth type accepts two."
        ),
    )

    # --- high availability ------------------------------------------------------------
    peering_name: str = Field(
        default="hookline",
        description=(
            "HOOKLINE_PEERING_NAME: the kopf peering object (ClusterKopfPeering, or "
            "KopfPeering per watched namespace) the replicas coordinate through."
        ),
    )
    peering_priority: int = Field(
        default=0,
        description=(
            "HOOKLINE_PEERING_PRIORITY: this replica's kopf peering priority; the highest "
            "acts, the others wait. Unset, from_env derives one from the pod name "
            "(HOSTNAME) so that replicas of one Deployment differ: kopf pauses every "
            "operator when the top priorities tie."
        ),
    )
    peering_standalone: bool = Field(
        default=False,
        description=(
            "HOOKLINE_PEERING_STANDALONE: run without peering (one replica, tests). "
            "Otherwise peering is mandatory: no replica acts until the peering object "
            "exists, so two can never act at once."
        ),
    )
    resync_interval: float = Field(
        default=5.0,
        gt=0,
        description=(
            "HOOKLINE_RESYNC_INTERVAL: seconds of quiet after which the operator looks "
            "for new receiver replicas, checks that every replica still serves the "
            "current configuration, and compares the receiver's objects for drift."
        ),
    )
    # --- GitHub hooks (issue 12) ------------------------------------------------------
    github_resync_interval: float = Field(
        default=600.0,
        gt=0,
        description=(
            "HOOKLINE_GITHUB_RESYNC_INTERVAL: seconds between checks of each managed "
            "GitHub hook for drift (a conditional GET, answered 304 when nothing changed, "
            "costs no rate limit); a spec or Secret change checks at once."
        ),
    )
    github_redelivery_window: timedelta = Field(
        default=timedelta(hours=72),
        description=(
            "HOOKLINE_GITHUB_REDELIVERY_WINDOW (Go duration): how far back failed or "
            "missing deliveries are asked for again (GitHub keeps 3 days)."
        ),
    )
    github_delete_timeout: float = Field(
        default=600.0,
        gt=0,
        description=(
            "HOOKLINE_GITHUB_DELETE_TIMEOUT: seconds a deleted Webhook waits for its "
            "GitHub hook to be deleted (credentials gone, GitHub down) before it is "
            "released anyway, with a Warning Event naming the hook to delete by hand."
        ),
    )
    preflight_interval: float = Field(
        default=30.0,
        gt=0,
        description=(
            "HOOKLINE_PREFLIGHT_INTERVAL: seconds between repeats of the start-up check's "
            "lines while the peering object or an API resource the operator needs is "
            "missing (hookline.operator.preflight)."
        ),
    )

    # --- field checks -----------------------------------------------------------------

    @field_validator(
        "watch_namespaces",
        "receiver_image_pull_secrets",
        "receiver_admin_urls",
        "receiver_trusted_proxies",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator(
        "operator_pod_labels",
        "receiver_node_selector",
        "receiver_tolerations",
        "receiver_affinity",
        "receiver_pod_annotations",
        "receiver_env",
        "ingress_annotations",
        "admin_network_peers",
        mode="before",
    )
    @classmethod
    def _json_values(cls, value: Any) -> Any:
        return _json(value)

    @field_validator(
        "stats_interval",
        "config_debounce",
        "resync_interval",
        "preflight_interval",
        "github_resync_interval",
        "github_delete_timeout",
        mode="before",
    )
    @classmethod
    def _intervals(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("secret_overlap", "github_redelivery_window", mode="before")
    @classmethod
    def _overlap(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value.strip())
        return value

    @field_validator("secret_overlap", "github_redelivery_window")
    @classmethod
    def _overlap_not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @field_validator(
        "kube_url",
        "public_base_url",
        "ingress_host",
        "ingress_class_name",
        "ingress_tls_secret",
        "store_secret_name",
        "sqlite_pvc",
        "receiver_service_account",
        "receiver_priority_class_name",
        "operator_namespace",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Helm renders an unset value as "": treat it as not given.
        return None if value == "" else value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _check_label(value)

    @field_validator("operator_namespace")
    @classmethod
    def _operator_namespace(cls, value: str | None) -> str | None:
        return None if value is None else _check_label(value)

    @field_validator("watch_namespaces")
    @classmethod
    def _watch_namespaces(cls, value: list[str]) -> list[str]:
        return sorted({_check_label(ns) for ns in value})

    @field_validator("receiver_name")
    @classmethod
    def _receiver_name(cls, value: str) -> str:
        if len(value) > _MAX_RECEIVER_NAME or not _DNS1035.match(value):
            raise ValueError(
                f"{value!r} must be a DNS-1035 label (a lowercase letter, then letters, "
                f"digits, '-') of at most {_MAX_RECEIVER_NAME} characters"
            )
        return value

    @field_validator(
        "admin_token_secret",
        "store_secret_name",
        "sqlite_pvc",
        "ingress_tls_secret",
        "receiver_service_account",
        "receiver_priority_class_name",
        "ingress_class_name",
        "peering_name",
    )
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value)

    @field_validator("receiver_env")
    @classmethod
    def _env(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in value:
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"{item!r}: each variable needs a name")
            # The store URL is the operator's to set, from the store Secret.
            if name == "HOOKLINE_STORE_URL":
                raise ValueError("HOOKLINE_STORE_URL comes from HOOKLINE_STORE_SECRET_NAME")
        return value

    @field_validator("receiver_image_pull_secrets")
    @classmethod
    def _pull_secrets(cls, value: list[str]) -> list[str]:
        return [_check_name(v) for v in value]

    @field_validator("store_secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if len(value) > 253 or not _SECRET_KEY.match(value):
            raise ValueError(f"{value!r} is not a Secret key (letters, digits, '-', '_', '.')")
        return value

    @field_validator("receiver_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an image reference")
        return value

    @field_validator("kube_url", "public_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("receiver_admin_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_check_url(v) for v in value]

    @field_validator("ingress_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        # A Webhook URL names one host: a wildcard Ingress host has no URL to report.
        if value is not None:
            _check_name(value, what="a DNS host name (no wildcard)")
        return value

    @field_validator("receiver_trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/8: {exc}") from None
        return value

    @field_validator("receiver_bind_address")
    @classmethod
    def _bind(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address such as 0.0.0.0 or ::") from None
        return value

    @field_validator("receiver_resources", mode="before")
    @classmethod
    def _resources(cls, value: Any) -> Any:
        value = _json(value)
        if not isinstance(value, dict):
            return value
        unknown = set(value) - {"requests", "limits"}
        if unknown:
            raise ValueError(f"only 'requests' and 'limits' are allowed, not {sorted(unknown)}")
        # Quantities as strings, the form the API server returns, so drift is not seen
        # where there is none (a number 1 and the string "1" are the same quantity).
        return {
            kind: {name: str(q) for name, q in (amounts or {}).items()}
            for kind, amounts in value.items()
        }

    @model_validator(mode="after")
    def _consistent(self) -> OperatorSettings:
        if self.admin_port == self.ingest_port:
            raise ValueError(
                f"{env_name('admin_port')} and {env_name('ingest_port')} must differ "
                f"(both are {self.admin_port}): the admin API must never be on the ingest port"
            )
        if self.ingress_enabled and not self.ingress_host:
            raise ValueError(f"{env_name('ingress_host')} is required when the Ingress is enabled")
        # SQLite is one writer on one volume (DESIGN.md). We can tell it is SQLite when
        # there is no store Secret (embedded) or a PVC for it is named; a Secret's URL is
        # only known at run time, so a sqlite:// URL there is the operator's to refuse.
        if self.receiver_replicas > 1 and self.store_secret_name is None:
            raise ValueError(
                f"{env_name('receiver_replicas')}={self.receiver_replicas} needs PostgreSQL: "
                f"set {env_name('store_secret_name')} to a Secret holding a postgresql:// URL "
                "(embedded SQLite serves one replica)"
            )
        if self.receiver_replicas > 1 and self.sqlite_pvc is not None:
            raise ValueError(
                f"{env_name('receiver_replicas')}={self.receiver_replicas} with "
                f"{env_name('sqlite_pvc')}: SQLite serves exactly one replica"
            )
        return self

    # --- derived values ---------------------------------------------------------------

    @property
    def clusterwide(self) -> bool:
        return not self.watch_namespaces

    @property
    def operator_pod_namespace(self) -> str:
        return self.operator_namespace or self.namespace

    @property
    def admin_service_name(self) -> str:
        return f"{self.receiver_name}-admin"

    @property
    def embedded_sqlite(self) -> bool:
        """True when the store is SQLite on the receiver's own volume (no store Secret)."""
        return self.store_secret_name is None

    @property
    def base_url(self) -> str | None:
        """Where callers reach /hooks/: the public base URL, else the Ingress host."""
        if self.public_base_url:
            return self.public_base_url
        if self.ingress_enabled and self.ingress_host:
            scheme = "https" if self.ingress_tls_secret else "http"
            return f"{scheme}://{self.ingress_host}"
        return None

    def webhook_url(self, path: str) -> str | None:
        """status.url of a Webhook with `spec.path` (None when no public URL is known)."""
        base = self.base_url
        return None if base is None else f"{base}/hooks/{path.lstrip('/')}"

    # --- construction -----------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE,
    ) -> OperatorSettings:
        """Settings from HOOKLINE_* variables; unset ones keep their defaults.

        Raises ValueError naming the variable when a value is bad; an empty value counts
        as unset. Variables with the
        prefix that match no field are ignored here (Kubernetes itself injects
        HOOKLINE_RECEIVER_SERVICE_HOST and the like for a Service named
        hookline-receiver); :meth:`unknown_env` lists them so the caller can warn about
        a misspelt one.
        """
        fields = cls.model_fields
        raw: dict[str, Any] = {}
        for key, value in environ.items():
            name = key.removeprefix(ENV_PREFIX).lower()
            # Empty means unset: Helm renders an unset value as "".
            if key.startswith(ENV_PREFIX) and name in fields and value.strip():
                raw[name] = value
        if "peering_priority" not in raw and environ.get("HOSTNAME"):
            raw["peering_priority"] = derived_priority(environ["HOSTNAME"])
        own = pod_namespace(namespace_file)
        # The pod's namespace, else the kubeconfig context's, which kopf logs in with
        # only when HOOKLINE_KUBE_URL is unset (issue 14), else "hookline".
        if "namespace" not in raw:
            from_kubeconfig = None if "kube_url" in raw else kubeconfig_namespace(environ)
            raw["namespace"] = own or from_kubeconfig or DEFAULT_NAMESPACE
        if own is not None:
            raw.setdefault("operator_namespace", own)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(_explain(exc)) from None

    @classmethod
    def unknown_env(cls, environ: Mapping[str, str]) -> list[str]:
        """HOOKLINE_* variables that are no setting (likely misspelt), for a warning.

        Leaves out what is not meant as a setting: the receiver's HOOKLINE_STORE_URL and
        the service-link variables Kubernetes injects for Services named hookline-*.
        """
        unknown = []
        for key in environ:
            name = key.removeprefix(ENV_PREFIX).lower()
            if not key.startswith(ENV_PREFIX) or name in cls.model_fields:
                continue
            if name == "store_url" or _SERVICE_LINK.search(key):
                continue
            unknown.append(key)
        return sorted(unknown)


# Docker-link style variables the kubelet sets for each Service (enableServiceLinks).
_SERVICE_LINK = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)$"
)


def _explain(exc: ValidationError) -> str:
    """One line per problem, each starting with the variable to fix."""
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        given = error.get("input")
        if error.get("type") != "value_error" and isinstance(given, str) and len(given) < 200:
            message += f" (got {given!r})"
        if loc and isinstance(loc[0], str):
            where = env_name(loc[0])
            if len(loc) > 1:
                where += " " + ".".join(str(part) for part in loc[1:])
            lines.append(f"{where}: {message}")
        else:
            lines.append(message)
    return "; ".join(lines)
