"""Prometheus metrics of the fleet, read from the inventory at each scrape.

Every process that serves ``/metrics`` (the API, each worker) reports the same
fleet-wide ``inventory_*`` series, so any one of them tells the whole story; workers
add their own ``inventory_worker_*`` series (see ``inventory.worker.metrics``).
The fleet's series are read from the current-state rows the sync keeps (``region_status``
per region, ``repositories.image_count``, ``webhook_endpoints``' counters and the pending
deliveries), never from the history in ``sync_runs`` nor by counting images or events: a
scrape costs the same however long the history.
The queries are plain SQL run by the caller, sync or async, then turned into
metric families here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Executable

from inventory.status import REGION_STATUS, RegionStatus
from inventory.tables import region_status, repositories, webhook_endpoints

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

QUERIES: Mapping[str, Executable] = {
    "runs": region_status.COUNTERS,
    "regions": REGION_STATUS,
    "images": repositories.IMAGE_COUNTS,
    "webhooks": webhook_endpoints.listing(),
}
"""What a scrape reads: run them all, and pass their rows to ``fleet_metrics`` by name."""


def queries(registries: Sequence[str] | None = None) -> Mapping[str, Executable]:
    """``QUERIES``, or what a reader limited to ``registries`` may see of them: those registries' series,
    and no webhook's (a webhook carries the events of every registry)."""
    if registries is None:
        return QUERIES
    names = list(registries)
    return {
        "runs": region_status.COUNTERS_OF.bindparams(names=names),
        "regions": region_status.DECLARED_BY.bindparams(names=names),
        "images": repositories.IMAGE_COUNTS_OF.bindparams(names=names),
        "webhooks": webhook_endpoints.listing([]),
    }


_REGION = ("registry", "region")


def fleet_metrics(rows: Mapping[str, Sequence[Any]], now: datetime | None = None) -> list[Metric]:
    """The fleet's metric families from the rows of ``QUERIES``."""
    now = now or datetime.now(UTC)
    syncs = CounterMetricFamily(
        "inventory_scope_syncs",
        "Scope syncs finished, by outcome (status: succeeded or failed).",
        labels=[*_REGION, "status"],
    )
    calls = CounterMetricFamily("inventory_api_calls", "AWS API calls made by scope syncs.", labels=_REGION)
    throttled = CounterMetricFamily(
        "inventory_throttled_calls", "AWS API calls answered with throttling.", labels=_REGION
    )
    for row in rows["runs"]:
        region = [row.registry_name, row.region]
        syncs.add_metric([*region, "succeeded"], row.syncs_succeeded)
        syncs.add_metric([*region, "failed"], row.syncs_failed)
        calls.add_metric(region, row.api_calls)
        throttled.add_metric(region, row.throttled_calls)

    lag = GaugeMetricFamily(
        "inventory_seconds_since_last_success",
        "Seconds since the registry region last synced successfully (absent: never).",
        labels=_REGION,
    )
    stale = GaugeMetricFamily(
        "inventory_region_stale", "1 when a sync failed after the region's last success.", labels=_REGION
    )
    for status in map(RegionStatus.from_row, rows["regions"]):
        region = [status.registry_name, status.region]
        if status.last_success_at is not None:
            lag.add_metric(region, (now - status.last_success_at).total_seconds())
        stale.add_metric(region, 1 if status.stale_since is not None else 0)

    images = GaugeMetricFamily("inventory_images", "Images present in the inventory.", labels=_REGION)
    for row in rows["images"]:
        images.add_metric([row.registry_name, row.region], int(row.images))
    return [syncs, calls, throttled, lag, stale, images, *_webhook_metrics(rows["webhooks"], now)]


def _webhook_metrics(rows: Sequence[Any], now: datetime) -> list[Metric]:
    deliveries = CounterMetricFamily(
        "inventory_webhook_deliveries",
        "Webhook deliveries by outcome: delivered, failed (given up), retried (failed attempts tried again).",
        labels=["webhook", "outcome"],
    )
    backlog = GaugeMetricFamily("inventory_webhook_backlog", "Webhook deliveries pending.", labels=["webhook"])
    lag = GaugeMetricFamily(
        "inventory_webhook_lag_seconds",
        "Seconds since the event of the oldest pending delivery occurred (0: none pending).",
        labels=["webhook"],
    )
    for row in rows:
        deliveries.add_metric([row.name, "delivered"], row.delivered_total)
        deliveries.add_metric([row.name, "failed"], row.failed_total)
        deliveries.add_metric([row.name, "retried"], row.retried_total)
        backlog.add_metric([row.name], row.backlog)
        oldest = row.oldest_pending_at
        lag.add_metric([row.name], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
    return [deliveries, backlog, lag]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def exposition(*families: Iterable[Metric]) -> bytes:
    """The Prometheus text format of ``families``."""
    registry = CollectorRegistry(auto_describe=False)
    for group in families:
        registry.register(_Families(group))
    return generate_latest(registry)
