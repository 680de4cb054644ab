"""What the resolvers of one GraphQL request share: who asks (the token's principal and its ``Scope``), the
database as the read layer reads it, and DataLoaders (one query per batch of keys) over the read layer.

It knows no GraphQL type: the loaders return the read layer's rows, which each domain module turns into its
types. A read that meets a database outage marks the request (the view then answers HTTP 503).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from inventory.api.auth import ANONYMOUS, Principal
from inventory.read import database, inventory, sync, webhooks
from inventory.read.errors import Unavailable
from inventory.read.inventory import AsOf
from inventory.read.keys import ImageKey, RepositoryKey
from inventory.status import Freshness, RegionStatus


class Context:
    """What resolvers share during one request.

    ``scope`` is what the request's token may read (``inventory.read.scope``): every read is given it.
    """

    def __init__(self, engine: AsyncEngine, request: Any = None, principal: Principal = ANONYMOUS) -> None:
        self.engine = engine
        self.request = request
        self.principal = principal
        self.scope = principal.registries
        self.operation_name: str | None = None
        """The ``operationName`` the request gave (None: none; set by the HTTP view)."""
        self.request_id = os.urandom(6).hex()
        """Names the request in the audit log, and in the error and log line of an unexpected failure."""
        self.cost: int | None = None
        """The query's cost (``inventory.api.cost``), once computed."""
        self.unavailable = False
        """Whether a read met a database outage (the view then answers HTTP 503)."""
        self._checked: dict[datetime, AsOf] = {}
        """The past times this request has checked already."""

    # The DataLoaders are made when first used: most requests use one or none.

    @functools.cached_property
    def repositories(self) -> DataLoader[tuple[RepositoryKey, AsOf | None], Row[Any] | None]:
        """Repositories by (key, time or None: at present); None where there is none."""
        return DataLoader(self._load_repositories)

    @functools.cached_property
    def image_counts(self) -> DataLoader[tuple[RepositoryKey, AsOf | None], int]:
        """Images present in each repository, by (key, time or None)."""
        return DataLoader(self._load_image_counts)

    @functools.cached_property
    def images(self) -> DataLoader[tuple[ImageKey, AsOf | None], Row[Any] | None]:
        """Images by (key, time or None); None where there is none."""
        return DataLoader(self._load_images)

    @functools.cached_property
    def regions(self) -> DataLoader[str, list[tuple[RegionStatus, Freshness]]]:
        """The status and freshness of each region of a registry, by its name."""
        return DataLoader(self._load_regions)

    @functools.cached_property
    def sync_runs(self) -> DataLoader[int, Row[Any] | None]:
        """Sync runs by id; None once retention pruned them."""
        return DataLoader(self._load_sync_runs)

    @functools.cached_property
    def webhook_attempts(self) -> DataLoader[int, list[Row[Any]]]:
        """A webhook delivery's attempts, by delivery id."""
        return DataLoader(self._load_attempts)

    async def rows(self, statement: Any, parameters: Any = None) -> list[Any]:
        """The statement's rows (``inventory.read.database``): the request's ``Database``."""
        try:
            return await database.rows(self.engine, statement, parameters)
        except Unavailable:
            self.unavailable = True
            raise

    async def as_of(self, at: datetime | None, argument: str = "asOf") -> AsOf | None:
        """``at`` checked (``inventory.read.inventory.as_of``), once per request; None at present."""
        if at is None:
            return None
        if at not in self._checked:
            self._checked[at] = await inventory.as_of(self, at, argument)
        return self._checked[at]

    # loaders -----------------------------------------------------------------------

    async def _load_repositories(self, keys: Sequence[tuple[RepositoryKey, AsOf | None]]) -> list[Row[Any] | None]:
        found: dict[tuple[RepositoryKey, AsOf | None], Row[Any]] = {}
        for at in {at for _, at in keys}:
            rows = await inventory.repositories_by_key(self, self.scope, [k for k, when in keys if when == at], at)
            found.update({(key, at): row for key, row in rows.items()})
        return [found.get(key) for key in keys]

    async def _load_image_counts(self, keys: Sequence[tuple[RepositoryKey, AsOf | None]]) -> list[int]:
        counts: dict[tuple[RepositoryKey, AsOf | None], int] = {}
        for at in {at for _, at in keys}:
            found = await inventory.image_counts(self, self.scope, [k for k, when in keys if when == at], at)
            counts.update({(key, at): n for key, n in found.items()})
        return [counts.get(key, 0) for key in keys]

    async def _load_images(self, keys: Sequence[tuple[ImageKey, AsOf | None]]) -> list[Row[Any] | None]:
        found: dict[tuple[ImageKey, AsOf | None], Row[Any]] = {}
        for at in {at for _, at in keys}:
            rows = await inventory.images_by_key(self, self.scope, [k for k, when in keys if when == at], at)
            found.update({(key, at): row for key, row in rows.items()})
        return [found.get(key) for key in keys]

    async def _load_regions(self, names: Sequence[str]) -> list[list[tuple[RegionStatus, Freshness]]]:
        found = await sync.regions(self, self.scope, names)
        return [found[name] for name in names]

    async def _load_sync_runs(self, ids: Sequence[int]) -> list[Row[Any] | None]:
        found = await sync.sync_runs_by_id(self, self.scope, ids)
        return [found.get(run_id) for run_id in ids]

    async def _load_attempts(self, delivery_ids: Sequence[int]) -> list[list[Row[Any]]]:
        found = await webhooks.attempts(self, delivery_ids)
        return [found[i] for i in delivery_ids]
