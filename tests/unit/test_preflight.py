"""The start-up check's pure parts (issue 11 §3): what the operator needs with given
settings, and what a set of discovery documents says is missing."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from hookline.operator.preflight import (
    PEERING_CRD_COMMAND,
    Needed,
    missing_resources,
    needed_resources,
    peering_crd_line,
    peering_object_line,
    peering_of,
    served,
)
from hookline.operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]


def settings(**values: Any) -> OperatorSettings:
    return OperatorSettings(**{"namespace": "hookline", **values})


def names(needed: list[Needed]) -> set[str]:
    return {n.name for n in needed}


def resource_list(group_version: str, *plurals: str) -> dict[str, Any]:
    """An APIResourceList as the API server answers GET /apis/<group>/<version>."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": p, "namespaced": True, "kind": p.title(), "verbs": ["get", "list"]}
            for p in plurals
        ],
    }


HOOKLINE = ["webhooks", "eventfilters", "eventtypes"]
CORE = ["namespaces", "secrets", "events", "services"]


def full_discovery() -> dict[str, dict[str, Any] | None]:
    return {
        "v1": resource_list("v1", *CORE, "pods", "pods/log"),
        "apps/v1": resource_list("apps/v1", "deployments", "deployments/scale"),
        "discovery.k8s.io/v1": resource_list("discovery.k8s.io/v1", "endpointslices"),
        "networking.k8s.io/v1": resource_list("networking.k8s.io/v1", "networkpolicies"),
        "apiextensions.k8s.io/v1": resource_list(
            "apiextensions.k8s.io/v1", "customresourcedefinitions"
        ),
        "hookline.dev/v1alpha1": resource_list(
            "hookline.dev/v1alpha1", *HOOKLINE, *(f"{p}/status" for p in HOOKLINE)
        ),
    }


def test_every_resource_the_default_operator_uses_is_needed() -> None:
    assert names(needed_resources(settings())) == {
        "hookline.dev/v1alpha1/webhooks",
        "hookline.dev/v1alpha1/eventfilters",
        "hookline.dev/v1alpha1/eventtypes",
        "v1/namespaces",
        "apiextensions.k8s.io/v1/customresourcedefinitions",
        "v1/secrets",
        "v1/events",
        "discovery.k8s.io/v1/endpointslices",
        "apps/v1/deployments",
        "v1/services",
        "networking.k8s.io/v1/networkpolicies",
    }


def test_what_is_needed_follows_the_settings() -> None:
    unmanaged = names(needed_resources(settings(manage_receiver=False)))
    assert not unmanaged & {"apps/v1/deployments", "v1/services"}
    assert "networking.k8s.io/v1/networkpolicies" not in unmanaged
    no_policy = names(needed_resources(settings(network_policy_enabled=False)))
    assert "networking.k8s.io/v1/networkpolicies" not in no_policy
    with_ingress = settings(ingress_enabled=True, ingress_host="hooks.example.com")
    assert "networking.k8s.io/v1/ingresses" in names(needed_resources(with_ingress))
    fixed = settings(receiver_admin_urls=["http://10.0.0.1:8081"])
    assert "discovery.k8s.io/v1/endpointslices" not in names(needed_resources(fixed))


def test_nothing_is_missing_when_everything_is_served() -> None:
    assert missing_resources(needed_resources(settings()), full_discovery()) == []


def test_subresources_do_not_count_and_an_unserved_group_misses_all_of_it() -> None:
    discovery = full_discovery()
    discovery["hookline.dev/v1alpha1"] = None  # GET answered 404: CRDs not installed
    discovery["apps/v1"] = resource_list("apps/v1", "deployments/scale")
    assert "apps/v1/deployments" not in served(discovery)
    missing = missing_resources(needed_resources(settings()), discovery)
    assert names(missing) == {
        "hookline.dev/v1alpha1/webhooks",
        "hookline.dev/v1alpha1/eventfilters",
        "hookline.dev/v1alpha1/eventtypes",
        "apps/v1/deployments",
    }
    webhooks = next(n for n in missing if n.plural == "webhooks")
    assert webhooks.level == logging.ERROR
    assert webhooks.line() == (
        "the API server does not serve hookline.dev/v1alpha1/webhooks: no Webhook is "
        "reconciled or served; install hookline's CRDs: kubectl apply -f crds/ "
        "(or install the Helm chart)"
    )


def test_a_missing_events_resource_is_a_warning_and_says_what_is_lost() -> None:
    discovery = full_discovery()
    discovery["v1"] = resource_list("v1", "namespaces", "secrets", "services")
    (events,) = missing_resources(needed_resources(settings()), discovery)
    assert events.level == logging.WARNING
    assert events.line().startswith("the API server does not serve v1/events: no Events")


def test_peering_follows_the_settings_as_main_configures_kopf() -> None:
    assert peering_of(settings(peering_standalone=True)) is None
    cluster = peering_of(settings(peering_name="hl"))
    assert cluster is not None
    assert (cluster.kind, cluster.namespaces) == ("ClusterKopfPeering", (None,))
    assert cluster.path(None) == "/apis/kopf.dev/v1/clusterkopfpeerings/hl"
    # Namespaced: the watched namespaces and the operator's own (cli.py watches it too).
    spaced = peering_of(settings(watch_namespaces=["ci", "payments"]))
    assert spaced is not None
    assert (spaced.kind, spaced.namespaces) == ("KopfPeering", ("ci", "hookline", "payments"))
    assert spaced.path("ci") == "/apis/kopf.dev/v1/namespaces/ci/kopfpeerings/hookline"


def test_the_peering_lines_say_what_is_missing_and_how_to_fix_it() -> None:
    cluster = peering_of(settings())
    assert cluster is not None
    line = peering_object_line(cluster, [None])
    assert "\n" not in line
    assert line.startswith("peering is mandatory and ClusterKopfPeering 'hookline' does not exist")
    assert "HOOKLINE_PEERING_STANDALONE=true" in line
    # The command in the line applies a manifest of the right kind and name.
    command = re.search(r"`echo '(.+)' \| kubectl apply -f -`", line)
    assert command is not None
    assert json.loads(command.group(1)) == {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "hookline"},
    }
    spaced = peering_of(settings(watch_namespaces=["ci"]))
    assert spaced is not None
    line = peering_object_line(spaced, ["ci"])
    assert "KopfPeering 'hookline' does not exist in namespace(s) ci" in line
    assert "kubectl apply -n <namespace> -f -" in line
    crd = peering_crd_line(cluster)
    assert "does not serve kopf.dev/v1/clusterkopfpeerings" in crd
    assert PEERING_CRD_COMMAND in crd and "HOOKLINE_PEERING_STANDALONE=true" in crd
    assert 'then create the object with `echo \'{"apiVersion":"kopf.dev/v1",' in crd


def test_the_commands_in_the_lines_name_files_that_exist() -> None:
    template = re.search(r"--show-only (\S+)", PEERING_CRD_COMMAND)
    assert template is not None
    assert (ROOT / "charts/hookline" / template.group(1)).is_file()
    assert (ROOT / "crds").is_dir()
