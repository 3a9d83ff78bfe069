"""OperatorSettings.from_env: HOOKLINE_* variables, defaults, and errors naming the variable."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from hookline.operator.settings import (
    DEFAULT_NAMESPACE,
    OperatorSettings,
    derived_priority,
    env_name,
)

NO_POD = Path("/nonexistent/namespace")


def from_env(**env: str) -> OperatorSettings:
    # No ~/.kube/config of whoever runs the tests (issue 14).
    return OperatorSettings.from_env({"HOME": "/nonexistent", **env}, namespace_file=NO_POD)


def kubeconfig(path: Path, current: str | None = "dev", namespace: str | None = "team") -> Path:
    """A kubeconfig whose `dev` context has `namespace`, another context `prod`'s."""
    dev: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace is not None:
        dev["namespace"] = namespace
    config: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "contexts": [
            {"name": "prod", "context": {"cluster": "c", "user": "u", "namespace": "prod"}},
            {"name": "dev", "context": dev},
        ],
    }
    if current is not None:
        config["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_defaults_outside_a_cluster() -> None:
    s = from_env()
    assert s.namespace == DEFAULT_NAMESPACE
    assert s.operator_pod_namespace == DEFAULT_NAMESPACE
    assert s.clusterwide and s.watch_namespaces == []
    assert s.kube_url is None
    assert s.manage_receiver is True
    assert s.receiver_name == "hookline-receiver"
    assert s.admin_service_name == "hookline-receiver-admin"
    assert s.receiver_replicas == 1
    assert s.admin_token_secret == "hookline-receiver-admin-token"
    assert (s.ingest_port, s.admin_port) == (8080, 8081)
    assert s.stats_interval == 10.0
    assert s.config_debounce == 0.1
    assert s.secret_overlap == timedelta(hours=24)
    assert s.embedded_sqlite
    assert s.base_url is None and s.webhook_url("ci/runs") is None


def test_namespace_comes_from_the_pod(tmp_path: Path) -> None:
    file = tmp_path / "namespace"
    file.write_text("platform\n")
    s = OperatorSettings.from_env({}, namespace_file=file)
    assert s.namespace == "platform"
    assert s.operator_pod_namespace == "platform"
    # The receiver may run elsewhere; the NetworkPolicy still admits the operator's pods.
    s = OperatorSettings.from_env({"HOOKLINE_NAMESPACE": "edge"}, namespace_file=file)
    assert (s.namespace, s.operator_pod_namespace) == ("edge", "platform")


def test_namespace_comes_from_the_kubeconfigs_current_context(tmp_path: Path) -> None:
    """A user's `hookline operator`: the receiver goes where kubectl puts things (issue 14)."""
    first = kubeconfig(tmp_path / "first")
    listed = f"{first}{os.pathsep}{tmp_path / 'missing'}"
    assert from_env(KUBECONFIG=listed).namespace == "team"
    # Without KUBECONFIG: ~/.kube/config.
    home = tmp_path / "home"
    kubeconfig(home / ".kube" / "config", namespace="at-home")
    assert from_env(HOME=str(home)).namespace == "at-home"
    # Only the first file of the list counts, as kopf reads it.
    second = f"{tmp_path / 'missing'}{os.pathsep}{first}"
    assert from_env(KUBECONFIG=second, HOME=str(home)).namespace == DEFAULT_NAMESPACE


def test_what_beats_the_kubeconfigs_namespace(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path / "config")), "HOME": "/nonexistent"}
    assert from_env(**env, HOOKLINE_NAMESPACE="explicit").namespace == "explicit"
    # HOOKLINE_KUBE_URL: kopf does not log in with the kubeconfig, so it says nothing.
    with_url = from_env(**env, HOOKLINE_KUBE_URL="http://127.0.0.1:9999")
    assert with_url.namespace == DEFAULT_NAMESPACE
    pod = tmp_path / "namespace"
    pod.write_text("platform\n")
    assert OperatorSettings.from_env(env, namespace_file=pod).namespace == "platform"


@pytest.mark.parametrize(
    "write",
    [
        lambda p: kubeconfig(p, namespace=None),  # the context has no namespace
        lambda p: kubeconfig(p, current=None),  # no current context
        lambda p: kubeconfig(p, current="gone"),  # a current context that is not there
        lambda p: p.write_text("contexts: [unclosed"),  # not YAML
        lambda p: p.write_text("- a list\n"),  # YAML, not a kubeconfig
    ],
)
def test_a_kubeconfig_without_a_namespace_leaves_the_default(
    tmp_path: Path, write: Callable[[Path], object]
) -> None:
    path = tmp_path / "config"
    write(path)
    assert from_env(KUBECONFIG=str(path)).namespace == DEFAULT_NAMESPACE


def test_values_from_the_environment() -> None:
    s = from_env(
        HOOKLINE_NAMESPACE="hooks",
        HOOKLINE_WATCH_NAMESPACES="ci, payments ci",
        HOOKLINE_KUBE_URL="http://127.0.0.1:9999/",
        HOOKLINE_MANAGE_RECEIVER="false",
        HOOKLINE_RECEIVER_IMAGE="registry.local/hookline:1.2.3",
        HOOKLINE_RECEIVER_REPLICAS="3",
        HOOKLINE_STORE_SECRET_NAME="hookline-store",
        HOOKLINE_RECEIVER_RESOURCES='{"requests": {"cpu": 1, "memory": "256Mi"}}',
        HOOKLINE_RECEIVER_TRUSTED_PROXIES="10.0.0.0/8,fd00::/8",
        HOOKLINE_RECEIVER_MAX_OUTBOX_BACKLOG="2000",
        HOOKLINE_PUBLIC_BASE_URL="https://hooks.example.com/",
        HOOKLINE_RECEIVER_ADMIN_URLS="http://127.0.0.1:8081 http://127.0.0.1:8082",
        HOOKLINE_STATS_INTERVAL="1m",
        HOOKLINE_CONFIG_DEBOUNCE="0.5",
        HOOKLINE_SECRET_OVERLAP="1h30m",
        HOOKLINE_PEERING_PRIORITY="100",
        HOOKLINE_SQLITE_PVC="",  # Helm renders an unset value as ""
    )
    assert s.namespace == "hooks"
    assert s.watch_namespaces == ["ci", "payments"]
    assert not s.clusterwide
    assert s.kube_url == "http://127.0.0.1:9999"
    assert s.manage_receiver is False
    assert s.receiver_replicas == 3
    assert s.receiver_resources == {"requests": {"cpu": "1", "memory": "256Mi"}}
    assert s.receiver_trusted_proxies == ["10.0.0.0/8", "fd00::/8"]
    assert s.receiver_max_outbox_backlog == 2000
    assert s.webhook_url("ci/runs") == "https://hooks.example.com/hooks/ci/runs"
    assert s.receiver_admin_urls == ["http://127.0.0.1:8081", "http://127.0.0.1:8082"]
    assert s.stats_interval == 60.0
    assert s.config_debounce == 0.5
    assert s.secret_overlap == timedelta(hours=1, minutes=30)
    assert s.peering_priority == 100
    assert s.sqlite_pvc is None


def test_base_url_from_the_ingress() -> None:
    s = from_env(
        HOOKLINE_INGRESS_ENABLED="true",
        HOOKLINE_INGRESS_HOST="hooks.example.com",
        HOOKLINE_INGRESS_TLS_SECRET="hooks-tls",
    )
    assert s.webhook_url("/a/b") == "https://hooks.example.com/hooks/a/b"
    plain = from_env(HOOKLINE_INGRESS_ENABLED="1", HOOKLINE_INGRESS_HOST="hooks.local")
    assert plain.base_url == "http://hooks.local"


def test_peering_priority_differs_between_replicas() -> None:
    a = OperatorSettings.from_env(
        {"HOSTNAME": "hookline-operator-5d9c-abcde"}, namespace_file=NO_POD
    )
    b = OperatorSettings.from_env(
        {"HOSTNAME": "hookline-operator-5d9c-fghij"}, namespace_file=NO_POD
    )
    assert a.peering_priority != b.peering_priority
    assert a.peering_priority == derived_priority("hookline-operator-5d9c-abcde") > 0
    fixed = OperatorSettings.from_env(
        {"HOSTNAME": "x", "HOOKLINE_PEERING_PRIORITY": "7"}, namespace_file=NO_POD
    )
    assert fixed.peering_priority == 7


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HOOKLINE_RECEIVER_REPLICAS": "two"}, "HOOKLINE_RECEIVER_REPLICAS"),
        ({"HOOKLINE_RECEIVER_REPLICAS": "0"}, "HOOKLINE_RECEIVER_REPLICAS"),
        ({"HOOKLINE_MANAGE_RECEIVER": "maybe"}, "HOOKLINE_MANAGE_RECEIVER"),
        ({"HOOKLINE_WATCH_NAMESPACES": "ci,Payments"}, "HOOKLINE_WATCH_NAMESPACES"),
        ({"HOOKLINE_NAMESPACE": "a.b"}, "HOOKLINE_NAMESPACE"),
        ({"HOOKLINE_RECEIVER_NAME": "9receiver"}, "HOOKLINE_RECEIVER_NAME"),
        ({"HOOKLINE_RECEIVER_NAME": "r" * 60}, "HOOKLINE_RECEIVER_NAME"),
        ({"HOOKLINE_RECEIVER_RESOURCES": "{cpu: 1}"}, "HOOKLINE_RECEIVER_RESOURCES"),
        ({"HOOKLINE_RECEIVER_RESOURCES": '{"cpu": "1"}'}, "HOOKLINE_RECEIVER_RESOURCES"),
        ({"HOOKLINE_SECRET_OVERLAP": "1 day"}, "HOOKLINE_SECRET_OVERLAP"),
        ({"HOOKLINE_STATS_INTERVAL": "0"}, "HOOKLINE_STATS_INTERVAL"),
        ({"HOOKLINE_CONFIG_DEBOUNCE": "10s"}, "HOOKLINE_CONFIG_DEBOUNCE"),
        ({"HOOKLINE_PUBLIC_BASE_URL": "hooks.example.com"}, "HOOKLINE_PUBLIC_BASE_URL"),
        ({"HOOKLINE_PUBLIC_BASE_URL": "https://h.example/?a=1"}, "HOOKLINE_PUBLIC_BASE_URL"),
        ({"HOOKLINE_KUBE_URL": "ftp://x"}, "HOOKLINE_KUBE_URL"),
        ({"HOOKLINE_RECEIVER_TRUSTED_PROXIES": "10.0.0.0/33"}, "HOOKLINE_RECEIVER_TRUSTED_PROXIES"),
        ({"HOOKLINE_RECEIVER_MAX_OUTBOX_BACKLOG": "-1"}, "HOOKLINE_RECEIVER_MAX_OUTBOX_BACKLOG"),
        ({"HOOKLINE_INGEST_PORT": "80"}, "HOOKLINE_INGEST_PORT"),
        ({"HOOKLINE_ADMIN_PORT": "8080"}, "HOOKLINE_ADMIN_PORT"),
        ({"HOOKLINE_RECEIVER_IMAGE_PULL_POLICY": "always"}, "HOOKLINE_RECEIVER_IMAGE_PULL_POLICY"),
        ({"HOOKLINE_STORE_SECRET_KEY": "a/b"}, "HOOKLINE_STORE_SECRET_KEY"),
        ({"HOOKLINE_INGRESS_ENABLED": "true"}, "HOOKLINE_INGRESS_HOST"),
        ({"HOOKLINE_INGRESS_HOST": "*.example.com"}, "HOOKLINE_INGRESS_HOST"),
        ({"HOOKLINE_PEERING_PRIORITY": "high"}, "HOOKLINE_PEERING_PRIORITY"),
        ({"HOOKLINE_RECEIVER_ENV": '[{"value": "x"}]'}, "HOOKLINE_RECEIVER_ENV"),
        (
            {"HOOKLINE_RECEIVER_ENV": '[{"name": "HOOKLINE_STORE_URL", "value": "x"}]'},
            "HOOKLINE_RECEIVER_ENV",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable) as info:
        OperatorSettings.from_env(env, namespace_file=NO_POD)
    assert str(info.value).startswith(variable) or variable in str(info.value)


def test_sqlite_refuses_several_replicas() -> None:
    # Embedded SQLite (no store Secret): one replica only, said with both variables.
    with pytest.raises(ValueError) as info:
        from_env(HOOKLINE_RECEIVER_REPLICAS="2")
    assert "HOOKLINE_RECEIVER_REPLICAS" in str(info.value)
    assert "HOOKLINE_STORE_SECRET_NAME" in str(info.value)
    with pytest.raises(ValueError, match="HOOKLINE_SQLITE_PVC"):
        from_env(
            HOOKLINE_RECEIVER_REPLICAS="2",
            HOOKLINE_STORE_SECRET_NAME="store",
            HOOKLINE_SQLITE_PVC="data",
        )
    # A Secret's URL is only known at run time: PostgreSQL is assumed.
    assert (
        from_env(HOOKLINE_RECEIVER_REPLICAS="2", HOOKLINE_STORE_SECRET_NAME="s").receiver_replicas
        == 2
    )


def test_unknown_variables_are_listed_not_fatal() -> None:
    env = {
        "HOOKLINE_RECEVER_IMAGE": "typo",
        "HOOKLINE_STORE_URL": "sqlite:///x.db",
        # Kubernetes' service links for a Service named hookline-receiver.
        "HOOKLINE_RECEIVER_SERVICE_HOST": "10.0.0.1",
        "HOOKLINE_RECEIVER_SERVICE_PORT_HTTP": "80",
        "HOOKLINE_RECEIVER_PORT": "tcp://10.0.0.1:80",
        "HOOKLINE_RECEIVER_PORT_80_TCP_ADDR": "10.0.0.1",
        "PATH": "/usr/bin",
    }
    assert (
        OperatorSettings.from_env(env, namespace_file=NO_POD).receiver_name == "hookline-receiver"
    )
    assert OperatorSettings.unknown_env(env) == ["HOOKLINE_RECEVER_IMAGE"]


def test_every_field_is_documented_with_its_variable() -> None:
    for name, field in OperatorSettings.model_fields.items():
        assert field.description, name
        assert field.description.startswith(env_name(name)), (name, field.description)


def test_empty_values_are_unset() -> None:
    # What Helm renders for values left empty.
    env = {
        env_name(name): "" for name in OperatorSettings.model_fields if name not in ("namespace",)
    }
    assert from_env(**env) == from_env()
