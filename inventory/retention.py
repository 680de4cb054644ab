"""Retention: history older than the horizon of ``[retention]`` is pruned, a small batch at a time.

Each batch is its own short transaction, so pruning never holds many row locks nor
a long transaction beside the syncs; the workers call it between rounds.
"""

from __future__ import annotations

from sqlalchemy import Engine

from inventory.db import driver_connection
from inventory.tables import sync_runs


def prune_sync_runs(engine: Engine, older_than: float, *, batch: int = 1000, max_batches: int = 100) -> int:
    """Delete sync runs started over ``older_than`` seconds ago; return how many went.

    Stops after a batch smaller than ``batch`` (nothing older is left) or after
    ``max_batches`` batches (the next call goes on), so one call is bounded.
    """
    pruned = 0
    for _ in range(max_batches):
        with engine.begin() as connection:
            deleted = sync_runs.prune(older_than, connection=driver_connection(connection), batch=batch)
        pruned += deleted
        if deleted < batch:
            break
    return pruned
