"""The operator's Kubernetes client against a real HTTP server on loopback (issue 6):
answers sent chunked (as the API server sends large ones), errors, absent objects; and
the names of its Events (issue 14)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import aiohttp
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hookline.api.common import NAME_PATTERN
from hookline.operator.kube import (
    MAX_NAME,
    KubeClient,
    KubeError,
    KubeUnavailable,
    event_name,
    resource_path,
)
from tests.support.tls import TestCA

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


async def proxy_page(request: web.Request) -> web.Response:
    return web.Response(
        text="<html>\n<head><title>502 Bad Gateway</title></head>\n" + "x" * 1000,
        status=502,
        content_type="text/html",
    )


async def html_ok(request: web.Request) -> web.Response:
    return web.Response(text="<html>sign in</html>", content_type="text/html")


@pytest.fixture
async def client() -> AsyncIterator[KubeClient]:
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/secrets", chunked)
    app.router.add_get("/api/v1/namespaces/ns/secrets/x", missing)
    app.router.add_post("/api/v1/namespaces/ns/secrets", conflict)
    app.router.add_get("/api/v1/namespaces/ns/configmaps", proxy_page)
    app.router.add_get("/api/v1/namespaces/ns/configmaps/x", html_ok)
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


async def test_an_answer_that_is_not_json_is_the_server_out_of_reach(client: KubeClient) -> None:
    """An HTML page from a proxy in front of the API server (issue 14): retry later, and
    say what came back, briefly; not a JSONDecodeError from deep inside."""
    with pytest.raises(KubeUnavailable) as caught:
        await client.list(resource_path("v1", "configmaps", "ns"))
    message = str(caught.value)
    assert "HTTP 502" in message and "502 Bad Gateway" in message, message
    assert "\n" not in message and len(message) < 400, message
    # A 200 that is not JSON is no better.
    with pytest.raises(KubeUnavailable, match=r"HTTP 200.*sign in"):
        await client.get(resource_path("v1", "configmaps", "ns", "x"))


async def _get_over_https(trusted: TestCA | None = None) -> dict[str, object]:
    """GET from an https server, trusting `trusted` (default: the CA that issued its
    certificate) by its base64 `certificate-authority-data`, as a kubeconfig gives it."""
    served = TestCA()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/secrets", chunked)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=served.server_context())
    assert server.scheme == "https"
    try:
        async with aiohttp.ClientSession() as session:
            info = kopf.ConnectionInfo(
                server=str(server.make_url("")).rstrip("/"),
                ca_data=(trusted or served).kubeconfig_data,
            )
            return await KubeClient(info, session).request(
                "GET", resource_path("v1", "secrets", "ns")
            )
    finally:
        await server.close()


async def test_https_with_the_kubeconfigs_base64_ca() -> None:
    """`certificate-authority-data` is base64 of PEM (issue 14: every https kubeconfig
    failed with "cadata does not contain a certificate")."""
    answer = await _get_over_https()
    assert len(answer["items"]) == len(ITEMS)  # type: ignore[arg-type]


async def test_https_checks_the_servers_certificate() -> None:
    # Another CA than the one that issued the server's certificate: refused, retryable.
    with pytest.raises(KubeUnavailable, match="Certificate"):
        await _get_over_https(TestCA())


def test_paths() -> None:
    assert resource_path("apps/v1", "deployments", "ns", "d") == (
        "/apis/apps/v1/namespaces/ns/deployments/d"
    )
    assert resource_path("hookline.dev/v1alpha1", "webhooks", "ns", "w", "status") == (
        "/apis/hookline.dev/v1alpha1/namespaces/ns/webhooks/w/status"
    )


def test_event_names_are_the_object_name_the_time_and_a_random_part() -> None:
    assert event_name("wr", now_ns=lambda: 0x1234, token=lambda: "deadbeef") == "wr.1234deadbeef"
    # The real clock and random part: two names in a row differ, and keep the form.
    first, second = event_name("wr"), event_name("wr")
    assert first != second
    assert all(re.fullmatch(r"wr\.[0-9a-f]{24}", n) for n in (first, second)), (first, second)


@pytest.mark.parametrize(
    ("object_name", "kept"),
    [
        ("a" * 253, "a" * 228),
        ("a" * 227 + "-" + "b" * 25, "a" * 227),  # cut right after a "-"
        ("a" * 227 + "." + "b" * 25, "a" * 227),  # ... or after a "."
        ("a." * 126 + "a", "a." * 113 + "a"),
        ("My_Webhook..x-", "my-webhook.x"),  # not a valid object name: made one
        ("", "hookline"),
        ("-.-", "hookline"),
    ],
)
def test_event_names_are_valid_and_at_most_253_characters(object_name: str, kept: str) -> None:
    # 16 hex digits of the time until the year 2262, 8 random: 228 characters are left.
    name = event_name(object_name, now_ns=lambda: 1_750_000_000 * 10**9)
    assert len(name) <= MAX_NAME
    assert re.fullmatch(NAME_PATTERN, name), name
    assert name.rsplit(".", 1)[0] == kept


def test_event_names_never_take_one_of_kopfs() -> None:
    """kopf names its Events by generateName: its prefix and 5 alphanumerics, no ".";
    ours always end with "." and hex (the reasoning in hookline/operator/main.py)."""
    prefix = kopf.OperatorSettings().posting.event_name_prefix
    assert "." not in prefix
    for object_name in (prefix, f"{prefix}abcde", "", "a" * 253):
        assert re.fullmatch(r".+\.[0-9a-f]{24}", event_name(object_name))
