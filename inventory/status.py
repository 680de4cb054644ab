"""How fresh the inventory is, from ``sync_runs``: per registry region, the last success and the last error.

A region is *stale* when a sync failed after its last success: its rows are as of that
success (``stale_since``; the first failure when it never succeeded). The same figures
back ``inventory status`` and GraphQL's ``Registry.syncStatus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

REGION_STATUS = text(
    """
    WITH declared AS (
        SELECT name AS registry_name, unnest(regions) AS region FROM registries
    ), success AS (
        SELECT registry_name, region, max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success_at
        FROM sync_runs GROUP BY registry_name, region
    ), runs AS (
        SELECT r.registry_name, r.region, s.last_success_at,
               max(r.finished_at) FILTER (WHERE r.status = 'failed') AS last_error_at,
               (array_agg(r.error_code ORDER BY r.finished_at DESC, r.id DESC)
                  FILTER (WHERE r.status = 'failed'))[1] AS last_error_code,
               (array_agg(r.error_message ORDER BY r.finished_at DESC, r.id DESC)
                  FILTER (WHERE r.status = 'failed'))[1] AS last_error_message,
               min(r.finished_at) FILTER (
                   WHERE r.status = 'failed' AND r.finished_at > coalesce(s.last_success_at, '-infinity')
               ) AS failing_since
        FROM sync_runs r JOIN success s USING (registry_name, region)
        WHERE r.finished_at IS NOT NULL
        GROUP BY r.registry_name, r.region, s.last_success_at
    )
    SELECT d.registry_name, d.region, runs.last_success_at, runs.last_error_at, runs.last_error_code,
           runs.last_error_message, runs.failing_since
    FROM declared d LEFT JOIN runs USING (registry_name, region)
    ORDER BY d.registry_name, d.region
    """
)
"""Every declared registry region, synced or not."""


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


def worst_first(statuses: list[RegionStatus]) -> list[RegionStatus]:
    """Stale regions first (stale the longest first), then never synced, then the least recently synced."""

    def key(status: RegionStatus) -> tuple[int, float, str, str]:
        if status.stale_since is not None:
            return (0, status.stale_since.timestamp(), status.registry_name, status.region)
        if status.last_success_at is None:
            return (1, 0.0, status.registry_name, status.region)
        return (2, status.last_success_at.timestamp(), status.registry_name, status.region)

    return sorted(statuses, key=key)
