"""SQL of the ``repositories`` table: the stored repositories of a region, and their bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import text

from inventory.sync.plan import RepositoryDescription, Scope, StoredRepository

IMAGE_COUNTS = text(
    "SELECT registry_name, region, sum(image_count) AS images FROM repositories "
    "WHERE removed_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
)
"""Present images per registry region (``image_count`` is kept by each sync): as cheap as the fleet is small."""

IMAGE_COUNTS_OF = text(
    "SELECT registry_name, region, sum(image_count) AS images FROM repositories "
    "WHERE removed_at IS NULL AND registry_name = ANY(:names) GROUP BY 1, 2 ORDER BY 1, 2"
)
"""``IMAGE_COUNTS`` of the registries ``names``."""

_KEY = ("registry_type", "registry_id", "region", "repository_name")
_IN_SCOPE = " AND ".join(f"{column} = %s" for column in _KEY)


def live(
    *, connection: psycopg.Connection[Any], registry_name: str | None = None, region: str | None = None
) -> list[StoredRepository]:
    """Stored repositories not marked removed (of one registry region, when given), as last described."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT registry_name, registry_type, registry_id, region, repository_name, "
            "repository_arn, repository_uri, created_at FROM repositories "
            "WHERE removed_at IS NULL AND (%(name)s::text IS NULL OR registry_name = %(name)s) "
            "AND (%(region)s::text IS NULL OR region = %(region)s) ORDER BY 1, 3, 4, 5, 2",
            {"name": registry_name, "region": region},
        )
        return [StoredRepository(Scope(*row[:5]), RepositoryDescription(*row[5:])) for row in cursor]


def present(scope: Scope, *, connection: psycopg.Connection[Any]) -> tuple[RepositoryDescription, int] | None:
    """The repository as last described and its present images, when stored as present; else None."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT repository_arn, repository_uri, created_at, image_count FROM repositories "
            f"WHERE {_IN_SCOPE} AND removed_at IS NULL",
            scope.key,
        )
        row = cursor.fetchone()
    return None if row is None else (RepositoryDescription(*row[:3]), row[3])


def upsert(
    scope: Scope, description: RepositoryDescription, *, image_delta: int, connection: psycopg.Connection[Any]
) -> bool | None:
    """Store the repository as listed, synced now, with ``image_delta`` more present images.

    Returns what it was before: None when never stored, False when stored as removed, True when present.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH previous AS (SELECT removed_at IS NULL AS present FROM repositories WHERE {_IN_SCOPE}) "
            "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name, "
            "repository_arn, repository_uri, created_at, last_synced_at, image_count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), %s) "
            "ON CONFLICT (registry_type, registry_id, region, repository_name) DO UPDATE SET "
            "registry_name = excluded.registry_name, repository_arn = excluded.repository_arn, "
            "repository_uri = excluded.repository_uri, created_at = excluded.created_at, "
            "last_seen_at = now(), last_synced_at = now(), removed_at = NULL, "
            "image_count = repositories.image_count + excluded.image_count "
            "RETURNING (SELECT present FROM previous)",
            (
                *scope.key,
                *scope.key,
                scope.registry_name,
                description.repository_arn,
                description.repository_uri,
                description.created_at,
                image_delta,
            ),
        )
        row = cursor.fetchone()
    assert row is not None
    present: bool | None = row[0]
    return present


def add_images(scope: Scope, delta: int, *, connection: psycopg.Connection[Any]) -> None:
    """``delta`` more present images (fewer when negative): kept in step by the sync that changed them."""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE repositories SET image_count = image_count + %s WHERE {_IN_SCOPE}", (delta, *scope.key))


def mark_removed(scope: Scope, *, connection: psycopg.Connection[Any]) -> bool:
    """The repository is gone: so are its images. Whether it was present until now."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE repositories SET removed_at = now(), last_synced_at = now(), image_count = 0 "
            f"WHERE {_IN_SCOPE} AND removed_at IS NULL",
            scope.key,
        )
        return cursor.rowcount > 0


def touch(scopes: Sequence[Scope], *, connection: psycopg.Connection[Any]) -> None:
    """Unchanged repositories, synced now: one statement for a whole region's."""
    if not scopes:
        return
    columns = list(zip(*(scope.key for scope in scopes), strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE repositories r SET last_synced_at = now(), last_seen_at = now() "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS u(registry_type, registry_id, region, repository_name) "
            "WHERE (r.registry_type, r.registry_id, r.region, r.repository_name) "
            "= (u.registry_type, u.registry_id, u.region, u.repository_name)",
            [list(column) for column in columns],
        )
