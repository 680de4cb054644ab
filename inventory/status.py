"""How fresh the inventory is, per registry region: the last success and the last error, the last
full round and the last of ECR's events applied.

Read from ``region_status`` (one row per region, kept by the sync), never from the
history in ``sync_runs``: the cost does not grow with the runs kept.
A region is *stale* when a sync failed after its last success: its rows are as of that
success (``stale_since``; the first failure when it never succeeded). The same figures
back ``inventory status``, ``/metrics`` and GraphQL's ``Registry.syncStatus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from inventory.config import InventoryConfig
from inventory.tables import region_status

REGION_STATUS = region_status.DECLARED
"""Every region the stored registries declare, synced or not."""


@dataclass(frozen=True)
class RegionStatus:
    registry_name: str
    region: str
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    stale_since: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> RegionStatus:
        stale_since = None
        if row.failing_since is not None:
            stale_since = row.last_success_at or row.failing_since
        return cls(
            registry_name=row.registry_name,
            region=row.region,
            last_success_at=row.last_success_at,
            last_error_at=row.last_error_at,
            last_error_code=row.last_error_code,
            last_error_message=row.last_error_message,
            stale_since=stale_since,
        )


@dataclass(frozen=True)
class Freshness:
    """How a region was last brought up to date: its last full round, and the last of ECR's events applied
    (read from the same ``region_status`` rows as ``RegionStatus``)."""

    last_round_at: datetime | None
    """The last round that covered the whole region, failed scopes or not."""
    last_event_at: datetime | None
    """The time ECR gave the newest of its events applied to the region."""
    last_event_applied_at: datetime | None
    """When the sync of that event committed."""

    @classmethod
    def from_row(cls, row: Any) -> Freshness:
        return cls(row.last_round_at, row.last_event_at, row.last_event_applied_at)


def worst_first(statuses: list[RegionStatus]) -> list[RegionStatus]:
    """Stale regions first (stale the longest first), then never synced, then the least recently synced."""

    def key(status: RegionStatus) -> tuple[int, float, str, str]:
        if status.stale_since is not None:
            return (0, status.stale_since.timestamp(), status.registry_name, status.region)
        if status.last_success_at is None:
            return (1, 0.0, status.registry_name, status.region)
        return (2, status.last_success_at.timestamp(), status.registry_name, status.region)

    return sorted(statuses, key=key)


def declared_statuses(config: InventoryConfig, *, connection: psycopg.Connection[Any]) -> list[RegionStatus]:
    """The status of every region ``config`` declares, worst first; a region never synced has no dates."""
    return worst_first([status for status, _ in declared_freshness(config, connection=connection)])


def declared_freshness(
    config: InventoryConfig, *, connection: psycopg.Connection[Any]
) -> list[tuple[RegionStatus, Freshness]]:
    """The status and the freshness of every region ``config`` declares, in the file's order."""
    regions = [(registry.name, region) for registry in config.registries for region in registry.regions]
    rows = region_status.of_regions(regions, connection=connection)
    return [(RegionStatus.from_row(row), Freshness.from_row(row)) for row in rows]
