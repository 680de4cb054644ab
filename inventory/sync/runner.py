"""The CLI's drivers of the region sync: one loop over the regions, then over each region's scopes.

``plan_to_file`` plans into a file (``inventory plan``, and ``apply`` before it asks);
``apply_plan`` applies such a file; ``sync_fleet`` streams (``apply --auto-approve``,
the demo). The worker drives the same ``RegionSync`` from its pool instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from sqlalchemy import Engine

from inventory.aws.clients import ClientFactory
from inventory.config import InventoryConfig
from inventory.db import autocommit
from inventory.errors import TargetError
from inventory.sync.engine import Region, RegionSync, ScopeResult
from inventory.sync.plan import Counts, Scope, ScopeFailure, ScopeStats
from inventory.sync.planfile import PlanReader, PlanWriter
from inventory.sync.progress import Progress, progress_for
from inventory.tables import registries, repositories


@dataclass(frozen=True)
class Target:
    """``NAME[/REGION[/REPOSITORY]]``: repository names may themselves contain slashes."""

    registry_name: str
    region: str | None = None
    repository_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        parts = text.split("/", 2)
        if not all(parts):
            raise TargetError(f"--target {text!r}: expected NAME[/REGION[/REPOSITORY]]")
        return cls(*parts)

    def covers(self, registry_name: str, region: str | None = None, repository: str | None = None) -> bool:
        return (
            self.registry_name == registry_name
            and (region is None or self.region in (None, region))
            and (repository is None or self.repository_name in (None, repository))
        )

    def __str__(self) -> str:
        return "/".join(part for part in (self.registry_name, self.region, self.repository_name) if part)


@dataclass
class Targets:
    """What a run covers: everything, or the union of ``--target``s."""

    targets: Sequence[Target] = ()

    def covers(self, registry_name: str, region: str | None = None, repository: str | None = None) -> bool:
        return not self.targets or any(t.covers(registry_name, region, repository) for t in self.targets)

    def scope(self, scope: Scope) -> bool:
        return self.covers(scope.registry_name, scope.region, scope.repository_name)

    def whole_region(self, registry_name: str, region: str) -> bool:
        """Whether the run covers every repository of the region (its status may then say fresh)."""
        return not self.targets or any(
            t.covers(registry_name, region) and t.repository_name is None for t in self.targets
        )


@dataclass
class SyncResult:
    """What a run wrote (``counts``: of the scopes that did not fail), its ``failures``, and how many
    ``scopes`` it attempted: each repository, and each region whose repositories could not be listed."""

    counts: Counts = field(default_factory=Counts)
    failures: list[ScopeFailure] = field(default_factory=list)
    scopes: int = 0


def regions(engine: Engine, config: InventoryConfig, targets: Targets) -> list[Region]:
    """The regions a run covers: the declared ones, then those the inventory holds that the config
    no longer declares (one more sync sweeps them). A target naming nothing is an error."""
    with autocommit(engine) as connection:
        stored = sorted({(r.scope.registry_name, r.scope.region) for r in repositories.live(connection=connection)})
    declared = {registry.name: registry for registry in config.registries}
    for target in targets.targets:
        registry = declared.get(target.registry_name)
        if registry is None and all(name != target.registry_name for name, _ in stored):
            raise TargetError(f"--target {target.registry_name!r}: no such registry")
        if registry is not None and target.region not in (None, *registry.regions):
            raise TargetError(
                f"--target {target.registry_name}/{target.region}: the registry covers {', '.join(registry.regions)}"
            )
    found = [Region(r.name, region, r) for r in config.registries for region in r.regions]
    known = {(region.registry_name, region.region) for region in found}
    found += [Region(name, region, None) for name, region in stored if (name, region) not in known]
    return [region for region in found if targets.covers(region.registry_name, region.region)]


def _finished(progress: Progress, result: ScopeResult) -> None:
    """A scope done, on the progress display. A failure is not: the caller prints each once, at the end."""
    if result.failure is None:
        counts = result.counts
        progress.scope_finished(result.scope.label, f"+{counts.add} ~{counts.change} -{counts.remove}")


def plan_to_file(
    engine: Engine,
    config: InventoryConfig,
    path: Path,
    *,
    aws_max_attempts: int = 5,
    targets: Sequence[Target] = (),
    interactive: bool = False,
) -> PlanReader:
    """Plan ``config`` (or its ``targets``) against the inventory into ``path``; read it back."""
    covered = Targets(targets)
    with progress_for(interactive) as progress, PlanWriter(path, config.registries, targets) as writer:
        sync = RegionSync(engine, ClientFactory(aws_max_attempts), on_images=progress.images_fetched)
        for region in regions(engine, config, covered):
            listing = sync.list_region(region, covered.scope)
            if listing.failure is not None:
                writer.failure(listing.failure)
                continue
            writer.region(region.registry_name, region.region, listing.stats)
            for unit in listing.units:
                progress.scope_started(unit.scope.label)
                _finished(progress, sync.plan(unit, writer))
        writer.close()
    return PlanReader(path)


def apply_plan(engine: Engine, reader: PlanReader, *, lock_timeout: float) -> SyncResult:
    """Apply a saved plan; then each region's bookkeeping, as its scopes, failures and listing were planned."""
    result = SyncResult(failures=list(reader.failures), scopes=len(reader.failures))
    sync = RegionSync(engine, ClientFactory(), lock_timeout=lock_timeout)
    with autocommit(engine) as connection:
        registries.upsert(reader.registries, connection=connection)
    covered = Targets([Target.parse(target) for target in reader.targets])
    applied: dict[tuple[str, str], list[ScopeResult]] = {}
    for key, scopes in groupby(reader.scopes(), lambda planned: _region_of(planned.scope)):
        applied.setdefault(key, []).extend(sync.apply(planned) for planned in scopes)
    planned_failures: dict[tuple[str, str], list[ScopeFailure]] = {}
    for failure in reader.failures:
        planned_failures.setdefault(_region_of(failure), []).append(failure)
    for key, listing in reader.regions.items():
        _record(sync, key, applied.get(key, []), planned_failures.pop(key, ()), covered, result, listing)
    for key, failures in planned_failures.items():  # regions that could not be listed
        sync.finish(key, [], complete=False, failures=failures)
    return result


def sync_fleet(
    engine: Engine,
    config: InventoryConfig,
    *,
    aws_max_attempts: int = 5,
    targets: Sequence[Target] = (),
    lock_timeout: float = 30.0,
    interactive: bool = False,
    keep: int = 0,
    on_scope: Callable[[ScopeResult], None] | None = None,
    clients: ClientFactory | None = None,
) -> SyncResult:
    """Converge ``config`` (or its ``targets``), streaming each scope's pages into its transaction."""
    covered = Targets(targets)
    result = SyncResult()
    with autocommit(engine) as connection:
        registries.upsert(config.registries, connection=connection)
    with progress_for(interactive) as progress:
        sync = RegionSync(
            engine,
            clients or ClientFactory(aws_max_attempts),
            lock_timeout=lock_timeout,
            keep=keep,
            on_images=progress.images_fetched,
        )
        for region in regions(engine, config, covered):
            listing = sync.list_region(region, covered.scope)
            key = (region.registry_name, region.region)
            if listing.failure is not None:
                sync.finish(key, [], complete=False, failures=[listing.failure], listing=listing.stats)
                result.failures.append(listing.failure)
                result.scopes += 1
                continue
            synced = []
            for unit in listing.units:
                progress.scope_started(unit.scope.label)
                scope = sync.sync(unit)
                _finished(progress, scope)
                if on_scope is not None:
                    on_scope(scope)
                synced.append(scope)
            _record(sync, key, synced, (), covered, result, listing.stats)
    return result


def _record(
    sync: RegionSync,
    key: tuple[str, str],
    results: list[ScopeResult],
    failures: Sequence[ScopeFailure],
    covered: Targets,
    into: SyncResult,
    listing: ScopeStats,
) -> None:
    sync.finish(key, results, complete=covered.whole_region(*key), failures=failures, listing=listing)
    into.scopes += len(results)
    for scope in results:
        if scope.failure is None:
            into.counts += scope.counts  # a failed scope's transaction was rolled back
        else:
            into.failures.append(scope.failure)


def _region_of(item: Scope | ScopeFailure) -> tuple[str, str]:
    return (item.registry_name, item.region)
