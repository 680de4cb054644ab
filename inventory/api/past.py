"""The inventory as of a past time T: selectables the searches read in place of the tables.

An image was present at T with the values of its version whose interval holds T: its
``images`` row (the current version, from ``changed_at`` until ``removed_at``) or one of
its ``image_versions`` (``valid_from`` until ``valid_to``); at most one holds at any T.
``images_at`` is the UNION ALL of three branches, each one an index's worth of rows
(``ix_images_live_by_*``: present now, ``ix_images_removed_by_*``: removed now,
``ix_image_versions_by_*``: past versions). Postgres plans each branch apart (it does
not flatten a UNION ALL branch that has a WHERE clause), so ``search.image_page`` gives
every branch the page's filter, keyset, order and limit: a page is three index range
scans of ``first + 1`` rows at most, then a sort of those few, never of all that was held.

A walk down a keyset index reads past the rows that were not valid at T, so it is cheap
only when most of the branch's rows were. When few were (present images unchanged since
an early T, images removed after a late T, versions that ended after a late T), the
branch instead reads those few through the index on its interval's bound
(``ix_images_live_changed_at``, ``ix_images_removed_at``, ``ix_image_versions_valid_to``)
and sorts them. Each branch is written both ways, guarded by a count of its candidates
(at most ``FEW``, read from the bound's index alone); Postgres runs only the way whose
guard holds (a one-time filter).

A repository was present at T when it had been seen by then and was not removed: its
last ``repository.added``/``repository.removed`` event at or before T decides (a
repository removed then added again has ``removed_at`` null, its removal is only in the
feed), else ``removed_at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    FromClause,
    Select,
    and_,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from inventory.api import search
from inventory.models import ImageEventRow, ImageVersionRow

versions = ImageVersionRow.__table__  # type: ignore[attr-defined]
events = ImageEventRow.__table__  # type: ignore[attr-defined]

_TIMESTAMP = DateTime(timezone=True)


def _time(at: datetime) -> ColumnElement[datetime]:
    """T as a typed value (a bare parameter in a UNION's select list would be text)."""
    return cast(literal(at, _TIMESTAMP), _TIMESTAMP)


def _pushed_by(c: Any, at: datetime) -> ColumnElement[bool]:
    """An image pushed after T was not present at T: written as the PUSHED_AT index's key,
    so that a page in that order scans from T down, not from the newest push."""
    return search.ORDERS["PUSHED_AT"].key(c) <= _time(at)


def _columns(c: Any, at: datetime, **instead: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    """``search.shown_images`` read from ``c``, as of T: removed_at null (the image was present),
    last_seen_at no later than T, and the columns ``instead`` gives."""
    out: list[ColumnElement[Any]] = []
    for column in search.shown_images:
        name = column.name
        if name in instead:
            out.append(instead[name].label(name))
        elif name == "removed_at":
            out.append(null().cast(_TIMESTAMP).label(name))
        elif name == "last_seen_at":
            out.append(func.least(c.last_seen_at, _time(at)).label(name))
        else:
            out.append(c[name])
    return out


FEW = 10_000
"""Up to this many candidates, a branch reads them through its bound's index and sorts them; past it,
it walks its keyset index. Either way it reads about this many rows at worst (a page of a hundred
out of a million; the cost of both grows as the square root of the table's size)."""


def _either(
    columns: list[ColumnElement[Any]], bound: Any, candidates: ColumnElement[bool], valid: list[ColumnElement[bool]]
) -> list[Select[Any]]:
    """A branch written both ways: its few ``candidates`` (``bound`` in its index's range) read by that
    index, or its keyset walk; ``valid`` are the rest of its conditions."""
    counted = select(bound).where(candidates).order_by(bound).limit(FEW).subquery()
    guard = select((func.count() < FEW).label("few")).select_from(counted).cte()  # counted once for both ways
    few = select(guard.c.few).scalar_subquery()
    # Ordered by the bound, a branch is planned to read all its candidates through the bound's index
    # (the outer sort then orders them by the page's key); unordered, as a keyset walk.
    by_bound = select(*columns).where(candidates, *valid, few).order_by(bound)
    walk = select(*columns).where(candidates, *valid, ~few)
    return [by_bound, walk]


def images_at(at: datetime) -> FromClause:
    """Every image present at ``at``, with its values then (the columns of ``search.shown_images``)."""
    c = search.images.c
    present = _either(
        _columns(c, at), c.changed_at, and_(c.removed_at.is_(None), c.changed_at <= at), [_pushed_by(c, at)]
    )
    removed = _either(
        _columns(c, at), c.removed_at, and_(c.removed_at.is_not(None), c.removed_at > at),
        [c.changed_at <= at, _pushed_by(c, at)],
    )  # fmt: skip
    v = versions.c
    past = _either(
        _columns(v, at, changed_at=v.valid_from, last_seen_at=_time(at)), v.valid_to, v.valid_to > at,
        [v.valid_from <= at, _pushed_by(v, at)],
    )  # fmt: skip
    return union_all(*present, *removed, *past).subquery("images_at")


def _last_repository_event(r: Any, at: datetime) -> Any:
    """The type of the repository's last ``repository.*`` event at or before T (null when none)."""
    e = events.c
    # Ids of one repository are drawn under its scope's lock, so their order is the events' order.
    return (
        select(e.type)
        .where(
            e.registry_type == r.registry_type,
            e.registry_id == r.registry_id,
            e.region == r.region,
            e.repository_name == r.repository_name,
            e.image_digest.is_(None),
            e.type.in_(("repository.added", "repository.removed")),
            e.occurred_at <= at,
        )
        .order_by(e.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def present_at(r: Any, at: datetime) -> ColumnElement[bool]:
    """Whether the repository whose columns are ``r`` was present at ``at``."""
    # The comparison is null when there is no event: removed_at decides.
    by_events = _last_repository_event(r, at) == "repository.added"
    return and_(r.first_seen_at <= at, func.coalesce(by_events, or_(r.removed_at.is_(None), r.removed_at > at)))


def repositories_at(at: datetime) -> FromClause:
    """Every repository present at ``at`` (the columns of ``repositories``, removed_at null)."""
    repositories = search.repositories
    r = repositories.c
    columns = [null().cast(_TIMESTAMP).label("removed_at") if column.name == "removed_at" else column for column in r]
    return select(*columns).where(present_at(r, at)).subquery("repositories_at")
