"""GraphQL types. Field names are the public contract: ECR's names where ECR has them.

Types live apart from the tables; rows are converted at the edge (``from_row``).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NewType, TypeVar

import strawberry
from strawberry import relay

from inventory.api.resolvers import resolver
from inventory.read.search import COUNT_CAP

if TYPE_CHECKING:
    from inventory.api.context import Context
    from inventory.api.events import EventConnection

AS_OF = "The inventory as the syncs had observed it at this time: what was present then, with its values then."
AsOf = Annotated[datetime | None, strawberry.argument(description=AS_OF)]
"""The ``asOf`` argument of the fields that read the inventory at a past time."""

Long = NewType("Long", int)
LONG = strawberry.scalar(
    name="Long",
    serialize=int,
    parse_value=int,
    description="A 64-bit integer (GraphQL's Int is 32-bit, and images exceed 2 GiB).",
)
"""``Long``'s GraphQL scalar (the schema's ``scalar_map``)."""


@strawberry.enum(description="ECR's tag status filter.")
class TagStatus(enum.Enum):
    TAGGED = "TAGGED"
    UNTAGGED = "UNTAGGED"
    ANY = "ANY"


@strawberry.enum(description="ECR's image status; ANY in filters only.")
class ImageStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    ACTIVATING = "ACTIVATING"
    ANY = "ANY"


@strawberry.enum(description="Finding severities, worst first.")
class Severity(enum.Enum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INFORMATIONAL = "INFORMATIONAL"
    UNDEFINED = "UNDEFINED"


@strawberry.enum(description="Orders of the image search; every order is newest, largest or latest first.")
class ImageOrder(enum.Enum):
    PUSHED_AT = "PUSHED_AT"
    SIZE = "SIZE"
    LAST_PULL = "LAST_PULL"


@strawberry.enum
class RegistryType(enum.Enum):
    ECR = "ECR"
    ECR_PUBLIC = "ECR_PUBLIC"


def registry_type_of(config_type: str) -> RegistryType:
    return RegistryType.ECR_PUBLIC if config_type == "ecr-public" else RegistryType.ECR


def config_type_of(registry_type: RegistryType) -> str:
    """The config's (and the tables') spelling of ``registry_type``: "ecr" or "ecr-public"."""
    return "ecr-public" if registry_type is RegistryType.ECR_PUBLIC else "ecr"


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
    as_of: strawberry.Private[datetime | None] = None
    """The time this image was read as of (``asOf``), None at present."""

    @resolver()
    async def repository(self, info: strawberry.Info[Context, None]) -> Repository:
        key = (config_type_of(self.registry_type), self.registry_id, self.region, self.repository_name)
        if self.as_of is not None:
            return await info.context.repositories_at.load((key, self.as_of))
        return await info.context.repositories.load(key)

    @resolver(description="Its events, newest first.")
    async def history(
        self, info: strawberry.Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Annotated[EventConnection, strawberry.lazy("inventory.api.events")]:
        return await info.context.image_history(self, first, after)  # the events module builds on these types

    @classmethod
    def from_rows(cls, rows: Sequence[Any], as_of: datetime | None = None) -> list[Image]:
        fields = rows[0]._fields if rows else ()  # looked up once: a Row's names and attributes are slow
        return [cls.from_row(row, fields, as_of) for row in rows]

    @classmethod
    def from_row(cls, row: Any, fields: Sequence[str] | None = None, as_of: datetime | None = None) -> Image:
        m = dict(zip(fields or row._fields, row, strict=True))
        scan = None
        if m["image_scan_status"] is not None or m["image_scan_status_description"] is not None:
            scan = ImageScanStatus(status=m["image_scan_status"], description=m["image_scan_status_description"])
        findings = None
        counts = m["finding_severity_counts"]
        if counts is not None or m["image_scan_completed_at"] is not None:
            findings = ImageScanFindingsSummary(
                image_scan_completed_at=m["image_scan_completed_at"],
                vulnerability_source_updated_at=m["vulnerability_source_updated_at"],
                finding_severity_counts=[SeverityCount(severity=k, count=v) for k, v in sorted((counts or {}).items())],
            )
        return cls(
            node_id=image_node_id(
                m["registry_type"], m["registry_id"], m["region"], m["repository_name"], m["image_digest"]
            ),
            registry_type=registry_type_of(m["registry_type"]),
            image_tags=list(m["image_tags"]),
            image_scan_status=scan,
            image_scan_findings_summary=findings,
            as_of=as_of,
            **{name: m[name] for name in _IMAGE_COLUMNS},
        )

    @classmethod
    def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> Awaitable[list[Image | None]]:
        return info.context.images_by_node_id([str(node_id) for node_id in node_ids])


_IMAGE_COLUMNS = (
    "registry_id", "region", "repository_name", "image_digest", "image_size_in_bytes", "image_pushed_at",
    "image_manifest_media_type", "artifact_media_type", "last_recorded_pull_time", "subject_manifest_digest",
    "image_status", "last_archived_at", "last_activated_at", "first_seen_at", "last_seen_at", "removed_at",
)  # fmt: skip
"""The Image fields that are their column, as is."""


PUBLIC_PREFIX = "ecr-public/"
"""Leads the node ids of ECR Public objects; a private one starts with its 12-digit registry id."""


def _prefix(registry_type: str) -> str:
    return PUBLIC_PREFIX if registry_type == "ecr-public" else ""


def _split_prefix(node_id: str) -> tuple[str, str]:
    """(registry type, the rest of the node id)."""
    if node_id.startswith(PUBLIC_PREFIX):
        return "ecr-public", node_id[len(PUBLIC_PREFIX) :]
    return "ecr", node_id


def image_node_id(registry_type: str, registry_id: str, region: str, repository_name: str, image_digest: str) -> str:
    """``[ecr-public/]registry/region/digest/repository``: the repository last, as its name may hold slashes."""
    return f"{_prefix(registry_type)}{registry_id}/{region}/{image_digest}/{repository_name}"


def split_image_node_id(node_id: str) -> tuple[str, str, str, str, str] | None:
    """The image's identity (registry type, registry id, region, repository, digest); None if malformed."""
    registry_type, rest = _split_prefix(node_id)
    parts = rest.split("/", 3)
    if len(parts) != 4:
        return None
    registry_id, region, digest, repository = parts
    return registry_type, registry_id, region, repository, digest


def repository_node_id(registry_type: str, registry_id: str, region: str, repository_name: str) -> str:
    """``[ecr-public/]registry/region/repository``."""
    return f"{_prefix(registry_type)}{registry_id}/{region}/{repository_name}"


def split_repository_node_id(node_id: str) -> tuple[str, str, str, str] | None:
    """The repository's identity (registry type, registry id, region, name); None if malformed."""
    registry_type, rest = _split_prefix(node_id)
    parts = rest.split("/", 2)
    if len(parts) != 3:
        return None
    registry_id, region, name = parts
    return registry_type, registry_id, region, name


EDGES = "Contains the nodes in this connection"

NodeType = TypeVar("NodeType", bound=relay.Node)


def _edges(cursors: list[str], nodes: list[NodeType]) -> list[relay.Edge[NodeType]]:
    """Edges are made only when asked for: a page's cursors are not free, and most clients want ``nodes``."""
    return [relay.Edge(cursor=cursor, node=node) for cursor, node in zip(cursors, nodes, strict=True)]


@strawberry.type(description="A page of images; nextToken and endCursor continue it.")
class ImageConnection(relay.Connection[Image]):
    nodes: list[Image]
    next_token: str | None = strawberry.field(
        description="The endCursor while there is a next page, null at the end: ECR's nextToken."
    )
    count: strawberry.Private[Callable[[], Awaitable[tuple[int, bool]]]]
    """(totalCount, whether it is a lower bound), counted once."""
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)  # type: ignore[misc]  # relay.Connection declares edges as an attribute
    def edges(self) -> list[relay.Edge[Image]]:  # type: ignore[override]
        return _edges(self.cursors(), self.nodes)

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
    as_of: strawberry.Private[datetime | None] = None
    """The time this repository was read as of (``asOf``): its images and imageCount are as of it too."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Its identity in the inventory: (registry type, registry id, region, name)."""
        return (config_type_of(self.registry_type), self.registry_id, self.region, self.repository_name)

    @resolver(description="Present images (at the asOf the repository was read at, if any).")
    async def image_count(self, info: strawberry.Info[Context, None]) -> int:
        if self.as_of is not None:
            return await info.context.image_counts_at.load((self.key, self.as_of))
        return await info.context.image_counts.load(self.key)

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
        return await info.context.image_connection(
            first, after, filter, order_by, repository=self.key, as_of=as_of or self.as_of
        )

    @classmethod
    def from_row(cls, row: Any, as_of: datetime | None = None) -> Repository:
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
    def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> Awaitable[list[Repository | None]]:
        return info.context.repositories_or_none([split_repository_node_id(str(node_id)) for node_id in node_ids])


@strawberry.type
class RepositoryConnection(relay.Connection[Repository]):
    nodes: list[Repository]
    next_token: str | None
    count: strawberry.Private[Callable[[], Awaitable[int]]]
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)  # type: ignore[misc]  # relay.Connection declares edges as an attribute
    def edges(self) -> list[relay.Edge[Repository]]:  # type: ignore[override]
        return _edges(self.cursors(), self.nodes)

    @resolver(description="How many repositories match; counted only when asked for.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type(description="A registry declared in the config.")
class Registry(relay.Node):
    node_id: relay.NodeID[str]
    name: str
    type: RegistryType
    account_id: str
    regions: list[str]

    @resolver(description="How fresh the inventory of this registry is.")
    async def sync_status(self, info: strawberry.Info[Context, None]) -> SyncStatus:
        return SyncStatus.of(await info.context.region_statuses.load(self.name))

    @resolver()
    async def repositories(
        self, info: strawberry.Info[Context, None], first: int | None = None, after: str | None = None
    ) -> RepositoryConnection:
        return await info.context.repository_connection(first, after, RepositoryFilterInput(registry_names=[self.name]))

    @classmethod
    def from_row(cls, row: Any) -> Registry:
        return cls(
            node_id=row.name, name=row.name, type=registry_type_of(row.type), account_id=row.account_id,
            regions=list(row.regions),
        )  # fmt: skip

    @classmethod
    def resolve_nodes(  # type: ignore[override]
        cls, *, info: strawberry.Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> Awaitable[list[Registry | None]]:
        return info.context.registries_by_name([str(node_id) for node_id in node_ids])


@strawberry.type(description="How fresh one region of a registry is.")
class RegionSyncStatus:
    region: str
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    stale_since: datetime | None = strawberry.field(
        description="Set when a sync failed after the last success: the rows are as of this time."
    )


@strawberry.type(description="How fresh a registry is: its regions, and the worst of them.")
class SyncStatus:
    last_success_at: datetime | None = strawberry.field(description="The latest successful sync of any region.")
    last_error_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    stale_since: datetime | None = strawberry.field(description="The earliest staleSince of its regions.")
    regions: list[RegionSyncStatus]

    @classmethod
    def of(cls, regions: list[RegionSyncStatus]) -> SyncStatus:
        errors = [r for r in regions if r.last_error_at is not None]
        latest_error = max(errors, key=lambda r: r.last_error_at or datetime.min) if errors else None
        return cls(
            last_success_at=max((r.last_success_at for r in regions if r.last_success_at), default=None),
            last_error_at=latest_error.last_error_at if latest_error else None,
            last_error_code=latest_error.last_error_code if latest_error else None,
            last_error_message=latest_error.last_error_message if latest_error else None,
            stale_since=min((r.stale_since for r in regions if r.stale_since), default=None),
            regions=regions,
        )


@strawberry.enum
class SyncRunStatus(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(description="One sync of one scope (a registry region, or one repository of it).")
class SyncRun:
    id: strawberry.ID
    registry_name: str
    registry_id: str
    region: str
    repository_name: str | None
    status: SyncRunStatus
    started_at: datetime
    finished_at: datetime | None
    images_seen: int
    images_added: int
    images_changed: int
    images_removed: int
    api_calls: int
    throttled_calls: int
    error_code: str | None
    error_message: str | None
    worker: str | None = strawberry.field(description="The worker that ran it (host:pid); null for `inventory apply`.")

    @classmethod
    def from_row(cls, row: Any) -> SyncRun:
        values = row._asdict()
        return cls(**{**values, "id": strawberry.ID(str(row.id)), "status": SyncRunStatus(row.status)})


@strawberry.type
class SyncRunEdge:
    cursor: str
    node: SyncRun


@strawberry.type(description="A page of sync runs, newest first.")
class SyncRunConnection:
    page_info: relay.PageInfo
    nodes: list[SyncRun]
    next_token: str | None
    count: strawberry.Private[Callable[[], Awaitable[int]]]
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)
    def edges(self) -> list[SyncRunEdge]:
        return [SyncRunEdge(cursor=c, node=n) for c, n in zip(self.cursors(), self.nodes, strict=True)]

    @resolver(description="How many runs match; counted only when asked for.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.input(name="SyncRunFilter")
class SyncRunFilterInput:
    status: SyncRunStatus | None = None
    registry_name: str | None = None


@strawberry.input(name="ImageFilter", description="Cross-account image search; every field narrows the result.")
class ImageFilterInput:
    registry_types: list[RegistryType] | None = None
    registry_ids: list[str] | None = None
    regions: list[str] | None = None
    repository_names: list[str] | None = strawberry.field(default=None, description="Shell-style globs.")
    tags: list[str] | None = strawberry.field(default=None, description="Images with any of these tags.")
    digests: list[str] | None = None
    tag_status: TagStatus = TagStatus.ANY
    image_status: ImageStatus = ImageStatus.ANY
    pushed_after: datetime | None = None
    pushed_before: datetime | None = None
    min_severity: Severity | None = strawberry.field(
        default=None, description="Images with at least one finding of this severity or worse."
    )
    include_removed: bool = False


@strawberry.input(name="RepositoryFilter")
class RepositoryFilterInput:
    registry_names: list[str] | None = None
    registry_types: list[RegistryType] | None = None
    registry_ids: list[str] | None = None
    regions: list[str] | None = None
    repository_names: list[str] | None = strawberry.field(default=None, description="Shell-style globs.")
    include_removed: bool = False


@strawberry.input(name="ImageIdInput")
class ImageIdInput:
    image_digest: str | None = None
    image_tag: str | None = None


@strawberry.input
class DescribeImagesFilter:
    tag_status: TagStatus | None = None
    image_status: ImageStatus | None = None


@strawberry.type(description="DescribeImages' answer, from the inventory.")
class DescribeImagesResult:
    image_details: list[Image]
    next_token: str | None
