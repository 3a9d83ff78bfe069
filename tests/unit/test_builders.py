"""The receiver's child objects as data (issue 6): shape, security, and drift_patch."""

from __future__ import annotations

import base64
import copy
from decimal import Decimal
from typing import Any

import kubernetes_validate
import pytest

from hookline.cli import build_parser
from hookline.operator import builders as b
from hookline.operator.settings import SQLITE_URL, OperatorSettings

K8S_VERSION = "1.31"


def settings(**kw: Any) -> OperatorSettings:
    return OperatorSettings(namespace="hookline", **kw)


def prune_none(obj: Any) -> Any:
    """A create body as the API server reads it: null means absent."""
    if isinstance(obj, dict):
        return {k: prune_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [prune_none(v) for v in obj]
    return obj


def assert_valid(obj: dict[str, Any]) -> None:
    # The Kubernetes OpenAPI schemas, strict: a misspelt field fails here, not in a cluster.
    kubernetes_validate.validate(prune_none(obj), K8S_VERSION, strict=True)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


FULL = dict(
    receiver_replicas=3,
    store_secret_name="hookline-store",
    store_secret_key="dsn",
    ingress_enabled=True,
    ingress_host="hooks.example.com",
    ingress_class_name="nginx",
    ingress_tls_secret="hooks-tls",
    ingress_annotations={"cert-manager.io/cluster-issuer": "letsencrypt"},
    receiver_image_pull_secrets=["regcred"],
    receiver_node_selector={"kubernetes.io/os": "linux"},
    receiver_tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    receiver_priority_class_name="high",
    receiver_service_account="hookline-receiver",
    receiver_trusted_proxies=["10.0.0.0/8"],
    receiver_max_outbox_backlog=2000,
    admin_network_peers=[{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
    receiver_env=[{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
)


@pytest.mark.parametrize(
    "kw", [{}, {"sqlite_pvc": "hookline-data"}, FULL], ids=["default", "pvc", "full"]
)
def test_every_object_is_valid_kubernetes(kw: dict[str, Any]) -> None:
    s = settings(**kw)
    objects = [
        b.build_receiver_deployment(s),
        b.build_receiver_service(s),
        b.build_receiver_admin_service(s),
        b.build_admin_network_policy(s),
        b.build_admin_token_secret(s, b"t" * 32),
        b.build_generated_secret("ci-runs", "ci", "secret", b"s" * 32),
    ]
    ingress = b.build_receiver_ingress(s)
    assert (ingress is not None) == s.ingress_enabled
    objects += [ingress] if ingress else []
    for obj in objects:
        assert_valid(obj)
        assert prune_none(obj) == obj  # no nulls: the handlers create these bodies as built
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "hookline"
        assert labels["app.kubernetes.io/managed-by"] == "hookline-operator"
        assert "app.kubernetes.io/component" in labels
        assert "app.kubernetes.io/part-of" in labels


def test_receiver_deployment_runs_the_pushed_receiver() -> None:
    s = settings()
    d = b.build_receiver_deployment(s)
    assert d["metadata"] == {
        "name": "hookline-receiver",
        "namespace": "hookline",
        "labels": b.labels(s, "receiver"),
    }
    c = container(d)
    assert c["command"] == ["hookline"]
    args = c["args"]
    assert args[:5] == [
        "receiver",
        "--config-source",
        "push",
        "--admin-token-file",
        "/var/run/hookline/admin/token",
    ]

    def arg(flag: str) -> str:
        value: str = args[args.index(flag) + 1]
        return value

    assert arg("--host") == arg("--admin-host") == "0.0.0.0"
    assert (arg("--port"), arg("--admin-port")) == ("8080", "8081")
    # The store URL is expanded by the kubelet from the env, never written in the spec.
    assert arg("--store") == "$(HOOKLINE_STORE_URL)"
    assert c["env"] == [{"name": "HOOKLINE_STORE_URL", "value": SQLITE_URL}]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"ingest": 8080, "admin": 8081}
    # Labels select the pods, and the selector leaves out what changes with upgrades.
    selector = d["spec"]["selector"]["matchLabels"]
    template_labels = d["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert "app.kubernetes.io/version" not in selector
    assert template_labels["app.kubernetes.io/component"] == "receiver"


def test_store_url_comes_from_the_secret() -> None:
    c = container(
        b.build_receiver_deployment(settings(store_secret_name="pg", store_secret_key="dsn"))
    )
    assert c["env"] == [
        {"name": "HOOKLINE_STORE_URL", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}}}
    ]


def test_receiver_pod_is_locked_down() -> None:
    d = b.build_receiver_deployment(settings())
    pod = d["spec"]["template"]["spec"]
    c = container(d)
    assert pod["automountServiceAccountToken"] is False  # no Kubernetes access needed
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/run/hookline/admin"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    token = volumes[mounts["/var/run/hookline/admin"]["name"]]["secret"]
    assert token["secretName"] == "hookline-receiver-admin-token"
    assert token["items"] == [{"key": "token", "path": "token"}]
    # Writable places exist for what must be written: the database and temp files.
    assert volumes[mounts["/var/lib/hookline"]["name"]] == {"name": "data", "emptyDir": {}}
    assert "/tmp" in mounts


def test_rollouts_never_drop_traffic() -> None:
    d = b.build_receiver_deployment(settings(store_secret_name="pg", receiver_replicas=2))
    assert d["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    c = container(d)
    pod = d["spec"]["template"]["spec"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["livenessProbe"]["httpGet"]["port"] == "admin"
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == ["sleep", "5"]
    # The grace period outlasts the preStop sleep plus the receiver's own drain.
    assert pod["terminationGracePeriodSeconds"] > 5 + 30
    assert pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == (
        b.receiver_selector(settings())
    )


def test_sqlite_on_a_volume_recreates() -> None:
    d = b.build_receiver_deployment(settings(sqlite_pvc="hookline-data"))
    assert d["spec"]["strategy"]["type"] == "Recreate"
    assert d["spec"]["replicas"] == 1
    volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "hookline-data"}


def test_optional_pod_settings() -> None:
    d = b.build_receiver_deployment(settings(**FULL), pod_annotations={"hookline.dev/rev": "1"})
    pod = d["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["priorityClassName"] == "high"
    assert pod["serviceAccountName"] == "hookline-receiver"
    assert d["spec"]["template"]["metadata"]["annotations"] == {"hookline.dev/rev": "1"}
    args = container(d)["args"]
    assert args[args.index("--trusted-proxy") + 1] == "10.0.0.0/8"
    assert d["spec"]["replicas"] == 3
    assert container(d)["env"][1:] == [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]


def test_ingest_service_never_exposes_the_admin_port() -> None:
    s = settings(admin_port=9000)
    svc = b.build_receiver_service(s)
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "ingest", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == b.receiver_selector(s)
    ports = str(svc["spec"])
    assert "admin" not in ports and "9000" not in ports


def test_admin_service_is_headless_and_lists_unready_pods() -> None:
    svc = b.build_receiver_admin_service(settings())
    assert svc["metadata"]["name"] == "hookline-receiver-admin"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["ports"] == [
        {"name": "admin", "port": 8081, "targetPort": "admin", "protocol": "TCP"}
    ]


def test_ingress() -> None:
    assert b.build_receiver_ingress(settings()) is None
    ing = b.build_receiver_ingress(settings(**FULL))
    assert ing is not None
    spec = ing["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["hooks.example.com"], "secretName": "hooks-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "hooks.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/hooks", "Prefix")
    assert path["backend"]["service"] == {"name": "hookline-receiver", "port": {"name": "http"}}
    assert ing["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}


def test_admin_port_only_from_the_operator() -> None:
    s = settings(operator_namespace="ops")
    np = b.build_admin_network_policy(s)
    spec = np["spec"]
    assert spec["podSelector"]["matchLabels"] == b.receiver_selector(s)
    assert spec["policyTypes"] == ["Ingress"]
    ingest, admin = spec["ingress"]
    assert ingest == {"ports": [{"protocol": "TCP", "port": 8080}]}  # open to all callers
    assert admin["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert admin["from"] == [
        {
            "podSelector": {"matchLabels": s.operator_pod_labels},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
        }
    ]
    extra = b.build_admin_network_policy(settings(**FULL))["spec"]["ingress"][1]["from"]
    assert extra[1] == FULL["admin_network_peers"][0]  # type: ignore[index]


def test_secrets() -> None:
    token = b.build_admin_token_secret(settings(), b"\x00\xff token")
    assert token["metadata"]["name"] == "hookline-receiver-admin-token"
    assert token["metadata"]["namespace"] == "hookline"
    assert token["type"] == "Opaque"
    assert base64.b64decode(token["data"]["token"]) == b"\x00\xff token"

    gen = b.build_generated_secret("ci-runs", "ci", "secret", b"k" * 32)
    meta = gen["metadata"]
    assert (meta["name"], meta["namespace"]) == ("ci-runs-hookline-auth", "ci")
    assert meta["labels"][b.GENERATED_LABEL] == "true"
    assert meta["annotations"] == {b.WEBHOOK_ANNOTATION: "ci-runs"}
    assert gen["type"] == "Opaque"
    assert base64.b64decode(gen["data"]["secret"]) == b"k" * 32


def test_generated_secret_name_fits() -> None:
    long = "a" * 250
    name = b.generated_secret_name(long)
    assert len(name) <= 253 and name.endswith("-hookline-auth")
    assert name != b.generated_secret_name("a" * 249)
    assert b.generated_secret_name(long) == name  # stable: found again on the next reconcile


# --- drift ---------------------------------------------------------------------------


def as_server_returns(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: defaults and bookkeeping added."""
    actual: dict[str, Any] = prune_none(copy.deepcopy(obj))
    actual["metadata"].update(
        uid="1234", resourceVersion="42", generation=3, managedFields=[{"manager": "x"}]
    )
    actual["metadata"]["labels"]["extra"] = "someone else's"
    actual["status"] = {"replicas": 1}
    spec = actual["spec"]
    if actual["kind"] == "Deployment":
        spec["revisionHistoryLimit"] = 10
        spec["progressDeadlineSeconds"] = 600
        pod = spec["template"]["spec"]
        pod.update(
            restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler"
        )
        c = pod["containers"][0]
        c.update(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
        c["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
        spec["template"]["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
    if actual["kind"] == "Service":
        spec.update(clusterIP=spec.get("clusterIP", "10.0.0.7"), sessionAffinity="None")
        spec["ipFamilies"] = ["IPv4"]
    return actual


@pytest.mark.parametrize(
    "build",
    [
        b.build_receiver_deployment,
        b.build_receiver_service,
        b.build_receiver_admin_service,
        b.build_admin_network_policy,
        b.build_receiver_ingress,
    ],
)
def test_no_drift_when_only_the_server_added_things(build: Any) -> None:
    desired = build(settings(**FULL))
    assert b.drift_patch(desired, as_server_returns(desired)) is None


def test_drift_puts_back_owned_fields() -> None:
    desired = b.build_receiver_deployment(settings())
    actual = as_server_returns(desired)
    actual["spec"]["replicas"] = 5
    actual["metadata"]["labels"]["app.kubernetes.io/component"] = "hacked"
    actual["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    patch = b.drift_patch(desired, actual)
    assert patch is not None
    assert patch["spec"]["replicas"] == 1
    assert patch["metadata"] == {"labels": {"app.kubernetes.io/component": "receiver"}}
    # A list is replaced whole (merge patch): the containers go back as desired.
    assert (
        patch["spec"]["template"]["spec"]["containers"]
        == desired["spec"]["template"]["spec"]["containers"]
    )
    assert "status" not in patch and "apiVersion" not in patch


def test_drift_restores_removed_fields_and_switches_strategy() -> None:
    rolling = b.build_receiver_deployment(settings())
    actual = as_server_returns(rolling)
    del actual["spec"]["template"]["spec"]["securityContext"]
    recreate = b.build_receiver_deployment(settings(sqlite_pvc="data"))
    patch = b.drift_patch(recreate, actual)
    assert patch is not None
    assert patch["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # Recreate beside the old rollingUpdate is refused: the patch clears it.
    assert patch["spec"]["strategy"] == {"type": "Recreate", "rollingUpdate": None}


def test_drift_on_a_service_port_and_empty_values() -> None:
    desired = b.build_receiver_service(settings())
    actual = as_server_returns(desired)
    actual["spec"]["ports"][0]["targetPort"] = 8081  # someone pointed it at the admin port
    patch = b.drift_patch(desired, actual)
    assert patch == {"spec": {"ports": desired["spec"]["ports"]}}
    # Empty maps and lists equal absent ones (the API server drops them).
    assert b.drift_patch({"spec": {"a": {}, "b": [], "c": None}}, {"spec": {}}) is None
    assert b.drift_patch({"spec": {"a": 1}}, {"spec": {"a": 1, "b": 2}}) is None
    assert b.drift_patch({"spec": {"a": [1, 2]}}, {"spec": {"a": [1]}}) == {"spec": {"a": [1, 2]}}


def test_the_cli_accepts_the_receiver_args() -> None:
    s = settings(**FULL)
    # What the kubelet runs after expanding $(HOOKLINE_STORE_URL) from the env.
    argv = [a.replace("$(HOOKLINE_STORE_URL)", "postgresql://u@db/h") for a in b.receiver_args(s)]
    args = build_parser().parse_args(argv)
    assert args.command == "receiver"
    assert args.config_source == "push"
    assert args.admin_token_file == b.ADMIN_TOKEN_PATH
    assert args.store == "postgresql://u@db/h"
    assert (args.port, args.admin_port) == (s.ingest_port, s.admin_port)
    assert args.trusted_proxy == ["10.0.0.0/8"]
    assert args.max_outbox_backlog == 2000  # issue 11 §4


def test_the_receiver_gets_the_outbox_backlog_bound() -> None:
    args = b.receiver_args(settings())
    assert args[args.index("--max-outbox-backlog") + 1] == "100000"
    args = b.receiver_args(settings(receiver_max_outbox_backlog=0))
    assert args[args.index("--max-outbox-backlog") + 1] == "0"


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("0.5", "0.5"), ("1Gi", str(2**30)), ("1024Mi", str(2**30)), ("1e3", "1000")],
)
def test_quantity(text: str, value: str) -> None:
    assert b.quantity(text) == Decimal(value)


def test_resources_compare_by_value_not_spelling() -> None:
    # A user writes cpu "0.5" and memory "1024Mi"; the API server returns "500m", "1Gi".
    desired = b.build_receiver_deployment(
        settings(receiver_resources={"requests": {"cpu": "0.5", "memory": "1024Mi"}})
    )
    actual = as_server_returns(desired)
    actual["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "500m", "memory": "1Gi"}
    }
    assert b.drift_patch(desired, actual) is None
    actual["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    assert b.drift_patch(desired, actual) is not None
    # Elsewhere strings are strings: an image tag "1.0" is not "1".
    assert b.drift_patch({"spec": {"image": "1.0"}}, {"spec": {"image": "1"}}) is not None
