"""Making a plan: page what the registries hold, diff it against the inventory, stream it to a file.

Scopes are planned one after the other; each holds at most one page of
observed images and an index of its stored digests. A registry region whose
repositories cannot be listed, or a repository whose images cannot all be
listed, is recorded as a failure and planned for nothing: it is never mistaken
for an empty one. What the config no longer covers (a registry, a region, a
repository) is planned for removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine

from inventory.aws.clients import CallStats, ClientFactory
from inventory.aws.errors import classify
from inventory.aws.paging import image_pages, repository_pages
from inventory.config import InventoryConfig, RegistryConfig
from inventory.db import autocommit, driver_connection
from inventory.errors import InventoryError
from inventory.sync import state
from inventory.sync.plan import PageDiff, Scope, change_entries, removal_entries
from inventory.sync.planfile import PlanWriter, ScopeFailure, ScopeStats
from inventory.sync.transform import image_values


class TargetError(InventoryError):
    """A --target matches nothing."""


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


class Progress(Protocol):
    def scope_started(self, label: str) -> None: ...
    def images_fetched(self, count: int) -> None: ...
    def scope_finished(self, label: str, summary: str) -> None: ...


class Planner:
    """Plans the declared registries (or the targeted part of them) into a ``PlanWriter``."""

    def __init__(
        self,
        engine: Engine,
        config: InventoryConfig,
        clients: ClientFactory,
        progress: Progress,
        targets: Sequence[Target] = (),
    ) -> None:
        self.engine = engine
        self.config = config
        self.clients = clients
        self.progress = progress
        self.targets = targets
        self._check_targets()

    def _check_targets(self) -> None:
        if not self.targets:
            return
        declared = {registry.name: registry for registry in self.config.registries}
        with self.engine.connect() as connection:
            stored = {r.registry_name for r in state.live_repositories(driver_connection(connection))}
        for target in self.targets:
            registry = declared.get(target.registry_name)
            if registry is None and target.registry_name not in stored:
                raise TargetError(f"--target {target.registry_name!r}: no such registry")
            if registry is not None and target.region not in (None, *registry.regions):
                raise TargetError(
                    f"--target {target.registry_name}/{target.region}: "
                    f"the registry covers {', '.join(registry.regions)}"
                )

    def _targeted(self, registry_name: str, region: str | None = None, repository: str | None = None) -> bool:
        return not self.targets or any(t.covers(registry_name, region, repository) for t in self.targets)

    def plan(self, writer: PlanWriter) -> None:
        # Autocommit: a plan only reads, and must not hold a transaction open while AWS is paged.
        with autocommit(self.engine) as raw:
            live = state.live_repositories(raw)
            observed: set[tuple[str, str, str]] = set()
            unobserved_regions: set[tuple[str, str]] = set()
            for registry in self.config.registries:
                for region in registry.regions:
                    if not self._targeted(registry.name, region):
                        continue
                    if not self._plan_region(raw, writer, registry, region, observed):
                        unobserved_regions.add((registry.name, region))
            for repository in live:
                scope = repository.scope()
                where = (scope.registry_name, scope.region)
                if (
                    scope.key in observed
                    or where in unobserved_regions
                    or not self._targeted(*where, scope.repository_name)
                ):
                    continue
                self.plan_repository(raw, writer, scope, None, None)

    def _plan_region(
        self,
        raw: psycopg.Connection[Any],
        writer: PlanWriter,
        registry: RegistryConfig,
        region: str,
        observed: set[tuple[str, str, str]],
    ) -> bool:
        """Plan every repository of one registry region; False when they cannot be listed."""
        label = f"{registry.name}/{region}"
        try:
            client, repositories = self.list_repositories(registry, region)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            writer.failure(
                ScopeFailure(registry.name, registry.account_id, region, None, failure.code, failure.message)
            )
            self.progress.scope_finished(label, f"failed: {failure}")
            return False
        for description in repositories:
            name = description["repositoryName"]
            if not self._targeted(registry.name, region, name):
                continue
            scope = Scope(registry.name, registry.type, registry.account_id, region, name)
            observed.add(scope.key)
            self.plan_repository(raw, writer, scope, client, repository_row(description))
        return True

    def list_repositories(self, registry: RegistryConfig, region: str) -> tuple[Any, list[dict[str, Any]]]:
        """(the region's client, the repositories the registry's globs cover); AWS errors propagate."""
        client = self.clients(registry, region)
        return client, [r for page in repository_pages(client, registry) for r in page]

    def plan_repository(
        self,
        raw: psycopg.Connection[Any],
        writer: PlanWriter,
        scope: Scope,
        client: Any,
        repository: dict[str, Any] | None,
    ) -> None:
        """Plan one scope; ``repository`` None means it is gone: every image is removed."""
        self.progress.scope_started(scope.label)
        # The version is read first: an apply landing in between makes this plan stale, never wrong.
        writer.begin_scope(scope, state.scope_version(raw, scope), repository)
        diff = PageDiff(state.stored_index(raw, scope))
        stats = ScopeStats()
        calls = self.clients.stats.snapshot()
        try:
            if repository is not None:
                registry = self.config.registry(scope.registry_name)
                for page in image_pages(client, registry, scope.repository_name):
                    stats.images_seen += len(page)
                    self.progress.images_fetched(len(page))
                    added, candidates = diff.feed(image_values(detail) for detail in page)
                    changed = list(
                        change_entries(candidates, state.stored_values(raw, scope, (c[0] for c in candidates)))
                    )
                    writer.entries(added)
                    writer.entries(changed)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            writer.end_scope(self._stats(stats, calls), ScopeFailure.of(scope, failure.code, failure.message))
            self.progress.scope_finished(scope.label, f"failed: {failure}")
            return
        for batch in state.batched(diff.gone(), state.BATCH):
            removed = list(removal_entries(state.stored_values(raw, scope, batch)))
            writer.entries(removed)
        counts = writer.end_scope(self._stats(stats, calls))
        self.progress.scope_finished(scope.label, f"+{counts.add} ~{counts.change} -{counts.remove}")

    def _stats(self, stats: ScopeStats, before: CallStats) -> ScopeStats:
        calls = self.clients.stats.since(before)
        stats.api_calls, stats.throttled_calls = calls.api_calls, calls.throttled_calls
        return stats


def repository_row(description: dict[str, Any]) -> dict[str, Any]:
    created = description.get("createdAt")
    return {
        "repository_arn": description.get("repositoryArn"),
        "repository_uri": description.get("repositoryUri"),
        "created_at": created.isoformat() if isinstance(created, datetime) else None,
    }
