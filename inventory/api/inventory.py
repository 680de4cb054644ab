"""GraphQL of the inventory, present or past: registries, repositories and images (by id, by key, by
search), and ECR's ``describeImages``, over ``inventory.read.inventory`` and ``inventory.read.describe``.

Field names are the public contract: ECR's names where ECR has them. Rows become types here
(``from_row``); what a token may see is decided by the read layer, given the request's scope.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry import relay

from inventory.api.filters import (
    DescribeImagesFilter,
    ImageFilterInput,
    ImageIdInput,
    ImageOrder,
    RepositoryFilterInput,
    image_filter,
)
from inventory.api.history import EventConnection, events_connection
from inventory.api.ids import (
    RegistryType,
    config_type_of,
    image_node_id,
    registry_type_of,
    repository_node_id,
    split_image_node_id,
    split_repository_node_id,
)
from inventory.api.paging import Connection, connection
from inventory.api.resolvers import resolver
from inventory.api.scalars import AsOf, Long
from inventory.api.sync import SyncStatus
from inventory.read import describe, history, inventory, search
from inventory.read.bounds import check_text
from inventory.read.errors import ReadError, invalid_parameter
from inventory.read.inventory import AsOf as CheckedAsOf
from inventory.read.keys import ImageKey, RepositoryKey
from inventory.read.search import COUNT_CAP

if TYPE_CHECKING:
    from inventory.api.context import Context


@strawberry.type
class ImageScanStatus:
    status: str | None
    description: str | None


@strawberry.type
class SeverityCount:
    severity: str
    count: int


@strawberry.type
class ImageScanFindingsSummary:
    image_scan_completed_at: datetime | None
    vulnerability_source_updated_at: datetime | None
    finding_severity_counts: list[SeverityCount]


@strawberry.type(description="An image: ECR's ImageDetail, plus what the inventory knows of it.")
class Image(relay.Node):
    node_id: relay.NodeID[str]
    registry_type: RegistryType = strawberry.field(description="Private ECR or ECR Public: part of the identity.")
    registry_id: str
    region: str
    repository_name: str
    image_digest: str
    image_tags: list[str]
    image_size_in_bytes: Long | None
    image_pushed_at: datetime | None
    image_manifest_media_type: str | None
    artifact_media_type: str | None
    image_scan_status: ImageScanStatus | None
    image_scan_findings_summary: ImageScanFindingsSummary | None
    last_recorded_pull_time: datetime | None
    subject_manifest_digest: str | None
    image_status: str | None
    last_archived_at: datetime | None
    last_activated_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    removed_at: datetime | None
    as_of: strawberry.Private[CheckedAsOf | None] = None
    """The time this image was read as of (``asOf``), None at present."""

    if not TYPE_CHECKING:  # (for mypy, an Image has only the attributes it declares)

        def __getattr__(self, name: str) -> Any:
            """A field made of the image's row when first read (``_LATER``): Images made of rows have none yet."""
            held = self.__dict__.get(_ROW)
            if held is None or name not in held[1]:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            row, later = held
            values = self.__dict__
            value = values[name] = later[name](row)
            if values.keys() >= later.keys():  # all made: the row is let go
                del values[_ROW]
            return value

    @property
    def key(self) -> ImageKey:
        kind = config_type_of(self.registry_type)
        return (kind, self.registry_id, self.region, self.repository_name, self.image_digest)

    @resolver()
    async def repository(self, info: strawberry.Info[Context, None]) -> Repository:
        key = (config_type_of(self.registry_type), self.registry_id, self.region, self.repository_name)
        row = await info.context.repositories.load((key, self.as_of))
        if row is None:
            at = "" if self.as_of is None else f" at {self.as_of}"
            raise ReadError("RepositoryNotFoundException", f"no repository {key}{at}")
        return Repository.from_row(row, self.as_of)

    @resolver(description="Its events, newest first.")
    async def history(
        self, info: strawberry.Info[Context, None], first: int | None = None, after: str | None = None
    ) -> EventConnection:
        return events_connection(await history.image_history(info.context, info.context.scope, self.key, first, after))

    @classmethod
    def from_rows(cls, rows: Sequence[Any], as_of: CheckedAsOf | None = None) -> list[Image]:
        """The images of rows of ``search.shown_images`` (in any order of columns)."""
        return _images_of(rows[0]._fields)(rows, as_of) if rows else []

    @classmethod
    def from_row(cls, row: Any, as_of: CheckedAsOf | None = None) -> Image:
        return cls.from_rows([row], as_of)[0]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Image | None]:
        return await images_of(info, [split_image_node_id(str(node_id)) for node_id in node_ids])


_IMAGE_COLUMNS = (
    "registry_id",
    "region",
    "repository_name",
    "image_digest",
    "image_size_in_bytes",
    "image_pushed_at",
    "image_manifest_media_type",
    "artifact_media_type",
    "last_recorded_pull_time",
    "subject_manifest_digest",
    "image_status",
    "last_archived_at",
    "last_activated_at",
    "first_seen_at",
    "last_seen_at",
    "removed_at",
)
"""The Image fields that are their column, as is."""


@functools.cache
def _images_of(columns: tuple[str, ...]) -> Callable[[Sequence[Any], CheckedAsOf | None], list[Image]]:
    """What makes Images of rows with ``columns``: the hot path of every image page (100 rows in a fraction of
    a millisecond). Each row's values are read by position, and each Image is made by filling its attributes
    (its fields and their defaults are all its dataclass ``__init__`` would set; none has a ``__post_init__``).
    Its id, registry type and scan (objects of their own), which a page may not select, are made when first
    read (``_LATER``)."""
    at = {name: i for i, name in enumerate(columns)}
    plain = [(name, at[name]) for name in _IMAGE_COLUMNS]
    tags = at["image_tags"]
    later = {name: functools.partial(make, at) for name, make in _LATER.items()}
    new = object.__new__

    def images(rows: Sequence[Any], as_of: CheckedAsOf | None) -> list[Image]:
        made = []
        for row in rows:
            image = new(Image)
            values = image.__dict__
            for name, i in plain:
                values[name] = row[i]
            values["image_tags"] = list(row[tags])
            values["as_of"] = as_of
            values[_ROW] = (row, later)
            made.append(image)
        return made

    return images


def _node_id(at: dict[str, int], row: Any) -> str:
    kind, account, region, repository, digest = (row[at[n]] for n in ("registry_type", *_IMAGE_COLUMNS[:4]))
    return image_node_id(kind, account, region, repository, digest)


def _registry_type(at: dict[str, int], row: Any) -> RegistryType:
    return registry_type_of(row[at["registry_type"]])


def _scan_status(at: dict[str, int], row: Any) -> ImageScanStatus | None:
    status, description = row[at["image_scan_status"]], row[at["image_scan_status_description"]]
    if status is None and description is None:
        return None
    return ImageScanStatus(status=status, description=description)


def _findings_summary(at: dict[str, int], row: Any) -> ImageScanFindingsSummary | None:
    counts, completed = row[at["finding_severity_counts"]], row[at["image_scan_completed_at"]]
    if counts is None and completed is None:
        return None
    return ImageScanFindingsSummary(
        image_scan_completed_at=completed,
        vulnerability_source_updated_at=row[at["vulnerability_source_updated_at"]],
        finding_severity_counts=[SeverityCount(severity=k, count=v) for k, v in sorted((counts or {}).items())],
    )


_LATER: dict[str, Callable[[dict[str, int], Any], Any]] = {
    "node_id": _node_id,
    "registry_type": _registry_type,
    "image_scan_status": _scan_status,
    "image_scan_findings_summary": _findings_summary,
}
"""The Image fields made of its row when first read (``Image.__getattr__``): by the columns' positions, the row."""
_ROW = "_row"
"""The attribute of an Image made of a row that holds the row and the makers of its ``_LATER`` fields (until
they have all been read)."""


async def images_of(
    info: strawberry.Info[Context, None], keys: Sequence[ImageKey | None], at: CheckedAsOf | None = None
) -> list[Image | None]:
    """The images of ``keys`` (as they were at ``at``), None where there is none (or the key is None: a
    malformed id)."""
    wanted = [(key, at) for key in keys if key is not None]
    rows = dict(zip(wanted, await info.context.images.load_many(wanted), strict=True))
    return [None if key is None or rows[key, at] is None else Image.from_row(rows[key, at], at) for key in keys]


async def image_of(info: strawberry.Info[Context, None], key: ImageKey) -> Image | None:
    """The image of ``key`` at present (removed or not), if the reader may see it."""
    (found,) = await images_of(info, [key])
    return found


@strawberry.type(description="A page of images; nextToken and endCursor continue it.")
class ImageConnection(Connection[Image]):
    count: strawberry.Private[Callable[[], Awaitable[tuple[int, bool]]]]
    """(totalCount, whether it is a lower bound), counted once."""

    @resolver(
        description="How many images match; counted only when asked for. Exact when the filter narrows by "
        "registry, region and repository only (from the counters the syncs keep); otherwise counted up to "
        f"{COUNT_CAP:,}, and past that it is {COUNT_CAP:,} and totalCountIsLowerBound is true."
    )
    async def total_count(self) -> int:
        return (await self.count())[0]

    @resolver(description=f"Whether more than totalCount images match (counting stopped at {COUNT_CAP:,}).")
    async def total_count_is_lower_bound(self) -> bool:
        return (await self.count())[1]


T = TypeVar("T")


def _once(count: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``count``, run at most once however many fields of the connection ask for it."""
    started: list[asyncio.Future[T]] = []

    def counted() -> Awaitable[T]:
        if not started:
            started.append(asyncio.ensure_future(count()))
        return asyncio.shield(started[0])

    return counted


async def image_connection(
    info: strawberry.Info[Context, None],
    first: int | None,
    after: str | None,
    given: ImageFilterInput | None,
    order_by: ImageOrder,
    *,
    repository: RepositoryKey | None = None,
    as_of: datetime | None = None,
) -> ImageConnection:
    """A page of images; as they were at ``as_of`` when given (its cursors are bound to that time)."""
    context = info.context
    f = image_filter(given, repository)
    at = await context.as_of(as_of)
    page = await inventory.image_page(context, context.scope, f, search.ORDERS[order_by.value], first, after, at)
    count = _once(lambda: inventory.image_count(context, context.scope, f, at))
    return connection(ImageConnection, page, Image.from_rows(page.items, at), count=count)


@strawberry.type(description="A repository as DescribeRepositories returned it.")
class Repository(relay.Node):
    node_id: relay.NodeID[str]
    registry_id: str
    region: str
    repository_name: str
    registry_name: str
    registry_type: RegistryType = strawberry.field(description="Private ECR or ECR Public: part of the identity.")
    repository_arn: str | None
    repository_uri: str | None
    created_at: datetime | None
    first_seen_at: datetime
    last_synced_at: datetime | None
    removed_at: datetime | None
    as_of: strawberry.Private[CheckedAsOf | None] = None
    """The time this repository was read as of (``asOf``): its images and imageCount are as of it too."""

    @property
    def key(self) -> RepositoryKey:
        """Its identity in the inventory: (registry type, registry id, region, name)."""
        return (config_type_of(self.registry_type), self.registry_id, self.region, self.repository_name)

    @resolver(description="Present images (at the asOf the repository was read at, if any).")
    async def image_count(self, info: strawberry.Info[Context, None]) -> int:
        return await info.context.image_counts.load((self.key, self.as_of))

    @resolver(description="Its images; as of the asOf the repository was read at unless asOf is given.")
    async def images(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[ImageFilterInput | None, strawberry.argument(name="filter")] = None,
        order_by: ImageOrder = ImageOrder.PUSHED_AT,
        as_of: AsOf = None,
    ) -> ImageConnection:
        return await image_connection(
            info, first, after, filter, order_by, repository=self.key, as_of=as_of or self.as_of
        )

    @classmethod
    def from_row(cls, row: Any, as_of: CheckedAsOf | None = None) -> Repository:
        return cls(
            node_id=repository_node_id(row.registry_type, row.registry_id, row.region, row.repository_name),
            registry_id=row.registry_id,
            region=row.region,
            repository_name=row.repository_name,
            registry_name=row.registry_name,
            registry_type=registry_type_of(row.registry_type),
            repository_arn=row.repository_arn,
            repository_uri=row.repository_uri,
            created_at=row.created_at,
            first_seen_at=row.first_seen_at,
            last_synced_at=row.last_synced_at,
            removed_at=row.removed_at,
            as_of=as_of,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Repository | None]:
        return await repositories_of(info, [split_repository_node_id(str(node_id)) for node_id in node_ids])


async def repositories_of(
    info: strawberry.Info[Context, None], keys: Sequence[RepositoryKey | None], at: CheckedAsOf | None = None
) -> list[Repository | None]:
    """The repositories of ``keys`` (present at ``at``), None where there is none (or the key is None)."""
    wanted = [(key, at) for key in keys if key is not None]
    rows = dict(zip(wanted, await info.context.repositories.load_many(wanted), strict=True))
    return [None if key is None or rows[key, at] is None else Repository.from_row(rows[key, at], at) for key in keys]


@strawberry.type
class RepositoryConnection(Connection[Repository]):
    filter: strawberry.Private[search.RepositoryFilter]
    as_of: strawberry.Private[CheckedAsOf | None]

    @resolver(description="How many repositories match; counted only when asked for.")
    async def total_count(self, info: strawberry.Info[Context, None]) -> int:
        return await inventory.repository_count(info.context, info.context.scope, self.filter, self.as_of)


async def repository_connection(
    info: strawberry.Info[Context, None],
    first: int | None,
    after: str | None,
    given: RepositoryFilterInput | None,
    as_of: datetime | None = None,
) -> RepositoryConnection:
    """A page of repositories; those present at ``as_of`` when given (its cursors are bound to that time)."""
    context = info.context
    at = await context.as_of(as_of)
    f = (given or RepositoryFilterInput()).read()
    page = await inventory.repository_page(context, context.scope, f, first, after, at)
    nodes = [Repository.from_row(row, at) for row in page.items]
    return connection(RepositoryConnection, page, nodes, filter=f, as_of=at)


@strawberry.type(description="A registry declared in the config.")
class Registry(relay.Node):
    node_id: relay.NodeID[str]
    name: str
    type: RegistryType
    account_id: str
    regions: list[str]

    @resolver(description="How fresh the inventory of this registry is.")
    async def sync_status(self, info: strawberry.Info[Context, None]) -> SyncStatus:
        return SyncStatus.of(await info.context.regions.load(self.name))

    @resolver()
    async def repositories(
        self, info: strawberry.Info[Context, None], first: int | None = None, after: str | None = None
    ) -> RepositoryConnection:
        return await repository_connection(info, first, after, RepositoryFilterInput(registry_names=[self.name]))

    @classmethod
    def from_row(cls, row: Any) -> Registry:
        return cls(
            node_id=row.name,
            name=row.name,
            type=registry_type_of(row.type),
            account_id=row.account_id,
            regions=list(row.regions),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Registry | None]:
        names = [str(node_id) for node_id in node_ids]
        found = await inventory.registries_by_name(info.context, info.context.scope, names)
        return [Registry.from_row(found[name]) if name in found else None for name in names]


@strawberry.type(description="DescribeImages' answer, from the inventory.")
class DescribeImagesResult:
    image_details: list[Image]
    next_token: str | None


@strawberry.type
class InventoryQuery:
    @resolver(description="Any Image, Repository, Registry or ImageEvent by its global id.")
    async def node(self, info: strawberry.Info[Context, None], id: relay.GlobalID) -> relay.Node | None:
        check_text(id.type_name, "id")
        check_text(id.node_id, "id")
        try:
            found: relay.Node | None = await id.resolve_node(info, required=False)
        except (ValueError, KeyError, TypeError):
            raise invalid_parameter(f"id: not the id of an Image, Repository, Registry or ImageEvent: {id}") from None
        return found

    @resolver(description="The registries declared in the config.")
    async def registries(self, info: strawberry.Info[Context, None]) -> list[Registry]:
        return [Registry.from_row(row) for row in await inventory.registries(info.context, info.context.scope)]

    @resolver()
    async def repositories(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[RepositoryFilterInput | None, strawberry.argument(name="filter")] = None,
        as_of: AsOf = None,
    ) -> RepositoryConnection:
        return await repository_connection(info, first, after, filter, as_of)

    @resolver(description="One repository; private ECR unless registryType says ECR_PUBLIC.")
    async def repository(
        self,
        info: strawberry.Info[Context, None],
        registry_id: str,
        region: str,
        repository_name: str,
        registry_type: RegistryType = RegistryType.ECR,
        as_of: AsOf = None,
    ) -> Repository | None:
        key = (config_type_of(registry_type), registry_id, region, repository_name)
        (found,) = await repositories_of(info, [key], await info.context.as_of(as_of))
        return found

    @resolver(description="One image; of private ECR unless registryType says ECR_PUBLIC.")
    async def image(
        self,
        info: strawberry.Info[Context, None],
        registry_id: str,
        region: str,
        repository_name: str,
        image_digest: str,
        registry_type: RegistryType = RegistryType.ECR,
        as_of: AsOf = None,
    ) -> Image | None:
        key = (config_type_of(registry_type), registry_id, region, repository_name, image_digest)
        (found,) = await images_of(info, [key], await info.context.as_of(as_of))
        return found

    @resolver(description="Cross-account image search, newest first unless orderBy says otherwise.")
    async def images(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[ImageFilterInput | None, strawberry.argument(name="filter")] = None,
        order_by: ImageOrder = ImageOrder.PUSHED_AT,
        as_of: AsOf = None,
    ) -> ImageConnection:
        return await image_connection(info, first, after, filter, order_by, as_of=as_of)

    @resolver(
        description="ECR's DescribeImages, answered from the inventory with ECR's semantics: of private ECR, "
        "as ECR's own API, unless registryType says ECR_PUBLIC (ECR Public's DescribeImages, which takes no filter)."
    )
    async def describe_images(
        self,
        info: strawberry.Info[Context, None],
        region: str,
        repository_name: str,
        registry_type: RegistryType = RegistryType.ECR,
        registry_id: str | None = None,
        image_ids: list[ImageIdInput] | None = None,
        filter: Annotated[DescribeImagesFilter | None, strawberry.argument(name="filter")] = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> DescribeImagesResult:
        ids = (
            None if image_ids is None else [{"imageDigest": i.image_digest, "imageTag": i.image_tag} for i in image_ids]
        )
        statuses = None
        if filter is not None:
            statuses = {
                "tagStatus": filter.tag_status.value if filter.tag_status else None,
                "imageStatus": filter.image_status.value if filter.image_status else None,
            }
        params: dict[str, Any] = {
            "registryId": registry_id,
            "repositoryName": repository_name,
            "imageIds": ids,
            "filter": statuses,
            "maxResults": max_results,
            "nextToken": next_token,
        }
        kind = config_type_of(registry_type)
        found = await describe.describe_images(info.context, info.context.scope, kind, region, params)
        return DescribeImagesResult(image_details=Image.from_rows(found.image_details), next_token=found.next_token)
