"""URL tables of the two apps, apart from their handlers (as in aiohttp's polls demo)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from . import admin, admin_known, ingest, replay

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup_ingest_routes(
    app: web.Application, wrap: Callable[[Handler], Handler] = lambda handler: handler
) -> None:
    # Any method reaches the handler, which records a 405 for what is not POST: a GET
    # on a Webhook's URL is a request that reached its route (DESIGN.md).
    app.router.add_route("*", "/hooks/{path:.+}", wrap(ingest.receive), name="hook")


def setup_admin_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/deliveries", admin.list_deliveries, name="deliveries")
    app.router.add_get("/api/v1/deliveries/{id}", admin.get_delivery, name="delivery")
    app.router.add_post("/api/v1/deliveries/{id}/replay", replay.replay_delivery, name="replay")
    app.router.add_post("/api/v1/replays", replay.replay_batch, name="replays")
    app.router.add_post(
        "/api/v1/webhooks/{namespace}/{name}/known-deliveries",
        admin_known.known_deliveries,
        name="known_deliveries",
    )
    app.router.add_get("/api/v1/stats", admin.stats, name="stats")
    app.router.add_get("/api/v1/config", admin.get_config, name="config")
    app.router.add_put("/api/v1/config", admin.put_config, name="put_config")
    app.router.add_get("/api/v1/openapi.json", admin.openapi, name="openapi")
    app.router.add_get("/healthz", admin.healthz, name="healthz")
    app.router.add_get("/readyz", admin.readyz, name="readyz")
    app.router.add_get("/metrics", admin.metrics, name="metrics")
