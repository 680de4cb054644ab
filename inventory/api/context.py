"""Per-request context: the database, DataLoaders (one IN query per batch), and the connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from psycopg.errors import QueryCanceled
from sqlalchemy import ColumnElement, func, literal_column, select, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from inventory.api import cursors, reads
from inventory.api.auth import ANONYMOUS, Principal
from inventory.api.errors import (
    ApiError,
    database_unavailable,
    history_not_retained,
    invalid_parameter,
    query_timeout,
)
from inventory.api.events import EventConnection, image_history
from inventory.api.ids import RepositoryKey
from inventory.api.limits import check_globs
from inventory.api.paging import keyset_page, page_size
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
from inventory.api.webhooks import load_attempts
from inventory.models import RegistryRow, SyncRunRow
from inventory.read import past, search
from inventory.status import RegionStatus
from inventory.tables import region_status
from inventory.tables.image_versions import horizon

_registries = RegistryRow.__table__  # type: ignore[attr-defined]
_sync_runs = SyncRunRow.__table__  # type: ignore[attr-defined]


def image_filter(
    given: ImageFilterInput | None, repository: RepositoryKey | None = None, scope: tuple[str, ...] | None = None
) -> search.ImageFilter:
    """The search's filter of ``given``, limited to ``repository`` and to the registries of ``scope`` if given."""
    f = given or ImageFilterInput()
    check_globs(f.repository_names, "filter.repositoryNames")
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
        scope=scope,
    )


def _config_types(given: Sequence[RegistryType] | None) -> list[str] | None:
    return None if given is None else [config_type_of(t) for t in given]


def _as_of_binding(as_of: datetime | None) -> list[str]:
    """What binds a cursor to its ``asOf`` (nothing at present: present-time cursors are unchanged)."""
    return [] if as_of is None else [as_of.astimezone(UTC).isoformat()]


def _image_position(after: str, bound_to: str, order: search.Order) -> list[Any]:
    sort_key = cursors.size if order.name == "SIZE" else cursors.time_or_never
    return cursors.decode(after, bound_to, [sort_key, *[cursors.text] * len(search.IDENTITY)])


class Context:
    """What resolvers share during one request.

    ``scope`` is what the request's token may read: the names of its registries, or None for all.
    Every query below applies it in SQL, so an object out of scope is read exactly as a missing one.
    """

    def __init__(self, engine: AsyncEngine, request: Any = None, principal: Principal = ANONYMOUS) -> None:
        self.engine = engine
        self.request = request
        self.principal = principal
        self.scope = principal.registries
        self.operation_name: str | None = None
        """The ``operationName`` the request gave (None: none; set by the HTTP view)."""
        self.request_id = uuid.uuid4().hex[:12]
        """Names the request in the audit log, and in the error and log line of an unexpected failure."""
        self.cost: int | None = None
        """The query's cost (``inventory.api.cost``), once computed."""
        self.unavailable = False
        """Whether a read met a database outage (the view then answers HTTP 503)."""
        self.repositories: DataLoader[RepositoryKey, Repository] = DataLoader(self._load_repositories)
        self.repositories_at: DataLoader[tuple[RepositoryKey, datetime], Repository] = DataLoader(
            self._load_repositories_at
        )
        """Repositories as of a time, by (key, time)."""
        self.image_counts: DataLoader[RepositoryKey, int] = DataLoader(self._load_image_counts)
        self.image_counts_at: DataLoader[tuple[RepositoryKey, datetime], int] = DataLoader(self._load_image_counts_at)
        """Images present at a time in each repository, by (key, time)."""
        self._checked: set[datetime] = set()
        """The asOf times this request has checked already."""
        self.region_statuses: DataLoader[str, list[RegionSyncStatus]] = DataLoader(self._load_region_statuses)
        self.images: DataLoader[str, Image | None] = DataLoader(self.images_by_node_id)
        """Images by node id (which holds the registry type); None where there is none."""
        self.sync_runs: DataLoader[int, SyncRun | None] = DataLoader(self._load_sync_runs)
        """Sync runs by id; None once retention pruned them."""
        self.webhook_attempts: DataLoader[int, list[Any]] = DataLoader(partial(load_attempts, self))
        """A webhook delivery's attempts, by delivery id."""

    async def rows(self, statement: Any) -> list[Any]:
        """The statement's rows (``inventory.api.reads``): QUERY_TIMEOUT past the statement timeout,
        DATABASE_UNAVAILABLE (the request is then answered 503) when the database cannot be reached."""
        try:
            return await reads.rows(self.engine, statement)
        except reads.Unavailable as exc:
            self.unavailable = True
            raise database_unavailable() from exc
        except OperationalError as exc:
            if isinstance(exc.orig, QueryCanceled):
                raise query_timeout() from None
            raise

    async def as_of(self, at: datetime | None, argument: str = "asOf") -> datetime | None:
        """``asOf`` (or the ``argument`` named) checked: not before the retained history (HistoryNotRetained),
        not in the future."""
        if at is None:
            return None
        if at.tzinfo is None:
            raise invalid_parameter(f"{argument}: give the time with its offset, e.g. 2026-01-01T00:00:00Z")
        if at not in self._checked:
            # -infinity (history kept since the inventory began) is no Python datetime: null here.
            kept_since = func.nullif(horizon().scalar_subquery(), literal_column("'-infinity'::timestamptz"))
            ((since, now),) = await self.rows(select(kept_since, func.now()))
            if at > now:
                raise invalid_parameter(f"{argument}: {at.isoformat()} is in the future (now is {now.isoformat()})")
            if since is not None and at < since:
                raise history_not_retained(since, argument)
            self._checked.add(at)
        return at

    # loaders -----------------------------------------------------------------------

    async def _repository_rows(
        self, keys: Sequence[RepositoryKey], as_of: datetime | None = None
    ) -> dict[RepositoryKey, Repository]:
        source = search.repositories if as_of is None else past.repositories_at(as_of)
        c = source.c
        identity = tuple_(c.registry_type, c.registry_id, c.region, c.repository_name)
        conditions = [identity.in_(list(keys))]
        if self.scope is not None:
            conditions.append(c.registry_name.in_(self.scope))
        rows = await self.rows(select(source).where(*conditions)) if keys else []
        return {
            (row.registry_type, row.registry_id, row.region, row.repository_name): Repository.from_row(row, as_of)
            for row in rows
        }

    async def _load_repositories(self, keys: Sequence[RepositoryKey]) -> list[Repository | ApiError]:
        found = await self._repository_rows(keys)
        return [found.get(key) or ApiError("RepositoryNotFoundException", f"no repository {key}") for key in keys]

    async def _load_repositories_at(
        self, keys: Sequence[tuple[RepositoryKey, datetime]]
    ) -> list[Repository | ApiError]:
        found = {}
        for at in {at for _, at in keys}:
            rows = await self._repository_rows([key for key, when in keys if when == at], at)
            found.update({(key, at): repository for key, repository in rows.items()})
        missing = "RepositoryNotFoundException"
        return [found.get(key) or ApiError(missing, f"no repository {key[0]} at {key[1]}") for key in keys]

    async def repositories_or_none(
        self, keys: Sequence[RepositoryKey | None], as_of: datetime | None = None
    ) -> list[Repository | None]:
        """The repositories of ``keys`` (as of ``as_of``), None where there is none (or the key is None:
        a malformed id)."""
        found = await self._repository_rows([key for key in keys if key is not None], await self.as_of(as_of))
        return [found.get(key) if key is not None else None for key in keys]

    async def _load_image_counts(self, keys: Sequence[RepositoryKey]) -> list[int]:
        return await self._image_counts(keys, None)

    async def _load_image_counts_at(self, keys: Sequence[tuple[RepositoryKey, datetime]]) -> list[int]:
        counts = {}
        for at in {at for _, at in keys}:
            wanted = [key for key, when in keys if when == at]
            counts.update({(key, at): n for key, n in zip(wanted, await self._image_counts(wanted, at), strict=True)})
        return [counts[key] for key in keys]

    async def _image_counts(self, keys: Sequence[RepositoryKey], as_of: datetime | None) -> list[int]:
        source = search.images if as_of is None else past.images_at(as_of)
        c = source.c
        key = (c.registry_type, c.registry_id, c.region, c.repository_name)
        statement = (
            select(*key, func.count()).where(tuple_(*key).in_(list(keys)), c.removed_at.is_(None)).group_by(*key)
        )
        counts = {(r[0], r[1], r[2], r[3]): r[4] for r in await self.rows(statement)}
        return [counts.get(key, 0) for key in keys]

    async def _load_region_statuses(self, names: Sequence[str]) -> list[list[RegionSyncStatus]]:
        found: dict[str, list[RegionSyncStatus]] = {name: [] for name in names}
        wanted = [name for name in names if self.scope is None or name in self.scope]
        for row in await self.rows(region_status.DECLARED_BY.bindparams(names=wanted)):
            status = RegionStatus.from_row(row)
            found[row.registry_name].append(
                RegionSyncStatus(**{k: v for k, v in vars(status).items() if k != "registry_name"})
            )
        return [found[name] for name in names]

    async def _load_sync_runs(self, ids: Sequence[int]) -> list[SyncRun | None]:
        rows = await self.rows(select(_sync_runs).where(_sync_runs.c.id.in_(list(ids)), *self._runs_in_scope()))
        found = {row.id: SyncRun.from_row(row) for row in rows}
        return [found.get(run_id) for run_id in ids]

    async def images_by_node_id(self, node_ids: Sequence[str], as_of: datetime | None = None) -> list[Image | None]:
        """The images of ``node_ids`` (as they were at ``as_of``), None where there is none."""
        as_of = await self.as_of(as_of)
        keys = [split_image_node_id(node_id) for node_id in node_ids]
        source = search.images if as_of is None else past.images_at(as_of)
        c = source.c
        wanted = [key for key in keys if key is not None]
        identity = tuple_(c.registry_type, c.registry_id, c.region, c.repository_name, c.image_digest)
        columns = [c[column.name] for column in search.shown_images]
        conditions: list[ColumnElement[bool]] = [identity.in_(wanted)]
        if self.scope is not None:
            conditions.append(search.in_registries(c, self.scope))
        rows = await self.rows(select(*columns).where(*conditions)) if wanted else []
        found = {
            (config_type_of(i.registry_type), i.registry_id, i.region, i.repository_name, i.image_digest): i
            for i in Image.from_rows(rows, as_of)
        }
        return [found.get(key) if key is not None else None for key in keys]

    def registries_in_scope(self) -> list[ColumnElement[bool]]:
        """The conditions on ``registries`` of the registries the token may see."""
        return [] if self.scope is None else [_registries.c.name.in_(self.scope)]

    def _runs_in_scope(self) -> list[ColumnElement[bool]]:
        return [] if self.scope is None else [_sync_runs.c.registry_name.in_(self.scope)]

    async def registries(self) -> list[Registry]:
        """The registries the token may see, by name."""
        statement = select(_registries).where(*self.registries_in_scope()).order_by(_registries.c.name)
        return [Registry.from_row(row) for row in await self.rows(statement)]

    async def registries_by_name(self, names: Sequence[str]) -> list[Registry | None]:
        wanted = _registries.c.name.in_(list(names))
        rows = await self.rows(select(_registries).where(wanted, *self.registries_in_scope()))
        found = {row.name: Registry.from_row(row) for row in rows}
        return [found.get(name) for name in names]

    # connections -------------------------------------------------------------------

    async def image_history(self, image: Image, first: int | None, after: str | None) -> EventConnection:
        """``Image.history``: the image's events, newest first (``inventory.api.events``)."""
        return await image_history(self, image, first, after)

    async def image_connection(
        self,
        first: int | None,
        after: str | None,
        given: ImageFilterInput | None,
        order_by: ImageOrder,
        *,
        repository: RepositoryKey | None = None,
        as_of: datetime | None = None,
    ) -> ImageConnection:
        """A page of images; as they were at ``as_of`` when given (its cursors are bound to that time)."""
        size = page_size(first)
        f = image_filter(given, repository, self.scope)
        as_of = await self.as_of(as_of)
        order = search.ORDERS[order_by.value]
        source = search.images if as_of is None else past.images_at(as_of)
        bound_to = cursors.binding("images", f, order.name, *_as_of_binding(as_of))
        position = _image_position(after, bound_to, order) if after is not None else None
        rows = await self.rows(search.image_page(f, order, position, size, source))

        async def count() -> tuple[int, bool]:
            ((total, lower_bound),) = await self.rows(search.image_count(f, source))
            return int(total), bool(lower_bound)

        return _connection(
            ImageConnection, rows, size, after, _once(count),
            nodes=lambda page: Image.from_rows(page, as_of),
            cursor=lambda row: cursors.encode(bound_to, search.image_key(order, row)),
        )  # fmt: skip

    async def repository_connection(
        self, first: int | None, after: str | None, given: RepositoryFilterInput | None, as_of: datetime | None = None
    ) -> RepositoryConnection:
        """A page of repositories; those present at ``as_of`` when given (its cursors are bound to that time)."""
        size = page_size(first)
        as_of = await self.as_of(as_of)
        source = search.repositories if as_of is None else past.repositories_at(as_of)
        g = given or RepositoryFilterInput()
        check_globs(g.repository_names, "filter.repositoryNames")
        f = search.RepositoryFilter(
            registry_names=g.registry_names,
            registry_types=_config_types(g.registry_types),
            registry_ids=g.registry_ids,
            regions=g.regions,
            repository_names=g.repository_names,
            include_removed=g.include_removed,
            scope=self.scope,
        )
        bound_to = cursors.binding("repositories", f, *_as_of_binding(as_of))
        shape = [cursors.text] * len(search.REPOSITORY_ORDER)
        position = cursors.decode(after, bound_to, shape) if after is not None else None
        rows = await self.rows(search.repository_page(f, position, size, source))

        async def count() -> int:
            return int((await self.rows(search.repository_count(f, source)))[0][0])

        return _connection(
            RepositoryConnection, rows, size, after, count,
            nodes=lambda page: [Repository.from_row(row, as_of) for row in page],
            cursor=lambda row: cursors.encode(bound_to, [getattr(row, name) for name in search.REPOSITORY_ORDER]),
        )  # fmt: skip

    async def sync_run_connection(
        self, first: int | None, after: str | None, given: SyncRunFilterInput | None
    ) -> SyncRunConnection:
        size = page_size(first)
        g = given or SyncRunFilterInput()
        c = _sync_runs.c
        conditions = self._runs_in_scope()
        if g.status is not None:
            conditions.append(c.status == g.status.value)
        if g.registry_name is not None:
            conditions.append(c.registry_name == g.registry_name)
        bound_to = cursors.binding("syncRuns", g.status.value if g.status else None, g.registry_name, self.scope)
        page = select(_sync_runs).where(*conditions).order_by(c.id.desc()).limit(size + 1)
        if after is not None:
            (run_id,) = cursors.decode(after, bound_to, [cursors.integer])
            page = page.where(c.id < run_id)
        rows = await self.rows(page)

        async def count() -> int:
            return int((await self.rows(select(func.count()).select_from(_sync_runs).where(*conditions)))[0][0])

        return _connection(
            SyncRunConnection, rows, size, after, count,
            nodes=lambda page: [SyncRun.from_row(row) for row in page],
            cursor=lambda row: cursors.encode(bound_to, [row.id]),
        )  # fmt: skip


def _once(count: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``count``, run at most once however many fields of the connection ask for it."""
    started: list[asyncio.Future[T]] = []

    def counted() -> Awaitable[T]:
        if not started:
            started.append(asyncio.ensure_future(count()))
        return asyncio.shield(started[0])

    return counted


T = TypeVar("T")
ConnectionType = TypeVar("ConnectionType", ImageConnection, RepositoryConnection, SyncRunConnection)


def _connection(
    cls: type[ConnectionType],
    rows: list[Any],
    size: int,
    after: str | None,
    count: Callable[[], Awaitable[Any]],
    *,
    nodes: Callable[[list[Any]], list[Any]],
    cursor: Callable[[Any], str],
) -> ConnectionType:
    """The connection of the page of ``size + 1`` fetched ``rows`` (``inventory.api.paging``)."""
    page = keyset_page(rows, size, after, cursor)
    return cls(  # type: ignore[call-arg]  # edges: a resolver here, made from the cursors
        page_info=page.page_info, nodes=nodes(page.rows), next_token=page.next_token, count=count,
        cursors=page.cursors,
    )  # fmt: skip
