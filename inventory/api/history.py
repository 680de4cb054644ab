"""GraphQL of the inventory's history: the change feed (``events``, ``Image.history``), where a tag pointed
(``tagHistory``) and the net change between two times (``diff``), over ``inventory.read.history``.

The feed never ends: on its last page ``nextToken`` is null but ``pageInfo.endCursor`` is still a position
to resume from later (the ``after`` given when the page is empty), so a poller keeps its place.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from inventory.api.filters import ImageFilterInput, image_filter
from inventory.api.ids import RegistryType, config_type_of, image_node_id, registry_type_of
from inventory.api.paging import Connection, connection
from inventory.api.resolvers import resolver
from inventory.api.sync import SyncRun, run_of
from inventory.feed import event
from inventory.feed.query import EventFilter
from inventory.read import diff, history
from inventory.read.keys import RepositoryKey
from inventory.read.paging import Page

if TYPE_CHECKING:
    from inventory.api.context import Context
    from inventory.api.inventory import Image

ImageType = Annotated["Image", strawberry.lazy("inventory.api.inventory")]
"""``Image``, named lazily: the inventory's types build on these (``Image.history``)."""

TYPES_DESCRIPTION = ", ".join(event.TYPES)


async def image_of(info: strawberry.Info[Context, None], node_id: str) -> Image | None:
    """The image of ``node_id`` (removed or not) if the reader may see it, resolved as ``node(id:)`` is."""
    found = await relay.GlobalID("Image", node_id).resolve_node(info, required=False)
    return cast("Image | None", found)


@strawberry.type(description="One field an event changed: its value before and after (null: none).")
class FieldChange:
    field: str
    before: JSON | None
    after: JSON | None

    @classmethod
    def of(cls, changes: Iterable[event.FieldChange]) -> list[FieldChange]:
        return [cls(field=c.field, before=c.before, after=c.after) for c in changes]


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
        return await run_of(info, self.sync_run_id)

    @resolver(description="The image (removed or not); null for repository events.")
    async def image(self, info: strawberry.Info[Context, None]) -> ImageType | None:
        if self.image_digest is None:
            return None
        key = (config_type_of(self.registry_type), self.registry_id, self.region, self.repository_name)
        return await image_of(info, image_node_id(*key, self.image_digest))

    @classmethod
    def of(cls, e: event.Event) -> ImageEvent:
        return cls(
            node_id=str(e.id),
            type=e.type,
            occurred_at=e.occurred_at,
            registry_type=registry_type_of(e.registry_type),
            registry_id=e.registry_id,
            region=e.region,
            repository_name=e.repository_name,
            image_digest=e.image_digest,
            backfill=e.backfill,
            changes=FieldChange.of(e.changes),
            tags_added=e.tags_added,
            tags_removed=e.tags_removed,
            sync_run_id=e.sync_run_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[ImageEvent | None]:
        wanted = [str(node_id) for node_id in node_ids]
        found = await history.events_by_id(info.context, info.context.scope, wanted)
        return [cls.of(found[i]) if i in found else None for i in wanted]


@strawberry.type(description="A page of events; nextToken continues it, endCursor resumes the feed later.")
class EventConnection(Connection[ImageEvent]):
    next_token: str | None = strawberry.field(
        description="The endCursor while there is a next page, null on the last one (whose endCursor is still "
        "a position to resume from)."
    )


def events_connection(page: Page[event.Event]) -> EventConnection:
    return connection(EventConnection, page, [ImageEvent.of(e) for e in page.items])


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

    def read(self) -> EventFilter:
        """The read layer's filter."""
        return EventFilter(
            registry_ids=self.registry_ids,
            regions=self.regions,
            repository_names=self.repository_names,
            image_digests=self.image_digests,
            tags=self.tags,
            types=self.types,
            since=self.since,
            until=self.until,
            backfill=self.backfill,
        )


@strawberry.type(description="The tag pointed at imageDigest from `from` until `until` (null: it still does).")
class TagAssignment:
    image_digest: str
    since: datetime = strawberry.field(name="from")
    until: datetime | None
    repository: strawberry.Private[RepositoryKey]

    @resolver()
    async def image(self, info: strawberry.Info[Context, None]) -> ImageType | None:
        return await image_of(info, image_node_id(*self.repository, self.image_digest))


@strawberry.type(description="Where a tag pointed over time, newest first.")
class TagAssignmentConnection(Connection[TagAssignment]):
    pass


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

    @classmethod
    def of(cls, d: diff.ImageDiff) -> ImageDiff:
        return cls(
            registry_type=registry_type_of(d.registry_type),
            registry_id=d.registry_id,
            region=d.region,
            repository_name=d.repository_name,
            image_digest=d.image_digest,
            kind=ImageDiffKind(d.kind),
            changes=FieldChange.of(d.changes),
        )


@strawberry.type(description="A page of a diff, by image identity; nextToken and endCursor continue it.")
class ImageDiffConnection(Connection[ImageDiff]):
    next_token: str | None = strawberry.field(description="The endCursor while there is a next page, null at the end.")


@strawberry.type
class HistoryQuery:
    @resolver(
        description="The change feed, oldest first: every change the syncs made. On the last page nextToken is "
        "null and pageInfo.endCursor is the position to resume from later (never skipping an event)."
    )
    async def events(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[EventFilterInput | None, strawberry.argument(name="filter")] = None,
    ) -> EventConnection:
        f = (filter or EventFilterInput()).read()
        return events_connection(await history.event_page(info.context, info.context.scope, f, first, after))

    @resolver(
        description="Where a tag of a repository pointed over time, newest first (until null while it still does)."
    )
    async def tag_history(
        self,
        info: strawberry.Info[Context, None],
        registry_id: str,
        region: str,
        repository_name: str,
        tag: str,
        first: int | None = None,
        after: str | None = None,
        registry_type: RegistryType = RegistryType.ECR,
    ) -> TagAssignmentConnection:
        repository = (config_type_of(registry_type), registry_id, region, repository_name)
        page = await history.tag_history(info.context, info.context.scope, repository, tag, first, after)
        nodes = [TagAssignment(image_digest=a.image_digest, since=a.since, until=a.until, repository=repository)
                 for a in page.items]  # fmt: skip
        return connection(TagAssignmentConnection, page, nodes)

    @resolver(
        description="The net change per image between two times: ADDED (present at `to` only), REMOVED (at "
        "`from` only), CHANGED (at both, with different values). An image added and removed inside the window, "
        "or unchanged, does not appear. Ordered by image identity."
    )
    async def diff(
        self,
        info: strawberry.Info[Context, None],
        since: Annotated[datetime, strawberry.argument(name="from")],
        until: Annotated[datetime, strawberry.argument(name="to")],
        filter: Annotated[
            ImageFilterInput | None,
            strawberry.argument(name="filter", description="Images that match it at either time."),
        ] = None,
        first: int | None = None,
        after: str | None = None,
    ) -> ImageDiffConnection:
        f = image_filter(filter)
        checked_until = await info.context.as_of(until, argument="to")
        checked_since = await info.context.as_of(since, argument="from")
        assert checked_since is not None and checked_until is not None
        page = await history.diff_page(info.context, info.context.scope, f, checked_since, checked_until, first, after)
        return connection(ImageDiffConnection, page, [ImageDiff.of(d) for d in page.items])
