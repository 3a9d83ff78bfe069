"""Building one outgoing request: URLs, the three formats, header precedence, signing,
and the SSRF guard's address checks. Pure: no sockets (tests/receiver/test_send.py
sends for real)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook as ReferenceWebhook

from hookline.api.webhook import Destination
from hookline.receiver.forward import (
    CompiledDestination,
    OutgoingRequest,
    build_request,
    destination_url,
)
from hookline.receiver.ssrf import DestinationRefused, GuardedResolver, check_url
from hookline.store.base import DeliveryRecord

RECEIVED = datetime(2027, 1, 15, 12, 0, 0, 250000, tzinfo=UTC)
NOW = datetime(2027, 1, 15, 12, 0, 5, tzinfo=UTC)
BODY = b'{"action": "completed", "workflow_run": {"id": 7}}'
SW_KEY = b"k" * 24
SW_SECRET = b"whsec_" + base64.b64encode(SW_KEY)
HMAC_SECRET = b"hmac-secret-for-destination"


def record(**overrides: Any) -> DeliveryRecord:
    fields: dict[str, Any] = {
        "id": "01JABCDEF0123456789XYZWXYZ",
        "webhook": "ci/runs",
        "received_at": RECEIVED,
        "status": "accepted",
        "http_status": 202,
        "event_type": "github.workflow_run",
        "headers": {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/abc123",
            "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-GitHub-Hook-ID": "123456",
            "X-Hub-Signature-256": "[redacted]",
            "Authorization": "[redacted]",
            "X-Custom-Token": "not-on-the-allow-list",
            "Cookie": "[redacted]",
            "Content-Length": "51",
            "Content-Encoding": "gzip",
            "webhook-id": "[redacted]",
        },
        "body": BODY,
    }
    fields.update(overrides)
    return DeliveryRecord(**fields)


def compiled(
    secret: bytes | None = None, allow_link_local: bool = False, **spec: Any
) -> CompiledDestination:
    dest = Destination.model_validate({"name": "bot", "url": "http://bot.ci.svc/e", **spec})
    return CompiledDestination(
        name=dest.name,
        url=destination_url(dest, "ci"),
        spec=dest,
        signing_secret=secret,
        allow_link_local=allow_link_local,
    )


def lower(request: OutgoingRequest) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


# --- URLs ---------------------------------------------------------------------------


def test_destination_url() -> None:
    url = Destination.model_validate({"name": "a", "url": "https://x.example/h?q=1"})
    assert destination_url(url, "ci") == "https://x.example/h?q=1"
    svc = Destination.model_validate({"name": "a", "service": {"name": "bot", "port": 8080}})
    assert destination_url(svc, "ci") == "http://bot.ci.svc:8080/"
    other = Destination.model_validate(
        {
            "name": "a",
            "service": {
                "name": "bot",
                "namespace": "ops",
                "port": 443,
                "path": "/hooks/in",
                "scheme": "https",
            },
        }
    )
    assert destination_url(other, "ci") == "https://bot.ops.svc:443/hooks/in"


# --- raw ----------------------------------------------------------------------------


def test_raw_forwards_body_and_allow_listed_headers_only() -> None:
    request = build_request(compiled(), record(), None, NOW)
    assert request.url == "http://bot.ci.svc/e"
    assert request.body == BODY
    assert request.headers == {
        "User-Agent": "hookline/0.1.0",
        "X-GitHub-Event": "workflow_run",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Hook-ID": "123456",
        "Content-Type": "application/json",
        "X-Hookline-Delivery": "01JABCDEF0123456789XYZWXYZ",
        "X-Hookline-Webhook": "ci/runs",
    }
    assert "[redacted]" not in request.headers.values()
    assert not request.allow_link_local


def test_raw_keeps_cloudevents_and_standard_webhooks_ids_of_the_sender() -> None:
    headers = {"ce-id": "1", "ce-type": "t", "webhook-id": "msg_1", "Content-Type": "text/plain"}
    request = build_request(compiled(), record(headers=headers), None, NOW)
    assert lower(request)["ce-id"] == "1"
    assert lower(request)["webhook-id"] == "msg_1"
    assert lower(request)["content-type"] == "text/plain"


def test_raw_body_override_and_missing_body() -> None:
    assert build_request(compiled(), record(), b'{"edited":1}', NOW).body == b'{"edited":1}'
    request = build_request(compiled(), record(body=None, headers={}), None, NOW)
    assert request.body == b""
    assert request.headers["Content-Type"] == "application/octet-stream"


def test_user_headers_add_and_replace_sender_headers_but_not_hookline_ones() -> None:
    dest = compiled(
        HMAC_SECRET,
        signing={"scheme": "hmac-sha256", "secretRef": {"name": "s"}},
        headers={
            "Authorization": "Bearer dest-token",
            "x-github-event": "overridden",
            "User-Agent": "custom/1",
            "X-Hookline-Delivery": "forged",
            "x-webhook-signature": "forged",
            "Content-Type": "text/evil",
            "Content-Length": "0",
            "Transfer-Encoding": "chunked",
            "Host": "elsewhere",
            "ce-id": "forged",
        },
    )
    headers = lower(build_request(dest, record(), None, NOW))
    assert headers["authorization"] == "Bearer dest-token"
    assert headers["x-github-event"] == "overridden"
    assert headers["user-agent"] == "custom/1"
    assert headers["x-hookline-delivery"] == "01JABCDEF0123456789XYZWXYZ"
    assert headers["x-webhook-signature"] != "forged"
    assert headers["content-type"] == "application/json"
    for framing in ("content-length", "transfer-encoding", "host", "ce-id"):
        assert framing not in headers
    assert len(headers) == len(build_request(dest, record(), None, NOW).headers)  # no dupes


# --- envelope -----------------------------------------------------------------------


def test_envelope_json() -> None:
    request = build_request(compiled(format="envelope"), record(), None, NOW)
    assert json.loads(request.body) == {
        "event": "github.workflow_run",
        "timestamp": "2027-01-15T12:00:00.250Z",
        "payload": {"action": "completed", "workflow_run": {"id": 7}},
    }
    headers = lower(request)
    assert headers["content-type"] == "application/json"
    assert headers["x-webhook-event"] == "github.workflow_run"
    assert headers["x-webhook-timestamp"] == "2027-01-15T12:00:00.250Z"
    assert "x-github-event" not in headers  # sender headers are raw-format only


def test_envelope_of_an_untyped_non_json_body() -> None:
    rec = record(event_type=None, headers={"Content-Type": "application/x-www-form-urlencoded"})
    request = build_request(compiled(format="envelope"), rec, b"payload=%7B%7D", NOW)
    document = json.loads(request.body)
    assert document["event"] is None
    assert document["payload"] == "payload=%7B%7D"
    assert "x-webhook-event" not in lower(request)


# --- CloudEvents --------------------------------------------------------------------


def parse_ce(request: OutgoingRequest) -> Any:
    return from_http(HTTPMessage(headers=request.headers, body=request.body), JSONFormat())


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_json(mode: str) -> None:
    request = build_request(
        compiled(format="cloudevents", cloudEventsMode=mode), record(), None, NOW
    )
    event = parse_ce(request)
    assert event.get_id() == "01JABCDEF0123456789XYZWXYZ"
    assert event.get_source() == "/hookline/ci/runs"
    assert event.get_type() == "github.workflow_run"
    assert event.get_time() == RECEIVED
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == {"action": "completed", "workflow_run": {"id": 7}}
    headers = lower(request)
    if mode == "binary":
        assert request.body == BODY  # byte for byte
        assert headers["ce-specversion"] == "1.0"
        assert headers["content-type"] == "application/json"
    else:
        assert headers["content-type"] == "application/cloudevents+json"
        assert not any(h.startswith("ce-") for h in headers)
    assert headers["x-hookline-delivery"] == "01JABCDEF0123456789XYZWXYZ"


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_binary_data_and_default_type(mode: str) -> None:
    blob = bytes(range(256))
    rec = record(event_type=None, headers={"Content-Type": "application/octet-stream"})
    dest = compiled(format="cloudevents", cloudEventsMode=mode)
    event = parse_ce(build_request(dest, rec, blob, NOW))
    assert event.get_type() == "hookline.webhook.received"
    assert event.get_datacontenttype() == "application/octet-stream"
    assert event.get_data() == blob


def test_cloudevents_structured_top_level_array() -> None:
    dest = compiled(format="cloudevents", cloudEventsMode="structured")
    request = build_request(dest, record(), b"[1, 2, 3]", NOW)
    assert json.loads(request.body)["data"] == [1, 2, 3]


# --- signing ------------------------------------------------------------------------


def test_hmac_sha256_over_the_exact_body_sent() -> None:
    dest = compiled(
        HMAC_SECRET,
        format="envelope",
        signing={"scheme": "hmac-sha256", "secretRef": {"name": "s"}},
    )
    request = build_request(dest, record(), None, NOW)
    expected = hmac.new(HMAC_SECRET, request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Webhook-Signature"] == expected


@pytest.mark.parametrize("fmt", ["raw", "envelope", "cloudevents"])
def test_standard_webhooks_verified_by_the_reference_library(fmt: str) -> None:
    dest = compiled(
        SW_SECRET,
        format=fmt,
        signing={"scheme": "standard-webhooks", "secretRef": {"name": "s"}},
    )
    now = datetime.now(UTC)  # the reference verifier checks against its own clock
    request = build_request(dest, record(), None, now)
    headers = lower(request)
    assert headers["webhook-id"] == "01JABCDEF0123456789XYZWXYZ"  # the delivery id
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    ReferenceWebhook(SW_SECRET.decode()).verify(request.body, request.headers, json_parse=False)


def test_standard_webhooks_signs_non_utf8_bodies_per_the_spec() -> None:
    dest = compiled(SW_SECRET, signing={"scheme": "standard-webhooks", "secretRef": {"name": "s"}})
    body = b"\xff\xfe binary"
    request = build_request(dest, record(), body, NOW)
    content = b"01JABCDEF0123456789XYZWXYZ." + str(int(NOW.timestamp())).encode() + b"." + body
    mac = base64.b64encode(hmac.new(SW_KEY, content, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{mac}"


def test_signing_needs_a_usable_secret_and_never_shows_it() -> None:
    signing = {"scheme": "standard-webhooks", "secretRef": {"name": "s"}}
    with pytest.raises(ValueError, match="needs the secret s/secret"):
        compiled(None, signing=signing)
    with pytest.raises(ValueError, match="not base64"):
        compiled(b"whsec_not*base64!", signing=signing)
    assert "whsec_" not in repr(compiled(SW_SECRET, signing=signing))


# --- SSRF guard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]:8080/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://2852039166/",  # 169.254.169.254 as one number
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
    ],
)
def test_check_url_refuses_link_local_and_metadata(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url, allow_link_local=False)
    check_url(url, allow_link_local=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://10.0.0.7/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://[fd12::1]/",
        "http://bot.ci.svc:8080/events",
        "https://hooks.example.com/x",
        "http://100.64.0.1/",
    ],
)
def test_check_url_allows_loopback_private_and_names(url: str) -> None:
    check_url(url, allow_link_local=False)


def test_check_url_message_says_how_to_allow() -> None:
    with pytest.raises(DestinationRefused) as info:
        check_url("http://169.254.169.254/", allow_link_local=False)
    assert "cloud metadata" in info.value.message
    assert "destinationPolicy.allowLinkLocal" in info.value.message
    with pytest.raises(DestinationRefused, match="http:// or https://"):
        check_url("file:///etc/passwd", allow_link_local=True)


class FixedResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver() -> None:
    ok = GuardedResolver(FixedResolver("10.1.2.3", "fd12::1"))
    assert [r["host"] for r in await ok.resolve("bot.ci.svc", 80)] == ["10.1.2.3", "fd12::1"]
    mixed = GuardedResolver(FixedResolver("10.1.2.3", "169.254.169.254"))
    with pytest.raises(
        DestinationRefused, match=re.escape("evil.test resolves to 169.254.169.254")
    ):
        await mixed.resolve("evil.test", 80)
    inner = FixedResolver("10.1.2.3")
    named = GuardedResolver(inner)
    with pytest.raises(DestinationRefused, match="metadata"):
        await named.resolve("metadata.google.internal", 80)
    await named.close()
    assert inner.closed
