"""One registry region, converged by a worker: its repositories planned and applied in parallel.

The region's repositories are listed (one task), then each repository is a task
on the worker's shared thread pool: plan it into a plan file of its own (pages
streamed, so memory stays flat however many images it holds), then apply that
file in one transaction, exactly as ``inventory apply`` would. Repositories the
registry no longer lists, or every repository of a region the config no longer
declares, are planned for removal. A region whose repositories cannot be listed
is recorded as failed and left untouched.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from inventory.aws.clients import ClientFactory
from inventory.aws.errors import classify
from inventory.config import InventoryConfig, RegistryConfig
from inventory.db import autocommit
from inventory.sync import state
from inventory.sync.apply import ApplyResult, apply_plan, record_failure
from inventory.sync.plan import Counts, Scope
from inventory.sync.planfile import PlannedScope, PlanReader, PlanWriter, ScopeFailure
from inventory.sync.planner import Planner, repository_row
from inventory.worker.leases import Lease

_T = TypeVar("_T")


class _Silent:
    """Planning progress: the worker logs scopes once applied instead."""

    def scope_started(self, label: str) -> None:
        pass

    def images_fetched(self, count: int) -> None:
        pass

    def scope_finished(self, label: str, summary: str) -> None:
        pass


@dataclass
class RegionResult:
    """What one sync of a registry region did; ``complete`` when every repository was attempted."""

    counts: Counts = field(default_factory=Counts)
    failures: list[ScopeFailure] = field(default_factory=list)
    complete: bool = True


@dataclass(frozen=True)
class ScopeReport:
    """One repository synced, for logs and metrics."""

    label: str
    counts: Counts | None
    failure: ScopeFailure | None
    seconds: float
    api_calls: int = 0
    throttled_calls: int = 0


class RegionSync:
    """Converges registry regions on ``pool``; tells ``report`` of every repository synced."""

    def __init__(
        self,
        engine: Engine,
        clients: ClientFactory,
        pool: Executor,
        *,
        worker: str,
        lock_timeout: float,
        report: Callable[[ScopeReport], None],
    ) -> None:
        self.engine = engine
        self.clients = clients
        self.pool = pool
        self.worker = worker
        self.lock_timeout = lock_timeout
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
        """Sync the region ``lease`` holds; stop starting repositories once ``cancelled`` is set."""
        result = RegionResult()
        planner = Planner(self.engine, config, self.clients, _Silent())
        registry = _declared(config, lease)
        observed: set[tuple[str, str, str]] = set()
        tasks: list[Future[ApplyResult | None]] = []
        if registry is not None:
            listed = self._submit(self._list, planner, registry, lease, cancelled).result()
            if isinstance(listed, ScopeFailure):
                result.failures.append(listed)
                return result
            if listed is None:
                result.complete = False
                return result
            client, descriptions = listed
            for description in descriptions:
                scope = Scope(registry.name, registry.type, registry.account_id, lease.region,
                              description["repositoryName"])  # fmt: skip
                observed.add(scope.key)
                row = repository_row(description)
                tasks.append(self._submit(self._sync, planner, scope, client, row, cancelled))
        with autocommit(self.engine) as connection:
            live = state.live_repositories(connection, lease.registry_name, lease.region)
        for repository in live:
            if repository.scope().key not in observed:
                tasks.append(self._submit(self._sync, planner, repository.scope(), None, None, cancelled))
        wait(tasks)
        for task in tasks:
            applied = task.result()  # None: cancelled before it started
            if applied is None:
                result.complete = False
                continue
            result.counts += applied.counts
            result.failures.extend(applied.failures)
        return result

    def _list(
        self, planner: Planner, registry: RegistryConfig, lease: Lease, cancelled: threading.Event
    ) -> tuple[Any, list[dict[str, Any]]] | ScopeFailure | None:
        if cancelled.is_set():
            return None
        try:
            return planner.list_repositories(registry, lease.region)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
        region_failure = ScopeFailure(registry.name, registry.account_id, lease.region, None, failure.code,
                                      failure.message)  # fmt: skip
        record_failure(self.engine, region_failure, worker=self.worker)
        self.report(ScopeReport(lease.label, None, region_failure, 0.0))
        return region_failure

    def _sync(
        self,
        planner: Planner,
        scope: Scope,
        client: Any,
        repository: dict[str, Any] | None,
        cancelled: threading.Event,
    ) -> ApplyResult | None:
        """Plan one repository into a file of its own and apply it; None when cancelled first."""
        if cancelled.is_set():
            return None
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="inventory-worker-") as scratch:
            path = Path(scratch) / "plan"
            with PlanWriter(path, ()) as writer:
                # Autocommit: planning only reads, and holds no transaction while AWS is paged.
                with autocommit(self.engine) as connection:
                    planner.plan_repository(connection, writer, scope, client, repository)
                writer.close()
            applied: list[PlannedScope] = []
            result = apply_plan(
                self.engine, PlanReader(path), (), lock_timeout=self.lock_timeout, worker=self.worker,
                on_scope=lambda planned, _: applied.append(planned),
            )  # fmt: skip
        seconds = time.monotonic() - started
        if result.failures:
            self.report(ScopeReport(scope.label, None, result.failures[0], seconds))
        else:
            stats = applied[0].stats
            self.report(ScopeReport(scope.label, result.counts, None, seconds, stats.api_calls, stats.throttled_calls))
        return result


def _declared(config: InventoryConfig, lease: Lease) -> RegistryConfig | None:
    """The registry that declares the lease's region, or None when the config no longer does."""
    for registry in config.registries:
        if registry.name == lease.registry_name and lease.region in registry.regions:
            return registry
    return None
