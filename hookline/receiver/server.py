"""Run the ingest and admin apps on their own ports until SIGTERM/SIGINT; SIGHUP
reloads the configuration without dropping a request."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

from aiohttp import web

from ..api.manifests import load_manifests
from .admin_auth import AdminToken
from .app import create_admin_app, create_app, reload_config
from .config import ReceiverConfig, config_from_manifests
from .state import ConfigLoader, Settings

log = logging.getLogger(__name__)

# How long a stopping receiver lets in-flight requests finish (their commits included).
SHUTDOWN_TIMEOUT = 30.0


def manifests_loader(directory: Path) -> ConfigLoader:
    async def load() -> ReceiverConfig:
        manifests = await asyncio.to_thread(load_manifests, [directory])
        return config_from_manifests(manifests)

    return load


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    admin_host: str,
    admin_port: int,
    admin_token: AdminToken | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    ingest = create_app(settings)
    admin = create_admin_app(ingest, admin_token)
    ingest_runner = web.AppRunner(ingest, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    admin_runner = web.AppRunner(admin, access_log=None)
    await ingest_runner.setup()  # opens the store and loads the configuration
    await admin_runner.setup()
    await web.TCPSite(ingest_runner, host, port, reuse_address=True).start()
    await web.TCPSite(admin_runner, admin_host, admin_port, reuse_address=True).start()
    # What the imports, the models and the configuration made lives as long as the
    # process: frozen, it is no longer walked by every full pass of the cyclic garbage
    # collector, which the ingest path's short-lived objects trigger under load (issue
    # 3's benchmark).
    gc.freeze()
    log.info(
        "ingest on http://%s:%d/hooks/ ; admin on http://%s:%d/api/v1/",
        host,
        port,
        admin_host,
        admin_port,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Future[None]] = set()

    def hangup() -> None:
        # SIGHUP: the manifests again (not in push mode), and the admin token file,
        # so a rotated token (a changed Secret) applies without a restart (issue 6).
        if admin_token is not None:
            admin_token.reload()
        reload = asyncio.ensure_future(reload_config(ingest))
        reloads.add(reload)
        reload.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        await stop.wait()
    finally:
        log.info("stopping: finishing requests in flight")
        await admin_runner.cleanup()
        await ingest_runner.cleanup()
