"""The Helm chart against the code (issue 6): RBAC covers hookline.operator.rbac, the
operator's HOOKLINE_* variables are real settings, and the default values parse.

There is no helm binary here, so templates are read with a tiny substitution: lines that
are only a template action (`{{- if }}`, `{{- end }}`, `{{- include ... | nindent }}`)
are dropped and inline actions become a placeholder. The RBAC templates are plain YAML
on purpose so that this reads them exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hookline.operator import builders
from hookline.operator.rbac import (
    CLUSTER_PERMISSIONS,
    RECEIVER_NAMESPACE_PERMISSIONS,
    REQUIRED_PERMISSIONS,
    WATCHED_NAMESPACE_PERMISSIONS,
    Permission,
    allows,
    missing,
)
from hookline.operator.settings import OperatorSettings, env_name
from tests.conftest import ROOT
from tests.support import chart

CHART = ROOT / "charts" / "hookline"
TEMPLATES = CHART / "templates"
PLACEHOLDER = "RENDERED"
ACTION = re.compile(r"\{\{-?.*?-?\}\}")
ACTION_LINE = re.compile(r"^\s*\{\{-?.*-?\}\}\s*$")


def substitute(text: str) -> str:
    lines = [line for line in text.splitlines() if not ACTION_LINE.match(line)]
    return ACTION.sub(PLACEHOLDER, "\n".join(lines))


def documents(name: str) -> list[dict[str, Any]]:
    text = substitute((TEMPLATES / name).read_text())
    return [doc for doc in yaml.safe_load_all(text) if doc]


def named(kind: str, suffix: str) -> dict[str, Any]:
    found = [
        doc
        for path in TEMPLATES.glob("*.yaml")
        for doc in documents(path.name)
        if doc["kind"] == kind and doc["metadata"]["name"].endswith(suffix)
    ]
    assert len(found) >= 1, (kind, suffix)
    return found[0]


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def granted(rules: list[dict[str, Any]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.yaml")))
def test_templates_parse(name: str) -> None:
    docs = documents(name)
    assert docs, name
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), (name, doc)


@pytest.mark.parametrize(
    ("kind", "suffix", "needed"),
    [
        ("ClusterRole", "-cluster", CLUSTER_PERMISSIONS),
        ("ClusterRole", "-resources", WATCHED_NAMESPACE_PERMISSIONS),
        ("Role", "-receiver", RECEIVER_NAMESPACE_PERMISSIONS),
    ],
)
def test_rbac_covers_what_the_operator_needs(
    kind: str, suffix: str, needed: tuple[Permission, ...]
) -> None:
    rules = named(kind, suffix)["rules"]
    assert missing(rules, needed) == []
    # Least privilege: nothing beyond the list, and no wildcards.
    assert granted(rules) <= set(needed), granted(rules) - set(needed)
    for rule in rules:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule


def test_required_permissions_are_all_granted_somewhere() -> None:
    rules = [
        *named("ClusterRole", "-cluster")["rules"],
        *named("ClusterRole", "-resources")["rules"],
        *named("Role", "-receiver")["rules"],
    ]
    assert missing(rules, REQUIRED_PERMISSIONS) == []
    # Spot checks of the list itself, so an edit that drops one is seen.
    for permission in [
        ("hookline.dev", "webhooks/status", "patch"),
        ("", "secrets", "create"),
        ("apps", "deployments", "patch"),
        ("discovery.k8s.io", "endpointslices", "list"),
        ("kopf.dev", "clusterkopfpeerings", "patch"),
    ]:
        assert permission in REQUIRED_PERMISSIONS


def test_allows() -> None:
    rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    assert allows([rule], ("", "secrets", "get"))
    assert not allows([rule], ("", "secrets", "list"))
    assert not allows([{**rule, "resourceNames": ["x"]}], ("", "secrets", "get"))
    assert allows([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], ("a", "b", "c"))


def test_bindings_name_the_roles() -> None:
    bindings = documents("clusterrolebinding.yaml") + documents("role.yaml")
    refs = {
        (d["kind"], d["roleRef"]["kind"], d["roleRef"]["name"]) for d in bindings if "roleRef" in d
    }
    assert ("ClusterRoleBinding", "ClusterRole", f"{PLACEHOLDER}-cluster") in refs
    assert ("ClusterRoleBinding", "ClusterRole", f"{PLACEHOLDER}-resources") in refs
    # Namespaced mode: the same ClusterRole bound per watched namespace.
    assert ("RoleBinding", "ClusterRole", f"{PLACEHOLDER}-resources") in refs
    assert ("RoleBinding", "Role", f"{PLACEHOLDER}-receiver") in refs
    for doc in bindings:
        if "subjects" in doc:
            assert doc["subjects"][0]["kind"] == "ServiceAccount"


def operator_container() -> dict[str, Any]:
    deployment = named("Deployment", "")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def test_operator_runs_kopf_with_liveness() -> None:
    container = operator_container()
    command = container["command"]
    assert command[:4] == ["kopf", "run", "-m", "hookline.operator"]
    assert "--all-namespaces" in command and f"--namespace={PLACEHOLDER}" in command
    assert any(arg.startswith("--liveness=http://0.0.0.0:") for arg in command)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}


def test_operator_env_names_real_settings() -> None:
    names = {e["name"] for e in operator_container()["env"]}
    fields = {env_name(f) for f in OperatorSettings.model_fields}
    assert names <= fields, names - fields
    # Everything is settable from values except what only tests or the pod decide.
    not_from_values = {env_name(f) for f in ("kube_url", "peering_priority")}
    assert fields - names == not_from_values


# `value: {{ EXPR }}` of the operator's env, evaluated on values.yaml for the simple forms.
_ENV = re.compile(r"- name: (HOOKLINE_\w+)\n\s+value: \{\{ (.+?) \}\}")


def _lookup(path: str, vals: dict[str, Any]) -> Any:
    node: Any = vals
    for part in path.removeprefix(".Values.").split("."):
        node = node[part]
    return node


def _helm_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _evaluate(expr: str, vals: dict[str, Any]) -> str | None:
    if m := re.fullmatch(r"(\.Values\.[\w.]+) \| quote", expr):
        return _helm_str(_lookup(m[1], vals))
    if m := re.fullmatch(r"(\.Values\.[\w.]+) \| toJson \| quote", expr):
        return json.dumps(_lookup(m[1], vals))
    if m := re.fullmatch(r'join "," (\.Values\.[\w.]+) \| quote', expr):
        return ",".join(_lookup(m[1], vals))
    if expr == ".Release.Namespace | quote":
        return "hookline"
    return None  # include/default forms: the helpers decide


def test_default_values_make_valid_settings() -> None:
    text = (TEMPLATES / "deployment.yaml").read_text()
    vals = values()
    env = {}
    for name, expr in _ENV.findall(text):
        value = _evaluate(expr, vals)
        if value is not None:
            env[name] = value
    assert len(env) > 30
    settings = OperatorSettings.from_env(env, namespace_file=Path("/nonexistent"))
    assert settings.receiver_name == vals["receiver"]["name"]
    assert settings.config_debounce == 0.1
    assert settings.receiver_max_outbox_backlog == vals["receiver"]["maxOutboxBacklog"] == 100_000
    assert settings.receiver_resources == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_peering_crds_are_kopfs() -> None:
    crds = {d["metadata"]["name"]: d for d in documents("kopf-peering-crd.yaml")}
    assert set(crds) == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    assert crds["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert crds["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"
    for crd in crds.values():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        # kopf writes each peer's record under status.
        assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_crds_directory_is_left_to_the_generator() -> None:
    # kopf's CRDs are templates: `hookline crds --check` refuses strangers in crds/.
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == [
        "eventfilters.hookline.dev.yaml",
        "eventtypes.hookline.dev.yaml",
        "webhooks.hookline.dev.yaml",
    ]


def test_dockerfile_user_matches_the_receiver_pod() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^USER {builders.RUN_AS_USER}(:{builders.RUN_AS_USER})?$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hookline"\]$', text, re.M)


# --- the permission list against the code ------------------------------------------

_PLURAL = {
    "Deployment": "deployments",
    "Service": "services",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "Secret": "secrets",
}


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def test_every_built_object_can_be_created_and_repaired() -> None:
    s = OperatorSettings(
        namespace="hookline",
        ingress_enabled=True,
        ingress_host="hooks.example.com",
    )
    objects = [
        builders.build_receiver_deployment(s),
        builders.build_receiver_service(s),
        builders.build_receiver_admin_service(s),
        builders.build_receiver_ingress(s),
        builders.build_admin_network_policy(s),
        builders.build_admin_token_secret(s, b"t"),
    ]
    for obj in objects:
        assert obj is not None
        plural = _PLURAL[obj["kind"]]
        for verb in ("get", "create", "patch", "delete"):
            permission = (_group(obj["apiVersion"]), plural, verb)
            assert permission in RECEIVER_NAMESPACE_PERMISSIONS, permission
    # Webhooks' generated Secrets live in the watched namespaces.
    generated = builders.build_generated_secret("w", "ci", "secret", b"s")
    for verb in ("get", "create", "patch", "delete"):
        permission = (_group(generated["apiVersion"]), _PLURAL[generated["kind"]], verb)
        assert permission in WATCHED_NAMESPACE_PERMISSIONS, permission


# Literal resource_path("<apiVersion>", "<plural>", ...) calls in the operator.
_RESOURCE_PATH = re.compile(r'resource_path\(\s*"([^"]+)",\s*"([a-z]+)"')


def test_every_api_path_in_the_operator_is_permitted() -> None:
    used = {
        (_group(api_version), plural)
        for path in (ROOT / "hookline" / "operator").glob("*.py")
        for api_version, plural in _RESOURCE_PATH.findall(path.read_text())
    }
    permitted = {(group, resource) for group, resource, _ in REQUIRED_PERMISSIONS}
    assert used <= permitted, used - permitted


def test_values_schema_accepts_the_defaults_and_refuses_typos() -> None:
    # Helm checks values against values.schema.json before rendering: a misspelt key
    # (receiver.replica) fails the install instead of being silently ignored.
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.validate(values(), schema)
    wrong = values()
    wrong["receiver"]["replica"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)
    wrong = values()
    wrong["receiver"]["serviceType"] = "Headless"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)
    wrong = values()
    wrong["receiver"]["maxOutboxBacklog"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)
    ok = values()
    ok["operator"]["statsInterval"] = 30
    jsonschema.validate(ok, schema)


def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    free = {"resources", "podAnnotations", "podLabels", "nodeSelector", "affinity", "annotations"}
    if isinstance(node, dict) and (not path or path[-1] not in free):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    return [path]


def test_every_value_is_used() -> None:
    text = "".join(p.read_text() for p in TEMPLATES.iterdir())
    unused = [
        ".".join(leaf) for leaf in _leaves(values()) if ".Values." + ".".join(leaf) not in text
    ]
    assert unused == []


# -- rendered by tests/support/chart.py (the templates' logic, not only their shape) --


def rendered_env(values: dict[str, Any] | None = None) -> dict[str, str]:
    deployment = chart.find(chart.template(values), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_large_numbers_render_as_integers_not_floats() -> None:
    """Helm reads values as float64: `| quote` alone renders 1000000 as "1e+06", which
    the receiver's --max-outbox-backlog cannot parse (issue 14)."""
    assert chart.go_string(1000000.0) == "1e+06"  # what Helm prints without `int`
    env = rendered_env({"receiver": {"maxOutboxBacklog": 1000000, "servicePort": 8080}})
    assert env["HOOKLINE_RECEIVER_MAX_OUTBOX_BACKLOG"] == "1000000"
    assert env["HOOKLINE_RECEIVER_SERVICE_PORT"] == "8080"
    settings = OperatorSettings.from_env(env)
    assert settings.receiver_max_outbox_backlog == 1000000


def test_every_rendered_variable_parses_as_the_operator_reads_it() -> None:
    env = rendered_env({"operator": {"watchNamespaces": ["a", "b"]}, "store": {"url": "x"}})
    settings = OperatorSettings.from_env(env)
    assert settings.watch_namespaces == ["a", "b"]
    assert env["HOOKLINE_STORE_SECRET_NAME"] == "hookline-store"


def test_the_chart_refuses_replicas_it_cannot_serve() -> None:
    with pytest.raises(chart.ChartError, match="needs PostgreSQL"):
        chart.template({"receiver": {"replicas": 2}})
    with pytest.raises(chart.ChartError, match="needs peering"):
        chart.template({"operator": {"replicas": 2}, "peering": {"standalone": True}})


def test_watched_namespaces_get_role_bindings_and_peerings() -> None:
    objects = chart.template({"operator": {"watchNamespaces": ["a", "b"]}})
    peerings = sorted(o["metadata"]["namespace"] for o in objects if o["kind"] == "KopfPeering")
    assert peerings == ["a", "b", "hookline"]
    assert not [o for o in objects if o["kind"] == "ClusterKopfPeering"]
