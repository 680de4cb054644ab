"""GraphQL of the syncs: ``syncRuns``, and how fresh each registry is (``Registry.syncStatus``), over
``inventory.read.sync``."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from inventory.api.paging import Connection, connection
from inventory.api.resolvers import resolver
from inventory.read import sync
from inventory.status import Freshness, RegionStatus

if TYPE_CHECKING:
    from inventory.api.context import Context


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
    last_round_at: datetime | None = strawberry.field(
        description="The last full round of the region (the reconcile), failed scopes or not."
    )
    last_event_at: datetime | None = strawberry.field(
        description="The time ECR gave the newest of its events applied to the region (null: none yet)."
    )
    last_event_applied_at: datetime | None = strawberry.field(
        description="When the targeted sync of that event committed."
    )

    @classmethod
    def of(cls, status: RegionStatus, freshness: Freshness) -> RegionSyncStatus:
        return cls(**{k: v for k, v in vars(status).items() if k != "registry_name"}, **vars(freshness))


@strawberry.type(description="How fresh a registry is: its regions, and the worst of them.")
class SyncStatus:
    last_success_at: datetime | None = strawberry.field(description="The latest successful sync of any region.")
    last_error_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    stale_since: datetime | None = strawberry.field(description="The earliest staleSince of its regions.")
    regions: list[RegionSyncStatus]

    @classmethod
    def of(cls, statuses: list[tuple[RegionStatus, Freshness]]) -> SyncStatus:
        regions = [RegionSyncStatus.of(status, freshness) for status, freshness in statuses]
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


@strawberry.type(description="A page of sync runs, newest first.")
class SyncRunConnection(Connection[SyncRun]):
    filter: strawberry.Private[tuple[str | None, str | None]]
    """(status, registry name): what ``totalCount`` counts."""

    @resolver(description="How many runs match; counted only when asked for.")
    async def total_count(self, info: strawberry.Info[Context, None]) -> int:
        return await sync.sync_run_count(info.context, info.context.scope, *self.filter)


@strawberry.input(name="SyncRunFilter")
class SyncRunFilterInput:
    status: SyncRunStatus | None = None
    registry_name: str | None = None


@strawberry.type
class SyncQuery:
    @resolver(description="Sync runs, newest first: one per scope and sync.")
    async def sync_runs(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[SyncRunFilterInput | None, strawberry.argument(name="filter")] = None,
    ) -> SyncRunConnection:
        g = filter or SyncRunFilterInput()
        chosen = (g.status.value if g.status else None, g.registry_name)
        page = await sync.sync_run_page(info.context, info.context.scope, *chosen, first=first, after=after)
        return connection(SyncRunConnection, page, [SyncRun.from_row(row) for row in page.items], filter=chosen)


async def run_of(info: strawberry.Info[Context, None], run_id: int) -> SyncRun | None:
    """The sync run ``run_id``, if the reader may see it and retention kept it."""
    row = await info.context.sync_runs.load(run_id)
    return None if row is None else SyncRun.from_row(row)
