"""SQL of ``image_versions`` and ``history_horizon``: past versions of images, and since when they are kept.

Versions are written by ``inventory.tables.images.write`` (the sync's transaction), when
it changes or restores images. Retention prunes versions that ended before its horizon,
and moves ``history_horizon`` forward first, so that no reader is ever answered from a
history with a hole in it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Select, func, select

from inventory.models import HistoryHorizonRow

horizon_table = HistoryHorizonRow.__table__  # type: ignore[attr-defined]


def horizon() -> Select[Any]:
    """Since when the inventory's past is known (one row, one column)."""
    return select(func.coalesce(func.max(horizon_table.c.since), func.now()))


def advance_horizon(older_than: float, *, connection: psycopg.Connection[Any]) -> None:
    """History is kept from ``older_than`` seconds ago at the most."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO history_horizon (id, since) VALUES (1, now() - make_interval(secs => %s)) "
            "ON CONFLICT (id) DO UPDATE SET since = greatest(history_horizon.since, excluded.since)",
            (older_than,),
        )


def prune(older_than: float, *, connection: psycopg.Connection[Any], batch: int = 1000) -> int:
    """Delete at most ``batch`` versions that ended over ``older_than`` seconds ago."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM image_versions WHERE id IN (SELECT id FROM image_versions "
            "WHERE valid_to < now() - make_interval(secs => %s) ORDER BY valid_to LIMIT %s FOR UPDATE SKIP LOCKED)",
            (older_than, batch),
        )
        return cursor.rowcount
