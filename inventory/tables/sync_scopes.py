"""SQL of the ``sync_scopes`` table: registry regions shared by workers through Postgres, claimed with leases.

One row per registry region. A worker claims due rows with ``FOR UPDATE SKIP
LOCKED`` (two workers never claim the same row, and neither waits on the
other), owns them while its lease is in the future, renews the lease by
heartbeat, and releases them with the time they are next due. A worker that
dies stops renewing: once its lease expires, the row is due to any worker.

Functions take a psycopg connection keyword-only, meant to be in autocommit: each
statement is its own short transaction, so no row lock outlives the statement that took it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from inventory.config import InventoryConfig, RegistryConfig


@dataclass(frozen=True, order=True)
class Lease:
    """A registry region a worker holds."""

    registry_name: str
    region: str

    @property
    def label(self) -> str:
        return f"{self.registry_name}/{self.region}"


def declared_as(registry: RegistryConfig) -> str:
    """A short hash of the registry's config: a changed registry is synced again at once."""
    canonical = json.dumps(registry.model_dump(mode="json"), sort_keys=True)
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def reconcile(config: InventoryConfig, *, connection: psycopg.Connection[Any]) -> None:
    """Make ``sync_scopes`` match ``config``: new or changed regions due now; regions no longer
    declared (and stored regions nobody declares) due now for one last sync that removes their images."""
    names, regions, hashes = [], [], []
    for registry in config.registries:
        for region in registry.regions:
            names.append(registry.name)
            regions.append(region)
            hashes.append(declared_as(registry))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_scopes (registry_name, region, declared_as) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (registry_name, region) DO UPDATE SET declared_as = excluded.declared_as, next_due_at = now() "
            "WHERE sync_scopes.declared_as IS DISTINCT FROM excluded.declared_as",
            (names, regions, hashes),
        )
        cursor.execute(
            "UPDATE sync_scopes SET declared_as = NULL, next_due_at = now() "
            "WHERE declared_as IS NOT NULL AND (registry_name, region) NOT IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            (names, regions),
        )
        cursor.execute(
            "INSERT INTO sync_scopes (registry_name, region) "
            "SELECT DISTINCT registry_name, region FROM repositories WHERE removed_at IS NULL "
            "ON CONFLICT (registry_name, region) DO NOTHING"
        )


def claim(owner: str, limit: int, lease_seconds: float, *, connection: psycopg.Connection[Any]) -> list[Lease]:
    """Take up to ``limit`` due scopes whose lease is free or expired, most overdue first."""
    if limit <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH due AS ("
            "  SELECT registry_name, region FROM sync_scopes"
            "  WHERE next_due_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())"
            "  ORDER BY next_due_at, registry_name, region LIMIT %s FOR UPDATE SKIP LOCKED"
            ") UPDATE sync_scopes s SET owner = %s, last_claimed_at = now(), "
            "  lease_expires_at = now() + make_interval(secs => %s) "
            "FROM due WHERE (s.registry_name, s.region) = (due.registry_name, due.region) "
            "RETURNING s.registry_name, s.region",
            (limit, owner, lease_seconds),
        )
        return sorted(Lease(*row) for row in cursor)


def renew(
    owner: str, held: Iterable[Lease], lease_seconds: float, *, connection: psycopg.Connection[Any]
) -> set[Lease]:
    """Extend the leases ``owner`` still holds; return those (a missing one was lost)."""
    held = list(held)
    if not held:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sync_scopes SET lease_expires_at = now() + make_interval(secs => %s) "
            "WHERE owner = %s AND lease_expires_at >= now() AND (registry_name, region) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) RETURNING registry_name, region",
            (lease_seconds, owner, [h.registry_name for h in held], [h.region for h in held]),
        )
        return {Lease(*row) for row in cursor}


def hold(owner: str, registry_name: str, region: str, *, connection: psycopg.Connection[Any]) -> bool:
    """Whether ``owner``'s lease on the scope is live, as the transaction's last check before it writes:
    the row stays locked until the transaction ends, so no other worker claims the scope meanwhile (a
    claim skips locked rows) and the lease cannot lapse unnoticed between this check and the commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM sync_scopes WHERE registry_name = %s AND region = %s AND owner = %s "
            "AND lease_expires_at > clock_timestamp() FOR SHARE",  # now(): when the transaction began
            (registry_name, region, owner),
        )
        return cursor.fetchone() is not None


def declared(registry_name: str, region: str, *, connection: psycopg.Connection[Any]) -> bool:
    """Whether the inventory file still declares the scope, as the last check of a transaction that holds
    no lease (an event's sync): the row stays locked until the transaction ends, so the scope's last
    sync, which deletes the row, cannot interleave."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM sync_scopes WHERE registry_name = %s AND region = %s AND declared_as IS NOT NULL FOR SHARE",
            (registry_name, region),
        )
        return cursor.fetchone() is not None


def release(owner: str, lease: Lease, *, due_in: float, finished: bool, connection: psycopg.Connection[Any]) -> None:
    """Give the scope back, due again in ``due_in`` seconds. A finished scope the config no
    longer declares has had its last sync: its row goes."""
    with connection.cursor() as cursor:
        if finished:
            cursor.execute(
                "DELETE FROM sync_scopes WHERE registry_name = %s AND region = %s AND owner = %s "
                "AND declared_as IS NULL",
                (lease.registry_name, lease.region, owner),
            )
            if cursor.rowcount:
                return
        cursor.execute(
            "UPDATE sync_scopes SET owner = NULL, lease_expires_at = NULL, "
            "next_due_at = now() + make_interval(secs => %s), "
            "last_finished_at = CASE WHEN %s THEN now() ELSE last_finished_at END "
            "WHERE registry_name = %s AND region = %s AND owner = %s",
            (due_in, finished, lease.registry_name, lease.region, owner),
        )
