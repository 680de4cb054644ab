"""Reads of how the syncs went: sync runs, and how fresh each registry region is (``inventory.status``).

Functions over a ``Database`` and a ``Scope``, returning rows; a run or a region out of scope is read
exactly as a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select

from inventory.models import SyncRunRow
from inventory.read import cursors, scope
from inventory.read.database import Database
from inventory.read.paging import Page, keyset_page, page_size
from inventory.read.scope import Scope
from inventory.status import Freshness, RegionStatus
from inventory.tables import region_status

_sync_runs = SyncRunRow.__table__  # type: ignore[attr-defined]

RUN_STATUSES = ("running", "succeeded", "failed")


def _run_conditions(reader: Scope, status: str | None, registry_name: str | None) -> list[ColumnElement[bool]]:
    c = _sync_runs.c
    conditions = scope.registries(c.registry_name, reader)
    if status is not None:
        conditions.append(c.status == status)
    if registry_name is not None:
        conditions.append(c.registry_name == registry_name)
    return conditions


async def sync_run_page(
    db: Database,
    reader: Scope,
    status: str | None = None,
    registry_name: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Row[Any]]:
    """A page of sync runs (of ``status``, of the registry ``registry_name``, when given), newest first."""
    size = page_size(first)
    c = _sync_runs.c
    conditions = _run_conditions(reader, status, registry_name)
    bound_to = cursors.binding("syncRuns", status, registry_name, reader)
    if after is not None:
        (run_id,) = cursors.decode(after, bound_to, [cursors.integer])
        conditions.append(c.id < run_id)
    rows = await db.rows(select(_sync_runs).where(*conditions).order_by(c.id.desc()).limit(size + 1))
    return keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, [row.id]))


async def sync_run_count(
    db: Database, reader: Scope, status: str | None = None, registry_name: str | None = None
) -> int:
    conditions = _run_conditions(reader, status, registry_name)
    ((count,),) = await db.rows(select(func.count()).select_from(_sync_runs).where(*conditions))
    return int(count)


async def sync_runs_by_id(db: Database, reader: Scope, ids: Sequence[int]) -> dict[int, Row[Any]]:
    """The runs of ``ids`` ``reader`` may see (absent: none, or pruned by retention)."""
    c = _sync_runs.c
    rows = await db.rows(select(_sync_runs).where(c.id.in_(list(ids)), *scope.registries(c.registry_name, reader)))
    return {row.id: row for row in rows}


async def regions(db: Database, reader: Scope, names: Sequence[str]) -> dict[str, list[tuple[RegionStatus, Freshness]]]:
    """The status and freshness of every region each registry of ``names`` declares, by region (none out of
    scope)."""
    found: dict[str, list[tuple[RegionStatus, Freshness]]] = {name: [] for name in names}
    wanted = [name for name in names if reader is None or name in reader]
    for row in await db.rows(region_status.DECLARED_BY.bindparams(names=wanted)):
        found[row.registry_name].append((RegionStatus.from_row(row), Freshness.from_row(row)))
    return found


async def region_statuses(db: Database, reader: Scope, names: Sequence[str]) -> dict[str, list[RegionStatus]]:
    """The status of every region each registry of ``names`` declares, by region (none out of scope)."""
    return {name: [status for status, _ in found] for name, found in (await regions(db, reader, names)).items()}
