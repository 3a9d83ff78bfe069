"""A destination for the forwarding benchmarks: answers every POST 200 at once.

bench/forward.py and bench/ingest.py (`--route forwarding`) start it on the load
generator's core, so that what hookline's dispatcher sends costs the servers' core
nothing on the receiving end. It is a minimal HTTP/1.1 server on asyncio's Protocol
API, not aiohttp: a few µs a request, so that it is never what bounds a forwarding
rate (its CPU use is reported). It keeps connections alive, reads each request whole
(Content-Length), and answers `200` with an empty body.

It counts requests and distinct `webhook-id`s (a retry or a second send of one
delivery shows up as a duplicate), checks every Standard Webhooks signature with
HMAC-SHA256 (`--secret whsec_...`; the first request after each reset also with the
reference `standardwebhooks` library), and stamps, on the system-wide monotonic clock,
the first request and the last new `webhook-id`. Control, on the same port:

    GET  /_sink/stats   {"requests", "unique", "duplicates", "unsigned", "badSignatures",
                         "libraryChecked", "errors", "first", "last", "cpu"}
    POST /_sink/reset   zero the counts

    python bench/sink.py --port 9100 [--secret whsec_...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_HEAD = 64 * 1024


@dataclass
class Counts:
    key: bytes | None  # the HMAC key of the Standard Webhooks secret, None: no checks
    secret: str | None
    requests: int = 0
    unsigned: int = 0
    bad_signatures: int = 0
    library_checked: int = 0
    errors: int = 0  # requests this sink could not parse
    first: float | None = None
    last: float | None = None
    seen: set[bytes] = field(default_factory=set)

    def reset(self) -> None:
        self.requests = self.unsigned = self.bad_signatures = self.errors = 0
        self.library_checked = 0
        self.first = self.last = None
        self.seen = set()

    def snapshot(self) -> dict[str, Any]:
        usage = os.times()
        return {
            "requests": self.requests,
            "unique": len(self.seen),
            "duplicates": self.requests - len(self.seen) - self.unsigned,
            "unsigned": self.unsigned,
            "badSignatures": self.bad_signatures,
            "libraryChecked": self.library_checked,
            "errors": self.errors,
            "first": self.first,
            "last": self.last,
            "cpu": usage.user + usage.system,
        }

    def deliver(self, headers: dict[bytes, bytes], body: bytes) -> None:
        now = time.monotonic()
        self.requests += 1
        if self.first is None:
            self.first = now
        webhook_id = headers.get(b"webhook-id")
        if webhook_id is None:
            self.unsigned += 1
            return
        if self.key is not None and not self._signed(webhook_id, headers, body):
            self.bad_signatures += 1
        if webhook_id not in self.seen:
            self.seen.add(webhook_id)
            self.last = now

    def _signed(self, webhook_id: bytes, headers: dict[bytes, bytes], body: bytes) -> bool:
        assert self.key is not None
        timestamp = headers.get(b"webhook-timestamp", b"")
        signatures = headers.get(b"webhook-signature", b"").split()
        mac = hmac.new(self.key, webhook_id + b"." + timestamp + b"." + body, hashlib.sha256)
        expected = b"v1," + base64.b64encode(mac.digest())
        good = any(hmac.compare_digest(expected, s) for s in signatures)
        if good and self.library_checked == 0 and self.secret is not None:
            # Once per reset: the reference library agrees (and so the scheme is right).
            from standardwebhooks.webhooks import Webhook

            Webhook(self.secret).verify(
                body.decode(),
                {
                    "webhook-id": webhook_id.decode(),
                    "webhook-timestamp": timestamp.decode(),
                    "webhook-signature": b" ".join(signatures).decode(),
                },
            )
            self.library_checked += 1
        return good


class SinkProtocol(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._fail(b"431 Request Header Fields Too Large")
                return
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"chunked" in headers.get(b"transfer-encoding", b""):
                self._fail(b"501 Not Implemented")
                return
            try:
                length = int(headers.get(b"content-length", b"0"))
            except ValueError:
                self._fail(b"400 Bad Request")
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            method, _, rest = lines[0].partition(b" ")
            target = rest.partition(b" ")[0]
            close = headers.get(b"connection", b"").lower() == b"close"
            self.transport.write(self._answer(method, target, headers, body, close))
            if close:
                self.transport.close()
                self.transport = None

    def _answer(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes, close: bool
    ) -> bytes:
        if target.startswith(b"/_sink/"):
            if target == b"/_sink/reset":
                self.counts.reset()
            document = json.dumps(self.counts.snapshot()).encode()
            return (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(document)).encode()
                + (b"\r\nConnection: close" if close else b"")
                + b"\r\n\r\n"
                + document
            )
        self.counts.deliver(headers, body)
        return OK_CLOSE if close else OK

    def _fail(self, status: bytes) -> None:
        self.counts.errors += 1
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            self.transport = None


def hmac_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret ("whsec_" + base64)."""
    return base64.b64decode(secret.removeprefix("whsec_"))


async def serve(host: str, port: int, secret: str | None) -> None:
    counts = Counts(key=hmac_key(secret) if secret else None, secret=secret)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(counts), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"sink listening on http://{host}:{port}/ since {started}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--secret", help="Standard Webhooks secret (whsec_...) to check")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.secret))


if __name__ == "__main__":
    main()
