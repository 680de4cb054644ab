"""A leased registry region, synced on the worker's pool with the one region sync (``inventory.sync.engine``).

The region's listing is one task; each of its scopes is a task of its own on the
worker's shared pool (``RegionSync.sync``, exactly what ``apply --auto-approve``
runs), and once all are done the region's bookkeeping is written in one
transaction. A defect of ours in one scope is logged with its traceback and
recorded as a failed run with code ``InternalError``; the other scopes go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from inventory.config import InventoryConfig, RegistryConfig
from inventory.sync.engine import Listing, Region, RegionSync, ScopeResult, Unit
from inventory.sync.plan import Counts, ScopeFailure, ScopeStats
from inventory.tables.sync_scopes import Lease

log = logging.getLogger("inventory.worker")

_T = TypeVar("_T")

INTERNAL_ERROR = "InternalError"
"""The code of a scope that failed on a defect of ours (the traceback is in the worker's log)."""


@dataclass
class RegionResult:
    """What one sync of a registry region did; ``complete`` when every scope was attempted."""

    counts: Counts = field(default_factory=Counts)
    failures: list[ScopeFailure] = field(default_factory=list)
    complete: bool = True


@dataclass(frozen=True)
class ScopeReport:
    """One scope (or a region that could not be listed) synced, for logs and metrics."""

    label: str
    counts: Counts | None
    failure: ScopeFailure | None
    seconds: float
    api_calls: int = 0
    throttled_calls: int = 0

    @classmethod
    def of(cls, result: ScopeResult) -> ScopeReport:
        counts = None if result.failure is not None else result.counts
        stats = result.stats
        return cls(result.scope.label, counts, result.failure, result.seconds, stats.api_calls, stats.throttled_calls)


class RegionPool:
    """Syncs leased regions on ``pool``; tells ``report`` of every scope synced."""

    def __init__(self, sync: RegionSync, pool: Executor, *, report: Callable[[ScopeReport], None]) -> None:
        self.sync = sync
        self.pool = pool
        self.report = report
        self.backlog = 0
        """Tasks submitted and not yet started: the worker claims no more regions while it is large."""
        self._lock = threading.Lock()

    def _submit(self, function: Callable[..., _T], *args: Any) -> Future[_T]:
        with self._lock:
            self.backlog += 1

        def started() -> _T:
            with self._lock:
                self.backlog -= 1
            return function(*args)

        return self.pool.submit(started)

    def run(self, lease: Lease, config: InventoryConfig, cancelled: threading.Event) -> RegionResult:
        """Sync the region ``lease`` holds; stop starting scopes once ``cancelled`` is set."""
        result = RegionResult()
        region = Region(lease.registry_name, lease.region, _declared(config, lease))
        key = (lease.registry_name, lease.region)
        listing = self._submit(self._list, region, cancelled).result()
        if listing is None:
            result.complete = False
            return result
        if listing.failure is not None:
            self.sync.finish(key, [], complete=False, failures=[listing.failure], listing=listing.stats)
            self.report(
                ScopeReport(
                    region.label, None, listing.failure, 0.0, listing.stats.api_calls, listing.stats.throttled_calls
                )
            )
            result.failures.append(listing.failure)
            # A region no longer declared is listed from the database only: its failure is ours, and
            # its schedule must stay until a sync sweeps it.
            result.complete = region.registry is not None
            return result
        tasks = [self._submit(self._sync, unit, cancelled) for unit in listing.units]
        wait(tasks)
        synced = [scope for scope in (task.result() for task in tasks) if scope is not None]
        result.complete = len(synced) == len(tasks)
        self.sync.finish(key, synced, complete=result.complete, listing=listing.stats)
        for scope in synced:
            result.counts += scope.counts
            if scope.failure is not None:
                result.failures.append(scope.failure)
        return result

    def _list(self, region: Region, cancelled: threading.Event) -> Listing | None:
        """The region's scopes, or its failure; None when cancelled first."""
        if cancelled.is_set():
            return None
        try:
            return self.sync.list_region(region)
        except Exception:
            log.exception("%s: cannot list the region's repositories", region.label, extra={"scope": region.label})
            account_id = region.registry.account_id if region.registry else ""
            failure = ScopeFailure(
                region.registry_name,
                account_id,
                region.region,
                None,
                INTERNAL_ERROR,
                "a defect of the inventory; see the worker's log",
            )
            return Listing(region, failure=failure)

    def _sync(self, unit: Unit, cancelled: threading.Event) -> ScopeResult | None:
        """Sync one scope; None when cancelled before it started."""
        if cancelled.is_set():
            return None
        try:
            result = self.sync.sync(unit)
        except Exception:
            log.exception("%s: sync failed", unit.scope.label, extra={"scope": unit.scope.label})
            result = ScopeResult(
                unit.scope,
                ScopeStats(),
                failure=ScopeFailure.of(unit.scope, INTERNAL_ERROR, "a defect of the inventory; see the worker's log"),
            )
        self.report(ScopeReport.of(result))
        return result


def _declared(config: InventoryConfig, lease: Lease) -> RegistryConfig | None:
    """The registry that declares the lease's region, or None when the config no longer does."""
    for registry in config.registries:
        if registry.name == lease.registry_name and lease.region in registry.regions:
            return registry
    return None
