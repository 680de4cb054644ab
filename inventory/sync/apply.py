"""Applying a plan: each scope converges in one transaction, under a Postgres lock of its own.

Per scope: take the scope's advisory lock (waiting at most ``lock_timeout``),
refuse if the stored images changed since the plan was made, then write in
batches — new images by COPY, changed and restored ones by one executemany,
removals by one UPDATE — with one change event per image and the sync run,
all in the same transaction. A scope that failed to be observed writes only a
failed sync run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from inventory.config import RegistryConfig
from inventory.db import driver_connection
from inventory.sync.plan import Counts, Entry, Scope
from inventory.sync.planfile import PlannedScope, PlanReader, ScopeFailure
from inventory.sync.state import scope_version
from inventory.sync.transform import FIELDS

BATCH = 5000
_IDENTITY = ("registry_id", "region", "repository_name", "image_digest")
_COPY_IMAGES = f"COPY images ({', '.join((*_IDENTITY, *FIELDS, 'fingerprint'))}) FROM STDIN"
_COPY_EVENTS = (
    "COPY image_events (sync_run_id, registry_id, region, repository_name, image_digest, kind, changes) FROM STDIN"
)
_UPDATE_IMAGE = (
    f"UPDATE images SET {', '.join(f'{f} = %s' for f in (*FIELDS, 'fingerprint'))}, removed_at = NULL, "
    "last_seen_at = now(), updated_at = now() "
    "WHERE registry_id = %s AND region = %s AND repository_name = %s AND image_digest = %s"
)
_REMOVE_IMAGES = (
    "UPDATE images SET removed_at = now(), updated_at = now() "
    "WHERE registry_id = %s AND region = %s AND repository_name = %s AND image_digest = ANY(%s) "
    "AND removed_at IS NULL"
)


class StalePlan(Exception):
    """The scope's stored images changed since the plan was made."""


@dataclass
class ApplyResult:
    counts: Counts = field(default_factory=Counts)
    failures: list[ScopeFailure] = field(default_factory=list)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _change_event(scope: Scope, run_id: int, entry: Entry) -> tuple[Any, ...]:
    """The event of a changed or restored image: each changed field as [before, after]."""
    changes = {f: [_json(b), _json(a)] for f, (b, a) in entry.changes.items()}
    return (run_id, *scope.key, entry.image_digest, "restored" if entry.restored else "changed", json.dumps(changes))


# Added and removed images' events are made by the server, once per scope, from the rows
# this transaction wrote (now() is the transaction's time): no per-row work in Python for
# the bulk of a first apply or of a mass removal.
_TAG_EVENTS = (
    "INSERT INTO image_events (sync_run_id, registry_id, region, repository_name, image_digest, kind, changes) "
    "SELECT %s, registry_id, region, repository_name, image_digest, '{kind}', "
    "jsonb_build_object('image_tags', jsonb_build_array({before}, {after})) "
    "FROM images WHERE registry_id = %s AND region = %s AND repository_name = %s AND {written} = now()"
)
_ADDED_EVENTS = _TAG_EVENTS.format(kind="added", before="NULL", after="to_jsonb(image_tags)", written="first_seen_at")
_REMOVED_EVENTS = _TAG_EVENTS.format(kind="removed", before="to_jsonb(image_tags)", after="NULL", written="removed_at")


def write_entries(connection: psycopg.Connection[Any], scope: Scope, run_id: int, entries: Sequence[Entry]) -> None:
    """Write one batch of a scope's entries and their change events."""
    new = [e for e in entries if e.symbol == "+" and not e.restored]
    updated = [e for e in entries if e.symbol == "~" or e.restored]
    gone = [e.image_digest for e in entries if e.symbol == "-"]
    with connection.cursor() as cursor:
        if new:
            with cursor.copy(_COPY_IMAGES) as copy:
                for entry in new:
                    copy.write_row((*scope.key, entry.image_digest, *_storable(entry.after), entry.fingerprint))
        if updated:
            cursor.executemany(
                _UPDATE_IMAGE, [(*_storable(e.after), e.fingerprint, *scope.key, e.image_digest) for e in updated]
            )
            with cursor.copy(_COPY_EVENTS) as copy:
                for entry in updated:
                    copy.write_row(_change_event(scope, run_id, entry))
        if gone:
            cursor.execute(_REMOVE_IMAGES, (*scope.key, gone))


_SEVERITIES = FIELDS.index("finding_severity_counts")


def _storable(values: Any) -> tuple[Any, ...]:
    """``values`` as COPY and UPDATE take them: the severity counts as JSONB."""
    counts = values[_SEVERITIES]
    return (*values[:_SEVERITIES], None if counts is None else Jsonb(counts), *values[_SEVERITIES + 1 :])


def lock_scope(connection: psycopg.Connection[Any], scope: Scope, lock_timeout: float) -> None:
    """Hold the scope's advisory lock until the transaction ends."""
    with connection.cursor() as cursor:
        # lock_timeout 0 means "wait forever" to PostgreSQL; ours means "do not wait".
        cursor.execute(f"SET LOCAL lock_timeout = '{max(1, int(lock_timeout * 1000))}ms'")
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            ("inventory-scope/" + "/".join(scope.key),),
        )


def upsert_registries(engine: Engine, registries: Iterable[RegistryConfig]) -> None:
    """Store the declared registries (their labels are what repositories refer to)."""
    registries = list(registries)
    if not registries:
        return
    with engine.begin() as connection, driver_connection(connection).cursor() as cursor:
        for registry in registries:
            cursor.execute(
                "INSERT INTO registries (name, type, account_id, regions) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET type = excluded.type, account_id = excluded.account_id, "
                "regions = excluded.regions, updated_at = now() "
                "WHERE (registries.type, registries.account_id, registries.regions) "
                "IS DISTINCT FROM (excluded.type, excluded.account_id, excluded.regions)",
                (registry.name, registry.type, registry.account_id, list(registry.regions)),
            )


def _upsert_repository(cursor: psycopg.Cursor[Any], planned: PlannedScope) -> None:
    scope, repository = planned.scope, planned.repository
    if repository is None:
        cursor.execute(
            "UPDATE repositories SET removed_at = now(), last_synced_at = now() "
            "WHERE registry_id = %s AND region = %s AND repository_name = %s",
            scope.key,
        )
        return
    cursor.execute(
        "INSERT INTO repositories (registry_id, region, repository_name, registry_name, repository_arn, "
        "repository_uri, created_at, last_synced_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (registry_id, region, repository_name) DO UPDATE SET "
        "registry_name = excluded.registry_name, repository_arn = excluded.repository_arn, "
        "repository_uri = excluded.repository_uri, created_at = excluded.created_at, "
        "last_seen_at = now(), last_synced_at = now(), removed_at = NULL",
        (*scope.key, scope.registry_name, repository["repository_arn"], repository["repository_uri"],
         repository["created_at"]),
    )  # fmt: skip


def _start_run(cursor: psycopg.Cursor[Any], scope: Scope, worker: str | None) -> int:
    cursor.execute(
        "INSERT INTO sync_runs (registry_name, registry_id, region, repository_name, status, worker) "
        "VALUES (%s, %s, %s, %s, 'running', %s) RETURNING id",
        (scope.registry_name, scope.registry_id, scope.region, scope.repository_name, worker),
    )
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def record_failure(engine: Engine, failure: ScopeFailure, *, worker: str | None = None) -> None:
    """A failed sync run: the scope's images are left as they were."""
    with engine.begin() as connection, driver_connection(connection).cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_runs (registry_name, registry_id, region, repository_name, status, "
            "finished_at, error_code, error_message, worker) VALUES (%s, %s, %s, %s, 'failed', now(), %s, %s, %s)",
            (failure.registry_name, failure.registry_id, failure.region, failure.repository_name,
             failure.code, failure.message, worker),
        )  # fmt: skip


def apply_scope(engine: Engine, planned: PlannedScope, *, lock_timeout: float, worker: str | None = None) -> Counts:
    """Converge one scope in one transaction; StalePlan or LockNotAvailable leave it untouched."""
    counts = Counts()
    scope = planned.scope
    with engine.begin() as connection:
        raw = driver_connection(connection)
        lock_scope(raw, scope, lock_timeout)
        if scope_version(raw, scope) != planned.version:
            raise StalePlan(scope.label)
        with raw.cursor() as cursor:
            run_id = _start_run(cursor, scope, worker)
            _upsert_repository(cursor, planned)
            batch: list[Entry] = []
            for entry in planned.entries:
                counts.count(entry)
                batch.append(entry)
                if len(batch) >= BATCH:
                    write_entries(raw, scope, run_id, batch)
                    batch = []
            if batch:
                write_entries(raw, scope, run_id, batch)
            if counts.add > 0:
                cursor.execute(_ADDED_EVENTS, (run_id, *scope.key))
            if counts.remove > 0:
                cursor.execute(_REMOVED_EVENTS, (run_id, *scope.key))
            stats = planned.stats
            cursor.execute(
                "UPDATE sync_runs SET status = 'succeeded', finished_at = now(), images_seen = %s, "
                "images_added = %s, images_changed = %s, images_removed = %s, api_calls = %s, "
                "throttled_calls = %s WHERE id = %s",
                (stats.images_seen, counts.add, counts.change, counts.remove, stats.api_calls,
                 stats.throttled_calls, run_id),
            )  # fmt: skip
    return counts


def apply_plan(
    engine: Engine,
    reader: PlanReader,
    registries: Iterable[RegistryConfig],
    *,
    lock_timeout: float,
    on_scope: Callable[[PlannedScope, Counts], None] | None = None,
    worker: str | None = None,
) -> ApplyResult:
    """Apply every scope of the plan; failures are recorded and collected, never fatal.

    ``on_scope`` is told of each scope applied (its stats are set by then); ``worker`` names
    the worker applying it in the sync runs (None: ``inventory apply``).
    """
    result = ApplyResult()
    upsert_registries(engine, registries)
    for failure in reader.failures:
        result.failures.append(failure)
        record_failure(engine, failure, worker=worker)
    for planned in reader.scopes():
        try:
            counts = apply_scope(engine, planned, lock_timeout=lock_timeout, worker=worker)
        except StalePlan:
            result.failures.append(
                ScopeFailure.of(planned.scope, "StalePlan", "the inventory changed since this plan was made")
            )
            continue
        except psycopg.errors.LockNotAvailable:
            result.failures.append(
                ScopeFailure.of(
                    planned.scope,
                    "LockTimeout",
                    f"another apply holds this scope; gave up after {lock_timeout:g}s",
                )
            )
            continue
        result.counts += counts
        if on_scope is not None:
            on_scope(planned, counts)
    return result
