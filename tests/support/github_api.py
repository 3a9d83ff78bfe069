"""A local GitHub REST API for repository and organization hooks (issue 12), behaving as
GitHub's published description (`@octokit/openapi`, tests/support/github_openapi.py)
says: hooks CRUD, `Link` pagination, ETags and 304s that cost no rate limit, primary and
secondary rate limits with their headers, GitHub App installation tokens minted with an
RS256 JWT, deliveries with cursor pagination and redelivery attempts, pings.

Every request body the operator sends and every answer this server gives is checked
against the description; anything off is appended to `violations`, which the fixtures
assert empty. Deliveries are real HTTP POSTs, signed with the hook's secret, to the
hook's `config.url` — the receiver under test.

Time is the caller's clock (`clock()` in Unix seconds), so token expiry and rate-limit
resets are tested without waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from tests.support.github_openapi import Description, description

RATE_LIMIT = 5000
TOKEN_TTL = 3600.0
_HOOK_PATH = re.compile(
    r"^/(?P<owner>repos/[^/]+/[^/]+|orgs/[^/]+)/hooks"
    r"(?:/(?P<id>\d+)(?P<rest>/pings|/deliveries|/deliveries/(?P<delivery>\d+)/attempts)?)?$"
)
PATH: web.RequestKey[str] = web.RequestKey("path", str)
BODY: web.RequestKey[Any] = web.RequestKey("body", object)
_TOKENS = re.compile(r"^/app/installations/(?P<id>\d+)/access_tokens$")


@dataclass
class Grant:
    """What a token may do: see these repositories / organizations (None: all), and
    manage their hooks."""

    repos: set[str] | None = None
    orgs: set[str] | None = None
    admin_hooks: bool = True
    expires: float | None = None  # installation tokens


@dataclass
class Installation:
    app_id: int
    grant: Grant = field(default_factory=Grant)


@dataclass
class Hook:
    id: int
    owner: str  # "repos/o/r" or "orgs/o"
    events: list[str]
    active: bool
    config: dict[str, Any]
    created_at: str
    updated_at: str
    last_response: dict[str, Any] = field(
        default_factory=lambda: {"code": None, "status": "unused", "message": None}
    )


@dataclass
class Delivery:
    item: dict[str, Any]  # hook-delivery-item
    hook_id: int
    body: bytes


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    def __init__(self, clock: Callable[[], float], *, prefix: str = "") -> None:
        # GitHub Enterprise Server serves the API under /api/v3, described by ghes-*.json.
        self.prefix = prefix
        self.description: Description = description("ghes-3.19" if prefix else "api.github.com")
        self.clock = clock
        self.repos: set[str] = set()
        self.orgs: set[str] = set()
        self.tokens: dict[str, Grant] = {}
        self.apps: dict[int, str] = {}  # app id -> public key (PEM)
        self.installations: dict[int, Installation] = {}
        self.hooks: dict[int, Hook] = {}
        self.deliveries: list[Delivery] = []
        self.minted: list[str] = []
        self.remaining: dict[str, int] = {}  # rate limit left, per token
        self.reset_at = clock() + 3600
        self.secondary: int = 0  # the next N requests hit a secondary rate limit
        self.secondary_retry_after = 60
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.violations: list[str] = []
        self._ids = itertools.count(1000)
        self.app = web.Application(middlewares=[self._validate])
        self.app.router.add_route("*", "/{tail:.*}", self._route)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{self.prefix}"
        self._session = aiohttp.ClientSession()
        return self.url

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests look at ------------------------------------------------------------

    def hooks_of(self, owner: str) -> list[Hook]:
        """owner: "owner/name" of a repository, or "org:name"."""
        key = f"orgs/{owner[4:]}" if owner.startswith("org:") else f"repos/{owner}"
        return [h for h in self.hooks.values() if h.owner == key]

    def calls(self, method: str, pattern: str = "") -> list[tuple[str, str, int]]:
        return [c for c in self.requests if c[0] == method and re.search(pattern, c[1])]

    def add_hook(self, owner: str, url: str, **fields: Any) -> Hook:
        """A hook made by someone else (by hand, an earlier install)."""
        key = f"orgs/{owner[4:]}" if owner.startswith("org:") else f"repos/{owner}"
        now = _iso(self.clock())
        hook = Hook(
            next(self._ids),
            key,
            fields.pop("events", ["push"]),
            fields.pop("active", True),
            {"url": url, "content_type": "form", "insecure_ssl": "0", **fields},
            now,
            now,
        )
        self.hooks[hook.id] = hook
        return hook

    # -- validation of every exchange --------------------------------------------------

    @web.middleware
    async def _validate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                self.violations.append(f"{request.method} {path}: not under {self.prefix}")
                return _error(404, "Not Found")
            path = path[len(self.prefix) :]
        op = self.description.operation(request.method, path)
        raw = await request.read()
        body = json.loads(raw) if raw else None
        if op is None:
            self.violations.append(f"{request.method} {path}: no such operation")
        else:
            for problem in self.description.check_request(op, body):
                self.violations.append(f"request {request.method} {path}: {problem}")
            if request.headers.get("X-GitHub-Api-Version") != "2022-11-28":
                self.violations.append(f"{request.method} {path}: no X-GitHub-Api-Version")
        request[PATH] = path
        request[BODY] = body
        response = await handler(request)
        assert isinstance(response, web.Response)
        self.requests.append((request.method, path, response.status))
        if op is not None:
            answer = json.loads(response.body) if response.body else None  # type: ignore[arg-type]
            for problem in self.description.check_response(op, response.status, answer):
                self.violations.append(f"answer {response.status} {path}: {problem}")
        return response

    # -- authentication and rate limits ------------------------------------------------

    def _rate_headers(self, token: str) -> dict[str, str]:
        left = self.remaining.get(token, RATE_LIMIT)
        return {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(left),
            "x-ratelimit-used": str(RATE_LIMIT - left),
            "x-ratelimit-reset": str(int(self.reset_at)),
            "x-ratelimit-resource": "core",
        }

    def _authenticate(self, request: web.Request) -> tuple[str, Grant] | web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").removeprefix("token ").strip()
        grant = self.tokens.get(token)
        if grant is None or (grant.expires is not None and self.clock() >= grant.expires):
            return _error(401, "Bad credentials")
        if self.clock() >= self.reset_at:
            self.remaining.clear()
            self.reset_at = self.clock() + 3600
        if self.secondary > 0:
            self.secondary -= 1
            return _error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before "
                "you try again.",
                {"Retry-After": str(self.secondary_retry_after), **self._rate_headers(token)},
            )
        if self.remaining.get(token, RATE_LIMIT) <= 0:
            return _error(
                403, f"API rate limit exceeded for {token[:4]}…", self._rate_headers(token)
            )
        return token, grant

    def _mint(self, request: web.Request, installation_id: int) -> web.Response:
        encoded = request.headers.get("Authorization", "").removeprefix("Bearer ")
        installation = self.installations.get(installation_id)
        if installation is None:
            return _error(404, "Not Found")
        key = self.apps.get(installation.app_id)
        try:
            # PyJWT checks exp/iat against the wall clock; these checks use ours.
            claims = jwt.decode(
                encoded,
                key or "",
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as exc:
            return _error(401, f"A JSON web token could not be decoded ({type(exc).__name__})")
        now = self.clock()
        if str(claims.get("iss")) != str(installation.app_id):
            return _error(401, "'Issuer' claim ('iss') must be an Integer")
        if not (claims["iat"] <= now + 60 and now < claims["exp"] <= claims["iat"] + 660):
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        token = f"ghs_{uuid.uuid4().hex}"
        expires = now + TOKEN_TTL
        self.tokens[token] = Grant(
            installation.grant.repos,
            installation.grant.orgs,
            installation.grant.admin_hooks,
            expires,
        )
        self.minted.append(token)
        return web.json_response({"token": token, "expires_at": _iso(expires)}, status=201)

    # -- the API -----------------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.Response:
        path = request[PATH]
        found = _TOKENS.match(path)
        if found and request.method == "POST":
            return self._mint(request, int(found["id"]))
        authed = self._authenticate(request)
        if isinstance(authed, web.Response):
            return authed
        token, grant = authed
        found = _HOOK_PATH.match(path)
        if found is None:
            return _error(404, "Not Found")
        owner = found["owner"]
        kind, _, name = owner.partition("/")
        visible = (
            (name in self.repos and (grant.repos is None or name in grant.repos))
            if kind == "repos"
            else (name in self.orgs and (grant.orgs is None or name in grant.orgs))
        )
        if not visible:
            return self._answer(token, _error(404, "Not Found"))
        if not grant.admin_hooks:
            return self._answer(
                token, _error(403, "Resource not accessible by personal access token")
            )
        hook_id = int(found["id"]) if found["id"] else None
        if hook_id is None:
            if request.method == "GET":
                return self._answer(token, self._list(request, owner))
            return self._answer(token, await self._create(request, owner))
        hook = self.hooks.get(hook_id)
        if hook is None or hook.owner != owner:
            return self._answer(token, _error(404, "Not Found"))
        rest = found["rest"] or ""
        if rest == "/pings":
            await self._send(hook, "ping", self._ping_payload(hook))
            return self._answer(token, web.Response(status=204))
        if rest == "/deliveries":
            return self._answer(token, self._list_deliveries(request, hook))
        if found["delivery"]:
            return self._answer(token, await self._redeliver(hook, int(found["delivery"])))
        if request.method == "GET":
            response = web.json_response(self._hook_json(request, hook))
            etag = 'W/"' + hashlib.sha256(response.body).hexdigest()[:32] + '"'  # type: ignore[arg-type]
            if request.headers.get("If-None-Match") == etag:
                # GitHub: a 304 to a conditional request does not count against the limit.
                return web.Response(status=304, headers={"ETag": etag, **self._rate_headers(token)})
            response.headers["ETag"] = etag
            return self._answer(token, response)
        if request.method == "PATCH":
            return self._answer(token, self._update(request, hook))
        if request.method == "DELETE":
            del self.hooks[hook.id]
            return self._answer(token, web.Response(status=204))
        return _error(404, "Not Found")

    def _answer(self, token: str, response: web.Response) -> web.Response:
        self.remaining[token] = self.remaining.get(token, RATE_LIMIT) - 1
        response.headers.update(self._rate_headers(token))
        return response

    def _hook_json(self, request: web.Request, hook: Hook) -> dict[str, Any]:
        base = f"{request.scheme}://{request.host}{self.prefix}/{hook.owner}/hooks/{hook.id}"
        # GitHub never returns the secret, only that there is one ("********").
        config = {k: ("********" if k == "secret" else v) for k, v in hook.config.items()}
        out: dict[str, Any] = {
            "type": "Organization" if hook.owner.startswith("orgs/") else "Repository",
            "id": hook.id,
            "name": "web",
            "active": hook.active,
            "events": list(hook.events),
            "config": config,
            "updated_at": hook.updated_at,
            "created_at": hook.created_at,
            "url": base,
            "ping_url": f"{base}/pings",
            "deliveries_url": f"{base}/deliveries",
        }
        if hook.owner.startswith("repos/"):
            out["test_url"] = f"{base}/test"
            out["last_response"] = dict(hook.last_response)
        return out

    def _list(self, request: web.Request, owner: str) -> web.Response:
        per_page = min(100, int(request.query.get("per_page", "30")))
        page = int(request.query.get("page", "1"))
        mine = sorted((h for h in self.hooks.values() if h.owner == owner), key=lambda h: h.id)
        chunk = mine[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(mine):
            next_url = request.url.update_query(page=str(page + 1), per_page=str(per_page))
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.json_response([self._hook_json(request, h) for h in chunk], headers=headers)

    async def _create(self, request: web.Request, owner: str) -> web.Response:
        body = request[BODY] or {}
        config = dict(body.get("config") or {})
        if not config.get("url"):
            return _validation("Hook", "url", "missing_field")
        if any(
            h.owner == owner and h.config.get("url") == config["url"] for h in self.hooks.values()
        ):
            return _validation("Hook", "base", "custom", "Hook already exists on this repository")
        now = _iso(self.clock())
        hook = Hook(
            next(self._ids),
            owner,
            list(body.get("events") or ["push"]),
            bool(body.get("active", True)),
            {"content_type": "form", "insecure_ssl": "0", **config},
            now,
            now,
        )
        self.hooks[hook.id] = hook
        # GitHub pings a new hook on its own.
        await self._send(hook, "ping", self._ping_payload(hook))
        return web.json_response(self._hook_json(request, hook), status=201)

    def _update(self, request: web.Request, hook: Hook) -> web.Response:
        body = request[BODY] or {}
        if "config" in body:
            # GitHub: the config sent replaces the hook's; a secret not sent is removed.
            config = dict(body["config"])
            if not config.get("url"):
                return _validation("Hook", "url", "missing_field")
            hook.config = {"content_type": "form", "insecure_ssl": "0", **config}
        if "events" in body:
            hook.events = list(body["events"])
        hook.events = [e for e in hook.events if e not in body.get("remove_events", [])]
        hook.events += [e for e in body.get("add_events", []) if e not in hook.events]
        if "active" in body:
            hook.active = bool(body["active"])
        hook.updated_at = _iso(self.clock())
        return web.json_response(self._hook_json(request, hook))

    # -- deliveries --------------------------------------------------------------------

    def _ping_payload(self, hook: Hook) -> dict[str, Any]:
        return {"zen": "Keep it logically awesome.", "hook_id": hook.id, "hook": {"id": hook.id}}

    async def deliver(self, hook: Hook | int, event: str, payload: dict[str, Any]) -> Delivery:
        """GitHub sending `event` to the hook, as it would when it happens."""
        found = self.hooks[hook] if isinstance(hook, int) else hook
        return await self._send(found, event, payload)

    async def _send(
        self,
        hook: Hook,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        guid: str | None = None,
    ) -> Delivery:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        guid = guid or str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fake",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(hook.id),
        }
        secret = hook.config.get("secret")
        if secret:
            digest = hmac.new(str(secret).encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        started = self.clock()
        code, status, message = 0, "failed to connect to host", "failed to connect to host"
        if hook.active:
            assert self._session is not None
            try:
                async with self._session.post(
                    str(hook.config["url"]), data=body, headers=headers
                ) as response:
                    await response.read()
                    code, status = (
                        response.status,
                        "OK"
                        if response.status < 300
                        else (f"Invalid HTTP Response: {response.status}"),
                    )
                    message = status
            except aiohttp.ClientError:
                pass
        try:
            action = json.loads(body).get("action")
        except (ValueError, AttributeError):
            action = None
        item = {
            "id": next(self._ids),
            "guid": guid,
            "delivered_at": _iso(started),
            "redelivery": any(d.item["guid"] == guid for d in self.deliveries),
            "duration": 0.01,
            "status": status,
            "status_code": code,
            "event": event,
            "action": action if isinstance(action, str) else None,
            "installation_id": None,
            "repository_id": None,
        }
        delivery = Delivery(item, hook.id, body)
        self.deliveries.append(delivery)
        hook.last_response = {
            "code": code or None,
            "status": "active" if 200 <= code < 300 else "failed",
            "message": message,
        }
        return delivery

    def _list_deliveries(self, request: web.Request, hook: Hook) -> web.Response:
        per_page = min(100, int(request.query.get("per_page", "30")))
        mine = sorted(
            (d for d in self.deliveries if d.hook_id == hook.id), key=lambda d: -d.item["id"]
        )
        cursor = request.query.get("cursor")
        if cursor:
            mine = [d for d in mine if d.item["id"] < int(cursor)]
        chunk, more = mine[:per_page], len(mine) > per_page
        headers = {}
        if more:
            next_url = request.url.update_query(cursor=str(chunk[-1].item["id"]))
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.json_response([d.item for d in chunk], headers=headers)

    async def _redeliver(self, hook: Hook, delivery_id: int) -> web.Response:
        original = next(
            (d for d in self.deliveries if d.item["id"] == delivery_id and d.hook_id == hook.id),
            None,
        )
        if original is None:
            return _error(404, "Not Found")
        # GitHub queues the attempt and answers 202; here it is made before answering, so
        # a test sees its outcome at once.
        await self._send(hook, original.item["event"], original.body, guid=original.item["guid"])
        return web.json_response({}, status=202)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        },
        status=status,
        headers=headers,
    )


def _validation(resource: str, field_name: str, code: str, message: str = "") -> web.Response:
    error: dict[str, Any] = {"resource": resource, "code": code, "field": field_name}
    if message:
        error["message"] = message
    return web.json_response(
        {
            "message": "Validation Failed",
            "errors": [error],
            "documentation_url": "https://docs.github.com/rest/repos/webhooks",
        },
        status=422,
    )
