"""The operator's Kubernetes client against a real HTTP server on loopback (issue 6):
answers sent chunked (as the API server sends large ones), errors, absent objects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hookline.operator.kube import KubeClient, KubeError, resource_path

ITEMS = [{"metadata": {"name": f"s{i}"}, "data": {"k": "x" * 100}} for i in range(50)]


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    response.content_type = "application/json"
    await response.prepare(request)
    text = json.dumps({"items": ITEMS}).encode()
    for start in range(0, len(text), 1000):
        await response.write(text[start : start + 1000])
    await response.write_eof()
    return response


async def missing(request: web.Request) -> web.Response:
    return web.json_response({"reason": "NotFound", "message": 'secrets "x" not found'}, status=404)


async def conflict(request: web.Request) -> web.Response:
    return web.json_response({"reason": "AlreadyExists", "message": "exists"}, status=409)


@pytest.fixture
async def client() -> AsyncIterator[KubeClient]:
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/secrets", chunked)
    app.router.add_get("/api/v1/namespaces/ns/secrets/x", missing)
    app.router.add_post("/api/v1/namespaces/ns/secrets", conflict)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        info = kopf.ConnectionInfo(server=str(server.make_url("")).rstrip("/"), insecure=True)
        yield KubeClient(info, session)
    await server.close()


async def test_a_chunked_answer_is_read_whole(client: KubeClient) -> None:
    items = await client.list(resource_path("v1", "secrets", "ns"))
    assert [i["metadata"]["name"] for i in items] == [f"s{i}" for i in range(50)]


async def test_absent_is_none_and_errors_carry_the_reason(client: KubeClient) -> None:
    assert await client.get(resource_path("v1", "secrets", "ns", "x")) is None
    with pytest.raises(KubeError) as caught:
        await client.create(resource_path("v1", "secrets", "ns"), {"metadata": {"name": "y"}})
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")


def test_paths() -> None:
    assert resource_path("apps/v1", "deployments", "ns", "d") == (
        "/apis/apps/v1/namespaces/ns/deployments/d"
    )
    assert resource_path("hookline.dev/v1alpha1", "webhooks", "ns", "w", "status") == (
        "/apis/hookline.dev/v1alpha1/namespaces/ns/webhooks/w/status"
    )
