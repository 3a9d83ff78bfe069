"""Everything an operator test runs against (issue 6): the strict KMock emulator with
hookline's CRDs and the built-in kinds the operator touches, hookline's real operator
(kopf's own run loop, in a thread), and a real receiver in push mode on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import kopf
from aiohttp import web

from hookline.api.common import API_VERSION
from hookline.api.crd import KINDS, build_crd
from hookline.operator import OperatorContext, register_all
from hookline.operator.settings import OperatorSettings
from hookline.receiver.admin_auth import AdminToken
from hookline.receiver.app import create_admin_app, create_app
from hookline.receiver.state import STATE, ReceiverState, Settings
from tests.support.crd_schema import openapi_schema, validate_object
from tests.support.kmock_harness import (
    OperatorThread,
    StrictEmulator,
    fast_settings,
    install_namespace_path_fix,
    pruned_fields,
)

OPERATOR_NAMESPACE = "hookline"
ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN_TOKEN_SECRET = "hookline-receiver-admin-token"
WEBHOOKS = f"{API_VERSION}/webhooks"
EVENTFILTERS = f"{API_VERSION}/eventfilters"
EVENTTYPES = f"{API_VERSION}/eventtypes"
SECRETS = "v1/secrets"


def strict_validator(crd: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """What a real API server would refuse (schema, CEL) or silently prune."""
    return validate_object(crd, obj) + pruned_fields(openapi_schema(crd), obj)


@asynccontextmanager
async def emulator(
    *, anchor: bool = True, uids: bool = True, require_namespaces: bool = False
) -> AsyncIterator[StrictEmulator]:
    """The strict emulator; with `anchor`, the receivers' admin-token Secret is there
    already (holding ADMIN_TOKEN), as a real install has it after the first start;
    without `uids`, objects are stored without metadata.uid (as plain KMock 0.8); with
    `require_namespaces`, a create in a namespace with no Namespace object is a 404."""
    install_namespace_path_fix()
    emulated = StrictEmulator(assign_uids=uids, require_namespaces=require_namespaces)
    async with emulated as k, kmock.Server(k):
        k.add_kopf_backbone()
        # What the operator reads and writes besides its own resources.
        k.add_builtin("v1/secrets", "Secret", namespaced=True)
        k.add_builtin("v1/services", "Service", namespaced=True)
        k.add_builtin("apps/v1/deployments", "Deployment", namespaced=True)
        k.add_builtin("discovery.k8s.io/v1/endpointslices", "EndpointSlice", namespaced=True)
        k.add_builtin("networking.k8s.io/v1/ingresses", "Ingress", namespaced=True)
        k.add_builtin("networking.k8s.io/v1/networkpolicies", "NetworkPolicy", namespaced=True)
        for kind in KINDS:
            k.add_crd(build_crd(kind), validator=strict_validator)
        if anchor:
            await create(
                k, secret(OPERATOR_NAMESPACE, ADMIN_TOKEN_SECRET, token=ADMIN_TOKEN.encode())
            )
        yield k
        # Every write the operator made obeyed the CRD schemas; no emulator failure.
        assert not k.violations, k.violations
        assert not [e for e in k.errors if not isinstance(e, kmock.KubernetesError)], k.errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningReceiver:
    """A real receiver (push mode, SQLite) on two loopback ports."""

    ingest_url: str
    admin_url: str
    ingest_app: web.Application
    runners: list[web.AppRunner]

    async def close(self) -> None:
        """Stop it now (as a pod stops); leaving the context afterwards is harmless."""
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()

    @property
    def state(self) -> ReceiverState:
        return self.ingest_app[STATE]


@asynccontextmanager
async def receiver(
    tmp_path: Path, token: str = ADMIN_TOKEN, *, admin_port: int | None = None
) -> AsyncIterator[RunningReceiver]:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'receiver.db'}",
        load_config=None,  # push mode: nothing is served until the operator pushes
        dispatch_poll_interval=0.05,
    )
    ingest = create_app(settings)
    admin = create_admin_app(ingest, AdminToken(token=token.encode()))
    runners = [web.AppRunner(ingest), web.AppRunner(admin)]
    ports = [free_port(), admin_port or free_port()]
    for runner, port in zip(runners, ports, strict=True):
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    running = RunningReceiver(
        f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", ingest, runners
    )
    try:
        yield running
    finally:
        await running.close()


def operator_settings(k: StrictEmulator, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "kube_url": str(k.url).rstrip("/"),
        "namespace": OPERATOR_NAMESPACE,
        "manage_receiver": False,
        "config_debounce": 0.05,
        "stats_interval": 0.3,
        "peering_standalone": True,
        "resync_interval": 1.0,
    }
    values.update(overrides)
    return OperatorSettings(**values)


@asynccontextmanager
async def operator(
    k: StrictEmulator,
    settings: OperatorSettings,
    *,
    kopf_settings: kopf.OperatorSettings | None = None,
    clock: Callable[[], Any] | None = None,
    wait: bool = True,
    extras: dict[str, Any] | None = None,
) -> AsyncIterator[OperatorContext]:
    """hookline's operator, all handlers registered, in kopf's real run loop;
    `extras` seeds the context's (e.g. a stats source of the test's own)."""
    registry = kopf.OperatorRegistry()
    ctx = OperatorContext(settings=settings)
    ctx.extras.update(extras or {})
    if clock is not None:
        ctx.clock = clock
    register_all(registry, ctx)
    async with OperatorThread(
        registry=registry, settings=kopf_settings or fast_settings(), clusterwide=True
    ):
        if wait:
            # Stopping kopf in the middle of its first listing costs seconds: wait for it.
            await k.wait_for(lambda: k.watched(WEBHOOKS, EVENTFILTERS, EVENTTYPES, SECRETS), 10)
        yield ctx


async def create(k: StrictEmulator, obj: dict[str, Any]) -> dict[str, Any]:
    """Create through the emulator's HTTP API (objects put in directly make no events)."""
    api, kind = obj["apiVersion"], obj["kind"]
    plural = {"Secret": "secrets"}.get(kind) or f"{kind.lower()}s"
    namespace = obj["metadata"].get("namespace", "default")
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    rsp = await k.post(f"{prefix}/namespaces/{namespace}/{plural}", json=obj)
    body: dict[str, Any] = await rsp.json()
    assert rsp.status in (200, 201), body
    return body


async def create_github_webhook(k: StrictEmulator, namespace: str, name: str) -> None:
    """A Secret `gh` and a Webhook `name` with github auth reading it: the least that
    makes the reconciler write a status."""
    await create(k, secret(namespace, "gh", secret=b"s3cret"))
    await create(
        k,
        {
            "apiVersion": API_VERSION,
            "kind": "Webhook",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
        },
    )


async def patch(k: StrictEmulator, path: str, body: dict[str, Any]) -> dict[str, Any]:
    rsp = await k.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"})
    data: dict[str, Any] = await rsp.json()
    assert rsp.status == 200, data
    return data


def secret(namespace: str, name: str, **data: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


async def eventually(
    predicate: Callable[[], Any], seconds: float = 5.0, interval: float = 0.02
) -> Any:
    """Wait for something outside the emulator (the receiver's state), which the
    emulator's `wait_for` cannot see change: checked every `interval`, bounded."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not (result := predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"still false after {seconds} s")
        await asyncio.sleep(interval)
    return result


def events_for(k: StrictEmulator, name: str, namespace: str) -> list[dict[str, Any]]:
    """The v1 Events posted about one object."""
    found: Any = k.events_for(name, namespace)
    return [dict(e) for e in found]


def condition(obj: dict[str, Any] | None, type: str = "Ready") -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type:
            return dict(c)
    return None


def is_ready(obj: dict[str, Any] | None) -> bool:
    found = condition(obj)
    return found is not None and found["status"] == "True"
