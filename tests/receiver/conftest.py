"""A real receiver (ingest + admin apps on loopback sockets) over a real SQLite store,
configured from manifests written to a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from hookline.receiver import Settings, create_admin_app, create_app
from hookline.receiver.server import manifests_loader
from hookline.receiver.state import STATE, ReceiverState
from tests.support.clock import FakeClock

NS = "t"
START = 1_800_000_000.0  # a fixed wall-clock time (2027-01-15)
SIGNING_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"  # what hookline signs with
SECRETS = {
    "gh": "gh-secret",
    "hm": "hm-secret",
    "sw": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "basic": "s3cret-pass",
    "bearer": "tok-123",
    "apikey": "key-456",
}


def _webhook(name: str, path: str, auth: dict[str, Any], **spec: Any) -> dict[str, Any]:
    if name in SECRETS:
        auth = {**auth, "secretRef": {"name": f"{name}-secret", "key": "secret"}}
    return {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"path": path, "auth": auth, **spec},
    }


WEBHOOKS = [
    _webhook("gh", "gh", {"type": "github"}, retention="1h"),
    _webhook(
        "hm",
        "hm",
        {
            "type": "hmac",
            "header": "X-Sig",
            "algorithm": "sha512",
            "encoding": "hex",
            "prefix": "v1=",
            "timestampHeader": "X-Ts",
            "tolerance": "5m",
        },
        idempotencyKey={"path": "$.id"},
    ),
    _webhook("sw", "sw", {"type": "standard-webhooks"}),
    _webhook("basic", "basic", {"type": "basic", "username": "bob"}),
    _webhook("bearer", "bearer", {"type": "bearer"}),
    _webhook("apikey", "apikey", {"type": "api-key", "header": "X-Key"}),
    _webhook("open", "open", {"type": "none"}, idempotencyKey={"header": "Idempotency-Key"}),
    _webhook("limited", "limited", {"type": "none"}, limits={"requestsPerSecond": 1, "burst": 2}),
    _webhook("cidr", "cidr", {"type": "none"}, limits={"sourceCIDRs": ["10.0.0.0/8"]}),
    _webhook("small", "small", {"type": "none"}, limits={"maxBodyBytes": 100}),
    _webhook("json", "json", {"type": "none"}, correlation={"path": "$.run"}),
]


def write_manifests(directory: Path, webhooks: list[dict[str, Any]] = WEBHOOKS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-secret", "namespace": NS},
            "stringData": {"secret": value},
        }
        for name, value in SECRETS.items()
    ]
    secrets.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "signing", "namespace": NS},
            "stringData": {"standard": SIGNING_SECRET, "hmac": "forward-hmac-secret"},
        }
    )
    (directory / "webhooks.yaml").write_text(yaml.safe_dump_all(webhooks))
    (directory / "secrets.yaml").write_text(yaml.safe_dump_all(secrets))
    return directory


@dataclass
class Receiver:
    ingest: TestClient[Any, Any]
    admin: TestClient[Any, Any]
    wall: FakeClock
    monotonic: FakeClock
    manifests: Path

    @property
    def state(self) -> ReceiverState:
        state: ReceiverState = self.ingest.app[STATE]
        return state

    async def post(self, path: str, body: bytes = b"{}", /, **headers: str) -> ClientResponse:
        return await self.ingest.post(f"/hooks/{path}", data=body, headers=headers)

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        response = await self.admin.get(f"/api/v1/deliveries/{delivery_id}")
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def receiver(tmp_path: Path, aiohttp_client: MakeClient) -> AsyncIterator[Receiver]:
    yield await start_receiver(tmp_path, aiohttp_client, WEBHOOKS)


async def start_receiver(
    tmp_path: Path,
    aiohttp_client: MakeClient,
    documents: list[dict[str, Any]],
    *,
    store_url: str | None = None,
    dispatch_concurrency: int = 0,
    **options: Any,
) -> Receiver:
    """A receiver serving `documents` (Webhooks, EventTypes, EventFilters) + SECRETS.

    The dispatcher is off unless asked for: tests of forwarding drive their own with
    the fake clocks (tests/receiver/test_dispatch.py). `options` are more Settings."""
    manifests = write_manifests(tmp_path / "manifests", documents)
    wall, monotonic = FakeClock(START), FakeClock(1000.0)
    settings = Settings(
        store_url=store_url or f"sqlite:///{tmp_path / 'hookline.db'}",
        load_config=manifests_loader(manifests),
        wall_clock=wall,
        monotonic=monotonic,
        dispatch_concurrency=dispatch_concurrency,
        **options,
    )
    ingest_app = create_app(settings)
    ingest = await aiohttp_client(ingest_app)
    admin = await aiohttp_client(create_admin_app(ingest_app))
    return Receiver(ingest, admin, wall, monotonic, manifests)
