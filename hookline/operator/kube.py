"""A small async Kubernetes client for what kopf's handler `patch` cannot do (issue 6).

kopf writes to the object a handler runs for. The reconciler writes the status of many
objects at once, creates the generated and managed objects (Secrets, the receiver's
Deployment and Services) and posts Events outside any handler: it needs a client of its
own. It uses the same `kopf.ConnectionInfo` kopf logged in with, so both talk to the same
API server with the same credentials, and JSON merge patches only (RFC 7386), which
every API server (and the KMock emulator in tests) applies the same way.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

MERGE_PATCH = "application/merge-patch+json"
log = logging.getLogger(__name__)

# Event names (issue 14). Object names are DNS subdomains (RFC 1123), at most 253 chars;
# an Event's name must be one too.
MAX_NAME = 253
EVENT_NAME_ATTEMPTS = 5  # names tried per Event before it is given up on (409 each time)
_NOT_IN_NAME = re.compile(r"[^a-z0-9.-]+")


def event_name(
    object_name: str,
    *,
    now_ns: Callable[[], int] = time.time_ns,
    token: Callable[[], str] = lambda: secrets.token_hex(4),
) -> str:
    """`<object name>.<hex of the time in ns><8 random hex>`: unique per Event.

    client-go names Events `<object name>.<hex of the time in ns>` (tools/record) rather
    than leave it to generateName, which plain KMock 0.8 ignores (every such Event gets
    one name: "409 Object Already Exists", issue 14) and which an API server before 1.31
    (KEP-4420) answers with a 409 when its 5 random characters collide. The random part
    keeps two Events of one object in the same nanosecond (or from two replicas) apart.
    The object-name part is cut so the whole stays within 253 characters and, stripped
    of a trailing "-" or ".", a valid DNS subdomain. It always ends with "." + hex, which
    kopf's own Event names ("kopf-event-" + 5 alphanumerics) never do.
    """
    suffix = f"{now_ns():x}{token()}"
    # Object names are valid already; an odd one (a test's, a future kind's) is made so.
    labels = (label.strip("-") for label in _NOT_IN_NAME.sub("-", object_name.lower()).split("."))
    prefix = ".".join(label for label in labels if label)[: MAX_NAME - 1 - len(suffix)]
    prefix = prefix.rstrip("-.") or "hookline"
    return f"{prefix}.{suffix}"


class KubeError(Exception):
    """An API answer other than 2xx, with Kubernetes' Status reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class KubeUnavailable(Exception):
    """The API server did not answer (network error, timeout): retry later."""


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """`/api/v1/namespaces/ns/secrets/x` or `/apis/group/version/...`."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace is not None:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    """kopf's own context for what kopf logged in with (issue 14).

    A kubeconfig's `certificate-authority-data` is base64 of PEM; `ssl` wants the PEM
    itself (passing it as is fails every https kubeconfig: "cadata does not contain a
    certificate"). kopf decodes it, and client certificates given as data, the same way
    its own API calls do; `insecure-skip-tls-verify` turns verification off.
    """
    return info.as_ssl_context()


EXCERPT = 200  # characters of an answer that is not JSON, quoted in the error


def _json_answer(method: str, path: str, status: int, raw: bytes) -> Any:
    """The decoded answer; one that is not JSON is not the API server's (issue 14).

    A proxy or load balancer in front of it answers with an HTML page (502, a login
    form): that is the API server being out of reach, to retry, with what came back.
    """
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        excerpt = raw[:EXCERPT].decode("utf-8", "replace")
        excerpt = " ".join(excerpt.split())
        raise KubeUnavailable(
            f"{method} {path}: HTTP {status}, not a JSON answer: {excerpt!r}"
        ) from exc


class KubeClient:
    """JSON over HTTP to the API server; one aiohttp session for the operator's life."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        session: aiohttp.ClientSession,
        *,
        event_names: Callable[[str], str] = event_name,
    ) -> None:
        self.server = info.server.rstrip("/")
        self._headers = info.as_http_headers()
        self._ssl = _ssl_context(info) if self.server.startswith("https") else False
        self._session = session
        # An object name -> a fresh Event name; a test passes one that collides (issue 14).
        self._event_names = event_names

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {**self._headers, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            async with self._session.request(
                method,
                self.server + path,
                json=body,
                headers=headers,
                params=params,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                # Not by Content-Length: the API server sends large or gzipped answers
                # chunked, without one.
                raw = await response.read()
                data = _json_answer(method, path, response.status, raw)
                if response.status >= 400:
                    data = data if isinstance(data, dict) else {}
                    raise KubeError(
                        response.status,
                        str(data.get("reason", response.reason or "")),
                        str(data.get("message", "")),
                    )
                return data if isinstance(data, dict) else {}
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise KubeUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str) -> list[dict[str, Any]]:
        return list((await self.request("GET", path)).get("items") or [])

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, dict(body))

    async def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch: `None` values delete keys."""
        return await self.request("PATCH", path, dict(body), content_type=MERGE_PATCH)

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def post_event(
        self,
        involved: Mapping[str, Any],
        *,
        type: str,
        reason: str,
        message: str,
        component: str = "hookline-operator",
    ) -> None:
        """A core/v1 Event on `involved` (a full object), as `kubectl describe` shows it.

        Events are best-effort, like kopf's own: a failure to post one is not a reason to
        fail the reconciliation that caused it; it is logged, never dropped silently.
        """
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        object_name = str(meta.get("name") or "hookline")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata = {"namespace": namespace}  # and a name per attempt, below
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": metadata,
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type,
            "reason": reason,
            # The API server caps Event messages at 1 KiB.
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        path = resource_path("v1", "events", namespace)
        for attempt in range(1, EVENT_NAME_ATTEMPTS + 1):
            # A name of our own, not generateName (issue 14: "409 Object Already Exists").
            metadata["name"] = self._event_names(object_name)
            try:
                await self.create(path, event)
                return
            except KubeError as exc:
                # A 409 on a create is AlreadyExists (KMock says "Object Already Exists"):
                # the name is taken, another one will do.
                if exc.status == 409 and attempt < EVENT_NAME_ATTEMPTS:
                    log.debug("Event name %s is taken; trying another", metadata["name"])
                    continue
                failure = (
                    f"{EVENT_NAME_ATTEMPTS} names tried, all taken: {exc}"
                    if exc.status == 409
                    else str(exc)
                )
            except KubeUnavailable as exc:
                failure = str(exc)
            log.warning(
                "could not post Event %s on %s/%s: %s", reason, namespace, meta.get("name"), failure
            )
            return
