"""Reads of the inventory's history: the change feed, an image's events, where a tag pointed, and the net
change between two times (``inventory.read.diff``).

Functions over a ``Database`` and a ``Scope``: an event of a repository out of scope is read exactly as a
missing one. Events are read by their position in the feed, ``(xid, id)`` (``inventory.feed.query``): a
cursor is that position, bound to the filter and the scope like every other cursor. The feed never ends:
on its last page ``next_token`` is None but ``end_cursor`` is still a position to resume from later (the
``after`` given when the page is empty), so a poller keeps its place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select

from inventory.feed import query
from inventory.feed.event import TYPES, Event
from inventory.feed.query import EventFilter
from inventory.feed.replay import TagSpan, tag_assignments
from inventory.models import RepositoryRow
from inventory.read import cursors, diff, scope
from inventory.read.bounds import check_globs
from inventory.read.database import Database, Statements
from inventory.read.errors import invalid_parameter
from inventory.read.inventory import AsOf, image_filter
from inventory.read.keys import ImageKey, RepositoryKey
from inventory.read.paging import Page, keyset_page, page_size
from inventory.read.scope import Scope
from inventory.read.search import ImageFilter

_repositories = RepositoryRow.__table__  # type: ignore[attr-defined]

_EVENT_ID = re.compile(r"[0-9]{1,19}")
"""An event's id as a face names it: a bigint (any other is no event's)."""


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is taken as UTC (and can then be compared with one that has it)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def event_filter(f: EventFilter) -> EventFilter:
    """``f`` checked (valid globs, known types, a window that is one), its times in UTC when they had no offset."""
    check_globs(f.repository_names, "filter.repositoryNames")
    since, until = _utc(f.since), _utc(f.until)
    if since is not None and until is not None and since >= until:
        raise invalid_parameter("filter: since must be earlier than until")
    for kind in f.types or ():
        if kind not in TYPES:
            raise invalid_parameter(f"filter.types: unknown event type {kind!r}; one of {', '.join(TYPES)}")
    return replace(f, since=since, until=until)


async def event_page(
    db: Database,
    reader: Scope,
    f: EventFilter,
    first: int | None = None,
    after: str | None = None,
    *,
    newest_first: bool = False,
) -> Page[Event]:
    """A page of the events ``f`` selects: oldest first (the feed, resumable), or newest first (a history)."""
    size = page_size(first)
    f = replace(event_filter(f), registries=reader)
    listing = cursors.canonical("history" if newest_first else "events", f)
    bound_to = cursors.hash_of(listing)
    position = None
    if after is not None:
        xid, event_id = cursors.decode(after, bound_to, [cursors.integer, cursors.integer])
        position = (xid, event_id)
    if newest_first:
        rows = await db.rows(query.history(f, position, size))
    else:  # the feed, paged again and again: one statement per filter, its position a parameter
        rows = await db.rows(_FEEDS.get(listing, lambda: query.feed_page(f)), query.feed_parameters(position, size))
    events = [Event.from_row(row) for row in rows]
    return keyset_page(
        events, size, after, lambda e: cursors.encode(bound_to, list(e.position)), resumable=not newest_first
    )


_FEEDS = Statements(128)
"""The feed's statements, by the filter its cursors are bound to (its canonical text, as a key no other
filter can share)."""


async def image_history(
    db: Database, reader: Scope, image: ImageKey, first: int | None = None, after: str | None = None
) -> Page[Event]:
    """An image's events, newest first."""
    *repository, digest = image
    f = EventFilter(repository=(repository[0], repository[1], repository[2], repository[3]), image_digests=[digest])
    return await event_page(db, reader, f, first, after, newest_first=True)


async def events_by_id(db: Database, reader: Scope, ids: Sequence[str]) -> dict[str, Event]:
    """The events of ``ids`` (as faces name them: decimal text) ``reader`` may see, by id."""
    wanted = [int(i) for i in ids if _EVENT_ID.fullmatch(i) and int(i) < 2**63]
    if not wanted:
        return {}
    where = and_(*query.conditions(EventFilter(registries=reader)), query.events.c.id.in_(wanted))
    return {str(row.id): Event.from_row(row) for row in await db.rows(select(*query.COLUMNS).where(where))}


async def tag_history(
    db: Database, reader: Scope, repository: RepositoryKey, tag: str, first: int | None = None, after: str | None = None
) -> Page[TagSpan]:
    """Where ``tag`` pointed in ``repository``, newest first, replayed from its events.

    Keyed by (from, digest): a page continues below its last assignment whatever newer ones appear."""
    size = page_size(first)
    bound_to = cursors.binding("tagHistory", repository, tag, reader)
    found = tag_assignments(await db.rows(query.tag_events(repository, tag, reader)), tag)
    if after is not None:
        since, digest = cursors.decode(after, bound_to, [cursors.time, cursors.text])
        found = [a for a in found if (a.since, a.image_digest) < (since, digest)]
    return keyset_page(
        found[: size + 1], size, after, lambda a: cursors.encode(bound_to, [a.since.isoformat(), a.image_digest])
    )


async def diff_page(
    db: Database,
    reader: Scope,
    f: ImageFilter,
    since: AsOf,
    until: AsOf,
    first: int | None = None,
    after: str | None = None,
) -> Page[diff.ImageDiff]:
    """A page of the images that differ between ``since`` and ``until`` (both checked, ``since`` the
    earlier), by identity."""
    size = page_size(first)
    f = replace(image_filter(f), scope=reader)
    if since >= until:
        raise invalid_parameter(f"from must be earlier than to, got {since.isoformat()} and {until.isoformat()}")
    bound_to = cursors.binding("diff", since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat(), f)
    position = cursors.decode(after, bound_to, [cursors.text] * len(diff.KEY)) if after is not None else None
    rows = await db.rows(diff.diff_page(f, since, until, position, size))
    page = keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, [getattr(row, k) for k in diff.KEY]))
    return page.map(lambda rows: [diff.image_diff(row) for row in rows])


@dataclass(frozen=True)
class Activity:
    """One bucket of a registry's activity: the images present at its end, and its change events."""

    start: datetime
    images: int
    added: int
    """Images added or restored in it."""
    removed: int
    events: int
    """Every change event in it."""


_ADDING = ("image.added", "image.restored")


async def activity(
    db: Database, reader: Scope, since: datetime, until: datetime, buckets: int
) -> dict[str, list[Activity]]:
    """Per registry ``reader`` may see, ``buckets`` equal spans of [since, until): the images present at
    the end of each (replayed back from the present count through the image events since) and its events.

    Reads every event since ``since`` (grouped in SQL): meant for a window of days, not of years."""
    if not since < until or buckets < 1:
        raise invalid_parameter("activity: since must be earlier than until, and buckets at least 1")
    e, r = query.events.c, _repositories.c
    joined = query.events.join(
        _repositories,
        and_(
            e.registry_type == r.registry_type,
            e.registry_id == r.registry_id,
            e.region == r.region,
            e.repository_name == r.repository_name,
        ),
    )
    bucket = func.width_bucket(func.extract("epoch", e.occurred_at), since.timestamp(), until.timestamp(), buckets)
    counted = (
        select(
            r.registry_name,
            bucket.label("bucket"),
            func.count().filter(e.type.in_(_ADDING)).label("added"),
            func.count().filter(e.type == "image.removed").label("removed"),
            func.count().label("events"),
        )
        .select_from(joined)
        .where(e.occurred_at >= since, *scope.registries(r.registry_name, reader))
        .group_by(r.registry_name, bucket)
    )
    present = (
        select(r.registry_name, func.sum(r.image_count).label("images"))
        .where(r.removed_at.is_(None), *scope.registries(r.registry_name, reader))
        .group_by(r.registry_name)
    )
    images = {row.registry_name: int(row.images or 0) for row in await db.rows(present)}
    spans: dict[str, dict[int, Any]] = {}
    for row in await db.rows(counted):
        spans.setdefault(row.registry_name, {})[int(row.bucket)] = row
    width = (until - since) / buckets
    found: dict[str, list[Activity]] = {}
    for name in sorted(set(images) | set(spans)):
        count, by_bucket, series = images.get(name, 0), spans.get(name, {}), []
        count -= sum(row.added - row.removed for b, row in by_bucket.items() if b > buckets)  # after ``until``
        for b in range(buckets, 0, -1):
            row = by_bucket.get(b)
            added, removed, events = (row.added, row.removed, row.events) if row is not None else (0, 0, 0)
            series.append(Activity(since + width * (b - 1), max(count, 0), added, removed, events))
            count -= added - removed
        found[name] = series[::-1]
    return found
