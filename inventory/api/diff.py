"""``diff(from, to)``: the net change per image between two times.

The images present at ``from`` and at ``to`` (``past.images_at``) are joined on the
image's identity (a FULL OUTER JOIN): present at ``to`` only, the image was ADDED;
at ``from`` only, REMOVED; at both with different values, CHANGED. An image added
and removed inside the window is in neither, and an unchanged one (removed and
restored as it was, say) is left out, so only net changes appear. Values compare as
``inventory.sync.transform.changed_fields`` compares them: tags as sets, severity
counts as maps (an empty map as none). An image appears when it matches the filter
at either time, so a tag filter shows the image that gained or lost the tag.

Pages are keyset-ordered by identity, in the order of the primary key of ``images``
(and of ``ix_image_versions_image``); cursors are bound to the two times and the filter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import strawberry
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    FromClause,
    Select,
    and_,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from strawberry import relay

from inventory.api import cursors
from inventory.api.context import Context, image_filter
from inventory.api.errors import invalid_parameter
from inventory.api.events import FieldChange
from inventory.api.paging import keyset_page, page_size
from inventory.api.resolvers import resolver
from inventory.api.types import EDGES, ImageFilterInput, RegistryType, registry_type_of
from inventory.read import past, search
from inventory.sync.transform import FIELDS, TAGS, Values, changed_fields

KEY = ("registry_type", "registry_id", "region", "repository_name", "image_digest")
"""The image's identity in the order of the primary key of ``images``: the order of a diff's pages."""
_NONE: Values = tuple([] if i == TAGS else None for i in range(len(FIELDS)))
"""The values of no image: an added image's changes are its values that differ from these."""


@strawberry.enum(description="How an image differs between the two times of a diff.")
class ImageDiffKind(enum.Enum):
    ADDED = strawberry.enum_value("ADDED", description="Present at `to`, not at `from`.")
    REMOVED = strawberry.enum_value("REMOVED", description="Present at `from`, not at `to`.")
    CHANGED = strawberry.enum_value("CHANGED", description="Present at both, with different values.")


@strawberry.type(description="The net change of one image between two times.")
class ImageDiff:
    registry_type: RegistryType
    registry_id: str
    region: str
    repository_name: str
    image_digest: str
    kind: ImageDiffKind
    changes: list[FieldChange] = strawberry.field(
        description="Each field that differs, by name: for ADDED its values at `to` (before null), for REMOVED "
        "its values at `from` (after null), for CHANGED only the fields that differ (tags compared as sets)."
    )


@strawberry.type
class ImageDiffEdge:
    cursor: str
    node: ImageDiff


@strawberry.type(description="A page of a diff, by image identity; nextToken and endCursor continue it.")
class ImageDiffConnection:
    page_info: relay.PageInfo
    nodes: list[ImageDiff]
    next_token: str | None = strawberry.field(description="The endCursor while there is a next page, null at the end.")
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)
    def edges(self) -> list[ImageDiffEdge]:
        return [ImageDiffEdge(cursor=c, node=n) for c, n in zip(self.cursors(), self.nodes, strict=True)]


def _window(
    at: datetime, after: list[Any] | None, name: str, where: Callable[[Any], ColumnElement[bool]]
) -> FromClause:
    """The images present at ``at`` that meet ``where`` (given the columns), past the cursor (Postgres
    pushes both into every branch of ``images_at``)."""
    c = past.images_at(at).c
    page = select(*c).where(where(c))
    if after is not None:
        page = page.where(tuple_(*(c[k] for k in KEY)) > tuple_(*after))
    return page.subquery(name)


def _ended(since: datetime, until: datetime) -> CompoundSelect[Any]:
    """The identities of the images a version of which ended in (since, until]: removed, or replaced."""
    c, v = search.images.c, past.versions.c
    removed = select(*(c[k] for k in KEY)).where(c.removed_at > since, c.removed_at <= until)
    replaced = select(*(v[k] for k in KEY)).where(v.valid_to > since, v.valid_to <= until)
    return removed.union(replaced)


def _sides(since: datetime, until: datetime, after: list[Any] | None) -> tuple[FromClause, FromClause]:
    """The two sides of the join, each only the rows that can differ from the other side.

    An image whose version at ``to`` began by ``from`` was the same at ``from``; one whose version at
    ``from`` still held at ``to`` is the same at ``to``. Leaving both out changes no answer, and the join
    then costs what changed in the window, not the whole inventory at two times."""
    ended = _ended(since, until)
    before = _window(since, after, "at_from", lambda c: tuple_(*(c[k] for k in KEY)).in_(ended))
    after_ = _window(until, after, "at_to", lambda c: c.changed_at > since)
    return before, after_


def _differs(a: Any, b: Any) -> ColumnElement[bool]:
    """Whether two present images' values differ, as ``changed_fields`` compares them."""
    tests: list[ColumnElement[bool]] = []
    for field in FIELDS:
        if field == "image_tags":
            tests.append(~and_(a.image_tags.contains(b.image_tags), a.image_tags.contained_by(b.image_tags)))
        elif field == "finding_severity_counts":
            empty = literal_column("'{}'::jsonb", JSONB)
            tests.append(func.nullif(a[field], empty).is_distinct_from(func.nullif(b[field], empty)))
        else:
            tests.append(a[field].is_distinct_from(b[field]))
    return or_(*tests)


def diff_page(
    f: search.ImageFilter, since: datetime, until: datetime, after: list[Any] | None, first: int
) -> Select[Any]:
    """``first + 1`` images that differ between ``since`` and ``until`` and match ``f`` at either time,
    after the identity ``after``."""
    a, b = _sides(since, until, after)
    in_a, in_b = a.c.image_digest.is_not(None), b.c.image_digest.is_not(None)
    joined = a.join(b, and_(*(a.c[k] == b.c[k] for k in KEY)), full=True)
    identity = [func.coalesce(a.c[k], b.c[k]).label(k) for k in KEY]
    return (
        select(
            *identity,
            in_a.label("in_before"),
            in_b.label("in_after"),
            *(a.c[field].label(f"before_{field}") for field in FIELDS),
            *(b.c[field].label(f"after_{field}") for field in FIELDS),
        )
        .select_from(joined)
        .where(
            or_(~in_a, ~in_b, _differs(a.c, b.c)),
            or_(and_(in_a, *search.image_conditions(f, a)), and_(in_b, *search.image_conditions(f, b))),
        )
        .order_by(*identity)
        .limit(first + 1)
    )


def _json(value: Any) -> Any:
    """As the change feed writes values: timestamps in ISO 8601."""
    return value.isoformat() if isinstance(value, datetime) else value


def image_diff(row: Any) -> ImageDiff:
    """One row of ``diff_page`` as its ImageDiff."""
    before: Values = tuple(getattr(row, f"before_{f}") for f in FIELDS) if row.in_before else _NONE
    after: Values = tuple(getattr(row, f"after_{f}") for f in FIELDS) if row.in_after else _NONE
    if not row.in_before:
        kind = ImageDiffKind.ADDED
    elif not row.in_after:
        kind = ImageDiffKind.REMOVED
    else:
        kind = ImageDiffKind.CHANGED
    changes = sorted(changed_fields(before, after).items())
    return ImageDiff(
        registry_type=registry_type_of(row.registry_type),
        registry_id=row.registry_id,
        region=row.region,
        repository_name=row.repository_name,
        image_digest=row.image_digest,
        kind=kind,
        # The side where the image was not is null (not its empty tags), as in the change feed.
        changes=[
            FieldChange(
                field=name, before=_json(b) if row.in_before else None, after=_json(a) if row.in_after else None
            )
            for name, (b, a) in changes
        ],
    )


def _key(after: str, bound_to: str) -> list[Any]:
    return cursors.decode(after, bound_to, [cursors.text] * len(KEY))


async def diff_connection(
    context: Context,
    since: datetime,
    until: datetime,
    given: ImageFilterInput | None,
    first: int | None,
    after: str | None,
) -> ImageDiffConnection:
    """A page of the images that differ between ``since`` and ``until``: both checked as ``asOf`` is (with
    an offset, not in the future, not before the retained history), ``since`` the earlier."""
    size = page_size(first)
    f = image_filter(given, scope=context.scope)
    await context.as_of(until, argument="to")
    await context.as_of(since, argument="from")
    if since >= until:
        raise invalid_parameter(f"from must be earlier than to, got {since.isoformat()} and {until.isoformat()}")
    bound_to = cursors.binding("diff", since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat(), f)
    position = _key(after, bound_to) if after is not None else None
    rows = await context.rows(diff_page(f, since, until, position, size))
    page = keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, [getattr(row, k) for k in KEY]))
    return ImageDiffConnection(
        page_info=page.page_info,
        nodes=[image_diff(row) for row in page.rows],
        next_token=page.next_token,
        cursors=page.cursors,
    )
