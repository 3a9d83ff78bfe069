"""Prometheus metrics of the receiver, on a registry of its own (one per app, so tests
and several apps in one process never collide in the global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hookline_requests",
            "Requests that reached a Webhook's route, by outcome.",
            ["webhook", "status", "code"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "hookline_ingest_seconds",
            "Time from request to answer, including the durable commit.",
            ["webhook"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.unrouted = Counter(
            "hookline_unrouted_requests",
            "Requests to a path no Webhook serves (404).",
            registry=self.registry,
        )
        self.store_errors = Counter(
            "hookline_store_errors",
            "Records the store could not commit.",
            ["webhook"],
            registry=self.registry,
        )
        self.routes = Gauge("hookline_routes", "Webhooks being served.", registry=self.registry)
        self.config_problems = Gauge(
            "hookline_config_problems",
            "Webhooks left out of the configuration, and why.",
            registry=self.registry,
        )
        self.purged = Counter(
            "hookline_purged_deliveries",
            "Delivery records deleted after their retention.",
            registry=self.registry,
        )
