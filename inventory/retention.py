"""Retention: history older than the horizon of ``[retention]`` is pruned, a small batch at a time.

Each batch is its own short transaction, so pruning never holds many row locks nor
a long transaction beside the syncs; the workers call it between rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine

from inventory.db import driver_connection
from inventory.feed import write as feed
from inventory.tables import image_versions, sync_runs, webhook_deliveries

Prune = Callable[..., int]
"""A table's ``prune(older_than, *, connection, batch)``: delete one batch, return how many went."""


def prune_sync_runs(engine: Engine, older_than: float, *, batch: int = 1000, max_batches: int = 100) -> int:
    """Delete sync runs started over ``older_than`` seconds ago; return how many went (see ``prune_in_batches``)."""
    return prune_in_batches(engine, sync_runs.prune, older_than, batch=batch, max_batches=max_batches)


def prune_events(engine: Engine, older_than: float, *, batch: int = 1000, max_batches: int = 100) -> int:
    """Delete change events that occurred, and image versions that ended, over ``older_than`` seconds ago,
    oldest first; return how many went. The history horizon moves first: the inventory at a time before
    it is refused (``HistoryNotRetained``), never answered from a history with holes."""
    with engine.begin() as connection:
        image_versions.advance_horizon(older_than, connection=driver_connection(connection))
    pruned = prune_in_batches(engine, feed.prune, older_than, batch=batch, max_batches=max_batches)
    return pruned + prune_in_batches(engine, image_versions.prune, older_than, batch=batch, max_batches=max_batches)


def prune_webhook_deliveries(engine: Engine, older_than: float, *, batch: int = 1000, max_batches: int = 100) -> int:
    """Delete webhook attempts made, and deliveries finished, over ``older_than`` seconds ago (pending
    deliveries stay); return how many went."""
    return prune_in_batches(engine, webhook_deliveries.prune, older_than, batch=batch, max_batches=max_batches)


def prune_in_batches(engine: Engine, prune: Prune, older_than: float, *, batch: int, max_batches: int) -> int:
    """Call ``prune`` one batch per transaction.

    Stops after a batch smaller than ``batch`` (nothing older is left) or after
    ``max_batches`` batches (the next call goes on), so one call is bounded.
    """
    pruned = 0
    for _ in range(max_batches):
        with engine.begin() as connection:
            driver: psycopg.Connection[Any] = driver_connection(connection)
            deleted: int = prune(older_than, connection=driver, batch=batch)
        pruned += deleted
        if deleted < batch:
            break
    return pruned
