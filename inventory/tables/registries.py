"""SQL of the ``registries`` table: the registries the config declares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from inventory.config import RegistryConfig


def upsert(registries: Iterable[RegistryConfig], *, connection: psycopg.Connection[Any]) -> None:
    """Store the declared registries (their labels are what repositories refer to); unchanged rows stay."""
    rows = [(r.name, r.type, r.account_id, list(r.regions)) for r in registries]
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO registries (name, type, account_id, regions) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET type = excluded.type, account_id = excluded.account_id, "
            "regions = excluded.regions, updated_at = now() "
            "WHERE (registries.type, registries.account_id, registries.regions) "
            "IS DISTINCT FROM (excluded.type, excluded.account_id, excluded.regions)",
            rows,
        )


def names(*, connection: psycopg.Connection[Any]) -> set[str]:
    """The names of the registries the inventory knows (stored by each sync)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM registries")
        return {row[0] for row in cursor}
