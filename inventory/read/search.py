"""SQL for listing images and repositories: filters, orders, and keyset pages (never OFFSET).

Pages are fetched ``first + 1`` rows at a time, to know whether there is a next
one. Every order ends with the image's identity (the registry type last, the
tiebreak of a private and a public repository of one name), so keys are unique and an
image that exists throughout a listing is seen exactly once, whatever is added
or removed between pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    DateTime,
    FromClause,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from inventory.config import SEVERITIES
from inventory.globs import glob_regex
from inventory.models import ImageRow, RepositoryRow
from inventory.read import scope
from inventory.read.keys import RepositoryKey
from inventory.read.scope import Scope

images = ImageRow.__table__  # type: ignore[attr-defined]
repositories = RepositoryRow.__table__  # type: ignore[attr-defined]

shown_images = [column for column in images.c if column.name not in ("updated_at", "fingerprint")]
"""The columns the API shows (the sync's bookkeeping stays behind)."""

_NO_TIME = "-infinity"
_NO_TIME_SQL = "'-infinity'::timestamp with time zone"


@dataclass(frozen=True)
class Order:
    """A keyset order: a non-null sort key, newest or largest first, then the identity.

    The key is written exactly as the partial indexes of migration 0003 write it,
    so that deep pages are index range scans.
    """

    name: str
    column: str
    sql_type: Any
    missing: Any
    missing_sql: str

    def key(self, c: Any = None) -> ColumnElement[Any]:
        """The sort key read from the columns ``c`` (the ``images`` table's by default)."""
        c = images.c if c is None else c
        return func.coalesce(c[self.column], literal_column(self.missing_sql, self.sql_type))

    def key_of(self, row: Any) -> Any:
        value = getattr(row, self.column)
        if value is None:
            return self.missing
        return value.isoformat() if isinstance(value, datetime) else value


ORDERS = {
    "PUSHED_AT": Order("PUSHED_AT", "image_pushed_at", DateTime(timezone=True), _NO_TIME, _NO_TIME_SQL),
    "SIZE": Order("SIZE", "image_size_in_bytes", BigInteger(), -1, "'-1'::bigint"),
    "LAST_PULL": Order("LAST_PULL", "last_recorded_pull_time", DateTime(timezone=True), _NO_TIME, _NO_TIME_SQL),
}
IDENTITY = ("registry_id", "region", "repository_name", "image_digest", "registry_type")
"""The image's identity in the order of the keyset indexes (``ix_images_live_by_*``)."""


@dataclass(frozen=True)
class ImageFilter:
    registry_types: Sequence[str] | None = None
    registry_ids: Sequence[str] | None = None
    regions: Sequence[str] | None = None
    repository_names: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    digests: Sequence[str] | None = None
    tag_status: str = "ANY"
    image_status: str = "ANY"
    pushed_after: datetime | None = None
    pushed_before: datetime | None = None
    min_severity: str | None = None
    include_removed: bool = False
    repository: RepositoryKey | None = field(default=None)
    """Restricts the listing to one repository (``Repository.images``): its (type, id, region, name)."""
    scope: Scope = None
    """What the reader may see (``inventory.read.scope``)."""


def _location_conditions(
    c: Any,
    registry_types: Sequence[str] | None,
    registry_ids: Sequence[str] | None,
    regions: Sequence[str] | None,
    repository_names: Sequence[str] | None,
    include_removed: bool,
) -> list[ColumnElement[bool]]:
    """The conditions images and repositories share (both tables have these columns)."""
    conditions: list[ColumnElement[bool]] = []
    if not include_removed:
        conditions.append(c.removed_at.is_(None))
    if registry_types is not None:
        conditions.append(c.registry_type.in_(registry_types))
    if registry_ids is not None:
        conditions.append(c.registry_id.in_(registry_ids))
    if regions is not None:
        conditions.append(c.region.in_(regions))
    if repository_names is not None:
        globs = [c.repository_name.regexp_match(glob_regex(g)) for g in repository_names]
        conditions.append(or_(*globs) if globs else false())
    return conditions


def _severity_at_least(severity: str, c: Any) -> ColumnElement[bool]:
    worse = SEVERITIES[: SEVERITIES.index(severity) + 1]
    counts = c.finding_severity_counts
    return or_(*(cast(counts[name].astext, Integer) > 0 for name in worse))


def image_conditions(f: ImageFilter, source: FromClause = images) -> list[ColumnElement[bool]]:
    """The filter's conditions on the columns of ``source`` (``images``, or ``past.images_at(T)``)."""
    c = source.c
    conditions = _location_conditions(
        c, f.registry_types, f.registry_ids, f.regions, f.repository_names, f.include_removed
    )
    if f.repository is not None:
        conditions.append(tuple_(c.registry_type, c.registry_id, c.region, c.repository_name) == tuple_(*f.repository))
    conditions += scope.repositories(c, f.scope)
    if f.tags is not None:
        conditions.append(c.image_tags.overlap(literal(list(f.tags), ARRAY(Text))))
    if f.digests is not None:
        conditions.append(c.image_digest.in_(f.digests))
    if f.tag_status == "TAGGED":
        conditions.append(func.cardinality(c.image_tags) > 0)
    elif f.tag_status == "UNTAGGED":
        conditions.append(func.cardinality(c.image_tags) == 0)
    if f.image_status != "ANY":
        conditions.append(c.image_status == f.image_status)
    if f.pushed_after is not None:
        conditions.append(c.image_pushed_at > f.pushed_after)
    if f.pushed_before is not None:
        conditions.append(c.image_pushed_at < f.pushed_before)
    if f.min_severity is not None:
        conditions.append(_severity_at_least(f.min_severity, c))
    return conditions


def image_page(
    f: ImageFilter, order: Order, after: Sequence[Any] | None, first: int, source: FromClause = images
) -> Select[Any]:
    """``first + 1`` images of ``source`` after the key ``after``, in ``order``.

    ``source`` is the ``images`` table or a selectable with the columns of ``shown_images``. When
    it is a UNION ALL (``past.images_at``), each branch gets the page's conditions, order and
    limit of its own: Postgres plans a UNION ALL branch that has a WHERE clause as a subquery of
    its own, and would otherwise sort all of its rows rather than read the branch's keyset index.

    The key is bound as parameters (``position_parameters``): the statement serves every position of
    its listing, given the parameters of another key.
    """
    position = None if after is None else _position(order, after)
    pages = [_branch_page(f, order, position, first, branch) for branch in branches(source)]
    if len(pages) == 1:
        return pages[0]
    merged = union_all(*pages).subquery("page")
    return select(merged).order_by(*(s.desc() for s in _sort(order, merged))).limit(first + 1)


def _position(order: Order, key: Sequence[Any]) -> tuple[ColumnElement[Any], ...]:
    """The key as bound parameters (named as ``position_parameters`` names them), its sort key cast to its type."""
    parameters: list[ColumnElement[Any]] = [bindparam(name, value) for name, value in position_parameters(key).items()]
    return (cast(parameters[0], order.sql_type), *parameters[1:])


def position_parameters(key: Sequence[Any]) -> dict[str, Any]:
    """The parameters of a page statement (``image_page``) that put it after ``key``."""
    return {f"after_{i}": value for i, value in enumerate(key)}


def branches(source: FromClause) -> list[FromClause]:
    """The branches of a UNION ALL subquery, each a subquery of its own; else ``[source]``."""
    element = getattr(source, "element", None)
    if isinstance(element, CompoundSelect):
        return [branch.subquery() for branch in element.selects]
    return [source]


def _sort(order: Order, source: FromClause) -> tuple[ColumnElement[Any], ...]:
    c = source.c
    return (order.key(c), *(c[name] for name in IDENTITY))


def _branch_page(
    f: ImageFilter, order: Order, position: Sequence[ColumnElement[Any]] | None, first: int, source: FromClause
) -> Select[Any]:
    sort = _sort(order, source)
    conditions = image_conditions(f, source)
    if position is not None:
        conditions.append(tuple_(*sort) < tuple_(*position))
    columns = [source.c[column.name] for column in shown_images]
    return select(*columns).where(*conditions).order_by(*(s.desc() for s in sort)).limit(first + 1)


COUNT_CAP = 1_000
"""Images counted one by one at most: past it, ``totalCount`` is this many and a lower bound."""


def image_count(f: ImageFilter, source: FromClause = images) -> Select[Any, Any]:
    """(how many images match, whether that is a lower bound): exact from the counters the syncs keep
    (``repositories.image_count``) when ``f`` narrows by where images are only, else counted up to
    ``COUNT_CAP`` (past it: ``COUNT_CAP``, a lower bound). Its cost is bounded either way."""
    if source is images and _by_location_only(f):
        c = repositories.c
        conditions = [*repository_conditions(_repositories_of(f)), c.removed_at.is_(None)]
        if f.repository is not None:
            key = (c.registry_type, c.registry_id, c.region, c.repository_name)
            conditions.append(tuple_(*key) == tuple_(*f.repository))
        return select(func.coalesce(func.sum(c.image_count), 0), literal_column("false")).where(*conditions)
    matching = select(literal(1)).select_from(source).where(*image_conditions(f, source)).limit(COUNT_CAP + 1)
    counted = func.count()
    return select(func.least(counted, COUNT_CAP), counted > COUNT_CAP).select_from(matching.subquery())


def _by_location_only(f: ImageFilter) -> bool:
    """Whether ``f`` selects the present images of some repositories, nothing narrower."""
    return (
        f.tags is None and f.digests is None and f.tag_status == "ANY" and f.image_status == "ANY"
        and f.pushed_after is None and f.pushed_before is None and f.min_severity is None and not f.include_removed
    )  # fmt: skip


def _repositories_of(f: ImageFilter) -> RepositoryFilter:
    return RepositoryFilter(registry_types=f.registry_types, registry_ids=f.registry_ids, regions=f.regions,
                            repository_names=f.repository_names, scope=f.scope)  # fmt: skip


def image_key(order: Order, row: Any) -> list[Any]:
    return [order.key_of(row), *(getattr(row, name) for name in IDENTITY)]


@dataclass(frozen=True)
class RepositoryFilter:
    registry_names: Sequence[str] | None = None
    registry_types: Sequence[str] | None = None
    registry_ids: Sequence[str] | None = None
    regions: Sequence[str] | None = None
    repository_names: Sequence[str] | None = None
    include_removed: bool = False
    scope: Scope = None
    """What the reader may see (``inventory.read.scope``)."""


def repository_conditions(f: RepositoryFilter, source: FromClause = repositories) -> list[ColumnElement[bool]]:
    c = source.c
    conditions = _location_conditions(
        c, f.registry_types, f.registry_ids, f.regions, f.repository_names, f.include_removed
    )
    if f.registry_names is not None:
        conditions.append(c.registry_name.in_(f.registry_names))
    conditions += scope.registries(c.registry_name, f.scope)
    return conditions


REPOSITORY_ORDER = ("registry_id", "region", "repository_name", "registry_type")
"""Repositories are listed by their identity, the registry type last (the tiebreak)."""


def repository_page(
    f: RepositoryFilter, after: list[Any] | None, first: int, source: FromClause = repositories
) -> Select[Any]:
    """``first + 1`` repositories of ``source`` (``repositories`` or ``past.repositories_at``) after ``after``,
    in ``REPOSITORY_ORDER``."""
    c = source.c
    sort = tuple(c[name] for name in REPOSITORY_ORDER)
    conditions = repository_conditions(f, source)
    if after is not None:
        conditions.append(tuple_(*sort) > tuple_(*after))
    return select(source).where(*conditions).order_by(*sort).limit(first + 1)


def repository_count(f: RepositoryFilter, source: FromClause = repositories) -> Select[Any]:
    return select(func.count()).select_from(source).where(*repository_conditions(f, source))
