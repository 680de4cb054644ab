"""Reads of the stored inventory that plans are made against (psycopg cursors, no writes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import psycopg

from inventory.sync.plan import Scope, StoredImage
from inventory.sync.transform import FIELDS, Values

_COLUMNS = ", ".join(FIELDS)
_IN_SCOPE = "registry_id = %s AND region = %s AND repository_name = %s"
BATCH = 1000


def stored_index(connection: psycopg.Connection[Any], scope: Scope) -> dict[str, StoredImage]:
    """digest → (fingerprint, removed?) of every stored image of the scope, removed ones too."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT image_digest, fingerprint, removed_at IS NOT NULL FROM images WHERE {_IN_SCOPE}", scope.key
        )
        return {digest: StoredImage(stored, removed) for digest, stored, removed in cursor}


def stored_values(
    connection: psycopg.Connection[Any], scope: Scope, digests: Iterable[str]
) -> dict[str, tuple[Values, bool]]:
    """digest → (values, removed?) of the given stored images."""
    found: dict[str, tuple[Values, bool]] = {}
    with connection.cursor() as cursor:
        for batch in batched(digests, BATCH):
            cursor.execute(
                f"SELECT image_digest, removed_at IS NOT NULL, {_COLUMNS} FROM images "
                f"WHERE {_IN_SCOPE} AND image_digest = ANY(%s)",
                (*scope.key, batch),
            )
            for digest, removed, *values in cursor:
                found[digest] = (tuple(values), removed)
    return found


def scope_version(connection: psycopg.Connection[Any], scope: Scope) -> str:
    """A token that changes whenever any stored image of the scope is written."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), max(updated_at) FROM images WHERE {_IN_SCOPE}",
            scope.key,
        )
        row = cursor.fetchone()
    assert row is not None
    count, latest = row
    return f"{count}:{latest.isoformat() if latest else '-'}"


@dataclass(frozen=True)
class StoredRepository:
    registry_name: str
    registry_type: str
    registry_id: str
    region: str
    repository_name: str

    def scope(self) -> Scope:
        return Scope(self.registry_name, self.registry_type, self.registry_id, self.region, self.repository_name)


def live_repositories(
    connection: psycopg.Connection[Any], registry_name: str | None = None, region: str | None = None
) -> list[StoredRepository]:
    """Stored repositories not marked removed (of one registry region, when given), with their
    registry's label and type."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.registry_name, g.type, r.registry_id, r.region, r.repository_name "
            "FROM repositories r JOIN registries g ON g.name = r.registry_name "
            "WHERE r.removed_at IS NULL AND (%(name)s::text IS NULL OR r.registry_name = %(name)s) "
            "AND (%(region)s::text IS NULL OR r.region = %(region)s) ORDER BY 1, 3, 4, 5",
            {"name": registry_name, "region": region},
        )
        return [StoredRepository(*row) for row in cursor]


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
