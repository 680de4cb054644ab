"""SQL of the region_status table: the current state of each registry region.

The sync records what each round of a region did (``record``) in the transaction that
ends the round; the status, the metrics and GraphQL read one row per region from here,
so their cost does not grow with the history kept in ``sync_runs``.

A region is *failing* from its first failure after its last success (``failing_since``)
until a round covers the whole region without a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import text


@dataclass(frozen=True)
class RegionOutcome:
    """What one sync round of a registry region did (a CLI apply or a worker's region sync)."""

    registry_name: str
    region: str
    succeeded: int
    """Scope syncs that succeeded."""
    failed: int
    """Scope syncs that failed."""
    api_calls: int
    throttled_calls: int
    error: tuple[str, str] | None
    """(code, message) of the last failure, when ``failed > 0``."""
    complete: bool
    """The round covered the whole region (not a ``--target`` of one repository)."""


_RECORD = """
INSERT INTO region_status AS s (registry_name, region, syncs_succeeded, syncs_failed, api_calls, throttled_calls,
                                last_success_at, last_error_at, last_error_code, last_error_message,
                                failing_since, updated_at, last_round_at)
SELECT o.registry_name, o.region, o.succeeded, o.failed, o.api_calls, o.throttled_calls,
       CASE WHEN o.failed = 0 AND o.complete THEN now() END,
       CASE WHEN o.failed > 0 THEN now() END,
       CASE WHEN o.failed > 0 THEN o.error_code END,
       CASE WHEN o.failed > 0 THEN o.error_message END,
       CASE WHEN o.failed > 0 THEN now() END,
       now(),
       CASE WHEN o.complete THEN now() END
FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
            %s::text[], %s::text[], %s::boolean[])
     AS o(registry_name, region, succeeded, failed, api_calls, throttled_calls, error_code, error_message, complete)
ORDER BY o.registry_name, o.region
ON CONFLICT (registry_name, region) DO UPDATE SET
    syncs_succeeded = s.syncs_succeeded + excluded.syncs_succeeded,
    syncs_failed = s.syncs_failed + excluded.syncs_failed,
    api_calls = s.api_calls + excluded.api_calls,
    throttled_calls = s.throttled_calls + excluded.throttled_calls,
    last_success_at = coalesce(excluded.last_success_at, s.last_success_at),
    last_error_at = coalesce(excluded.last_error_at, s.last_error_at),
    last_error_code = CASE WHEN excluded.last_error_at IS NULL THEN s.last_error_code
                           ELSE excluded.last_error_code END,
    last_error_message = CASE WHEN excluded.last_error_at IS NULL THEN s.last_error_message
                              ELSE excluded.last_error_message END,
    failing_since = CASE WHEN excluded.last_error_at IS NOT NULL THEN coalesce(s.failing_since, now())
                         WHEN excluded.last_success_at IS NOT NULL THEN NULL
                         ELSE s.failing_since END,
    updated_at = now(),
    last_round_at = coalesce(excluded.last_round_at, s.last_round_at)
"""


def record(outcomes: Sequence[RegionOutcome], *, connection: psycopg.Connection[Any]) -> None:
    """Add ``outcomes`` to their regions' rows, in one statement; never commits.

    A round with a failure sets the last error and, unless already set, ``failing_since``;
    a complete round without a failure (an empty one too) sets the last success and clears
    ``failing_since``; an incomplete round only adds to the counters. Two outcomes of
    one region are merged first (a statement cannot update a row twice).
    """
    merged = _merged(outcomes)
    if not merged:
        return
    columns: list[list[Any]] = [[] for _ in range(9)]
    for o in merged:
        code, message = o.error if o.error is not None and o.failed > 0 else (None, None)
        values = (
            o.registry_name,
            o.region,
            o.succeeded,
            o.failed,
            o.api_calls,
            o.throttled_calls,
            code,
            message,
            o.complete,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_RECORD, columns)


def event_applied(
    registry_name: str, region: str, event_at: datetime, messages: int, *, connection: psycopg.Connection[Any]
) -> None:
    """ECR's events of the region, the newest of ``event_at``, were applied by a sync committing now
    (``messages`` of them); never commits."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO region_status AS s (registry_name, region, last_event_at, last_event_applied_at, "
            "events_applied) VALUES (%s, %s, %s, clock_timestamp(), %s) "
            "ON CONFLICT (registry_name, region) DO UPDATE SET "
            "last_event_at = greatest(s.last_event_at, excluded.last_event_at), "
            "last_event_applied_at = excluded.last_event_applied_at, "
            "events_applied = s.events_applied + excluded.events_applied",
            (registry_name, region, event_at, messages),
        )


def _merged(outcomes: Sequence[RegionOutcome]) -> list[RegionOutcome]:
    """One outcome per region, sorted by key (rows locked in one order: no deadlock between syncs)."""
    by_region: dict[tuple[str, str], RegionOutcome] = {}
    for o in outcomes:
        key = (o.registry_name, o.region)
        seen = by_region.get(key)
        if seen is not None:
            o = RegionOutcome(
                o.registry_name,
                o.region,
                seen.succeeded + o.succeeded,
                seen.failed + o.failed,
                seen.api_calls + o.api_calls,
                seen.throttled_calls + o.throttled_calls,
                o.error or seen.error,
                seen.complete or o.complete,
            )
        by_region[key] = o
    return [by_region[key] for key in sorted(by_region)]


_STATUS_COLUMNS = (
    "s.last_success_at, s.last_error_at, s.last_error_code, s.last_error_message, s.failing_since, "
    "s.last_round_at, s.last_event_at, s.last_event_applied_at"
)

DECLARED = text(
    f"""
    SELECT d.registry_name, d.region, {_STATUS_COLUMNS}
    FROM (SELECT name AS registry_name, unnest(regions) AS region FROM registries) d
    LEFT JOIN region_status s USING (registry_name, region)
    ORDER BY d.registry_name, d.region
    """
)
"""Every region the stored registries declare, synced or not (never synced: null columns)."""

DECLARED_BY = text(
    f"""
    SELECT d.registry_name, d.region, {_STATUS_COLUMNS}
    FROM (SELECT name AS registry_name, unnest(regions) AS region FROM registries WHERE name = ANY(:names)) d
    LEFT JOIN region_status s USING (registry_name, region)
    ORDER BY d.registry_name, d.region
    """
)
"""``DECLARED`` of the registries named ``:names`` only."""

COUNTERS = text(
    "SELECT registry_name, region, syncs_succeeded, syncs_failed, api_calls, throttled_calls "
    "FROM region_status ORDER BY registry_name, region"
)
"""The scope-sync counters of every region ever synced."""

COUNTERS_OF = text(
    "SELECT registry_name, region, syncs_succeeded, syncs_failed, api_calls, throttled_calls "
    "FROM region_status WHERE registry_name = ANY(:names) ORDER BY registry_name, region"
)
"""``COUNTERS`` of the registries ``names``."""


def of_regions(regions: Sequence[tuple[str, str]], *, connection: psycopg.Connection[Any]) -> list[Any]:
    """The status rows of ``regions`` ((registry name, region) pairs), in their order; null when never synced."""
    with connection.cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(
            f"SELECT d.registry_name, d.region, {_STATUS_COLUMNS} "
            "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS d(registry_name, region, position) "
            "LEFT JOIN region_status s USING (registry_name, region) ORDER BY d.position",
            ([name for name, _ in regions], [region for _, region in regions]),
        )
        return cursor.fetchall()
