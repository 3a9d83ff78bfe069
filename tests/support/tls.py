"""A throwaway certificate authority for https on loopback (issue 14).

`trustme` makes a CA and a server certificate for 127.0.0.1 and localhost in memory, so
tests run the real TLS handshake and certificate check a cluster's kubeconfig asks for.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiohttp.test_utils import RawTestServer

HOSTS = ("127.0.0.1", "localhost")


@dataclass
class TestCA:
    """A CA, the server side of its certificate, and the CA as a kubeconfig holds it."""

    __test__ = False  # not a pytest test class despite the name

    ca: trustme.CA = field(default_factory=trustme.CA)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*HOSTS).configure_cert(context)
        return context

    @property
    def pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    @property
    def kubeconfig_data(self) -> str:
        """`certificate-authority-data`: base64 of the PEM, as kubectl writes it."""
        return base64.b64encode(self.pem).decode("ascii")


@asynccontextmanager
async def https_server(handler: Any, ca: TestCA) -> AsyncIterator[str]:
    """Serve an aiohttp raw handler (the KMock emulator) over https on loopback, with a
    certificate from `ca` for 127.0.0.1; yields the `https://127.0.0.1:port` URL."""
    server = RawTestServer(handler, host="127.0.0.1")
    await server.start_server(ssl=ca.server_context())
    try:
        assert server.scheme == "https"
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
