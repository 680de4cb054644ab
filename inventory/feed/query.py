"""Reading the change feed (``image_events``): the statements of its pages, of a history, of a tag's events.

The feed is read by position ``(xid, id)``. ``id`` comes from a sequence at insert,
so a transaction can commit events with lower ids after another committed higher
ones: "id > last" alone would skip them. ``xid`` is the writing transaction's id,
and ``page`` only returns events of transactions older than the oldest one still in
progress (``pg_snapshot_xmin``): every such transaction has ended, so no event can
ever appear below a position once it has been read past. A long transaction holds
the feed back (events wait; none are lost).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import Text

from inventory.feed.event import Position
from inventory.globs import glob_regex
from inventory.models import ImageEventRow, ImageRow
from inventory.read import scope
from inventory.read.keys import RepositoryKey
from inventory.read.scope import Scope

events = ImageEventRow.__table__  # type: ignore[attr-defined]

EventScope = tuple[str, str, str | None, str | None]
"""(registry type, registry id, region, repository name): a registry, a region of it, or a repository."""

_XID = cast(cast(events.c.xid, Text), BigInteger)
COLUMNS = (
    events.c.id,
    _XID.label("xid"),
    events.c.sync_run_id,
    events.c.occurred_at,
    events.c.registry_type,
    events.c.registry_id,
    events.c.region,
    events.c.repository_name,
    events.c.image_digest,
    events.c.type,
    events.c.backfill,
    events.c.changes,
)
"""What a read of events returns (``xid`` as a plain integer)."""

_VISIBLE = events.c.xid < func.pg_snapshot_xmin(func.pg_current_snapshot())
"""Events of transactions older than any still in progress: nothing can ever appear below them."""


@dataclass(frozen=True)
class EventFilter:
    """Which events a read returns; every field narrows it. Globs as in the image search."""

    registry_ids: Sequence[str] | None = None
    regions: Sequence[str] | None = None
    repository_names: Sequence[str] | None = None
    """Shell-style globs."""
    image_digests: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    """Events that touched any of these tags, before or after."""
    types: Sequence[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    backfill: bool | None = None
    repository: RepositoryKey | None = None
    """One repository: (registry type, registry id, region, name)."""
    scopes: Sequence[EventScope] | None = None
    """Events in any of these (registry type, registry id, region, repository name); None: any region or name."""
    registries: Scope = None
    """Events of the repositories a reader may see (``inventory.read.scope``); None: of any."""


def conditions(f: EventFilter) -> list[ColumnElement[bool]]:
    c = events.c
    found: list[ColumnElement[bool]] = [_VISIBLE]
    if f.registry_ids is not None:
        found.append(c.registry_id.in_(f.registry_ids))
    if f.regions is not None:
        found.append(c.region.in_(f.regions))
    if f.repository_names is not None:
        globs = [c.repository_name.regexp_match(glob_regex(g)) for g in f.repository_names]
        found.append(or_(*globs) if globs else false())
    if f.image_digests is not None:
        found.append(c.image_digest.in_(f.image_digests))
    if f.tags is not None:
        found.append(or_(*(touched(tag) for tag in f.tags)) if f.tags else false())
    if f.types is not None:
        found.append(c.type.in_(f.types))
    if f.since is not None:
        found.append(c.occurred_at >= f.since)
    if f.until is not None:
        found.append(c.occurred_at < f.until)
    if f.backfill is not None:
        found.append(c.backfill.is_(f.backfill))
    if f.repository is not None:
        found.append(tuple_(c.registry_type, c.registry_id, c.region, c.repository_name) == tuple_(*f.repository))
    if f.scopes is not None:
        columns = (c.registry_type, c.registry_id, c.region, c.repository_name)
        each = [and_(*(column == v for column, v in zip(columns, s, strict=True) if v is not None)) for s in f.scopes]
        found.append(or_(*each) if each else false())
    found += scope.repositories(c, f.registries)
    return found


IMAGE = "image__"
"""The prefix of the image's columns in ``feed_with_images``."""


def feed_with_images(f: EventFilter) -> Select[Any]:
    """``feed_page``, each event with its image's current columns (``IMAGE`` + name; null for repository events),
    run with ``feed_parameters``. Built once per filter: building it costs several times running it.

    Each image is one probe of the primary key (a lateral join): for a page of ``first`` events the
    planner would otherwise hash-join the whole ``images`` table, a read that grows with the inventory
    even when the page holds one event."""
    images = ImageRow.__table__  # type: ignore[attr-defined]
    page = feed_page(f).subquery("page")
    i, e = images.c, page.c
    same = and_(*(i[k] == e[k] for k in ("registry_type", "registry_id", "region", "repository_name", "image_digest")))
    image_columns = [column.label(IMAGE + column.name) for column in images.c if column.name != "fingerprint"]
    image = select(*image_columns).where(same).limit(1).lateral("image")  # LIMIT: not flattened into a join
    return select(*page.c, *image.c).select_from(page.outerjoin(image, true())).order_by(e.xid, e.id)


def feed_page(f: EventFilter) -> Select[Any]:
    """``first + 1`` events after a position, oldest first (the extra one says there are more), the position
    and ``first`` as parameters (``feed_parameters``): one statement per filter."""
    xid, id = bindparam("after_xid", type_=Text), bindparam("after_id", type_=BigInteger)
    past = tuple_(events.c.xid, events.c.id) > tuple_(cast(cast(xid, Text), events.c.xid.type), id)  # xid8: in as text
    where = and_(*conditions(f), past)
    return select(*COLUMNS).where(where).order_by(events.c.xid, events.c.id).limit(bindparam("limit", type_=BigInteger))


def feed_parameters(after: Position | None, first: int) -> dict[str, Any]:
    """``feed_page``'s and ``feed_with_images``' parameters: ``first + 1`` events after ``after``."""
    xid, id = after or (0, 0)
    return {"after_xid": str(xid), "after_id": id, "limit": first + 1}


def images_added(repository: RepositoryKey, sync_run_id: int) -> Select[Any]:
    """How many images a sync run added to a repository (the events of its backfill)."""
    c = events.c
    return select(func.count()).where(
        tuple_(c.registry_type, c.registry_id, c.region, c.repository_name) == tuple_(*repository),
        c.sync_run_id == sync_run_id,
        c.type == "image.added",
    )


def history(f: EventFilter, before: Position | None, first: int) -> Select[Any]:
    """``first + 1`` events before ``before``, newest first (an image's or a repository's history)."""
    where = conditions(f)
    if before is not None:
        where.append(
            tuple_(events.c.xid, events.c.id)
            < tuple_(cast(cast(literal(str(before[0])), Text), events.c.xid.type), before[1])
        )
    return select(*COLUMNS).where(and_(*where)).order_by(events.c.xid.desc(), events.c.id.desc()).limit(first + 1)


def touched(tag: str) -> ColumnElement[bool]:
    """The event's tags held ``tag`` before or after: ``[before, after]`` contains an array containing it
    (``ix_image_events_tags`` answers it)."""
    held: ColumnElement[bool] = events.c.changes["image_tags"].op("@>")(cast(literal(json.dumps([[tag]])), JSONB))
    return held


_XMIN = func.pg_snapshot_xmin(func.pg_current_snapshot())
HORIZON = select(cast(cast(_XMIN, Text), BigInteger))
"""The oldest transaction still in progress: every event below it is visible to a read that follows,
and none can appear there later."""
HORIZON_AND_HIDDEN = select(cast(cast(_XMIN, Text), BigInteger), exists().where(events.c.xid >= _XMIN))
"""``HORIZON``, and whether committed events wait above it (of one snapshot: they committed while an older
transaction is still in progress). The feed shows them once that one ends, which may notify no one."""
_MAX_ID = 2**63 - 1


def after_page(position: Position | None, horizon: int) -> Position:
    """Where to read from after a page that held every visible event after ``position``, read after
    ``HORIZON`` gave ``horizon``: past every event of the transactions older than it (not just the
    last one that matched, so a narrow filter does not read again what it has passed)."""
    return max(position or (0, 0), (horizon - 1, _MAX_ID))


def tag_events(repository: RepositoryKey, tag: str, registries: Scope = None) -> Select[Any]:
    """Every event of the repository whose tags held ``tag`` before or after, oldest first (none unless the
    repository is of ``registries``, when given)."""
    f = EventFilter(repository=repository, tags=[tag], registries=registries)
    return select(*COLUMNS).where(*conditions(f)).order_by(events.c.xid, events.c.id)
