"""The targeted sync: the images of one repository that ECR's events say changed, nothing else.

The affected images are the events' digests plus every digest the inventory says holds one
of the events' tags (a push moves a tag away from another image, and ECR announces no event
for that one). They are described with ``DescribeImages(imageIds=…, imageStatus=ANY)``; an
affected image the registry no longer holds is removed. Each is written exactly as a full
sync of that moment writes it, by the same writer (``RegionSync.writer``), in the scope's
transaction under its advisory lock, with the same change events, so the feed, webhooks and
history cannot tell one from the other. Like the full sync, the stored state is read first and
checked again under the lock: a sync that committed in between makes it start over, locked.

The whole repository is synced instead (``RegionSync.sync``) when that costs no more calls
(a small repository, or many affected images), when the inventory does not hold the repository
yet, and when the registry no longer holds it (swept, as a round would).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inventory.aws.errors import aws_calls
from inventory.aws.paging import IMAGE_IDS, PAGE_SIZE, REPOSITORY_NOT_FOUND, image_details, repository_description
from inventory.config import RegistryConfig
from inventory.db import autocommit
from inventory.errors import ScopeUnobservable
from inventory.sync.engine import RegionSync, ScopeResult, Unit
from inventory.sync.plan import (
    Counts,
    Entry,
    RepositoryDescription,
    Scope,
    ScopeFailure,
    ScopeStats,
    change_entries,
    removal_entries,
)
from inventory.sync.transform import Values, fingerprint, image_values
from inventory.tables import images, region_status, repositories


@dataclass(frozen=True)
class Affected:
    """What a burst of events names in one repository: digests, tags, and the newest event's time."""

    scope: Scope
    registry: RegistryConfig
    digests: frozenset[str]
    tags: frozenset[str]
    event_at: datetime
    messages: int = 1
    """The event messages applied by this sync (for the region's status)."""


class _Restart(Exception):
    """A sync committed in the repository between the read of its stored images and the lock."""


class _Gone(Exception):
    """The registry no longer holds the repository."""


def sync_affected(sync: RegionSync, affected: Affected) -> ScopeResult:
    """Converge the images ``affected`` names (or the whole repository, see the module docstring), and
    record the region's last event applied."""
    scope = affected.scope
    with autocommit(sync.engine) as connection:
        stored = repositories.present(scope, connection=connection)
        holders = images.holding_tags(scope, affected.tags, connection=connection)
    digests = sorted(affected.digests | set(holders))
    if stored is None:
        result = _new_repository(sync, affected)
    elif _whole_is_cheaper(len(digests), stored[1]):
        result = sync.sync(Unit(scope, affected.registry, stored[0], stored[0]))
    else:
        try:
            result = sync.measured(scope, lambda result: _images(sync, affected, stored[0], digests, result))
        except _Gone:
            result = sync.sync(Unit(scope, None, None, stored[0]))
        else:
            if result.written:
                return result  # its transaction recorded the events with the images
    if result.failure is None:
        with autocommit(sync.engine) as connection:
            region_status.event_applied(
                scope.registry_name, scope.region, affected.event_at, affected.messages, connection=connection
            )
    return result


def _whole_is_cheaper(affected: int, image_count: int) -> bool:
    """Whether paging the whole repository takes fewer calls than describing the affected images (at equal
    calls, the affected images alone are the smaller answers)."""
    return max(1, math.ceil(image_count / PAGE_SIZE)) < math.ceil(affected / IMAGE_IDS)


def _new_repository(sync: RegionSync, affected: Affected) -> ScopeResult:
    """A repository the inventory does not hold (yet, or any more): the whole of it, as listed now."""
    scope, registry = affected.scope, affected.registry
    try:
        with aws_calls():
            client = sync.clients(registry, scope.region)
        listed = repository_description(client, registry, scope.repository_name)
    except ScopeUnobservable as exc:
        return ScopeResult(scope, failure=ScopeFailure.of(scope, exc.code, exc.message))
    if listed is None:
        return ScopeResult(scope)  # gone already: nothing to write, the events' images with it
    return sync.sync(Unit(scope, registry, RepositoryDescription.of(listed), None))


def _images(
    sync: RegionSync, affected: Affected, description: RepositoryDescription, digests: list[str], result: ScopeResult
) -> None:
    try:
        _write(sync, affected, description, digests, result, locked=False)
    except _Restart:
        result.stats, result.counts = ScopeStats(), Counts()
        _write(sync, affected, description, digests, result, locked=True)


def _write(
    sync: RegionSync,
    affected: Affected,
    description: RepositoryDescription,
    digests: list[str],
    result: ScopeResult,
    *,
    locked: bool,
) -> None:
    scope, registry = affected.scope, affected.registry
    with ExitStack() as transaction:
        if locked:
            connection = transaction.enter_context(sync.locked(scope))
            if repositories.present(scope, connection=connection) is None:
                return  # a round removed it meanwhile: nothing of it to write
            version = images.version(scope, connection=connection)
            stored = images.stored_values(scope, digests, connection=connection)
        else:
            with autocommit(sync.engine) as reads:
                version = images.version(scope, connection=reads)
                stored = images.stored_values(scope, digests, connection=reads)
        with aws_calls():
            client = sync.clients(registry, scope.region)
        try:
            details = image_details(client, registry, scope.repository_name, digests)
        except ScopeUnobservable as exc:
            if exc.code == REPOSITORY_NOT_FOUND:
                raise _Gone from exc
            raise
        result.stats.images_seen += len(details)
        entries = _entries(details, digests, stored)
        if not entries:
            return
        if not locked:
            connection = transaction.enter_context(sync.locked(scope))
            if images.version(scope, connection=connection) != version:
                raise _Restart
        writer = transaction.enter_context(
            sync.writer(connection, Unit(scope, registry, description, description), targeted=True)
        )
        writer.write(entries, result.counts)
        sync.tally(result)
        writer.finish(result.stats, result.counts)  # which ends the writer's COPY: the connection is free
        region_status.event_applied(
            scope.registry_name, scope.region, affected.event_at, affected.messages, connection=connection
        )
        result.written = True


def _entries(
    details: list[dict[str, Any]], digests: Collection[str], stored: dict[str, tuple[Values, bool]]
) -> list[Entry]:
    """What differs between the described images and the stored ones; an affected image not described
    (the registry no longer holds it) and stored as present is removed."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for digest, values in (image_values(detail) for detail in details):
        if digest in seen or digest not in digests:
            continue
        seen.add(digest)
        if digest not in stored:
            entries.append(Entry("+", digest, values, fingerprint=fingerprint(values)))
        else:
            entries.extend(change_entries([(digest, values, fingerprint(values))], stored))
    gone = {d: stored[d] for d in digests if d not in seen and d in stored and not stored[d][1]}
    entries.extend(removal_entries(gone))
    return entries
