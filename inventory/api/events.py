"""The change feed over GraphQL: ``events``, ``Image.history`` and ``tagHistory``.

Events are read by their position in the feed, ``(xid, id)`` (see
``inventory.tables.image_events``): a cursor is that position, bound to the filter
like every other cursor. The feed never ends: on its last page ``nextToken`` is
null but ``pageInfo.endCursor`` is still a position to resume from later (the
``after`` given when the page is empty), so a poller keeps its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry
from sqlalchemy import and_, select
from strawberry import relay
from strawberry.scalars import JSON

from inventory.api import cursors
from inventory.api.errors import invalid_parameter
from inventory.api.ids import RepositoryKey
from inventory.api.limits import check_globs
from inventory.api.paging import keyset_page, page_size
from inventory.api.resolvers import resolver
from inventory.api.types import (
    EDGES,
    Image,
    RegistryType,
    SyncRun,
    config_type_of,
    image_node_id,
    registry_type_of,
)
from inventory.history import TagSpan, tag_assignments
from inventory.tables import image_events
from inventory.tables.image_events import EventFilter, Position

if TYPE_CHECKING:
    from inventory.api.context import Context

_EVENT_ID = re.compile(r"[0-9]{1,19}")
"""An event's node id: its id, a bigint (any other is no event's)."""
TYPES_DESCRIPTION = ", ".join(image_events.TYPES)


@strawberry.type(description="One field an event changed: its value before and after (null: none).")
class FieldChange:
    field: str
    before: JSON | None
    after: JSON | None


@strawberry.type(description="One change a sync made to an image or a repository: an entry of the change feed.")
class ImageEvent(relay.Node):
    node_id: relay.NodeID[str]
    type: str = strawberry.field(description=f"One of {TYPES_DESCRIPTION}.")
    occurred_at: datetime = strawberry.field(description="When the sync's transaction wrote it.")
    registry_type: RegistryType
    registry_id: str
    region: str
    repository_name: str
    image_digest: str | None = strawberry.field(description="Null for repository events.")
    backfill: bool = strawberry.field(description="Written by the first sync of its repository.")
    changes: list[FieldChange] = strawberry.field(
        description="Each field that changed, tags included (an added image records its tags, a removed one "
        "the tags it had)."
    )
    tags_added: list[str]
    tags_removed: list[str]
    sync_run_id: strawberry.Private[int]

    @resolver(description="The sync run that wrote it; null once retention pruned the run.")
    async def sync_run(self, info: strawberry.Info[Context, None]) -> SyncRun | None:
        return await info.context.sync_runs.load(self.sync_run_id)

    @resolver(description="The image (removed or not); null for repository events.")
    async def image(self, info: strawberry.Info[Context, None]) -> Image | None:
        if self.image_digest is None:
            return None
        key = (config_type_of(self.registry_type), self.registry_id, self.region, self.repository_name)
        return await info.context.images.load(image_node_id(*key, self.image_digest))

    @classmethod
    def from_row(cls, row: Any) -> ImageEvent:
        added, removed = image_events.tag_changes(row.changes)
        return cls(
            node_id=str(row.id),
            type=row.type,
            occurred_at=row.occurred_at,
            registry_type=registry_type_of(row.registry_type),
            registry_id=row.registry_id,
            region=row.region,
            repository_name=row.repository_name,
            image_digest=row.image_digest,
            backfill=row.backfill,
            changes=[FieldChange(field=k, before=v[0], after=v[1]) for k, v in sorted(row.changes.items())],
            tags_added=added,
            tags_removed=removed,
            sync_run_id=row.sync_run_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[ImageEvent | None]:
        wanted = [str(node_id) for node_id in node_ids]
        ids = [int(node_id) for node_id in wanted if _EVENT_ID.fullmatch(node_id) and int(node_id) < 2**63]
        scope = EventFilter(registries=info.context.scope)
        where = and_(*image_events.conditions(scope), image_events.events.c.id.in_(ids))
        rows = await info.context.rows(select(*image_events.COLUMNS).where(where)) if ids else []
        found = {str(row.id): cls.from_row(row) for row in rows}
        return [found.get(node_id) for node_id in wanted]


Row = TypeVar("Row")


@strawberry.type(description="A page of events; nextToken continues it, endCursor resumes the feed later.")
class EventConnection(relay.Connection[ImageEvent]):
    nodes: list[ImageEvent]
    next_token: str | None = strawberry.field(
        description="The endCursor while there is a next page, null on the last one (whose endCursor is still "
        "a position to resume from)."
    )
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)  # type: ignore[misc]  # relay.Connection declares edges as an attribute
    def edges(self) -> list[relay.Edge[ImageEvent]]:  # type: ignore[override]
        return [relay.Edge(cursor=c, node=n) for c, n in zip(self.cursors(), self.nodes, strict=True)]


@strawberry.input(name="EventFilter", description="Which events to list; every field narrows the result.")
class EventFilterInput:
    registry_ids: list[str] | None = None
    regions: list[str] | None = None
    repository_names: list[str] | None = strawberry.field(default=None, description="Shell-style globs.")
    image_digests: list[str] | None = None
    tags: list[str] | None = strawberry.field(
        default=None, description="Events that touched any of these tags: held them before or after."
    )
    types: list[str] | None = strawberry.field(default=None, description=f"Any of {TYPES_DESCRIPTION}.")
    since: datetime | None = strawberry.field(default=None, description="Events that occurred at or after this.")
    until: datetime | None = strawberry.field(default=None, description="Events that occurred before this.")
    backfill: bool | None = strawberry.field(
        default=None, description="Only the events of first syncs (true), or only the others (false)."
    )


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is taken as UTC (and can then be compared with one that has it)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def event_filter(given: EventFilterInput | None) -> EventFilter:
    g = given or EventFilterInput()
    check_globs(g.repository_names, "filter.repositoryNames")
    since, until = _utc(g.since), _utc(g.until)
    if since is not None and until is not None and since >= until:
        raise invalid_parameter("filter: since must be earlier than until")
    for kind in g.types or ():
        if kind not in image_events.TYPES:
            raise invalid_parameter(f"filter.types: unknown event type {kind!r}; one of {TYPES_DESCRIPTION}")
    return EventFilter(
        registry_ids=g.registry_ids,
        regions=g.regions,
        repository_names=g.repository_names,
        image_digests=g.image_digests,
        tags=g.tags,
        types=g.types,
        since=since,
        until=until,
        backfill=g.backfill,
    )


def _position(after: str, bound_to: str) -> Position:
    xid, event_id = cursors.decode(after, bound_to, [cursors.integer, cursors.integer])
    return xid, event_id


async def event_connection(
    context: Context, first: int | None, after: str | None, f: EventFilter, *, newest_first: bool = False
) -> EventConnection:
    """A page of the events ``f`` selects: oldest first (the feed), or newest first (a history)."""
    size = page_size(first)
    f = replace(f, registries=context.scope)
    bound_to = cursors.binding("history" if newest_first else "events", f)
    position = _position(after, bound_to) if after is not None else None
    read = image_events.history if newest_first else image_events.feed
    rows = await context.rows(read(f, position, size))
    # the feed (oldest first) resumes: its empty last page hands back its position, to poll with
    page = keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, [row.xid, row.id]),
                       resumable=not newest_first)  # fmt: skip
    return EventConnection(  # type: ignore[call-arg]  # edges: a resolver here, made from the cursors
        page_info=page.page_info, nodes=[ImageEvent.from_row(row) for row in page.rows], next_token=page.next_token,
        cursors=page.cursors,
    )  # fmt: skip


async def image_history(context: Context, image: Image, first: int | None, after: str | None) -> EventConnection:
    """An image's events, newest first."""
    repository = (config_type_of(image.registry_type), image.registry_id, image.region, image.repository_name)
    f = EventFilter(repository=repository, image_digests=[image.image_digest])
    return await event_connection(context, first, after, f, newest_first=True)


@strawberry.type(description="The tag pointed at imageDigest from `from` until `until` (null: it still does).")
class TagAssignment:
    image_digest: str
    since: datetime = strawberry.field(name="from")
    until: datetime | None
    repository: strawberry.Private[RepositoryKey]

    @resolver()
    async def image(self, info: strawberry.Info[Context, None]) -> Image | None:
        return await info.context.images.load(image_node_id(*self.repository, self.image_digest))


@strawberry.type
class TagAssignmentEdge:
    cursor: str
    node: TagAssignment


@strawberry.type(description="Where a tag pointed over time, newest first.")
class TagAssignmentConnection:
    page_info: relay.PageInfo
    nodes: list[TagAssignment]
    next_token: str | None
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)
    def edges(self) -> list[TagAssignmentEdge]:
        return [TagAssignmentEdge(cursor=c, node=n) for c, n in zip(self.cursors(), self.nodes, strict=True)]


def _assignment_key(after: str, bound_to: str) -> tuple[datetime, str]:
    since, digest = cursors.decode(after, bound_to, [cursors.time, cursors.text])
    return since, digest


async def tag_history(
    context: Context, repository: RepositoryKey, tag: str, first: int | None, after: str | None
) -> TagAssignmentConnection:
    """The assignments of ``tag`` in ``repository``, newest first, replayed from its events.

    Keyed by (from, digest): a page continues below its last assignment whatever newer ones appear.
    """
    size = page_size(first)
    bound_to = cursors.binding("tagHistory", repository, tag, context.scope)
    events = image_events.tag_events(repository, tag, context.scope)
    found: list[TagSpan] = tag_assignments(await context.rows(events), tag)
    if after is not None:
        since, digest = _assignment_key(after, bound_to)
        found = [a for a in found if (a.since, a.image_digest) < (since, digest)]
    page = keyset_page(
        found[: size + 1], size, after, lambda a: cursors.encode(bound_to, [a.since.isoformat(), a.image_digest])
    )
    nodes = [
        TagAssignment(image_digest=a.image_digest, since=a.since, until=a.until, repository=repository)
        for a in page.rows
    ]
    return TagAssignmentConnection(
        page_info=page.page_info, nodes=nodes, next_token=page.next_token, cursors=page.cursors
    )
