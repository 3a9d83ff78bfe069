"""Prometheus metrics of the receiver, on a registry of its own (one per app, so tests
and several apps in one process never collide in the global registry)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .backlog import BacklogReport
from .breaker import STATES, BreakerStats, Key

# Labels of hookline_requests: (webhook, status, code).
RequestLabels = tuple[str, str, str]


class LoopHistogram(Collector):
    """A histogram with one label whose observations all come from the event loop's
    thread, as the ingest path's do: kept as plain counts, without the three locked
    increments and the checks of prometheus_client's Histogram.observe (issue 3's
    ingest benchmark). Exposed the same way, without the _created series."""

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = tuple(float(b) for b in buckets)
        go = floatToGoString  # untyped in prometheus_client
        self._les: list[str] = [go(b) for b in (*self.bounds, math.inf)]  # type: ignore[no-untyped-call]
        # Per label value: one count per bucket, +Inf's last, then the sum.
        self._series: dict[str, list[float]] = {}

    def observe(self, value: str, amount: float) -> None:
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = [0.0] * (len(self.bounds) + 2)
        # le is inclusive: the first bound >= amount, or +Inf past the last.
        series[bisect.bisect_left(self.bounds, amount)] += 1
        series[-1] += amount

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, series in self._series.items():
            cumulative, buckets = 0.0, []
            for le, count in zip(self._les, series, strict=False):  # the sum is left over
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric([value], buckets, sum_value=series[-1])
        yield family


class BacklogCollector(Collector):
    """The outbox backlog bound (issue 11 §4), read from the in-memory counts at each
    scrape: nothing to keep in step on the ingest path."""

    def __init__(self, read: Callable[[], BacklogReport]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        report = self.read()
        backlog = GaugeMetricFamily(
            "hookline_outbox_backlog",
            "Pending outbox rows counted against --max-outbox-backlog, by destination "
            "(with rows of deliveries being committed).",
            labels=["webhook", "destination"],
        )
        for webhook, destinations in report.backlog.items():
            for destination, rows in destinations.items():
                backlog.add_metric([webhook, destination], rows)
        yield backlog
        yield GaugeMetricFamily(
            "hookline_outbox_backlog_bound",
            "--max-outbox-backlog: pending rows a destination may have (0: no bound).",
            value=report.bound,
        )
        yield GaugeMetricFamily(
            "hookline_outbox_waiting",
            "Deliveries waiting for room in a full destination's backlog.",
            value=report.waiting,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hookline_requests",
            "Requests that reached a Webhook's route, by outcome.",
            ["webhook", "status", "code"],
            registry=self.registry,
        )
        # Label children of the counter every request touches, cached: labels()
        # validates its arguments and takes a lock on each call (issue 3's benchmark).
        self._request_children: dict[RequestLabels, Counter] = {}
        self._breaker_keys: set[Key] = set()
        self.ingest_seconds = LoopHistogram(
            "hookline_ingest_seconds",
            "Time from request to answer, including the durable commit.",
            "webhook",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.registry.register(self.ingest_seconds)
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
        self.attempts = Counter(
            "hookline_dispatch_attempts",
            "Outbox rows finished by the dispatcher, by outcome.",
            ["webhook", "destination", "outcome"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "hookline_dispatch_send_seconds",
            "Time to send one request to a destination and read its answer.",
            ["webhook", "destination"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "hookline_outbox_pending",
            "Outbox rows waiting to be delivered, by destination (read with the stats).",
            ["webhook", "destination"],
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "hookline_destination_breaker_open",
            "1 while the destination's circuit breaker is open or half-open.",
            ["webhook", "destination"],
            registry=self.registry,
        )
        # Issue 11 §2: which state, how often it tripped, and what its window saw.
        self.breaker_state = Gauge(
            "hookline_destination_breaker_state",
            "1 for the state the destination's circuit breaker is in, 0 for the others.",
            ["webhook", "destination", "state"],
            registry=self.registry,
        )
        self.breaker_trips = Counter(
            "hookline_destination_breaker_trips",
            "Times the destination's circuit breaker opened from closed.",
            ["webhook", "destination"],
            registry=self.registry,
        )
        self.breaker_failure_rate = Gauge(
            "hookline_destination_breaker_failure_rate",
            "Share of the requests in the breaker's window that failed (0 when empty).",
            ["webhook", "destination"],
            registry=self.registry,
        )
        self.purged = Counter(
            "hookline_purged_deliveries",
            "Delivery records deleted after their retention.",
            registry=self.registry,
        )

    def export_breakers(self, breakers: Mapping[Key, BreakerStats]) -> None:
        """Set the breaker gauges from a snapshot (read with /metrics and the stats);
        series of breakers that are gone are removed."""
        for key in self._breaker_keys - set(breakers):
            self.breaker_open.remove(*key)
            self.breaker_failure_rate.remove(*key)
            for state in STATES:
                self.breaker_state.remove(*key, state)
        self._breaker_keys = set(breakers)
        for key, breaker in breakers.items():
            self.breaker_open.labels(*key).set(0 if breaker.state == "closed" else 1)
            self.breaker_failure_rate.labels(*key).set(breaker.failure_rate or 0.0)
            for state in STATES:
                self.breaker_state.labels(*key, state).set(1 if breaker.state == state else 0)

    def watch_backlog(self, read: Callable[[], BacklogReport]) -> None:
        self.registry.register(BacklogCollector(read))

    def count_request(self, webhook: str, status: str, code: str) -> None:
        """hookline_requests{webhook, status, code} += 1."""
        key = (webhook, status, code)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.inc()

    def observe_ingest(self, webhook: str, seconds: float) -> None:
        """One hookline_ingest_seconds{webhook} observation (on the event loop)."""
        self.ingest_seconds.observe(webhook, seconds)
