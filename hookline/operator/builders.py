"""The Kubernetes objects the operator owns, as plain dicts built from its settings (issue 6).

Pure functions in the style of dask-kubernetes' ``build_*_spec``: no API calls, so each
object is tested as data (tests/unit/test_builders.py, which also validates them against
the Kubernetes OpenAPI schemas). The handlers create these objects and, on every
reconcile, send :func:`drift_patch` of desired against actual to put back what someone
changed by hand (``kubectl edit``, a stray ``kubectl scale``).

Security posture of the receiver (DESIGN.md): it needs no Kubernetes access, so no
service account token is mounted; it runs non-root on a read-only root filesystem
without capabilities; its admin API (replays, stats, configuration pushes) is on a
separate port that no Service routes and a NetworkPolicy opens to the operator only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .. import __version__
from ..receiver.server import SHUTDOWN_TIMEOUT
from .settings import SQLITE_DIR, SQLITE_URL, OperatorSettings

MANAGED_BY = "hookline-operator"
# Marks a Secret the operator generated for a Webhook (auth without secretRef).
GENERATED_LABEL = "hookline.dev/generated"
WEBHOOK_ANNOTATION = "hookline.dev/webhook"

ADMIN_TOKEN_KEY = "token"
ADMIN_TOKEN_DIR = "/var/run/hookline/admin"
ADMIN_TOKEN_PATH = f"{ADMIN_TOKEN_DIR}/{ADMIN_TOKEN_KEY}"
STORE_URL_ENV = "HOOKLINE_STORE_URL"
INGEST_PORT_NAME = "ingest"
ADMIN_PORT_NAME = "admin"
SERVICE_PORT_NAME = "http"
HOOKS_PREFIX = "/hooks"

# The image's non-root user (Dockerfile); fsGroup makes the SQLite volume writable.
RUN_AS_USER = 10001
# Past the receiver's own drain (SHUTDOWN_TIMEOUT for requests in flight, commits
# included) a margin for closing the store, so the kubelet never SIGKILLs a commit.
_SHUTDOWN_MARGIN = 10


def labels(settings: OperatorSettings, component: str) -> dict[str, str]:
    """The app.kubernetes.io labels every object the operator makes carries."""
    return {
        "app.kubernetes.io/name": "hookline",
        "app.kubernetes.io/instance": settings.receiver_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "hookline",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": __version__,
    }


def receiver_selector(settings: OperatorSettings) -> dict[str, str]:
    """Labels that select the receiver pods: stable across versions, because a
    Deployment's selector is immutable."""
    return {
        "app.kubernetes.io/name": "hookline",
        "app.kubernetes.io/instance": settings.receiver_name,
        "app.kubernetes.io/component": "receiver",
    }


def _metadata(settings: OperatorSettings, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": labels(settings, component)}


# --- the receiver Deployment ---------------------------------------------------------


def receiver_args(settings: OperatorSettings) -> list[str]:
    """`hookline` arguments of the receiver container.

    The store URL is a Secret's value: it reaches the container as an environment
    variable and the kubelet expands ``$(HOOKLINE_STORE_URL)``, so it is never written
    into the Deployment (only the Secret's name is).
    """
    args = [
        "receiver",
        "--config-source",
        "push",
        "--admin-token-file",
        ADMIN_TOKEN_PATH,
        "--store",
        f"$({STORE_URL_ENV})",
        "--host",
        settings.receiver_bind_address,
        "--port",
        str(settings.ingest_port),
        "--admin-host",
        settings.receiver_bind_address,
        "--admin-port",
        str(settings.admin_port),
        "--log-level",
        settings.receiver_log_level,
        # Issue 11 §4: how far forwarding may fall behind ingest, per destination.
        "--max-outbox-backlog",
        str(settings.receiver_max_outbox_backlog),
    ]
    for cidr in settings.receiver_trusted_proxies:
        args += ["--trusted-proxy", cidr]
    return args


def _store_env(settings: OperatorSettings) -> dict[str, Any]:
    if settings.store_secret_name is None:
        return {"name": STORE_URL_ENV, "value": SQLITE_URL}
    return {
        "name": STORE_URL_ENV,
        "valueFrom": {
            "secretKeyRef": {"name": settings.store_secret_name, "key": settings.store_secret_key}
        },
    }


def _strategy(settings: OperatorSettings) -> dict[str, Any]:
    if settings.sqlite_pvc is not None:
        # A ReadWriteOnce volume and SQLite's single writer: the old pod must be gone
        # before the new one opens the database. Zero-downtime rollouts need PostgreSQL.
        return {"type": "Recreate"}
    # Never fewer ready pods than asked for: a new pod takes traffic before an old one
    # leaves, so no webhook is refused during a rollout (issue 6).
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": ADMIN_PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def build_receiver_deployment(
    settings: OperatorSettings, *, pod_annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The receiver Deployment. `pod_annotations` are added to the pod template (e.g. a
    checksum that rolls the pods when something they only read at start changes)."""
    selector = receiver_selector(settings)
    data_volume: dict[str, Any] = {"name": "data"}
    if settings.sqlite_pvc is not None:
        data_volume["persistentVolumeClaim"] = {"claimName": settings.sqlite_pvc}
    else:
        data_volume["emptyDir"] = {}
    container: dict[str, Any] = {
        "name": "receiver",
        "image": settings.receiver_image,
        "imagePullPolicy": settings.receiver_image_pull_policy,
        "command": ["hookline"],
        "args": receiver_args(settings),
        "env": [_store_env(settings), *settings.receiver_env],
        "ports": [
            {"name": INGEST_PORT_NAME, "containerPort": settings.ingest_port, "protocol": "TCP"},
            {"name": ADMIN_PORT_NAME, "containerPort": settings.admin_port, "protocol": "TCP"},
        ],
        # /readyz pings the store: a pod whose database is unreachable gets no traffic.
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        # Opening the store comes before serving, migrations included: schema version
        # 5 of SQLite rebuilds two indexes over every kept delivery (3.4 GB took 2.6 s
        # on a fast disk; tens of GB on a slow volume take minutes). Ten minutes before
        # a restart, which would only begin the same migration again; liveness counts
        # once this has passed.
        "startupProbe": _probe("/healthz", period=2, failures=300),
        "lifecycle": {
            # Keep serving while the endpoint removal reaches kube-proxy and ingress
            # controllers; SIGTERM (graceful drain) comes after this.
            "preStop": {"exec": {"command": ["sleep", str(settings.receiver_prestop_seconds)]}}
        },
        "resources": settings.receiver_resources,
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "admin-token", "mountPath": ADMIN_TOKEN_DIR, "readOnly": True},
            {"name": "data", "mountPath": SQLITE_DIR},
            # Python and aiohttp may write temporary files; the root is read-only.
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        # The receiver needs no Kubernetes access (DESIGN.md): no token in the pod.
        "automountServiceAccountToken": False,
        # Service links would put variables for every Service of the namespace into the
        # environment, HOOKLINE_RECEIVER_* included; the receiver uses none.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": (
            settings.receiver_prestop_seconds + int(SHUTDOWN_TIMEOUT) + _SHUTDOWN_MARGIN
        ),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "admin-token",
                "secret": {
                    "secretName": settings.admin_token_secret,
                    "items": [{"key": ADMIN_TOKEN_KEY, "path": ADMIN_TOKEN_KEY}],
                    # Readable by the pod's group (fsGroup) only.
                    "defaultMode": 0o440,
                },
            },
            data_volume,
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if settings.receiver_service_account:
        pod_spec["serviceAccountName"] = settings.receiver_service_account
    if settings.receiver_image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in settings.receiver_image_pull_secrets]
    if settings.receiver_node_selector:
        pod_spec["nodeSelector"] = dict(settings.receiver_node_selector)
    if settings.receiver_tolerations:
        pod_spec["tolerations"] = list(settings.receiver_tolerations)
    if settings.receiver_affinity:
        pod_spec["affinity"] = dict(settings.receiver_affinity)
    if settings.receiver_priority_class_name:
        pod_spec["priorityClassName"] = settings.receiver_priority_class_name
    if settings.receiver_replicas > 1:
        # One node going away should not take every replica with it.
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ]
    template_metadata: dict[str, Any] = {"labels": labels(settings, "receiver")}
    annotations = {**settings.receiver_pod_annotations, **(pod_annotations or {})}
    if annotations:
        template_metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(settings, settings.receiver_name, "receiver"),
        "spec": {
            "replicas": settings.receiver_replicas,
            "selector": {"matchLabels": selector},
            "strategy": _strategy(settings),
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }


# --- Services, Ingress, NetworkPolicy ------------------------------------------------


def build_receiver_service(settings: OperatorSettings) -> dict[str, Any]:
    """The ingest Service: /hooks/ only. The admin port is never on it, so nothing that
    reaches this Service (an Ingress, a LoadBalancer) can reach the admin API."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings, settings.receiver_name, "receiver"),
        "spec": {
            "type": settings.receiver_service_type,
            "selector": receiver_selector(settings),
            "ports": [
                {
                    "name": SERVICE_PORT_NAME,
                    "port": settings.receiver_service_port,
                    "targetPort": INGEST_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_receiver_admin_service(settings: OperatorSettings) -> dict[str, Any]:
    """Headless Service for the admin port: its EndpointSlices list every receiver pod,
    ready or not, so the operator can push configuration to a pod that is not ready yet
    (it may be unready precisely because it has no configuration)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings, settings.admin_service_name, "receiver-admin"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": receiver_selector(settings),
            "ports": [
                {
                    "name": ADMIN_PORT_NAME,
                    "port": settings.admin_port,
                    "targetPort": ADMIN_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_receiver_ingress(settings: OperatorSettings) -> dict[str, Any] | None:
    """The Ingress for /hooks/ on the ingest Service, or None when it is disabled."""
    if not settings.ingress_enabled or not settings.ingress_host:
        return None
    metadata = _metadata(settings, settings.receiver_name, "receiver")
    if settings.ingress_annotations:
        metadata["annotations"] = dict(settings.ingress_annotations)
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": settings.ingress_host,
                "http": {
                    "paths": [
                        {
                            # Only the webhook paths are published, nothing else the
                            # ingest port might ever serve.
                            "path": HOOKS_PREFIX,
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": settings.receiver_name,
                                    "port": {"name": SERVICE_PORT_NAME},
                                }
                            },
                        }
                    ]
                },
            }
        ]
    }
    if settings.ingress_class_name:
        spec["ingressClassName"] = settings.ingress_class_name
    if settings.ingress_tls_secret:
        spec["tls"] = [
            {"hosts": [settings.ingress_host], "secretName": settings.ingress_tls_secret}
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }


def build_admin_network_policy(settings: OperatorSettings) -> dict[str, Any]:
    """Ingest port open to all; admin port only from the operator pods (and the extra
    peers the settings name, e.g. Prometheus). Kubelet probes come from the node, which
    common CNIs admit regardless of NetworkPolicy."""
    operator_peer: dict[str, Any] = {
        "podSelector": {"matchLabels": dict(settings.operator_pod_labels)},
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": settings.operator_pod_namespace}
        },
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(settings, settings.admin_service_name, "receiver-admin"),
        "spec": {
            "podSelector": {"matchLabels": receiver_selector(settings)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"protocol": "TCP", "port": settings.ingest_port}]},
                {
                    "from": [operator_peer, *settings.admin_network_peers],
                    "ports": [{"protocol": "TCP", "port": settings.admin_port}],
                },
            ],
        },
    }


# --- Secrets -------------------------------------------------------------------------


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def build_admin_token_secret(settings: OperatorSettings, token: bytes) -> dict[str, Any]:
    """The admin API bearer token, read by the receiver (mounted file) and the operator."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(settings, settings.admin_token_secret, "receiver-admin"),
        "data": {ADMIN_TOKEN_KEY: _b64(token)},
    }


def generated_secret_name(webhook_name: str) -> str:
    """`<webhook>-hookline-auth`, shortened with a hash when the Webhook's name is long
    (object names end at 253 characters)."""
    suffix = "-hookline-auth"
    name = webhook_name + suffix
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(webhook_name.encode()).hexdigest()[:10]
    keep = 253 - len(suffix) - len(digest) - 1
    return f"{webhook_name[:keep].rstrip('.-')}-{digest}{suffix}"


def build_generated_secret(
    webhook_name: str, namespace: str, key: str, value: bytes
) -> dict[str, Any]:
    """The Secret generated for a Webhook whose auth has no secretRef (issue 6).

    The caller adopts it (``kopf.adopt``) so it goes when the Webhook goes. The Webhook's
    name is an annotation: names may be longer than a label value may be.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": generated_secret_name(webhook_name),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "hookline",
                "app.kubernetes.io/component": "webhook-secret",
                "app.kubernetes.io/part-of": "hookline",
                "app.kubernetes.io/managed-by": MANAGED_BY,
                GENERATED_LABEL: "true",
            },
            "annotations": {WEBHOOK_ANNOTATION: webhook_name},
        },
        "data": {key: _b64(value)},
    }


# --- drift ---------------------------------------------------------------------------

# Compared besides `spec`-like top-level fields; everything else in metadata (uid,
# resourceVersion, managedFields, ownerReferences...) belongs to the API server or others.
_OWNED_METADATA = ("labels", "annotations")
_NOT_COMPARED = frozenset({"apiVersion", "kind", "metadata", "status"})


def _empty(value: Any) -> bool:
    # The API server drops empty maps and lists (omitempty), so "absent" equals "empty".
    return value is None or value == {} or value == []


# Resource quantities: the API server returns them in canonical form ("0.5" → "500m",
# "1024Mi" → "1Gi"), so they are compared by value or a user's spelling would look like
# drift on every reconcile.
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)
_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    **{s: Decimal(10) ** (3 * i) for i, s in enumerate("kMGTPE", start=1)},
    **{s: Decimal(2) ** (10 * i) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"], 1)},
}  # fmt: skip
_QUANTITY_PARENTS = frozenset({"requests", "limits"})


def quantity(value: Any) -> Decimal | None:
    """The value of a Kubernetes quantity ("500m", "1Gi", 2), None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    number = Decimal(match[1])
    if match[2]:
        return number * Decimal(10) ** int(match[2][1:])
    return number * _SUFFIX[match[3] or ""]


def _same_scalar(actual: Any, desired: Any, as_quantity: bool) -> bool:
    if actual == desired:
        return True
    if as_quantity:
        have, want = quantity(actual), quantity(desired)
        return have is not None and have == want
    return False


def _covers(actual: Any, desired: Any, as_quantity: bool = False) -> bool:
    """True when `actual` has every value `desired` sets (extra keys are defaults)."""
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return _empty(desired) and actual is None
        return all(
            _covers(actual.get(k), v, as_quantity or k in _QUANTITY_PARENTS)
            if k in actual
            else _empty(v)
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        if actual is None:
            return desired == []
        if not isinstance(actual, list) or len(actual) != len(desired):
            return False
        return all(_covers(a, d) for a, d in zip(actual, desired, strict=True))
    return _same_scalar(actual, desired, as_quantity)


# Discriminated unions: when their `type` changes, the old member's fields must go (a
# Deployment's rollingUpdate is refused beside type Recreate).
_UNIONS = frozenset({"strategy"})


def _merge_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = actual.get(key)
        if key not in actual:
            if not _empty(want):
                patch[key] = want
        elif (
            key in _UNIONS
            and isinstance(want, dict)
            and isinstance(have, dict)
            and want.get("type") != have.get("type")
        ):
            patch[key] = {**{k: None for k in have if k not in want}, **want}
        elif isinstance(want, dict) and isinstance(have, dict):
            sub = _merge_patch(want, have)
            if sub:
                patch[key] = sub
        elif not _covers(have, want):
            # A list is replaced whole by a merge patch (RFC 7386): send all of it.
            patch[key] = want
    return patch


def drift_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch (``application/merge-patch+json``) that puts back what the
    operator owns, or None when nothing drifted.

    Only keys present in `desired` are compared, so what the API server defaults
    (``protocol``, ``terminationMessagePath``, ``clusterIP``...) or others add (labels,
    annotations such as ``kubectl rollout restart``'s) never counts as drift. A list that
    differs is sent whole, as merge patches replace lists. Changing an immutable field
    (a Deployment's selector) is refused by the API server: delete and recreate then.
    """
    patch = _merge_patch({k: v for k, v in desired.items() if k not in _NOT_COMPARED}, actual)
    metadata = desired.get("metadata") or {}
    owned = {k: metadata[k] for k in _OWNED_METADATA if k in metadata}
    meta_patch = _merge_patch(owned, actual.get("metadata") or {})
    if meta_patch:
        patch["metadata"] = meta_patch
    return patch or None
