"""Reads of the inventory, present or past: registries, repositories and images, by key and by search.

Each is a function over a ``Database`` and a ``Scope`` (``inventory.read.scope``) that returns rows:
an object out of scope is read exactly as a missing one. Listings are keyset pages
(``inventory.read.paging``) whose cursors are bound to the listing, its filter, its time and the scope.
A past time is an ``AsOf``, made by ``as_of`` (checked against the retained history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NewType

from sqlalchemy import ColumnElement, FromClause, Row, func, literal_column, select, tuple_

from inventory.models import RegistryRow
from inventory.read import cursors, past, scope, search
from inventory.read.bounds import check_globs
from inventory.read.database import Database, Prepared, Statements
from inventory.read.errors import history_not_retained, invalid_parameter
from inventory.read.keys import ImageKey, RepositoryKey
from inventory.read.paging import Page, keyset_page, page_size
from inventory.read.scope import Scope
from inventory.tables.image_versions import horizon

_registries = RegistryRow.__table__  # type: ignore[attr-defined]

AsOf = NewType("AsOf", datetime)
"""A past time checked by ``as_of``: with its offset, not in the future, within the retained history."""


# -infinity (history kept since the inventory began) is no Python datetime: null here.
_KEPT_SINCE = func.nullif(horizon().scalar_subquery(), literal_column("'-infinity'::timestamptz"))
_KEPT_SINCE_AND_NOW = Prepared(select(_KEPT_SINCE.label("kept_since"), func.now().label("now")))
"""What ``as_of`` checks a time against, in every request that reads the past."""


async def as_of(db: Database, at: datetime, argument: str = "asOf") -> AsOf:
    """``at`` checked: with its offset, not in the future, not before the retained history
    (HistoryNotRetained); ``argument`` names it in the error."""
    if at.tzinfo is None:
        raise invalid_parameter(f"{argument}: give the time with its offset, e.g. 2026-01-01T00:00:00Z")
    ((since, now),) = await db.rows(_KEPT_SINCE_AND_NOW)
    if at > now:
        raise invalid_parameter(f"{argument}: {at.isoformat()} is in the future (now is {now.isoformat()})")
    if since is not None and at < since:
        raise history_not_retained(since, argument)
    return AsOf(at)


def _images(at: AsOf | None) -> FromClause:
    return search.images if at is None else past.images_at(at)


def _repositories(at: AsOf | None) -> FromClause:
    return search.repositories if at is None else past.repositories_at(at)


def _binding(at: AsOf | None) -> list[str]:
    """What binds a cursor to its time (nothing at present: present-time cursors are unchanged)."""
    return [] if at is None else [at.astimezone(UTC).isoformat()]


# registries ------------------------------------------------------------------------


async def registries(db: Database, reader: Scope) -> list[Row[Any]]:
    """The registries ``reader`` may see, by name."""
    c = _registries.c
    return await db.rows(select(_registries).where(*scope.registries(c.name, reader)).order_by(c.name))


async def registries_by_name(db: Database, reader: Scope, names: Sequence[str]) -> dict[str, Row[Any]]:
    c = _registries.c
    rows = await db.rows(select(_registries).where(c.name.in_(list(names)), *scope.registries(c.name, reader)))
    return {row.name: row for row in rows}


async def accounts(db: Database, reader: Scope, kind: str, region: str) -> list[str]:
    """The accounts of the registries of type ``kind`` that ``reader`` may see and that declare ``region``."""
    c = _registries.c
    where = [c.type == kind, c.regions.contains([region]), *scope.registries(c.name, reader)]
    rows = await db.rows(select(c.account_id).where(*where).distinct().order_by(c.account_id))
    return [row.account_id for row in rows]


# repositories ----------------------------------------------------------------------


async def repositories_by_key(
    db: Database, reader: Scope, keys: Sequence[RepositoryKey], at: AsOf | None = None
) -> dict[RepositoryKey, Row[Any]]:
    """The repositories of ``keys`` (present at ``at``, when given) that ``reader`` may see."""
    if not keys:
        return {}
    source = _repositories(at)
    c = source.c
    identity = tuple_(c.registry_type, c.registry_id, c.region, c.repository_name)
    statement = select(source).where(identity.in_(list(keys)), *scope.registries(c.registry_name, reader))
    return {(r.registry_type, r.registry_id, r.region, r.repository_name): r for r in await db.rows(statement)}


async def repository_page(
    db: Database,
    reader: Scope,
    f: search.RepositoryFilter,
    first: int | None = None,
    after: str | None = None,
    at: AsOf | None = None,
) -> Page[Row[Any]]:
    """A page of the repositories ``f`` selects (present at ``at``), by identity."""
    size = page_size(first)
    check_globs(f.repository_names, "filter.repositoryNames")
    f = replace(f, scope=reader)
    bound_to = cursors.binding("repositories", f, *_binding(at))
    shape = [cursors.text] * len(search.REPOSITORY_ORDER)
    position = cursors.decode(after, bound_to, shape) if after is not None else None
    rows = await db.rows(search.repository_page(f, position, size, _repositories(at)))
    return keyset_page(
        rows, size, after, lambda row: cursors.encode(bound_to, [getattr(row, k) for k in search.REPOSITORY_ORDER])
    )


async def repository_count(db: Database, reader: Scope, f: search.RepositoryFilter, at: AsOf | None = None) -> int:
    ((count,),) = await db.rows(search.repository_count(replace(f, scope=reader), _repositories(at)))
    return int(count)


async def image_counts(
    db: Database, reader: Scope, keys: Sequence[RepositoryKey], at: AsOf | None = None
) -> dict[RepositoryKey, int]:
    """How many images are present (at ``at``) in each repository of ``keys``; absent: none."""
    if not keys:
        return {}
    c = _images(at).c
    key = (c.registry_type, c.registry_id, c.region, c.repository_name)
    where = [tuple_(*key).in_(list(keys)), c.removed_at.is_(None), *scope.repositories(c, reader)]
    rows = await db.rows(select(*key, func.count()).where(*where).group_by(*key))
    return {(r[0], r[1], r[2], r[3]): int(r[4]) for r in rows}


REPOSITORY_TAGS = 1_000
"""The most tags ``repository_tags`` reads (alphabetically first)."""


async def repository_tags(db: Database, reader: Scope, key: RepositoryKey, at: AsOf | None = None) -> list[str]:
    """The tags of the images present (at ``at``) in repository ``key``, alphabetically (the first
    ``REPOSITORY_TAGS``); none if ``reader`` may not see it."""
    source = _images(at)
    c = source.c
    where = [
        tuple_(c.registry_type, c.registry_id, c.region, c.repository_name) == tuple_(*key),
        c.removed_at.is_(None),
        *scope.repositories(c, reader),
    ]
    tag = func.unnest(c.image_tags).label("tag")
    tags = select(tag).where(*where).subquery()
    rows = await db.rows(select(tags.c.tag).distinct().order_by(tags.c.tag).limit(REPOSITORY_TAGS))
    return [row.tag for row in rows]


# images ----------------------------------------------------------------------------


async def images_by_key(
    db: Database, reader: Scope, keys: Sequence[ImageKey], at: AsOf | None = None
) -> dict[ImageKey, Row[Any]]:
    """The images of ``keys`` (as they were at ``at``, when given) that ``reader`` may see, removed ones too."""
    if not keys:
        return {}
    c = _images(at).c
    identity = tuple_(c.registry_type, c.registry_id, c.region, c.repository_name, c.image_digest)
    columns = [c[column.name] for column in search.shown_images]
    conditions: list[ColumnElement[bool]] = [identity.in_(list(keys)), *scope.repositories(c, reader)]
    rows = await db.rows(select(*columns).where(*conditions))
    return {(r.registry_type, r.registry_id, r.region, r.repository_name, r.image_digest): r for r in rows}


def image_filter(f: search.ImageFilter) -> search.ImageFilter:
    """``f`` checked: valid globs, a push window that is one."""
    check_globs(f.repository_names, "filter.repositoryNames")
    if f.pushed_after and f.pushed_before and f.pushed_after >= f.pushed_before:
        raise invalid_parameter("filter: pushedAfter must be earlier than pushedBefore")
    return f


def _image_position(after: str, bound_to: str, order: search.Order) -> list[Any]:
    sort_key = cursors.size if order.name == "SIZE" else cursors.time_or_never
    return cursors.decode(after, bound_to, [sort_key, *[cursors.text] * len(search.IDENTITY)])


async def image_page(
    db: Database,
    reader: Scope,
    f: search.ImageFilter,
    order: search.Order = search.ORDERS["PUSHED_AT"],
    first: int | None = None,
    after: str | None = None,
    at: AsOf | None = None,
) -> Page[Row[Any]]:
    """A page of the images ``f`` selects (as they were at ``at``), in ``order``."""
    size = page_size(first)
    f = replace(image_filter(f), scope=reader)
    listing = cursors.canonical("images", f, order.name, *_binding(at))
    bound_to = cursors.hash_of(listing)
    position = _image_position(after, bound_to, order) if after is not None else None
    key = (listing, size, position is not None)
    statement = _PAGES.get(key, lambda: search.image_page(f, order, position, size, _images(at)))
    rows = await db.rows(statement, None if position is None else search.position_parameters(position))
    return keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, search.image_key(order, row)))


_PAGES = Statements(128)
"""Image pages' statements, by (listing, page size, whether after a position)."""


async def image_count(db: Database, reader: Scope, f: search.ImageFilter, at: AsOf | None = None) -> tuple[int, bool]:
    """(how many images ``f`` selects, whether that is a lower bound): ``search.image_count``."""
    ((total, lower_bound),) = await db.rows(search.image_count(replace(f, scope=reader), _images(at)))
    return int(total), bool(lower_bound)
