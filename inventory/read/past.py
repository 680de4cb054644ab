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
(up to ``FEW``, scaled to the branch's size; read from the bound's index alone); Postgres
runs only the way whose guard holds (a one-time filter).

The guard is read at run time, but both ways are planned before it, from estimates that
treat a branch's conditions as independent. A removed image's two bounds are not: its values
stopped changing when it was removed, so most of the images removed after T were unchanged
since before T, while ``changed_at``'s statistics are the whole table's (present images,
rescanned lately). Multiplied, the estimates say a few dozen of them are valid at T, and the
walk would be planned as a read of every candidate and a sort (27,000 rows for a page at an
early T, in 300,000 images). So that branch's ``changed_at <= T`` is written where Postgres
does not estimate it (``_unestimated``), and its candidates as ``removed_at > T`` alone
(``IS NOT NULL`` is implied; stated, it would be counted a second time).

A page's statement is large (six selects of every shown column, each wrapped by the page);
the branches read ``table()`` copies of the tables, whose plain columns it builds faster.

A repository was present at T when it had been seen by then and was not removed: its
last ``repository.added``/``repository.removed`` event at or before T decides (a
repository removed then added again has ``removed_at`` null, its removal is only in the
feed), else ``removed_at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Float,
    FromClause,
    Select,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    null,
    or_,
    select,
    table,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import REGCLASS
from sqlalchemy.sql.expression import TableClause

from inventory.models import ImageEventRow, ImageVersionRow
from inventory.read import search

versions = ImageVersionRow.__table__  # type: ignore[attr-defined]
events = ImageEventRow.__table__  # type: ignore[attr-defined]

_TIMESTAMP = DateTime(timezone=True)


def _lightweight(t: Any) -> TableClause:
    """``t`` as a ``table()`` of plain columns: the same SQL; proxying them in the page's subqueries
    costs a fraction of what a ``Table``'s columns do (they took as long as running the query)."""
    return table(t.name, *(column(c.name, c.type) for c in t.c), schema=t.schema)


_images = _lightweight(search.images)
_versions = _lightweight(versions)


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
    for shown in search.shown_images:
        name = shown.name
        if name in instead:
            out.append(instead[name].label(name))
        elif name == "removed_at":
            out.append(null().cast(_TIMESTAMP).label(name))
        elif name == "last_seen_at":
            out.append(func.least(c.last_seen_at, _time(at)).label(name))
        else:
            out.append(c[name])
    return out


def _unestimated(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """``condition``, in a CASE: Postgres estimates that it holds for half the rows, whatever the
    statistics of its columns say (for a condition that correlates with the others of its branch)."""
    return case((condition, true()))


FEW = 6_000
"""Below this many candidates in a branch of a million rows, it reads them through its bound's index and
sorts them; from there, it walks its keyset index. There a page of a hundred costs the same both ways: to
find it among c valid rows of N, a walk reads 100 N / c of them, but drops most as it reads them, at about
a third of the cost of a candidate read, projected and sorted (measured on bench/history.py). So in a
branch of N rows the two meet at ``FEW * sqrt(N / 1,000,000)`` candidates, each way's worst."""

_FEW_AT_LEAST = 10_000
"""A branch of fewer rows (or not counted yet) is taken to have this many: either way costs next to nothing."""

_pg_class = table("pg_class", column("oid", REGCLASS), column("reltuples", Float))


def _few(index: str) -> ColumnElement[int]:
    """``FEW`` for a branch whose bound's index is ``index``, of as many rows as Postgres counted in it
    (``pg_class.reltuples``, kept by VACUUM and ANALYZE)."""
    rows = func.greatest(_pg_class.c.reltuples, _FEW_AT_LEAST)
    few = func.ceil(FEW * func.sqrt(rows / 1_000_000.0))
    return select(cast(few, BigInteger)).where(_pg_class.c.oid == cast(literal(index), REGCLASS)).scalar_subquery()


def _either(
    columns: list[ColumnElement[Any]],
    bound: Any,
    index: str,
    candidates: ColumnElement[bool],
    valid: list[ColumnElement[bool]],
) -> list[Select[Any]]:
    """A branch written both ways: its few ``candidates`` (``bound`` in the range of its ``index``) read by
    that index, or its keyset walk; ``valid`` are the rest of its conditions."""
    few_rows = _few(index)
    counted = select(bound).where(candidates).order_by(bound).limit(few_rows).subquery()
    guard = select((func.count() < few_rows).label("few")).select_from(counted).cte()  # counted once for both ways
    few = select(guard.c.few).scalar_subquery()
    # Ordered by the bound, a branch is planned to read all its candidates through the bound's index
    # (the outer sort then orders them by the page's key); unordered, as a keyset walk.
    by_bound = select(*columns).where(candidates, *valid, few).order_by(bound)
    walk = select(*columns).where(candidates, *valid, ~few)
    return [by_bound, walk]


def images_at(at: datetime) -> FromClause:
    """Every image present at ``at``, with its values then (the columns of ``search.shown_images``)."""
    c = _images.c
    present = _either(
        _columns(c, at),
        c.changed_at,
        "ix_images_live_changed_at",
        and_(c.removed_at.is_(None), c.changed_at <= at),
        [_pushed_by(c, at)],
    )
    removed = _either(
        _columns(c, at),
        c.removed_at,
        "ix_images_removed_at",
        c.removed_at > at,  # removed after T: not null
        [_unestimated(c.changed_at <= at), _pushed_by(c, at)],  # true of most of them: not estimated
    )
    v = _versions.c
    past = _either(
        _columns(v, at, changed_at=v.valid_from, last_seen_at=_time(at)),
        v.valid_to,
        "ix_image_versions_valid_to",
        v.valid_to > at,
        [v.valid_from <= at, _pushed_by(v, at)],
    )
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
