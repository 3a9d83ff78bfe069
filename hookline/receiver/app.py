"""The receiver's two aiohttp applications: ingest (POST /hooks/...) and admin.

`create_app()` builds the ingest app; its cleanup contexts own the store, the first
configuration load and the retention purge. `create_admin_app()` serves the admin API
on its own port and reads the ingest app's state, so the two share one store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ..store import open_store
from ..store.base import StoreUnavailable
from .admin_auth import ADMIN_TOKEN, AdminToken, require_token
from .backlog import Key, keep_in_step, seed_from
from .breaker import Breakers
from .config import INVALID_MANIFEST, ReceiverConfig, describe
from .dispatcher import Dispatcher
from .responses import problem
from .routes import setup_admin_routes, setup_ingest_routes
from .state import INGEST_APP, SETTINGS, STATE, ReceiverState, Settings
from .stored_config import restore

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error body is JSON with a stable code, including aiohttp's own 404/405."""
    return await with_json_errors(handler)(request)


def with_json_errors(handler: Handler) -> Handler:
    """json_errors for one handler. The ingest app wraps its handlers with this instead
    of taking the middleware: an app with middlewares runs every request through two
    more coroutines (aiohttp adds one of its own), a cost on the hot path of issue 3's
    ingest benchmark."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _http_error(request, exc)
        except Exception:
            return _internal_error(request)

    return handle


async def _not_found(request: web.Request) -> web.StreamResponse:
    # What aiohttp's router would raise for a path the ingest app does not serve.
    raise web.HTTPNotFound()


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = exc.reason.lower().replace(" ", "_")
    return problem(exc.status, code, f"{exc.reason}: {request.method} {request.path}")


def _internal_error(request: web.Request) -> web.Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "internal_error", "the receiver failed on this request; see its log")


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = open_store(settings.store_url)
    await store.open()
    if settings.load_config is None:
        # Push mode (issue 6): nothing is served, and /readyz says not_configured,
        # until the operator PUTs a configuration to the admin API, or the admin app
        # starts serving the last push kept in the store (restore_stored_config).
        state = ReceiverState(settings=settings, store=store, config=ReceiverConfig())
        app[STATE] = state
        log.info("push mode: configurations come by PUT /api/v1/config")
    else:
        config = await settings.load_config()
        state = ReceiverState(settings=settings, store=store, config=config)
        state.swap(config)
        app[STATE] = state
        log.info("serving %s", describe(config))
        for item in config.problems:
            log.warning("not served: %s: %s: %s", item.webhook or "-", item.reason, item.message)
    yield
    # aiohttp has finished in-flight requests by now; close() commits what is queued.
    await store.close()


async def purge_loop(state: ReceiverState) -> None:
    """Delete records past their Webhook's retention, every purge_interval seconds."""
    while True:
        await asyncio.sleep(state.settings.purge_interval)
        try:
            purged = await state.store.purge_expired(state.now())
        except StoreUnavailable as exc:
            log.warning("retention purge failed, will retry: %s", exc)
            continue
        state.metrics.purged.inc(purged)
        if purged:
            log.info("purged %d deliveries past their retention", purged)


async def purge_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(purge_loop(app[STATE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def backlog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Seed the outbox backlog counts from the store before the first request, then
    keep them in step with it (issue 11 §4)."""
    state = app[STATE]
    if not state.backlog.enabled:
        yield
        return

    async def pending() -> dict[Key, int]:
        return {key: c.pending for key, c in (await state.store.destination_counters()).items()}

    await seed_from(state.backlog, pending)
    task = asyncio.create_task(keep_in_step(state.backlog, pending), name="outbox-backlog")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def dispatch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the dispatcher beside the ingest path (issue 5), unless turned off."""
    state = app[STATE]
    settings = state.settings
    if settings.dispatch_concurrency <= 0:
        yield
        return
    state.dispatcher = Dispatcher(
        store=state.store,
        config=state.config,
        metrics=state.metrics,
        now=state.now,
        concurrency=settings.dispatch_concurrency,
        poll_interval=settings.dispatch_poll_interval,
        lease_margin=settings.dispatch_lease_margin,
        breakers=Breakers(clock=settings.monotonic),
        wakeup=state.dispatch_wakeup,
        on_settle=state.backlog.settling,
    )
    dispatcher = state.dispatcher

    async def run() -> None:
        # Not before the first configuration: with an empty one, every claimed row's
        # Webhook would look removed and its rows would fail (push mode, issue 6).
        await state.configured.wait()
        await dispatcher.run()

    task = asyncio.create_task(run(), name="dispatcher")
    yield
    # In-flight sends are cancelled; their leases run out and the rows are sent
    # again after a restart (at least once).
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def reload_config(app: web.Application) -> None:
    """Load the configuration again and swap it in; on failure keep serving the old."""
    state = app[STATE]
    load = state.settings.load_config
    if load is None:
        log.info("push mode: the configuration changes only by PUT /api/v1/config")
        return
    try:
        config = await load()
    except Exception:
        log.exception("configuration reload failed; still serving version %s", state.config.version)
        return
    invalid = [p for p in config.problems if p.reason == INVALID_MANIFEST]
    if invalid:
        for item in invalid:
            log.error("reload refused: %s", item.message)
        log.error("still serving configuration version %s", state.config.version)
        return
    state.swap(config)
    log.info("reloaded: %s", describe(config))


def create_app(settings: Settings) -> web.Application:
    # No middlewares: the handlers are wrapped one by one (with_json_errors), and
    # every other path gets the JSON 404 the middleware would have made.
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(purge_ctx)
    app.cleanup_ctx.append(backlog_ctx)
    app.cleanup_ctx.append(dispatch_ctx)
    setup_ingest_routes(app, wrap=with_json_errors)
    app.router.add_route("*", "/{tail:.*}", with_json_errors(_not_found), name="elsewhere")
    return app


# A pushed configuration holds every resource with its EventType schemas: far more
# than aiohttp's 1 MiB default for a thousand Webhooks (issue 6 benchmark).
MAX_ADMIN_BODY_BYTES = 64 * 1024 * 1024


def create_admin_app(
    ingest_app: web.Application, token: AdminToken | None = None
) -> web.Application:
    """The admin app; `token` (default: none, the API is open) guards /api/v1/*."""
    app = web.Application(
        middlewares=[json_errors, require_token], client_max_size=MAX_ADMIN_BODY_BYTES
    )
    app[INGEST_APP] = ingest_app
    app[ADMIN_TOKEN] = token or AdminToken()
    app.on_startup.append(restore_stored_config)
    setup_admin_routes(app)
    return app


async def restore_stored_config(app: web.Application) -> None:
    """Push mode: serve the last push kept in the store until the operator pushes
    again (issue 6 review). Here, in the admin app, because the key derives from its
    token; serve() starts both apps before either listens, so this runs before the
    first request. The ingest app (its store) has started by then."""
    state = app[INGEST_APP][STATE]
    if state.settings.push_mode:
        await restore(state, app[ADMIN_TOKEN])
