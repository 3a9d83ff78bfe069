"""A GitHub REST client for repository and organization hooks (issue 12).

As GitHub's REST API documents it: `Link` pagination, conditional requests with ETags
(a 304 costs no rate limit), primary and secondary rate limits, GitHub App installation
tokens minted with an RS256 JWT. Every failure is classified here, where it happens,
into a `GitHubError` whose `reason` is a GitHubHookReady reason; a token or secret never
appears in a message.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt

from . import reasons as r

API_VERSION = "2022-11-28"  # X-GitHub-Api-Version this client is written against
TIMEOUT = aiohttp.ClientTimeout(total=30)
PER_PAGE = 100  # GitHub's maximum
MAX_PAGES = 50  # a bound: 5,000 hooks or deliveries, far beyond any real hook list
# Secondary rate limits without Retry-After: GitHub says wait at least a minute.
SECONDARY_DELAY = 60.0
UNAVAILABLE_DELAY = 30.0
# An installation token lives an hour; renew it this long before it expires.
TOKEN_MARGIN = 300.0
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(Exception):
    """GitHub refused or could not be reached. `reason` is one of hookline.github.reasons;
    `retry_after` the seconds to wait before trying again (rate limits, outages)."""

    def __init__(
        self, reason: str, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class HookNotFound(GitHubError):
    """The hook itself is gone (deleted by hand): the caller makes it again."""


@dataclass(frozen=True)
class TokenCredentials:
    token: str = field(repr=False)


@dataclass(frozen=True)
class AppCredentials:
    app_id: int
    installation_id: int
    private_key: str = field(repr=False)


@dataclass(frozen=True)
class HookTarget:
    repository: str | None = None  # owner/name
    organization: str | None = None

    @property
    def path(self) -> str:
        if self.repository is not None:
            owner, _, name = self.repository.partition("/")
            return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/hooks"
        assert self.organization is not None
        return f"/orgs/{quote(self.organization, safe='')}/hooks"

    def __str__(self) -> str:
        return self.repository or f"organization {self.organization}"


def _message(payload: Any, fallback: str) -> str:
    if isinstance(payload, Mapping):
        text = str(payload.get("message") or fallback)
        errors = payload.get("errors")
        if isinstance(errors, list) and errors:
            details = [
                str(e.get("message") or e) if isinstance(e, Mapping) else str(e) for e in errors
            ]
            text += ": " + "; ".join(details[:3])
        return text
    return fallback


def rate_limit_delay(headers: Mapping[str, str], now: float) -> float | None:
    """The wait GitHub asks for, or None when this answer is no rate limit. Retry-After
    wins; then an exhausted primary limit (x-ratelimit-remaining: 0) until its reset."""
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        try:
            return max(1.0, float(retry_after))
        except ValueError:
            return SECONDARY_DELAY
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(1.0, float(headers.get("x-ratelimit-reset", "0")) - now)
        except ValueError:
            return SECONDARY_DELAY
    return None


class GitHubClient:
    """One API base URL and one credential; keeps ETags and the App's token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        credentials: TokenCredentials | AppCredentials,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # GitHub Enterprise Server's base is https://HOST/api/v3: paths are appended.
        self.api_url = api_url.rstrip("/")
        self._session = session
        self._credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self._etags: dict[str, tuple[str, Any]] = {}
        self.requests = 0  # API calls made (the resync benchmark counts them)
        self.not_modified = 0  # of which answered 304

    def __repr__(self) -> str:  # never the credentials
        return f"GitHubClient({self.api_url!r})"

    # -- authentication ---------------------------------------------------------------

    def app_jwt(self) -> str:
        assert isinstance(self._credentials, AppCredentials)
        now = int(self._clock())
        claims = {
            # 60 s back for clock drift, 9 min ahead: GitHub refuses more than 10 min.
            "iat": now - 60,
            "exp": now + 540,
            "iss": str(self._credentials.app_id),
        }
        try:
            return jwt.encode(claims, self._credentials.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise GitHubError(
                r.UNAUTHORIZED, f"the App's private key cannot sign a JWT: {type(exc).__name__}"
            ) from None

    async def _authorization(self) -> str:
        if isinstance(self._credentials, TokenCredentials):
            return f"Bearer {self._credentials.token}"
        async with self._token_lock:
            if self._token is None or self._clock() >= self._token_expires - TOKEN_MARGIN:
                await self._mint()
            return f"Bearer {self._token}"

    async def _mint(self) -> None:
        assert isinstance(self._credentials, AppCredentials)
        path = f"/app/installations/{self._credentials.installation_id}/access_tokens"
        status, _, payload = await self._send("POST", path, None, f"Bearer {self.app_jwt()}")
        if status != 201 or not isinstance(payload, Mapping) or "token" not in payload:
            raise self._error(
                status, {}, payload, f"installation token for App {self._credentials.app_id}"
            )
        self._token = str(payload["token"])
        expires = datetime.fromisoformat(str(payload["expires_at"]).replace("Z", "+00:00"))
        self._token_expires = expires.timestamp()

    # -- transport ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        authorization: str,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "hookline",
            "Authorization": authorization,
            **(extra or {}),
        }
        self.requests += 1
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, timeout=TIMEOUT
            ) as response:
                raw = await response.read()
                try:
                    payload = await response.json(content_type=None) if raw else None
                except ValueError:
                    payload = None
                return response.status, response.headers, payload
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GitHubError(
                r.GITHUB_UNAVAILABLE,
                f"{method} {self.api_url}{path.split('?')[0]}: {type(exc).__name__} {exc}".strip(),
                retry_after=UNAVAILABLE_DELAY,
            ) from None

    def _error(
        self, status: int, headers: Mapping[str, str], payload: Any, what: str
    ) -> GitHubError:
        message = f"{what}: {status} {_message(payload, 'no message')}"
        delay = rate_limit_delay(headers, self._clock())
        if status in (403, 429) and delay is not None:
            return GitHubError(r.RATE_LIMITED, message, status, delay)
        if status == 403 and "secondary rate limit" in message.lower():
            return GitHubError(r.RATE_LIMITED, message, status, SECONDARY_DELAY)
        if status == 401:
            return GitHubError(r.UNAUTHORIZED, message, status)
        if status == 403:
            return GitHubError(r.FORBIDDEN, message, status)
        if status == 404:
            # GitHub answers 404, not 403, where the token may not see the repository.
            return GitHubError(
                r.REPOSITORY_NOT_FOUND, message + " (or the token may not see it)", status
            )
        if status in (400, 422):
            return GitHubError(r.INVALID_CONFIG, message, status)
        return GitHubError(r.GITHUB_UNAVAILABLE, message, status, UNAVAILABLE_DELAY)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: tuple[int, ...] = (200,),
        what: str = "",
        conditional: bool = False,
    ) -> tuple[int, Mapping[str, str], Any]:
        """One call; raises GitHubError unless the status is in `ok` (or a 304 of a
        conditional GET, answered from the cache)."""
        extra: dict[str, str] = {}
        cached = self._etags.get(path) if conditional else None
        if cached is not None:
            extra["If-None-Match"] = cached[0]
        status, headers, payload = await self._send(
            method, path, body, await self._authorization(), extra
        )
        if status == 401 and isinstance(self._credentials, AppCredentials) and self._token:
            # An installation token revoked or expired early: mint a new one, once.
            self._token = None
            status, headers, payload = await self._send(
                method, path, body, await self._authorization(), extra
            )
        if status == 304 and cached is not None:
            self.not_modified += 1
            return 200, headers, cached[1]
        if status not in ok:
            raise self._error(status, headers, payload, what or f"{method} {path}")
        if conditional and status == 200 and headers.get("ETag"):
            self._etags[path] = (headers["ETag"], payload)
        return status, headers, payload

    async def _pages(self, path: str, what: str) -> list[Any]:
        items: list[Any] = []
        url: str | None = f"{path}{'&' if '?' in path else '?'}per_page={PER_PAGE}"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            _, headers, payload = await self.request("GET", url, what=what)
            if not isinstance(payload, list):
                raise GitHubError(
                    r.GITHUB_UNAVAILABLE, f"{what}: not a list", retry_after=UNAVAILABLE_DELAY
                )
            items.extend(payload)
            found = _NEXT.search(headers.get("Link", ""))
            url = found.group(1) if found else None
        return items

    # -- hooks ---------------------------------------------------------------------------

    async def list_hooks(self, target: HookTarget) -> list[dict[str, Any]]:
        return await self._pages(target.path, f"listing the hooks of {target}")

    async def get_hook(self, target: HookTarget, hook_id: int) -> dict[str, Any]:
        try:
            _, _, payload = await self.request(
                "GET",
                f"{target.path}/{hook_id}",
                what=f"hook {hook_id} of {target}",
                conditional=True,
            )
        except GitHubError as exc:
            raise self._hook_gone(exc) from None
        return dict(payload)

    async def create_hook(self, target: HookTarget, body: Mapping[str, Any]) -> dict[str, Any]:
        _, _, payload = await self.request(
            "POST", target.path, dict(body), ok=(201,), what=f"creating a hook on {target}"
        )
        return dict(payload)

    async def update_hook(
        self, target: HookTarget, hook_id: int, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            _, _, payload = await self.request(
                "PATCH",
                f"{target.path}/{hook_id}",
                dict(body),
                what=f"updating hook {hook_id} of {target}",
            )
        except GitHubError as exc:
            raise self._hook_gone(exc) from None
        self._etags.pop(f"{target.path}/{hook_id}", None)
        return dict(payload)

    async def delete_hook(self, target: HookTarget, hook_id: int) -> bool:
        """True if deleted, False if it was gone already."""
        try:
            await self.request(
                "DELETE",
                f"{target.path}/{hook_id}",
                ok=(204,),
                what=f"deleting hook {hook_id} of {target}",
            )
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise
        self._etags.pop(f"{target.path}/{hook_id}", None)
        return True

    async def ping_hook(self, target: HookTarget, hook_id: int) -> None:
        try:
            await self.request(
                "POST", f"{target.path}/{hook_id}/pings", ok=(204,), what=f"pinging hook {hook_id}"
            )
        except GitHubError as exc:
            raise self._hook_gone(exc) from None

    async def list_deliveries(
        self, target: HookTarget, hook_id: int, since: datetime
    ) -> list[dict[str, Any]]:
        """The hook's deliveries back to `since`, newest first (cursor pages)."""
        items: list[dict[str, Any]] = []
        url: str | None = f"{target.path}/{hook_id}/deliveries?per_page={PER_PAGE}"
        what = f"deliveries of hook {hook_id} of {target}"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            _, headers, payload = await self.request("GET", url, what=what)
            if not isinstance(payload, list):
                raise GitHubError(
                    r.GITHUB_UNAVAILABLE, f"{what}: not a list", retry_after=UNAVAILABLE_DELAY
                )
            for delivery in payload:
                at = datetime.fromisoformat(
                    str(delivery.get("delivered_at")).replace("Z", "+00:00")
                )
                if at < since:
                    return items
                items.append(dict(delivery))
            found = _NEXT.search(headers.get("Link", ""))
            url = found.group(1) if found else None
        return items

    async def redeliver(self, target: HookTarget, hook_id: int, delivery_id: int) -> None:
        await self.request(
            "POST",
            f"{target.path}/{hook_id}/deliveries/{delivery_id}/attempts",
            ok=(202,),
            what=f"redelivering delivery {delivery_id} of hook {hook_id}",
        )

    @staticmethod
    def _hook_gone(exc: GitHubError) -> GitHubError:
        if exc.status == 404:
            return HookNotFound(r.REPOSITORY_NOT_FOUND, str(exc), 404)
        return exc
