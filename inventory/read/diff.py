"""The net change per image between two times (GraphQL's ``diff(from, to)``): its statement, and its rows
read as ``ImageDiff``s.

The images present at ``from`` and at ``to`` (``past.images_at``) are joined on the
image's identity (a FULL OUTER JOIN): present at ``to`` only, the image was ADDED;
at ``from`` only, REMOVED; at both with different values, CHANGED. An image added
and removed inside the window is in neither, and an unchanged one (removed and
restored as it was, say) is left out, so only net changes appear. Values compare as
``inventory.sync.transform.changed_fields`` compares them: tags as sets, severity
counts as maps (an empty map as none). An image appears when it matches the filter
at either time, so a tag filter shows the image that gained or lost the tag.

Pages are keyset-ordered by identity, in the order of the primary key of ``images``
(and of ``ix_image_versions_image``); cursors are bound to the two times and the filter
(``inventory.read.history.diff_page``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

from inventory.feed.event import FieldChange
from inventory.read import past, search
from inventory.sync.transform import FIELDS, TAGS, Values, changed_fields

KEY = ("registry_type", "registry_id", "region", "repository_name", "image_digest")
"""The image's identity in the order of the primary key of ``images``: the order of a diff's pages."""
_NONE: Values = tuple([] if i == TAGS else None for i in range(len(FIELDS)))
"""The values of no image: an added image's changes are its values that differ from these."""


@dataclass(frozen=True)
class ImageDiff:
    """The net change of one image between two times."""

    registry_type: str
    registry_id: str
    region: str
    repository_name: str
    image_digest: str
    kind: str
    """``ADDED`` (present at ``to`` only), ``REMOVED`` (at ``from`` only), ``CHANGED`` (at both, different)."""
    changes: list[FieldChange]
    """Each field that differs, by name: for ADDED its values at ``to`` (before None), for REMOVED its values
    at ``from`` (after None), for CHANGED only the fields that differ (tags compared as sets)."""


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
        kind = "ADDED"
    elif not row.in_after:
        kind = "REMOVED"
    else:
        kind = "CHANGED"
    changes = sorted(changed_fields(before, after).items())
    return ImageDiff(
        registry_type=row.registry_type,
        registry_id=row.registry_id,
        region=row.region,
        repository_name=row.repository_name,
        image_digest=row.image_digest,
        kind=kind,
        # The side where the image was not is null (not its empty tags), as in the change feed.
        changes=[
            FieldChange(name, _json(b) if row.in_before else None, _json(a) if row.in_after else None)
            for name, (b, a) in changes
        ],
    )
