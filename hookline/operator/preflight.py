"""Start-up checks (issue 11 §3): say why the operator does nothing, instead of waiting
in silence.

Run by hand against a kubeconfig without the Helm chart, the operator logged in and then
waited forever: peering is mandatory and kopf, with no peering CRD served or no peering
object, pauses every handler without a line above DEBUG. It also waits without a word
when hookline's CRDs are not installed, and a built-in resource that is not served
(NetworkPolicies, EndpointSlices) showed up only as a traceback from a timer.

So at start-up the operator checks what it needs, names each thing that is missing in
one line (what, what the operator cannot do without it, how to get it), and says it
again every `preflight_interval` (30 s) until everything is there; then one line that it
is, and the check stops (no API calls for an operator that is fine).

It never exits the process: kopf itself starts watching a CRD installed later and
resumes when the peering object appears, so waiting with a clear line recovers without
a restart, where exiting would crash-loop the pod with growing back-off delays (and
`helm install` may well start the operator before its post-install hook has created the
peering object).

The "what is missing" parts are pure functions on discovery documents and the settings
(tests/unit/test_preflight.py); `run` is the small loop around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.common import API_VERSION
from .context import OperatorContext
from .kube import KubeClient, KubeError, KubeUnavailable, resource_path
from .settings import OperatorSettings, env_name

log = logging.getLogger(__name__)

# The loop's task in OperatorContext.extras (started at login, cancelled at clean-up).
TASK = "preflight"

PEERING_GROUP_VERSION = "kopf.dev/v1"
# The chart's copy of kopf's peering CRDs, for users without Helm releases.
PEERING_CRD_COMMAND = (
    "helm template hookline charts/hookline --show-only templates/kopf-peering-crd.yaml "
    "| kubectl apply -f -"
)
CRDS_COMMAND = "kubectl apply -f crds/ (or install the Helm chart)"


@dataclass(frozen=True)
class Needed:
    """An API resource the operator uses, why, and how to get it served."""

    group_version: str  # "v1", "apps/v1", "hookline.dev/v1alpha1"
    plural: str
    without: str  # what the operator cannot do without it
    fix: str = ""
    level: int = logging.ERROR

    @property
    def name(self) -> str:
        """How `kubectl api-resources` users know it: group/version/resource."""
        return f"{self.group_version}/{self.plural}"

    def line(self) -> str:
        fix = f"; {self.fix}" if self.fix else ""
        return f"the API server does not serve {self.name}: {self.without}{fix}"


def needed_resources(settings: OperatorSettings) -> list[Needed]:
    """Every resource the operator reads or writes with these settings, peering aside.

    No Leases: replicas coordinate through kopf's peering object, not a Lease.
    """
    crd = f"install hookline's CRDs: {CRDS_COMMAND}"
    needed = [
        Needed(API_VERSION, "webhooks", "no Webhook is reconciled or served", crd),
        Needed(API_VERSION, "eventfilters", "no EventFilter is compiled", crd),
        Needed(API_VERSION, "eventtypes", "no EventType is compiled", crd),
        # kopf's own "backbone": without them it watches nothing at all. Every real
        # cluster serves them; an emulator or a trimmed test API server may not.
        Needed("v1", "namespaces", "kopf waits for it before watching anything"),
        Needed(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "kopf waits for it before watching anything",
        ),
        Needed(
            "v1",
            "secrets",
            "the operator cannot read the Secrets Webhooks use nor keep the receivers' "
            "admin token, and its reconciler (which runs on that Secret) never starts",
        ),
        Needed(
            "v1",
            "events",
            "no Events are posted (Ready transitions, replays, generated secrets)",
            level=logging.WARNING,
        ),
    ]
    if not settings.receiver_admin_urls:
        needed.append(
            Needed(
                "discovery.k8s.io/v1",
                "endpointslices",
                "the operator cannot find the receiver replicas, so no configuration is "
                "pushed and no status counters are read",
                f"or set {env_name('receiver_admin_urls')}",
            )
        )
    if settings.manage_receiver:
        unmanaged = f"or set {env_name('manage_receiver')}=false and run it yourself"
        needed += [
            Needed("apps/v1", "deployments", "the receiver Deployment is not run", unmanaged),
            Needed("v1", "services", "the receiver's Services are not made", unmanaged),
        ]
        if settings.network_policy_enabled:
            needed.append(
                Needed(
                    "networking.k8s.io/v1",
                    "networkpolicies",
                    "the receivers' admin port is not restricted to the operator pods",
                    f"or set {env_name('network_policy_enabled')}=false",
                )
            )
        if settings.ingress_enabled:
            needed.append(
                Needed(
                    "networking.k8s.io/v1",
                    "ingresses",
                    "the receiver's Ingress is not made",
                    f"or set {env_name('ingress_enabled')}=false",
                )
            )
    return needed


@dataclass(frozen=True)
class Peering:
    """The peering object(s) kopf waits for with mandatory peering."""

    name: str
    kind: str  # ClusterKopfPeering | KopfPeering
    plural: str
    namespaces: tuple[str | None, ...]  # (None,) cluster-wide

    @property
    def resource(self) -> Needed:
        return Needed(PEERING_GROUP_VERSION, self.plural, "")

    def path(self, namespace: str | None) -> str:
        return resource_path(PEERING_GROUP_VERSION, self.plural, namespace, self.name)

    def manifest(self) -> str:
        body = {"apiVersion": PEERING_GROUP_VERSION, "kind": self.kind}
        return json.dumps({**body, "metadata": {"name": self.name}}, separators=(",", ":"))


def peering_of(settings: OperatorSettings) -> Peering | None:
    """What kopf peers through with these settings (as main.py configures it): a
    ClusterKopfPeering cluster-wide, else a KopfPeering in each watched namespace and
    the operator's own (cli.py watches that too); None when standalone."""
    if settings.peering_standalone:
        return None
    if settings.clusterwide:
        return Peering(settings.peering_name, "ClusterKopfPeering", "clusterkopfpeerings", (None,))
    namespaces = tuple(sorted({*settings.watch_namespaces, settings.namespace}))
    return Peering(settings.peering_name, "KopfPeering", "kopfpeerings", namespaces)


_STANDALONE = (
    f"or set {env_name('peering_standalone')}=true to run a single replica without peering"
)


def create_command(peering: Peering) -> str:
    """The shell command that creates the peering object (one per namespace if namespaced)."""
    where = "" if peering.namespaces == (None,) else " -n <namespace>"
    return f"echo '{peering.manifest()}' | kubectl apply{where} -f -"


def peering_crd_line(peering: Peering) -> str:
    """kopf's peering CRD is not served: kopf pauses the operator until it is."""
    return (
        f"peering is mandatory and the API server does not serve {peering.resource.name} "
        f"(kopf's peering CRD {peering.plural}.kopf.dev): the operator does nothing until "
        f"it does and {peering.kind} {peering.name!r} exists; install it with "
        f"`{PEERING_CRD_COMMAND}`, then create the object with `{create_command(peering)}`, "
        f"{_STANDALONE}"
    )


def peering_object_line(peering: Peering, missing: Iterable[str | None]) -> str:
    """The CRD is served, the object is not there: kopf waits for it."""
    missing = list(missing)
    what = f"{peering.kind} {peering.name!r} does not exist"
    how = "create it"
    if missing != [None]:
        what += f" in namespace(s) {', '.join(str(ns) for ns in missing)}"
        how += " in each"
    return (
        f"peering is mandatory and {what}: the operator does nothing until it does; "
        f"{how}: `{create_command(peering)}`, {_STANDALONE}"
    )


def served(discovery: Mapping[str, Mapping[str, Any] | None]) -> set[str]:
    """group/version/resource of everything the discovery documents list (None: the
    group version is not served at all)."""
    found = set()
    for group_version, document in discovery.items():
        for resource in (document or {}).get("resources") or []:
            name = resource.get("name") if isinstance(resource, Mapping) else None
            if isinstance(name, str) and "/" not in name:  # not a subresource
                found.add(f"{group_version}/{name}")
    return found


def missing_resources(
    needed: Iterable[Needed], discovery: Mapping[str, Mapping[str, Any] | None]
) -> list[Needed]:
    have = served(discovery)
    return [n for n in needed if n.name not in have]


def group_versions(needed: Iterable[Needed]) -> list[str]:
    return sorted({n.group_version for n in needed})


async def discover(kube: KubeClient, versions: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """The APIResourceList of each group version; None for one the server does not serve."""
    found: dict[str, dict[str, Any] | None] = {}
    for group_version in versions:
        path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        found[group_version] = await kube.get(path)
    return found


async def problems(kube: KubeClient, settings: OperatorSettings) -> list[tuple[int, str]]:
    """(log level, line) for everything missing now; empty when all is there."""
    needed = needed_resources(settings)
    peering = peering_of(settings)
    versions = group_versions([*needed, *([peering.resource] if peering else [])])
    discovery = await discover(kube, versions)
    lines = [(n.level, n.line()) for n in missing_resources(needed, discovery)]
    if peering is not None:
        if missing_resources([peering.resource], discovery):
            lines.append((logging.ERROR, peering_crd_line(peering)))
        else:
            absent = [ns for ns in peering.namespaces if await kube.get(peering.path(ns)) is None]
            if absent:
                lines.append((logging.ERROR, peering_object_line(peering, absent)))
    return lines


async def run(ctx: OperatorContext, interval: float | None = None) -> None:
    """Check, say what is missing, wait `interval`, again, until nothing is."""
    settings = ctx.config
    interval = settings.preflight_interval if interval is None else interval
    complained = False
    while True:
        found: list[tuple[int, str]] | None
        try:
            found = await problems(ctx.kube, settings)
        except (KubeError, KubeUnavailable) as exc:
            # E.g. 403 on the peering object: RBAC, which the line names.
            found = [(logging.ERROR, f"start-up check failed (again in {interval:g} s): {exc}")]
        except Exception:  # a bug here must not end the check unseen (a task's error is)
            log.exception("start-up check failed (again in %g s)", interval)
            found = None
        if found == []:
            if complained:
                log.info("start-up check: everything the operator needs is there now")
            return
        for level, line in found or []:
            log.log(level, "%s", line)
        complained = True
        await asyncio.sleep(interval)


def start(ctx: OperatorContext) -> None:
    """Start the check once per operator run (login may run again on re-authentication)."""
    if TASK not in ctx.extras:
        ctx.extras[TASK] = asyncio.create_task(run(ctx), name="hookline start-up check")


async def stop(ctx: OperatorContext) -> None:
    """Cancel the check if it still runs: kopf waits for stray tasks of its loop on exit."""
    task = ctx.extras.pop(TASK, None)
    if isinstance(task, asyncio.Task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
