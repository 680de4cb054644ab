"""Reads of the webhooks: each declared one's status and backlog, its deliveries and their attempts.

For admin readers only (each face checks the reader's token); webhooks belong to no registry, so they take
no ``Scope``. Secrets are never read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from inventory.read import cursors
from inventory.read.database import Database
from inventory.read.paging import Page, keyset_page, page_size
from inventory.tables import webhook_deliveries, webhook_endpoints
from inventory.tables.webhook_endpoints import Endpoint


async def webhooks(db: Database) -> list[Endpoint]:
    """The declared webhooks, by name."""
    return [Endpoint(**row._mapping) for row in await db.rows(webhook_endpoints.listing())]


async def delivery_page(
    db: Database, webhook: str, state: str | None = None, first: int | None = None, after: str | None = None
) -> Page[Row[Any]]:
    """A page of the deliveries to ``webhook`` (in ``state``, when given), newest first."""
    size = page_size(first)
    bound_to = cursors.binding("deliveries", webhook, state)
    before = cursors.decode(after, bound_to, [cursors.integer])[0] if after is not None else None
    rows = await db.rows(webhook_deliveries.page(webhook, state, before, size))
    return keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, [row.id]))


async def attempts(db: Database, delivery_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """The attempts at each delivery of ``delivery_ids``, oldest first."""
    found: dict[int, list[Row[Any]]] = {i: [] for i in delivery_ids}
    for row in await db.rows(webhook_deliveries.attempts_of(delivery_ids)):
        found[row.delivery_id].append(row)
    return found
