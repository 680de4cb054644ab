"""SQL of the ``image_events`` table: the change feed, written in the sync's own transaction.

Every change a sync makes is one event: ``image.added``, ``image.changed``,
``image.restored``, ``image.removed``, ``repository.added``, ``repository.removed``.

The feed is read by position ``(xid, id)``. ``id`` comes from a sequence at insert,
so a transaction can commit events with lower ids after another committed higher
ones: "id > last" alone would skip them. ``xid`` is the writing transaction's id,
and ``page`` only returns events of transactions older than the oldest one still in
progress (``pg_snapshot_xmin``): every such transaction has ended, so no event can
ever appear below a position once it has been read past. A long transaction holds
the feed back (events wait; none are lost).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
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

from inventory.config import EVENT_TYPES
from inventory.globs import glob_regex
from inventory.models import ImageEventRow, ImageRow, RepositoryRow
from inventory.sync.plan import Entry, Scope
from inventory.sync.transform import TAGS

TYPES = EVENT_TYPES
_KEY = "registry_type, registry_id, region, repository_name"
_COPY = f"COPY image_events (sync_run_id, {_KEY}, image_digest, type, backfill, changes) FROM STDIN"

# Added and removed images' events are made by the server, once per scope, from the rows
# the transaction wrote (now() is the transaction's time): no per-row work in Python for
# the bulk of a first apply or of a mass removal.
_FROM_IMAGES = (
    f"INSERT INTO image_events (sync_run_id, {_KEY}, image_digest, type, backfill, changes) "
    f"SELECT %s, {_KEY}, image_digest, '{{type}}', %s, "
    "jsonb_build_object('image_tags', jsonb_build_array({before}, {after})) FROM images "
    "WHERE registry_type = %s AND registry_id = %s AND region = %s AND repository_name = %s AND {written} = now()"
)
_ADDED = _FROM_IMAGES.format(type="image.added", before="NULL", after="to_jsonb(image_tags)", written="first_seen_at")
_REMOVED = _FROM_IMAGES.format(type="image.removed", before="to_jsonb(image_tags)", after="NULL", written="removed_at")


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def write_changes(scope: Scope, run_id: int, entries: Sequence[Entry], *, connection: psycopg.Connection[Any]) -> None:
    """The events of changed and restored images: each changed field as [before, after]. A restored
    image brings its tags back as an added one does (``image_tags``: [null, its tags]), whether or
    not they are the ones it had when it was removed."""
    updated = [e for e in entries if e.symbol == "~" or e.restored]
    if not updated:
        return
    with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for entry in updated:
            changes = {f: [_json(b), _json(a)] for f, (b, a) in entry.changes.items()}
            if entry.restored:
                assert entry.after is not None
                changes["image_tags"] = [None, list(entry.after[TAGS])]
            kind = "image.restored" if entry.restored else "image.changed"
            copy.write_row((run_id, *scope.key, entry.image_digest, kind, False, json.dumps(changes)))


def write_added_and_removed(
    scope: Scope, run_id: int, *, added: bool, removed: bool, backfill: bool, connection: psycopg.Connection[Any]
) -> None:
    """The events of the images this transaction added and removed (their tags as they were)."""
    with connection.cursor() as cursor:
        if added:
            cursor.execute(_ADDED, (run_id, backfill, *scope.key))
        if removed:
            cursor.execute(_REMOVED, (run_id, False, *scope.key))


def write_repository(
    scope: Scope, run_id: int, type: str, *, backfill: bool, connection: psycopg.Connection[Any]
) -> None:
    """A ``repository.added`` or ``repository.removed`` event."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO image_events (sync_run_id, {_KEY}, type, backfill, changes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, '{}')",
            (run_id, *scope.key, type, backfill),
        )


CHANNEL = "inventory_events"
"""Notified by every transaction that writes events, when it commits: webhook senders wake at once."""


def notify(*, connection: psycopg.Connection[Any]) -> None:
    """Tell the listeners of ``CHANNEL`` there are new events (delivered when the transaction commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


def prune(older_than: float, *, connection: psycopg.Connection[Any], batch: int = 1000) -> int:
    """Delete at most ``batch`` of the oldest events that occurred over ``older_than`` seconds ago."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM image_events WHERE id IN (SELECT id FROM image_events "
            "WHERE occurred_at < now() - make_interval(secs => %s) ORDER BY xid, id LIMIT %s FOR UPDATE SKIP LOCKED)",
            (older_than, batch),
        )
        return cursor.rowcount


# reading the feed ---------------------------------------------------------------------

events = ImageEventRow.__table__  # type: ignore[attr-defined]
repositories = RepositoryRow.__table__  # type: ignore[attr-defined]

Position = tuple[int, int]
"""A place in the feed: (the writing transaction's xid, the event's id)."""

EventScope = tuple[str, str, str | None, str | None]
"""(registry type, registry id, region, repository name): a registry, a region of it, or a repository."""

_XID = cast(cast(events.c.xid, Text), BigInteger)
COLUMNS = (
    events.c.id, _XID.label("xid"), events.c.sync_run_id, events.c.occurred_at, events.c.registry_type,
    events.c.registry_id, events.c.region, events.c.repository_name, events.c.image_digest, events.c.type,
    events.c.backfill, events.c.changes,
)  # fmt: skip
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
    repository: tuple[str, str, str, str] | None = None
    """One repository: (registry type, registry id, region, name)."""
    scopes: Sequence[EventScope] | None = None
    """Events in any of these (registry type, registry id, region, repository name); None: any region or name."""
    registries: tuple[str, ...] | None = None
    """Events of the repositories of these registries (by name: an API token's); None: of any."""


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
    if f.registries is not None:
        # The repository's row says whose it is: a semi-join on its primary key.
        r = repositories.c
        mine = select(r.registry_type, r.registry_id, r.region, r.repository_name).where(
            r.registry_name.in_(f.registries)
        )
        found.append(tuple_(c.registry_type, c.registry_id, c.region, c.repository_name).in_(mine))
    return found


def feed(f: EventFilter, after: Position | None, first: int) -> Select[Any]:
    """``first + 1`` events after ``after``, oldest first (the extra one says there are more)."""
    past = None if after is None else _after(literal(str(after[0])), literal(after[1]))
    return _page(f, past, first + 1)


def _page(f: EventFilter, past: ColumnElement[bool] | None, limit: int | ColumnElement[Any]) -> Select[Any]:
    """At most ``limit`` events matching ``f`` (and ``past``), oldest first."""
    where = [*conditions(f), *([] if past is None else [past])]
    return select(*COLUMNS).where(and_(*where)).order_by(events.c.xid, events.c.id).limit(limit)


def _after(xid: ColumnElement[Any], id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Past the position (``xid`` as text: xid8 has no other way in)."""
    return tuple_(events.c.xid, events.c.id) > tuple_(cast(cast(xid, Text), events.c.xid.type), id)


IMAGE = "image__"
"""The prefix of the image's columns in ``feed_with_images``."""


def feed_with_images(f: EventFilter) -> Select[Any]:
    """``feed``, each event with its image's current columns (``IMAGE`` + name; null for repository events),
    run with ``feed_parameters``. Built once per filter: building it costs several times running it.

    Each image is one probe of the primary key (a lateral join): for a page of ``first`` events the
    planner would otherwise hash-join the whole ``images`` table, a read that grows with the inventory
    even when the page holds one event."""
    images = ImageRow.__table__  # type: ignore[attr-defined]
    past = _after(bindparam("after_xid", type_=Text), bindparam("after_id", type_=BigInteger))
    page = _page(f, past, bindparam("limit", type_=BigInteger)).subquery("page")
    i, e = images.c, page.c
    same = and_(*(i[k] == e[k] for k in ("registry_type", "registry_id", "region", "repository_name", "image_digest")))
    image_columns = [column.label(IMAGE + column.name) for column in images.c if column.name != "fingerprint"]
    image = select(*image_columns).where(same).limit(1).lateral("image")  # LIMIT: not flattened into a join
    return select(*page.c, *image.c).select_from(page.outerjoin(image, true())).order_by(e.xid, e.id)


def feed_parameters(after: Position | None, first: int) -> dict[str, Any]:
    """``feed_with_images``'s parameters: ``first + 1`` events after ``after``."""
    xid, id = after or (0, 0)
    return {"after_xid": str(xid), "after_id": id, "limit": first + 1}


def images_added(repository: tuple[str, str, str, str], sync_run_id: int) -> Select[Any]:
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


def event_dict(row: Any) -> dict[str, Any]:
    """An event with the fields of GraphQL's ``ImageEvent`` (``syncRun`` as ``syncRunId``), and its position."""
    added, removed = tag_changes(row.changes)
    return {
        "id": event_node_id(row.id),
        "position": [row.xid, row.id],
        "type": row.type,
        "occurredAt": utc_text(row.occurred_at),
        "registryId": row.registry_id,
        "region": row.region,
        "repositoryName": row.repository_name,
        "registryType": "ECR_PUBLIC" if row.registry_type == "ecr-public" else "ECR",
        "imageDigest": row.image_digest,
        "backfill": row.backfill,
        "changes": [{"field": f, "before": b, "after": a} for f, (b, a) in sorted(row.changes.items())],
        "tagsAdded": added,
        "tagsRemoved": removed,
        "syncRunId": row.sync_run_id,
    }


def event_node_id(event_id: int) -> str:
    """The event's GraphQL node id, as strawberry's relay spells a GlobalID: base64 of ``ImageEvent:<id>``."""
    return base64.b64encode(f"ImageEvent:{event_id}".encode()).decode()


def utc_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def tag_changes(changes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(tags added, tags removed) by an event, from its ``image_tags`` change."""
    before, after = changes.get("image_tags") or (None, None)
    before, after = set(before or ()), set(after or ())
    return sorted(after - before), sorted(before - after)


def tag_events(
    repository: tuple[str, str, str, str], tag: str, registries: tuple[str, ...] | None = None
) -> Select[Any]:
    """Every event of the repository whose tags held ``tag`` before or after, oldest first (none unless the
    repository is of ``registries``, when given)."""
    f = EventFilter(repository=repository, tags=[tag], registries=registries)
    return select(*COLUMNS).where(*conditions(f)).order_by(events.c.xid, events.c.id)
