"""A destination for tests: a real aiohttp server on loopback that answers from a
script (e.g. fail twice, then succeed) and keeps every request it received."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the sink answered


@dataclass
class Sink:
    # Answers to give, in order, as (status, headers); when empty, `default`.
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    server: TestServer | None = None
    delay: float = 0.0  # seconds before answering: a slow destination
    # Chooses the status when the script is empty, instead of `default` (e.g. 503 to
    # half the requests at random: issue 11 §2).
    answer: Callable[[], int] | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/events") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def then(self, status: int, times: int = 1, /, **headers: str) -> Sink:
        for _ in range(times):
            self.script.append((status, headers))
        return self

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.script:
            status, headers = self.script.popleft()
        else:
            status, headers = (self.answer() if self.answer else self.default), {}
        self.received.append(Received(request.path, dict(request.headers), body, status))
        async with self._arrived:
            self._arrived.notify_all()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response({"status": status}, status=status, headers=headers)

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def wait_until(self, predicate: Callable[[Sink], bool], seconds: float) -> bool:
        """Wait (without polling) until `predicate(self)` holds; False after `seconds`."""
        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: predicate(self)), seconds)
            except TimeoutError:
                return False
        return True

    def ids(self, header: str = "X-Hookline-Delivery") -> list[str]:
        return [r.headers[header] for r in self.received]
