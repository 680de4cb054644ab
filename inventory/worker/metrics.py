"""A worker's own metrics, and the small HTTP server that exposes them with the fleet's.

``GET /metrics``: the fleet-wide series (``inventory.metrics``) and this worker's
``inventory_worker_*`` series, with the events it received (``inventory_events_received_total``)
and their lag (``inventory_event_lag_seconds``). ``GET /healthz``: 200 while the worker's loop is
turning, 503 when it has not turned for a while (a healthcheck for containers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from inventory.aws.budget import Budgets
from inventory.metrics import CONTENT_TYPE, QUERIES, exposition, fleet_metrics
from inventory.outage import Outage, is_outage
from inventory.worker.region import ScopeReport

log = logging.getLogger("inventory.worker")
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only double what a scrape shows


class WorkerMetrics:
    """Counters and gauges of one worker process."""

    def __init__(self, budgets: Budgets) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.scopes = Counter(
            "inventory_worker_scope_syncs",
            "Scope syncs this worker finished, by outcome.",
            ["status"],
            registry=self.registry,
        )
        self.images = Counter(
            "inventory_worker_image_changes",
            "Image changes this worker applied, by kind.",
            ["change"],
            registry=self.registry,
        )
        self.api_calls = Counter("inventory_worker_api_calls", "AWS API calls made.", registry=self.registry)
        self.throttled = Counter(
            "inventory_worker_throttled_calls", "AWS API calls answered with throttling.", registry=self.registry
        )
        self.leases = Gauge(
            "inventory_worker_leases_held", "Registry regions this worker holds.", registry=self.registry
        )
        self.events = Counter(
            "inventory_events_received",
            "ECR event messages this worker received, by queue and outcome (applied, ignored, malformed, failed).",
            ["queue", "outcome"],
            registry=self.registry,
        )
        self.event_lag = Histogram(
            "inventory_event_lag_seconds",
            "From an applied ECR event's time to the commit of its sync.",
            buckets=(0.5, 1, 2, 3, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.registry.register(_BudgetCollector(budgets))
        self.last_tick = time.monotonic()
        self.outage = Outage(log)
        """Whether the worker finds the database unreachable (``/healthz`` answers 503 meanwhile)."""

    def observe(self, report: ScopeReport) -> None:
        if report.failure is not None:
            self.scopes.labels("failed").inc()
            return
        self.scopes.labels("succeeded").inc()
        assert report.counts is not None
        for change, count in (
            ("added", report.counts.add),
            ("changed", report.counts.change),
            ("removed", report.counts.remove),
        ):
            self.images.labels(change).inc(count)
        self.api_calls.inc(report.api_calls)
        self.throttled.inc(report.throttled_calls)


class _BudgetCollector(Collector):
    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "inventory_worker_rate_budget",
            "Calls per second the worker allows itself per account and region (halved on throttling).",
            labels=["account_id", "region"],
        )
        for (account_id, region), budget in self.budgets.items():
            gauge.add_metric([account_id, region], budget.rate)
        return [gauge]


def serve_metrics(
    host: str, port: int, engine: Engine, metrics: WorkerMetrics, healthy_within: float
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on a background thread; return the server (``.server_address``)."""

    def fleet() -> bytes:
        with engine.connect() as connection:
            rows = {name: list(connection.execute(query)) for name, query in QUERIES.items()}
        return exposition(fleet_metrics(rows), metrics.registry.collect())

    routes: dict[str, Callable[[], tuple[int, bytes]]] = {
        "/metrics": lambda: (200, fleet()),
        "/healthz": lambda: (
            (503, b"the inventory database is unavailable\n")
            if metrics.outage.ongoing
            else (200, b"ok\n")
            if time.monotonic() - metrics.last_tick < healthy_within
            else (503, b"the worker loop is stuck\n")
        ),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                status, body = 404, b"not found\n"
            else:
                try:
                    status, body = route()
                except Exception as exc:
                    if is_outage(exc):
                        metrics.outage.began(exc)
                    else:
                        log.exception("cannot serve %s", self.path)
                    status, body = 503, b"the inventory database cannot be read\n"
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the worker's own log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
