"""SQL of the ``sync_runs`` table: one row per scope synced (or failed), and its retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from inventory.sync.plan import Counts, Scope, ScopeFailure, ScopeStats


@dataclass(frozen=True)
class FinishedRun:
    """A sync run written with its region's bookkeeping: an unchanged scope, or a failure."""

    registry_name: str
    registry_id: str
    region: str
    repository_name: str | None
    stats: ScopeStats
    failure: ScopeFailure | None = None


def start(scope: Scope, *, worker: str | None, connection: psycopg.Connection[Any]) -> int:
    """A running sync run of ``scope``, finished by ``finish`` in the same transaction: its id."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_runs (registry_name, registry_id, region, repository_name, status, worker) "
            "VALUES (%s, %s, %s, %s, 'running', %s) RETURNING id",
            (scope.registry_name, scope.registry_id, scope.region, scope.repository_name, worker),
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def finish(run_id: int, stats: ScopeStats, counts: Counts, *, connection: psycopg.Connection[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sync_runs SET status = 'succeeded', finished_at = now(), images_seen = %s, "
            "images_added = %s, images_changed = %s, images_removed = %s, api_calls = %s, "
            "throttled_calls = %s WHERE id = %s",
            (
                stats.images_seen,
                counts.add,
                counts.change,
                counts.remove,
                stats.api_calls,
                stats.throttled_calls,
                run_id,
            ),
        )


def insert_finished(runs: Sequence[FinishedRun], *, worker: str | None, connection: psycopg.Connection[Any]) -> None:
    """Finished runs that changed no image (succeeded with nothing to write, or failed): one statement."""
    if not runs:
        return
    rows = [
        (
            r.registry_name,
            r.registry_id,
            r.region,
            r.repository_name,
            "failed" if r.failure else "succeeded",
            r.stats.images_seen,
            r.stats.api_calls,
            r.stats.throttled_calls,
            r.failure.code if r.failure else None,
            r.failure.message if r.failure else None,
        )
        for r in runs
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_runs (registry_name, registry_id, region, repository_name, status, images_seen, "
            "api_calls, throttled_calls, error_code, error_message, started_at, finished_at, worker) "
            "SELECT *, now(), now(), %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::int[], %s::int[], %s::int[], %s::text[], %s::text[])",
            [worker, *(list(column) for column in zip(*rows, strict=True))],
        )


def prune(older_than: float, *, connection: psycopg.Connection[Any], batch: int = 1000) -> int:
    """Delete at most ``batch`` of the oldest runs started over ``older_than`` seconds ago; return how many.

    ``SKIP LOCKED``: two workers pruning at once take different rows instead of waiting on each other.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM sync_runs WHERE id IN (SELECT id FROM sync_runs "
            "WHERE started_at < now() - make_interval(secs => %s) "
            "ORDER BY started_at LIMIT %s FOR UPDATE SKIP LOCKED)",
            (older_than, batch),
        )
        return cursor.rowcount
