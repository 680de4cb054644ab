"""The region sync, written once: ``inventory plan``/``apply`` loop over it, ``inventory worker`` pools it.

A registry region is synced in three steps:

1. ``list_region``: list the region's repositories (one AWS listing) and decide its
   scopes: every repository listed, and every stored one no longer listed (swept: its
   images removed). A listing AWS refuses is the region's failure: nothing is swept.
2. per scope, one of
   - ``sync`` (unattended: the worker, ``apply --auto-approve``): pages stream through
     the diff; nothing is written, and no transaction is opened, until the first change.
     Then the scope's advisory lock is taken, the stored version checked against the one
     the diff started from (a concurrent apply moved it: the scope starts over, locked
     from the start), and every later page is written in that one transaction as it
     arrives. An unchanged scope costs its AWS calls and one read.
   - ``plan`` into a plan file, then ``apply`` of what it showed (refused once stale).
3. ``finish``: the region's bookkeeping in one transaction: the runs of scopes that wrote
   nothing (unchanged, or failed), last-synced times, and the region's current status.

A scope AWS or the network would not let us observe fully, or that is locked or
stale, is a ``ScopeFailure``: its rows stay as they were.

The last check before a scope's transaction commits is its *fence*: for a worker's round,
that its lease on the region is still live (``lease``); for the syncs ECR's events trigger,
which hold no lease, that the region is still declared (``declared``). Either way the row
checked stays locked until the commit. Anything else raised is a
defect of ours and propagates (a worker records it as ``InternalError``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine

from inventory.aws.clients import CallStats, ClientFactory
from inventory.aws.errors import aws_calls
from inventory.aws.paging import image_pages, repository_pages
from inventory.config import RegistryConfig
from inventory.db import autocommit, driver_connection
from inventory.errors import LeaseLost, RegionUndeclared, ScopeFailed, ScopeLocked, ScopeUnobservable, StalePlan
from inventory.feed import write as feed
from inventory.sync.plan import (
    Counts,
    Entry,
    PageDiff,
    PlannedScope,
    RepositoryDescription,
    Scope,
    ScopeFailure,
    ScopeStats,
    StoredImage,
    change_entries,
    removal_entries,
)
from inventory.sync.planfile import PlanWriter
from inventory.sync.transform import image_values
from inventory.tables import images, region_status, repositories, sync_runs, sync_scopes
from inventory.tables.region_status import RegionOutcome
from inventory.tables.sync_runs import FinishedRun

WRITE_BATCH = 5000
"""Entries of a saved plan written per statement."""

Fence = Literal["lease", "declared"]
"""What a worker's scope transaction checks last (see the module docstring)."""


@dataclass(frozen=True)
class Region:
    """A registry region to sync; ``registry`` None when the config no longer declares it (swept)."""

    registry_name: str
    region: str
    registry: RegistryConfig | None

    @property
    def label(self) -> str:
        return f"{self.registry_name}/{self.region}"


@dataclass(frozen=True)
class Unit:
    """One scope to sync: a repository as listed (``repository``) and as stored (``stored``)."""

    scope: Scope
    registry: RegistryConfig | None
    repository: RepositoryDescription | None
    """None: the registry no longer lists it, so every image of it is removed."""
    stored: RepositoryDescription | None
    """None: not stored as present (new, or removed earlier)."""

    @property
    def row_changed(self) -> bool:
        """The repository's own row must be written (new, re-described, restored or gone)."""
        return self.repository is None or self.stored != self.repository


@dataclass
class Listing:
    """A region's scopes as listed (``units``), or why they could not be (``failure``), and its calls."""

    region: Region
    units: list[Unit] = field(default_factory=list)
    failure: ScopeFailure | None = None
    stats: ScopeStats = field(default_factory=ScopeStats)


@dataclass
class ScopeResult:
    """What syncing one scope did. ``written``: its own transaction recorded its run."""

    scope: Scope
    stats: ScopeStats = field(default_factory=ScopeStats)
    counts: Counts = field(default_factory=Counts)
    failure: ScopeFailure | None = None
    written: bool = False
    seconds: float = 0.0
    shown: list[Entry] = field(default_factory=list)
    """The first entries written, for display (``RegionSync.keep`` of them)."""
    calls_before: CallStats = field(default_factory=CallStats, repr=False)
    """The thread's AWS calls when the scope started (``RegionSync.tally``)."""


class _Restart(Exception):
    """A concurrent apply moved the scope between the diff's read and its lock."""


class RegionSync:
    """The steps of a region sync; shared by threads (it holds no per-scope state)."""

    def __init__(
        self,
        engine: Engine,
        clients: ClientFactory,
        *,
        worker: str | None = None,
        lock_timeout: float = 30.0,
        keep: int = 0,
        on_images: Callable[[int], None] | None = None,
        fence: Fence = "lease",
    ) -> None:
        self.engine = engine
        self.clients = clients
        self.worker = worker
        self.fence: Fence = fence
        self.lock_timeout = lock_timeout
        self.keep = keep
        self.on_images = on_images

    # 1. the scopes of a region -----------------------------------------------------------

    def list_region(self, region: Region, covered: Callable[[Scope], bool] = lambda _: True) -> Listing:
        """The region's scopes that ``covered`` accepts, or the failure that kept them from being listed."""
        listing = Listing(region)
        calls = self.clients.stats.snapshot()
        try:
            listing.units = [unit for unit in self._units(region) if covered(unit.scope)]
        except ScopeUnobservable as exc:
            account_id = region.registry.account_id if region.registry else ""
            listing.failure = ScopeFailure(region.registry_name, account_id, region.region, None, exc.code, exc.message)
        spent = self.clients.stats.since(calls)
        listing.stats = ScopeStats(0, spent.api_calls, spent.throttled_calls)
        return listing

    def _units(self, region: Region) -> Iterator[Unit]:
        with autocommit(self.engine) as connection:
            stored = {
                r.scope.key: r
                for r in repositories.live(
                    connection=connection, registry_name=region.registry_name, region=region.region
                )
            }
        listed: set[tuple[str, ...]] = set()
        registry = region.registry
        if registry is not None:
            with aws_calls():
                client = self.clients(registry, region.region)
            units = []
            for page in repository_pages(client, registry):
                for description in page:
                    scope = Scope(
                        registry.name, registry.type, registry.account_id, region.region, description["repositoryName"]
                    )
                    if scope.key in listed:
                        continue
                    listed.add(scope.key)
                    known = stored.get(scope.key)
                    units.append(
                        Unit(
                            scope, registry, RepositoryDescription.of(description), known.description if known else None
                        )
                    )
            yield from units  # only once the whole listing is in: a partial one sweeps nothing
        for key, known in stored.items():
            if key not in listed:
                yield Unit(known.scope, None, None, known.description)

    # 2. one scope ------------------------------------------------------------------------

    def sync(self, unit: Unit) -> ScopeResult:
        """Converge one scope, writing pages as they arrive (see the module docstring)."""
        return self.measured(unit.scope, lambda result: self._sync(unit, result))

    def _sync(self, unit: Unit, result: ScopeResult) -> None:
        try:
            self._stream(unit, result, locked=False)
        except _Restart:
            result.stats, result.counts, result.shown = ScopeStats(), Counts(), []
            self._stream(unit, result, locked=True)

    def _stream(self, unit: Unit, result: ScopeResult, *, locked: bool) -> None:
        scope = unit.scope
        with ExitStack() as transaction, ExitStack() as reading:
            reads = _Reads(reading.enter_context(autocommit(self.engine)))
            writer: ScopeWriter | None = None

            def begin(read_at: str | None) -> ScopeWriter:
                """The scope's transaction and writer; ``_Restart`` if the scope moved since ``read_at``."""
                reading.close()  # one connection per scope at a time
                connection = transaction.enter_context(self.locked(scope))
                if read_at is not None and images.version(scope, connection=connection) != read_at:
                    raise _Restart
                return reads.write_with(transaction.enter_context(self.writer(connection, unit)))

            if locked:
                writer = begin(None)
            index, version = images.stored_index(scope, connection=reads.connection)
            for entries in self._entries(unit, index, reads, result.stats):
                if not entries:
                    continue
                if writer is None:
                    writer = begin(version)
                writer.write(entries, result.counts)
                self._show(result, entries)
            if writer is None and unit.row_changed:
                writer = begin(version)
            if writer is not None:
                self.tally(result)
                writer.finish(result.stats, result.counts)
                result.written = True

    def plan(self, unit: Unit, writer: PlanWriter) -> ScopeResult:
        """Plan one scope into ``writer``: nothing is written to the inventory."""

        def plan(result: ScopeResult) -> None:
            with autocommit(self.engine) as connection:
                index, version = images.stored_index(unit.scope, connection=connection)
                writer.begin_scope(unit.scope, version, unit.repository, unit.row_changed)
                try:
                    for entries in self._entries(unit, index, _Reads(connection), result.stats):
                        writer.entries(entries)
                        result.counts += _counted(entries)
                        self._show(result, entries)
                except ScopeFailed as exc:
                    writer.end_scope(result.stats, ScopeFailure.of(unit.scope, exc.code, exc.message))
                    raise
                writer.end_scope(result.stats)

        return self.measured(unit.scope, plan)

    def apply(self, planned: PlannedScope) -> ScopeResult:
        """Apply one scope of a saved plan, exactly as shown; ``StalePlan`` once its images moved."""

        def apply(result: ScopeResult) -> None:
            result.stats = planned.stats
            if planned.counts.total == 0 and not planned.row_changed:
                return  # nothing to write: the region's bookkeeping records it
            scope = planned.scope
            with ExitStack() as transaction:
                connection = transaction.enter_context(self.locked(scope))
                if images.version(scope, connection=connection) != planned.version:
                    raise StalePlan()
                unit = Unit(scope, None, planned.repository, None)
                writer = transaction.enter_context(self.writer(connection, unit))
                batch: list[Entry] = []
                for entry in planned.entries:
                    batch.append(entry)
                    if len(batch) >= WRITE_BATCH:
                        writer.write(batch, result.counts)
                        batch = []
                writer.write(batch, result.counts)
                writer.finish(result.stats, result.counts)
                result.written = True

        return self.measured(planned.scope, apply, count_calls=False)

    def _entries(
        self, unit: Unit, index: dict[str, StoredImage], reads: _Reads, stats: ScopeStats
    ) -> Iterator[list[Entry]]:
        """The scope's entries, a page's worth at a time, then its removals."""
        scope = unit.scope
        diff = PageDiff(index)
        if unit.repository is not None:
            assert unit.registry is not None
            with aws_calls():
                client = self.clients(unit.registry, scope.region)
            for page in image_pages(client, unit.registry, scope.repository_name):
                stats.images_seen += len(page)
                if self.on_images is not None:
                    self.on_images(len(page))
                added, candidates = diff.feed(image_values(detail) for detail in page)
                if candidates:
                    stored = images.stored_values(scope, (c[0] for c in candidates), connection=reads.connection)
                    added.extend(change_entries(candidates, stored))
                yield added
        for batch in images.batched(diff.gone(), images.BATCH):
            yield list(removal_entries(images.stored_values(scope, batch, connection=reads.connection)))

    def measured(self, scope: Scope, work: Callable[[ScopeResult], None], *, count_calls: bool = True) -> ScopeResult:
        """Run ``work`` for ``scope``; what may fail a scope becomes its failure, with its calls and time."""
        started = time.monotonic()
        result = ScopeResult(scope, calls_before=self.clients.stats.snapshot())
        try:
            work(result)
        except psycopg.errors.LockNotAvailable:
            result.failure = ScopeFailure.of(
                scope, ScopeLocked.code, f"{ScopeLocked()}; gave up after {self.lock_timeout:g}s"
            )
        except ScopeFailed as exc:
            result.failure = ScopeFailure.of(scope, exc.code, exc.message)
        if count_calls:
            self.tally(result)
        result.seconds = time.monotonic() - started
        return result

    def tally(self, result: ScopeResult) -> None:
        """The AWS calls this thread made for the scope so far, into its stats."""
        spent = self.clients.stats.since(result.calls_before)
        result.stats.api_calls, result.stats.throttled_calls = spent.api_calls, spent.throttled_calls

    def _show(self, result: ScopeResult, entries: list[Entry]) -> None:
        room = self.keep - len(result.shown)
        if room > 0:
            result.shown.extend(entries[:room])

    def writer(self, connection: psycopg.Connection[Any], unit: Unit, *, targeted: bool = False) -> ScopeWriter:
        """The writes of ``unit`` in the scope's transaction of ``connection``, fenced as this sync is."""
        return ScopeWriter(connection, unit, self.worker, fence=self.fence, targeted=targeted)

    @contextmanager
    def locked(self, scope: Scope) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding the scope's advisory lock."""
        with self.engine.begin() as connection:
            raw = driver_connection(connection)
            images.lock(scope, self.lock_timeout, connection=raw)
            yield raw

    # 3. the region's bookkeeping --------------------------------------------------------

    def finish(
        self,
        region: tuple[str, str],
        results: Sequence[ScopeResult],
        *,
        complete: bool,
        failures: Sequence[ScopeFailure] = (),
        listing: ScopeStats | None = None,
    ) -> None:
        """Record a region's round in one transaction: the runs of the scopes that wrote nothing,
        ``failures`` that are not scopes' own (the region's listing), last-synced times, the status;
        nothing when it runs for a worker whose lease on the region lapsed."""
        registry_name, region_name = region
        runs = [
            FinishedRun(
                r.scope.registry_name, r.scope.registry_id, r.scope.region, r.scope.repository_name, r.stats, r.failure
            )
            for r in results
            if not r.written
        ] + [
            FinishedRun(
                f.registry_name,
                f.registry_id,
                f.region,
                f.repository_name,
                (listing or ScopeStats()) if f.repository_name is None else ScopeStats(),
                f,
            )
            for f in failures
        ]
        failed = [r.failure for r in results if r.failure is not None] + list(failures)
        stats = [r.stats for r in results] + ([listing] if listing else [])
        outcome = RegionOutcome(
            registry_name=registry_name,
            region=region_name,
            succeeded=sum(1 for r in results if r.failure is None),
            failed=len(failed),
            api_calls=sum(s.api_calls for s in stats),
            throttled_calls=sum(s.throttled_calls for s in stats),
            error=(failed[-1].code, failed[-1].message) if failed else None,
            complete=complete,
        )
        with self.engine.begin() as connection:
            raw = driver_connection(connection)
            if self.worker is not None and not sync_scopes.hold(self.worker, *region, connection=raw):
                return  # the lease lapsed: the region is another worker's to record
            sync_runs.insert_finished(runs, worker=self.worker, connection=raw)
            unchanged = [r.scope for r in results if not r.written and r.failure is None]
            repositories.touch(unchanged, connection=raw)
            region_status.record([outcome], connection=raw)


class _Reads:
    """The connection the diff reads stored values through: autocommit, then the scope's transaction
    (where a read first ends the writer's open COPY: a connection does one thing at a time)."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection
        self._writer: ScopeWriter | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._writer is not None:
            self._writer.end_copy()
        return self._connection

    def write_with(self, writer: ScopeWriter) -> ScopeWriter:
        self._connection, self._writer = writer.connection, writer
        return writer


class ScopeWriter:
    """The writes of one scope, in the transaction of ``connection``: its repository row first (its
    images refer to it), then each batch of entries with their events, then the run's totals.
    ``targeted``: only some of the scope's images were observed (an event's), so the repository,
    already stored as present, is not stamped as synced.

    New images go into one COPY left open across batches, so the server stores a page while
    the next is fetched and diffed; any other statement ends it first. As a context manager,
    an exception aborts the COPY (the transaction then rolls back).
    """

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        unit: Unit,
        worker: str | None,
        *,
        fence: Fence = "lease",
        targeted: bool = False,
    ) -> None:
        self.connection = connection
        self.scope = unit.scope
        self.repository = unit.repository
        self.worker = worker
        self.fence = fence
        self._copy: images.NewImages | None = None
        self.run_id = sync_runs.start(self.scope, worker=worker, connection=connection)
        self.backfill = False
        """The repository's first sync: its events are a backfill, not live changes."""
        if self.repository is not None and not targeted:
            was = repositories.upsert(self.scope, self.repository, image_delta=0, connection=connection)
            self.backfill = was is None
            if not was:
                feed.write_repository(
                    self.scope, self.run_id, "repository.added", backfill=self.backfill, connection=connection
                )

    def __enter__(self) -> ScopeWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._copy is not None:
            copy, self._copy = self._copy, None
            copy.close(*exc_info)

    def end_copy(self) -> None:
        self.__exit__(None, None, None)

    def write(self, entries: Sequence[Entry], counts: Counts) -> None:
        new = [e for e in entries if e.symbol == "+" and not e.restored]
        others = [e for e in entries if e.symbol != "+" or e.restored] if len(new) < len(entries) else []
        if others:
            self.end_copy()
            images.write(self.scope, others, connection=self.connection)
            feed.write_changes(self.scope, self.run_id, others, connection=self.connection)
        if new:
            if self._copy is None:
                self._copy = images.NewImages(self.scope, connection=self.connection)
            self._copy.write(new)
        counts += _counted(entries)

    def _check_fence(self) -> None:
        """The transaction's last check; its row stays locked until the commit (``sync_scopes``)."""
        if self.worker is None:
            return
        scope, connection = self.scope, self.connection
        if self.fence == "declared":
            if not sync_scopes.declared(scope.registry_name, scope.region, connection=connection):
                raise RegionUndeclared
        elif not sync_scopes.hold(self.worker, scope.registry_name, scope.region, connection=connection):
            raise LeaseLost  # rolled back: another worker may hold the region by now

    def finish(self, stats: ScopeStats, counts: Counts) -> None:
        self.end_copy()
        scope, connection = self.scope, self.connection
        if counts.add != counts.remove and self.repository is not None:
            repositories.add_images(scope, counts.add - counts.remove, connection=connection)
        feed.write_added_and_removed(
            scope,
            self.run_id,
            added=counts.add > 0,
            removed=counts.remove > 0,
            backfill=self.backfill,
            connection=connection,
        )
        if self.repository is None and repositories.mark_removed(scope, connection=connection):
            feed.write_repository(scope, self.run_id, "repository.removed", backfill=False, connection=connection)
        self._check_fence()
        sync_runs.finish(self.run_id, stats, counts, connection=connection)
        feed.notify(connection=connection)


def _counted(entries: Sequence[Entry]) -> Counts:
    counts = Counts()
    for entry in entries:
        counts.count(entry)
    return counts
