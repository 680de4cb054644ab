"""``inventory worker``: continuous sync, shared by any number of worker processes through Postgres."""

from __future__ import annotations

from inventory.worker.loop import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
