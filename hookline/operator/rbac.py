"""The Kubernetes permissions the operator needs, and why (issue 6).

One list shared by the operator and the Helm chart's test: tests/unit/test_chart.py
reads the chart's ClusterRoles and Role and checks that they grant every permission
here in the right scope, so the chart cannot fall behind what the code does. DESIGN.md:
the operator holds the Kubernetes permissions, least privilege; the receiver holds none.

Each permission is ``(apiGroup, resource, verb)``, with ``""`` for the core group and
``<resource>/<subresource>`` for a subresource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Permission = tuple[str, str, str]

_RESOURCE_VERBS = ("get", "list", "watch", "patch")
_OWNED_VERBS = ("get", "list", "watch", "create", "patch", "delete")
_READ_VERBS = ("get", "list", "watch")


def _grant(group: str, resources: Iterable[str], verbs: Iterable[str]) -> tuple[Permission, ...]:
    return tuple((group, resource, verb) for resource in resources for verb in verbs)


# Cluster-scoped, whatever namespaces are watched: kopf itself.
CLUSTER_PERMISSIONS: tuple[Permission, ...] = (
    # kopf notices CRDs being installed or removed and (cluster-wide) namespaces coming
    # and going, to start and stop its watches.
    *_grant("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]),
    *_grant("", ["namespaces"], ["list", "watch"]),
    # High availability: replicas announce themselves in the ClusterKopfPeering and only
    # the highest priority acts (kopf peering, issue 6).
    *_grant("kopf.dev", ["clusterkopfpeerings"], _RESOURCE_VERBS),
)

# In every watched namespace (every namespace when cluster-wide): the resources, and the
# Secrets and Events that belong with them.
WATCHED_NAMESPACE_PERMISSIONS: tuple[Permission, ...] = (
    # Read and reconcile; patch for kopf's finalizers and progress annotations and for
    # removing the replay / rotate-secret annotations once acted on.
    *_grant("hookline.dev", ["webhooks", "eventfilters", "eventtypes"], _RESOURCE_VERBS),
    # Conditions, counters, status.url, status.lastReplay.
    *_grant(
        "hookline.dev", ["webhooks/status", "eventfilters/status", "eventtypes/status"], ["patch"]
    ),
    # Read referenced Secrets (auth, signing, GitHub tokens; watched so a Webhook becomes
    # Ready when its Secret appears); create/patch/delete for the Secrets the operator
    # generates and rotates for Webhooks without a secretRef.
    *_grant("", ["secrets"], _OWNED_VERBS),
    # Kubernetes Events on the resources: Ready transitions, generated/rotated secrets,
    # replays, first dead letter. kopf patches an Event to count repeats.
    *_grant("", ["events"], ["create", "patch"]),
    # Namespaced kopf peering, used when watching a list of namespaces.
    *_grant("kopf.dev", ["kopfpeerings"], _RESOURCE_VERBS),
)

# In the receiver's namespace (the operator's own, by default): what it runs and repairs.
RECEIVER_NAMESPACE_PERMISSIONS: tuple[Permission, ...] = (
    # The receiver Deployment, its ingest and admin Services, the optional Ingress and
    # the admin NetworkPolicy: created, repaired on drift, removed when disabled.
    *_grant("apps", ["deployments"], _OWNED_VERBS),
    *_grant("", ["services"], _OWNED_VERBS),
    *_grant("networking.k8s.io", ["ingresses", "networkpolicies"], _OWNED_VERBS),
    # The admin token Secret lives here, which need not be a watched namespace.
    *_grant("", ["secrets"], _OWNED_VERBS),
    # Finding every receiver pod (ready or not) to push configuration and read stats.
    *_grant("discovery.k8s.io", ["endpointslices"], _READ_VERBS),
    # Events about the receiver (e.g. a configuration push that failed).
    *_grant("", ["events"], ["create", "patch"]),
)

REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    CLUSTER_PERMISSIONS + WATCHED_NAMESPACE_PERMISSIONS + RECEIVER_NAMESPACE_PERMISSIONS
)


def allows(rules: Iterable[Mapping[str, object]], permission: Permission) -> bool:
    """True when one of the RBAC `rules` (PolicyRule dicts) grants `permission`."""
    group, resource, verb = permission
    for rule in rules:
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        verbs = rule.get("verbs") or []
        if not isinstance(groups, list) or not isinstance(resources, list):
            continue
        if not isinstance(verbs, list) or rule.get("resourceNames"):
            continue  # a rule limited to named objects does not grant list/watch/create
        if (
            (group in groups or "*" in groups)
            and (resource in resources or "*" in resources)
            and (verb in verbs or "*" in verbs)
        ):
            return True
    return False


def missing(
    rules: Iterable[Mapping[str, object]], needed: Iterable[Permission]
) -> list[Permission]:
    """The permissions in `needed` that `rules` do not grant."""
    rules = list(rules)
    return [p for p in needed if not allows(rules, p)]
