"""Bearer-token protection of the admin API (issue 6).

The admin API takes configurations with secrets in them (PUT /api/v1/config) and
starts replays, so once the receiver listens beyond loopback (the Deployment binds
0.0.0.0 behind a NetworkPolicy) every /api/v1/* request must carry
`Authorization: Bearer <token>`. Probes (/healthz, /readyz) and Prometheus (/metrics)
stay open: they reveal nothing secret and their clients hold no token.

The token is read from a file (a mounted Secret) and read again on SIGHUP, so it can be
rotated without a restart. It is never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from .responses import problem
from .sealed import config_key

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/api/v1/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the file, never its content."""


def read_token(path: Path) -> bytes:
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise TokenFileError(f"{path}: {exc.strerror or exc}") from None
    if not token:
        raise TokenFileError(f"{path}: the file is empty")
    return token


class AdminToken:
    """The expected token; None (no file given) leaves the admin API open, as before."""

    def __init__(self, path: Path | None = None, *, token: bytes | None = None) -> None:
        self.path = path
        self._token = read_token(path) if path is not None else token

    @property
    def required(self) -> bool:
        return self._token is not None

    def config_key(self) -> bytes | None:
        """The key that seals the stored pushed configuration (hookline.receiver.sealed),
        derived from the current token; None without a token (issue 6 review). The
        token itself never leaves this object."""
        return config_key(self._token) if self._token is not None else None

    def reload(self) -> None:
        """Read the file again (SIGHUP); a file that went bad keeps the old token."""
        if self.path is None:
            return
        try:
            self._token = read_token(self.path)
        except TokenFileError as exc:
            log.error("admin token not reloaded, keeping the current one: %s", exc)
            return
        log.info("admin token reloaded from %s", self.path)

    def accepts(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        if authorization is None:
            return False
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant time, so the answer's timing tells nothing about the token.
        return hmac.compare_digest(presented.strip().encode(), self._token)


ADMIN_TOKEN = web.AppKey("admin_token", AdminToken)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PROTECTED_PREFIX) and not request.app[ADMIN_TOKEN].accepts(
        request.headers.get("Authorization")
    ):
        return problem(
            401,
            "unauthorized",
            "this admin API needs Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="hookline-admin"'},
        )
    return await handler(request)
