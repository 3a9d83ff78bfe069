"""Build and send one request to a destination (issue 5).

`build_request` is pure: the same destination, record, body and time give the same
bytes and headers, so formats and signatures are tested without a socket. `send` makes
the one HTTP call and turns every way it can go wrong into a result, never an
exception, so a dispatch worker only ever has an outcome to record.

Headers of a request, lowest precedence first:

1. raw format only: the sender's headers on `FORWARDED_HEADERS` (plus ``ce-*``, so a
   binary-mode CloudEvent stays one). An allow-list, not a deny-list: a header we have
   not thought about (a vendor's token or signature header) is not passed on. Values
   the receiver redacted are dropped, never sent as ``[redacted]``.
2. the destination's `headers` (e.g. an Authorization for the destination), which may
   replace the forwarded sender headers above and the default User-Agent
   (``hookline/<version>``), but nothing below.
3. what hookline sets: the format's headers (Content-Type, ``ce-*``, X-Webhook-Event,
   X-Webhook-Timestamp), X-Hookline-Delivery, X-Hookline-Webhook and the signature
   headers. User headers naming these, or framing headers (Host,
   Content-Length, Transfer-Encoding, ...), are ignored: they would break the format,
   forge tracing, invalidate the signature or desynchronise the HTTP framing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline import __version__
from hookline.api.common import parse_duration
from hookline.api.webhook import Destination
from hookline.store.base import DeliveryRecord

from .auth import REDACTED, standard_webhooks_key
from .ssrf import DestinationRefused, check_url

__all__ = [
    "CompiledDestination",
    "OutgoingRequest",
    "SendResult",
    "build_request",
    "destination_url",
    "send",
]

RESPONSE_HEAD_BYTES = 1024
DEFAULT_EVENT_TYPE = "hookline.webhook.received"
USER_AGENT = f"hookline/{__version__}"

DELIVERY_HEADER = "X-Hookline-Delivery"
WEBHOOK_HEADER = "X-Hookline-Webhook"
HMAC_HEADER = "X-Webhook-Signature"
ENVELOPE_EVENT_HEADER = "X-Webhook-Event"
ENVELOPE_TIMESTAMP_HEADER = "X-Webhook-Timestamp"

# The sender's headers a raw destination receives: what identifies the event and its
# delivery. Never credentials, signatures (the destination checks hookline's signature,
# not the sender's), cookies, or framing and encoding headers (the stored body is
# already decoded, its length recomputed).
FORWARDED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Content-Type",
        # GitHub
        "X-GitHub-Event",
        "X-GitHub-Delivery",
        "X-GitHub-Hook-ID",
        "X-GitHub-Hook-Installation-Target-ID",
        "X-GitHub-Hook-Installation-Target-Type",
        # GitLab (never X-Gitlab-Token: a credential)
        "X-Gitlab-Event",
        "X-Gitlab-Event-UUID",
        "X-Gitlab-Webhook-UUID",
        "X-Gitlab-Instance",
        # Gitea / Forgejo / Gogs
        "X-Gitea-Event",
        "X-Gitea-Event-Type",
        "X-Gitea-Delivery",
        "X-Gogs-Event",
        "X-Gogs-Delivery",
        # Bitbucket
        "X-Event-Key",
        "X-Request-UUID",
        "X-Hook-UUID",
        # Standard Webhooks message id (its signature is redacted, its timestamp moot)
        "webhook-id",
    )
)
FORWARDED_PREFIXES = ("ce-",)  # CloudEvents HTTP binding, binary mode (3.1.3)

# Headers user `headers` can never set (besides the ones a request already carries
# from hookline): framing and hop-by-hop (RFC 9110 7.6.1), and every header hookline
# or a signing scheme may set, whatever this destination's format and signing.
_RESERVED = frozenset(
    h.lower()
    for h in (
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Connection",
        "Content-Encoding",
        "Content-Type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        HMAC_HEADER,
        ENVELOPE_EVENT_HEADER,
        ENVELOPE_TIMESTAMP_HEADER,
    )
)
_RESERVED_PREFIXES = ("x-hookline-", "ce-")

_JSON_TYPE = re.compile(r"^(application|text)/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)


def destination_url(dest: Destination, namespace: str) -> str:
    """The URL to send to; a `service` is ``{scheme}://{name}.{namespace}.svc:{port}{path}``
    (the Webhook's namespace unless the ServiceRef names one). ``.svc`` rather than
    ``.svc.cluster.local``: pods resolve it through their search path whatever the
    cluster domain is."""
    if dest.url is not None:
        return dest.url
    if dest.service is None:  # the model refuses this; kept for type narrowing
        raise ValueError(f"destination {dest.name} has neither url nor service")
    svc = dest.service
    return f"{svc.scheme}://{svc.name}.{svc.namespace or namespace}.svc:{svc.port}{svc.path}"


@dataclass(frozen=True)
class CompiledDestination:
    """A destination ready to send to: URL resolved, signing secret read."""

    name: str
    url: str
    spec: Destination
    signing_secret: bytes | None = field(default=None, repr=False)
    allow_link_local: bool = False
    # The old signing secret during a rotation's overlap window (issue 6): Standard
    # Webhooks signs with both, so the destination accepts whichever it holds.
    previous_signing_secret: bytes | None = field(default=None, repr=False)
    # The decoded Standard Webhooks signer, made once.
    _signer: StandardWebhook | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        signing = self.spec.signing
        if signing is None:
            return
        if not self.signing_secret:
            raise ValueError(
                f"destination {self.name}: signing {signing.scheme} needs the secret "
                f"{signing.secret_ref.name}/{signing.secret_ref.key}"
            )
        if signing.scheme == "standard-webhooks":
            key = standard_webhooks_key(self.signing_secret)  # ValueError if malformed
            object.__setattr__(self, "_signer", StandardWebhook(key))
            if self.previous_signing_secret:
                standard_webhooks_key(self.previous_signing_secret)  # refused now, not per send

    @property
    def timeout(self) -> float:
        return parse_duration(self.spec.timeout).total_seconds()


@dataclass(frozen=True)
class OutgoingRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    allow_link_local: bool = False  # the Webhook's destinationPolicy, for send()'s check


def _header(headers: dict[str, str], name: str) -> str | None:
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower and value != REDACTED:
            return value
    return None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_body(body: bytes, content_type: str | None) -> tuple[bool, Any]:
    """(True, parsed) when the body is JSON: declared so (or undeclared) and parsing."""
    if content_type is not None and not _JSON_TYPE.match(content_type):
        return False, None
    try:
        return True, json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False, None


def _cloudevent(
    dest: CompiledDestination, record: DeliveryRecord, body: bytes, content_type: str | None
) -> tuple[dict[str, str], bytes]:
    """CloudEvents 1.0 over the HTTP binding, binary or structured content mode."""
    is_json, parsed = _json_body(body, content_type)
    attributes: dict[str, Any] = {
        "id": record.id,
        "source": f"/hookline/{record.webhook}",
        "type": record.event_type or DEFAULT_EVENT_TYPE,
        "specversion": "1.0",
        "time": record.received_at.astimezone(UTC),
        "datacontenttype": "application/json"
        if is_json
        else content_type or "application/octet-stream",
    }
    data: Any
    if dest.spec.cloud_events_mode == "binary":
        # Binary mode (HTTP binding 3.1): the body is the data, byte for byte; the SDK
        # would re-serialise a parsed value (and stringify a top-level JSON array).
        data = body
    else:
        # Structured mode (3.2, JSON event format): JSON data inline as "data", any
        # other body as "data_base64", so nothing is lost.
        data = parsed if is_json else body
    event = CloudEvent(attributes, cast("dict[str, Any] | str | bytes | None", data))
    convert = to_binary if dest.spec.cloud_events_mode == "binary" else to_structured
    message = convert(event, JSONFormat())
    return dict(message.headers), message.body


def _envelope(record: DeliveryRecord, body: bytes, content_type: str | None) -> bytes:
    is_json, parsed = _json_body(body, content_type)
    payload = parsed if is_json else body.decode("utf-8", errors="replace")
    document = {
        "event": record.event_type,
        "timestamp": _rfc3339(record.received_at),
        "payload": payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _standard_signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    # The library signs str only; the scheme itself is defined over bytes.
    key = standard_webhooks_key(secret)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _sign(
    dest: CompiledDestination, record: DeliveryRecord, body: bytes, now: datetime
) -> dict[str, str]:
    signing = dest.spec.signing
    if signing is None or dest.signing_secret is None:
        return {}
    if signing.scheme == "hmac-sha256":
        digest = hmac.new(dest.signing_secret, body, hashlib.sha256).hexdigest()
        return {HMAC_HEADER: digest}
    # Standard Webhooks (standardwebhooks.com, "Signature scheme"): HMAC-SHA256 over
    # "<webhook-id>.<webhook-timestamp>.<body>", "v1,<base64>". webhook-id is the
    # delivery id, the same on every retry, so the receiver can deduplicate;
    # webhook-timestamp is this attempt's time, so its replay tolerance holds.
    moment = now.astimezone(UTC)
    timestamp = int(moment.timestamp())
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if dest._signer is not None and text is not None:
        signature = str(dest._signer.sign(record.id, moment, text))
    else:
        signature = _standard_signature(dest.signing_secret, record.id, timestamp, body)
    if dest.previous_signing_secret:
        # The spec allows several space-separated signatures; a verifier accepts the
        # message when any one matches (rotation overlap, issue 6).
        old = _standard_signature(dest.previous_signing_secret, record.id, timestamp, body)
        signature = f"{signature} {old}"
    return {
        "webhook-id": record.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def build_request(
    dest: CompiledDestination,
    record: DeliveryRecord,
    body_override: bytes | None,
    now: datetime,
) -> OutgoingRequest:
    """The request for one attempt: `body_override` (a replay's edited body) or the
    delivery's body, in the destination's format, with its headers, signed at `now`."""
    original = body_override if body_override is not None else (record.body or b"")
    content_type = _header(record.headers, "Content-Type")
    forwarded: dict[str, str] = {}
    generated: dict[str, str]
    if dest.spec.format == "cloudevents":
        generated, body = _cloudevent(dest, record, original, content_type)
    elif dest.spec.format == "envelope":
        body = _envelope(record, original, content_type)
        generated = {"Content-Type": "application/json"}
        if record.event_type:  # "event" is null in the body; no header at all here
            generated[ENVELOPE_EVENT_HEADER] = record.event_type
        generated[ENVELOPE_TIMESTAMP_HEADER] = _rfc3339(record.received_at)
    else:
        body = original
        generated = {"Content-Type": content_type or "application/octet-stream"}
        for name, value in record.headers.items():
            lower = name.lower()
            if value == REDACTED or lower == "content-type":
                continue
            if lower in FORWARDED_HEADERS or lower.startswith(FORWARDED_PREFIXES):
                forwarded[name] = value
    generated[DELIVERY_HEADER] = record.id
    generated[WEBHOOK_HEADER] = record.webhook
    generated.update(_sign(dest, record, body, now))

    # Case-insensitive: a later layer replaces an earlier one however it is spelt.
    headers: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
    headers.update(forwarded)
    for name, value in dest.spec.headers.items():
        lower = name.lower()
        if lower not in _RESERVED and not lower.startswith(_RESERVED_PREFIXES):
            headers[name] = value
    headers.update(generated)
    return OutgoingRequest(
        url=dest.url,
        headers=dict(headers.items()),
        body=body,
        allow_link_local=dest.allow_link_local,
    )


# --- sending ---------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    status: int | None  # None: no HTTP answer
    retry_after: str | None  # the Retry-After header, as sent (see retry.parse_retry_after)
    response_head: bytes  # the first KiB of the answer's body
    error: str  # one line for a person; "" on any HTTP answer
    duration_ms: float
    refused: bool = False  # the SSRF guard refused the address (see retry.classify)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, DestinationRefused):
        return f"refused: {exc.message}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _one_line(
            f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
        )
    return _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _find_refusal(exc: BaseException) -> DestinationRefused | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DestinationRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def send(
    session: aiohttp.ClientSession,
    request: OutgoingRequest,
    timeout: float,  # noqa: ASYNC109 - the destination's spec.timeout, given to aiohttp
) -> SendResult:
    """POST `request` once. Redirects are not followed (see retry.classify), at most
    RESPONSE_HEAD_BYTES of the answer are read (the connection is dropped rather than
    drained when there is more), and every failure becomes a result: status None and a
    one-line error. Cancellation still propagates."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000.0

    try:
        check_url(request.url, request.allow_link_local)
        async with session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            head = bytearray()
            while len(head) < RESPONSE_HEAD_BYTES:
                chunk = await response.content.read(RESPONSE_HEAD_BYTES - len(head))
                if not chunk:
                    break
                head += chunk
            return SendResult(
                status=response.status,
                retry_after=response.headers.get("Retry-After"),
                response_head=bytes(head),
                error="",
                duration_ms=elapsed(),
            )
    except Exception as exc:
        refused = _find_refusal(exc)
        return SendResult(
            status=None,
            retry_after=None,
            response_head=b"",
            error=_describe(refused or exc, timeout),
            duration_ms=elapsed(),
            refused=refused is not None,
        )
