"""Per-request context: the database, DataLoaders (one IN query per batch), and the connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader
from strawberry.relay import PageInfo

from inventory.api import cursors, search
from inventory.api.errors import ApiError, invalid_parameter
from inventory.api.types import (
    Image,
    ImageConnection,
    ImageFilterInput,
    ImageOrder,
    RegionSyncStatus,
    Registry,
    RegistryType,
    Repository,
    RepositoryConnection,
    RepositoryFilterInput,
    SyncRun,
    SyncRunConnection,
    SyncRunFilterInput,
    config_type_of,
    split_image_node_id,
)
from inventory.aws.semantics import DEFAULT_MAX_RESULTS, MAX_RESULTS
from inventory.models import Registry as RegistryRow
from inventory.models import SyncRun as SyncRunRow
from inventory.status import REGION_STATUS, RegionStatus

RepositoryKey = tuple[str, str, str, str]
"""(registry type, registry id, region, repository name): the primary key of ``repositories``."""
_registries = RegistryRow.__table__  # type: ignore[attr-defined]
_sync_runs = SyncRunRow.__table__  # type: ignore[attr-defined]


def page_size(first: int | None) -> int:
    """``first``: 1..1000, default 100, as ECR's maxResults; outside is an error, never a clamp."""
    if first is None:
        return DEFAULT_MAX_RESULTS
    if not 1 <= first <= MAX_RESULTS:
        raise invalid_parameter(f"first: must be between 1 and {MAX_RESULTS}, got {first}")
    return first


def image_filter(given: ImageFilterInput | None, repository: RepositoryKey | None = None) -> search.ImageFilter:
    f = given or ImageFilterInput()
    if f.pushed_after and f.pushed_before and f.pushed_after >= f.pushed_before:
        raise invalid_parameter("filter: pushedAfter must be earlier than pushedBefore")
    return search.ImageFilter(
        registry_types=_config_types(f.registry_types),
        registry_ids=f.registry_ids,
        regions=f.regions,
        repository_names=f.repository_names,
        tags=f.tags,
        digests=f.digests,
        tag_status=f.tag_status.value,
        image_status=f.image_status.value,
        pushed_after=f.pushed_after,
        pushed_before=f.pushed_before,
        min_severity=f.min_severity.value if f.min_severity else None,
        include_removed=f.include_removed,
        repository=repository,
    )


def _config_types(given: Sequence[RegistryType] | None) -> list[str] | None:
    return None if given is None else [config_type_of(t) for t in given]


def _keyset_position(after: str, bound_to: str, length: int) -> list[Any]:
    position = cursors.decode(after, bound_to)
    if len(position) != length:
        raise invalid_parameter("after: not a cursor of this API")
    return position


class Context:
    """What resolvers share during one request."""

    def __init__(self, engine: AsyncEngine, request: Any = None) -> None:
        self.engine = engine
        self.request = request
        self.repositories: DataLoader[RepositoryKey, Repository] = DataLoader(self._load_repositories)
        self.image_counts: DataLoader[RepositoryKey, int] = DataLoader(self._load_image_counts)
        self.region_statuses: DataLoader[str, list[RegionSyncStatus]] = DataLoader(self._load_region_statuses)
        self.images: DataLoader[str, Image | None] = DataLoader(self.images_by_node_id)
        """Images by node id (which holds the registry type); None where there is none."""
        self.sync_runs: DataLoader[int, SyncRun | None] = DataLoader(self._load_sync_runs)
        """Sync runs by id; None once retention pruned them."""

    async def rows(self, statement: Any) -> list[Any]:
        """The statement's rows; a read that meets a connection the server dropped is run again on a new one."""
        try:
            return await self._rows(statement)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return await self._rows(statement)

    async def _rows(self, statement: Any) -> list[Any]:
        async with self.engine.connect() as connection:
            return list(await connection.execute(statement))

    # loaders -----------------------------------------------------------------------

    async def _repository_rows(self, keys: Sequence[RepositoryKey]) -> dict[RepositoryKey, Repository]:
        c = search.repositories.c
        identity = tuple_(c.registry_type, c.registry_id, c.region, c.repository_name)
        rows = await self.rows(select(search.repositories).where(identity.in_(list(keys)))) if keys else []
        return {
            (row.registry_type, row.registry_id, row.region, row.repository_name): Repository.from_row(row)
            for row in rows
        }

    async def _load_repositories(self, keys: Sequence[RepositoryKey]) -> list[Repository | ApiError]:
        found = await self._repository_rows(keys)
        return [found.get(key) or ApiError("RepositoryNotFoundException", f"no repository {key}") for key in keys]

    async def repositories_or_none(self, keys: Sequence[RepositoryKey | None]) -> list[Repository | None]:
        """The repositories of ``keys``, None where there is none (or the key is None: a malformed id)."""
        found = await self._repository_rows([key for key in keys if key is not None])
        return [found.get(key) if key is not None else None for key in keys]

    async def _load_image_counts(self, keys: Sequence[RepositoryKey]) -> list[int]:
        c = search.images.c
        key = (c.registry_type, c.registry_id, c.region, c.repository_name)
        statement = (
            select(*key, func.count()).where(tuple_(*key).in_(list(keys)), c.removed_at.is_(None)).group_by(*key)
        )
        counts = {(r[0], r[1], r[2], r[3]): r[4] for r in await self.rows(statement)}
        return [counts.get(key, 0) for key in keys]

    async def _load_region_statuses(self, names: Sequence[str]) -> list[list[RegionSyncStatus]]:
        found: dict[str, list[RegionSyncStatus]] = {name: [] for name in names}
        for row in await self.rows(REGION_STATUS):
            if row.registry_name in found:
                status = RegionStatus.from_row(row)
                found[row.registry_name].append(
                    RegionSyncStatus(**{k: v for k, v in vars(status).items() if k != "registry_name"})
                )
        return [found[name] for name in names]

    async def _load_sync_runs(self, ids: Sequence[int]) -> list[SyncRun | None]:
        rows = await self.rows(select(_sync_runs).where(_sync_runs.c.id.in_(list(ids))))
        found = {row.id: SyncRun.from_row(row) for row in rows}
        return [found.get(run_id) for run_id in ids]

    async def images_by_node_id(self, node_ids: Sequence[str]) -> list[Image | None]:
        keys = [split_image_node_id(node_id) for node_id in node_ids]
        c = search.images.c
        wanted = [key for key in keys if key is not None]
        identity = tuple_(c.registry_type, c.registry_id, c.region, c.repository_name, c.image_digest)
        rows = await self.rows(select(*search.shown_images).where(identity.in_(wanted))) if wanted else []
        found = {
            (config_type_of(i.registry_type), i.registry_id, i.region, i.repository_name, i.image_digest): i
            for i in Image.from_rows(rows)
        }
        return [found.get(key) if key is not None else None for key in keys]

    async def registries_by_name(self, names: Sequence[str]) -> list[Registry | None]:
        rows = await self.rows(select(_registries).where(_registries.c.name.in_(list(names))))
        found = {row.name: Registry.from_row(row) for row in rows}
        return [found.get(name) for name in names]

    # connections -------------------------------------------------------------------

    async def image_connection(
        self,
        first: int | None,
        after: str | None,
        given: ImageFilterInput | None,
        order_by: ImageOrder,
        *,
        repository: RepositoryKey | None = None,
    ) -> ImageConnection:
        size = page_size(first)
        f = image_filter(given, repository)
        order = search.ORDERS[order_by.value]
        bound_to = cursors.binding("images", f, order.name)
        position = _keyset_position(after, bound_to, 1 + len(search.IDENTITY)) if after is not None else None
        rows = await self.rows(search.image_page(f, order, position, size))

        async def count() -> int:
            return int((await self.rows(search.image_count(f)))[0][0])

        return _connection(
            ImageConnection, rows, size, after, count,
            nodes=Image.from_rows, cursor=lambda row: cursors.encode(bound_to, search.image_key(order, row)),
        )  # fmt: skip

    async def repository_connection(
        self, first: int | None, after: str | None, given: RepositoryFilterInput | None
    ) -> RepositoryConnection:
        size = page_size(first)
        g = given or RepositoryFilterInput()
        f = search.RepositoryFilter(
            registry_names=g.registry_names,
            registry_types=_config_types(g.registry_types),
            registry_ids=g.registry_ids,
            regions=g.regions,
            repository_names=g.repository_names,
            include_removed=g.include_removed,
        )
        bound_to = cursors.binding("repositories", f)
        position = _keyset_position(after, bound_to, len(search.REPOSITORY_ORDER)) if after is not None else None
        rows = await self.rows(search.repository_page(f, position, size))

        async def count() -> int:
            return int((await self.rows(search.repository_count(f)))[0][0])

        return _connection(
            RepositoryConnection, rows, size, after, count,
            nodes=lambda page: [Repository.from_row(row) for row in page],
            cursor=lambda row: cursors.encode(bound_to, [getattr(row, name) for name in search.REPOSITORY_ORDER]),
        )  # fmt: skip

    async def sync_run_connection(
        self, first: int | None, after: str | None, given: SyncRunFilterInput | None
    ) -> SyncRunConnection:
        size = page_size(first)
        g = given or SyncRunFilterInput()
        c = _sync_runs.c
        conditions = []
        if g.status is not None:
            conditions.append(c.status == g.status.value)
        if g.registry_name is not None:
            conditions.append(c.registry_name == g.registry_name)
        bound_to = cursors.binding("syncRuns", g.status.value if g.status else None, g.registry_name)
        page = select(_sync_runs).where(*conditions).order_by(c.id.desc()).limit(size + 1)
        if after is not None:
            position = cursors.decode(after, bound_to)
            if len(position) != 1 or not isinstance(position[0], int):
                raise invalid_parameter("after: not a cursor of this API")
            page = page.where(c.id < position[0])
        rows = await self.rows(page)

        async def count() -> int:
            return int((await self.rows(select(func.count()).select_from(_sync_runs).where(*conditions)))[0][0])

        return _connection(
            SyncRunConnection, rows, size, after, count,
            nodes=lambda page: [SyncRun.from_row(row) for row in page],
            cursor=lambda row: cursors.encode(bound_to, [row.id]),
        )  # fmt: skip


ConnectionType = TypeVar("ConnectionType", ImageConnection, RepositoryConnection, SyncRunConnection)


def _connection(
    cls: type[ConnectionType],
    rows: list[Any],
    size: int,
    after: str | None,
    count: Callable[[], Awaitable[int]],
    *,
    nodes: Callable[[list[Any]], list[Any]],
    cursor: Callable[[Any], str],
) -> ConnectionType:
    """A page from ``size + 1`` fetched rows: the extra row only says that there is a next page."""
    page = rows[:size]
    has_next = len(rows) > size
    end = cursor(page[-1]) if page else None
    return cls(  # type: ignore[call-arg]  # edges: a resolver here, made from the cursors
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=cursor(page[0]) if page else None,
            end_cursor=end,
        ),
        nodes=nodes(page),
        next_token=end if has_next else None,
        count=count,
        cursors=lambda: [cursor(row) for row in page],
    )
