"""GraphQL ``webhooks``: each declared webhook's status and backlog, and its deliveries with their attempts.

Secrets never appear here (the API does not read them). Deliveries are paged newest
first by id, like the other connections (``first``, ``after``, ``nextToken``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry
from strawberry import relay

from inventory import redact
from inventory.api import cursors
from inventory.api.paging import keyset_page, page_size
from inventory.api.resolvers import resolver
from inventory.api.types import EDGES
from inventory.tables import webhook_deliveries, webhook_endpoints
from inventory.tables.image_events import event_node_id
from inventory.tables.webhook_endpoints import Endpoint

if TYPE_CHECKING:
    from inventory.api.context import Context


@strawberry.enum(description="ENABLED and succeeding; FAILING: enabled, failing since its last success; DISABLED.")
class WebhookStatus(enum.Enum):
    ENABLED = "ENABLED"
    FAILING = "FAILING"
    DISABLED = "DISABLED"


@strawberry.enum(description="Where a delivery stands: still to be sent (or retried), delivered, or given up on.")
class DeliveryOutcome(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.type(description="One HTTP attempt at a delivery.")
class DeliveryAttempt:
    at: datetime
    status_code: int | None = strawberry.field(description="Null when no answer came (timeout, refused).")
    duration_ms: int
    error: str | None = strawberry.field(description="Why it failed; null for a 2xx.")


@strawberry.type(description="One message to a webhook and where its delivery stands.")
class WebhookDelivery:
    event_id: strawberry.ID | None = strawberry.field(
        description="The ImageEvent's node id (also the webhook-id header); null for a scope.backfilled summary "
        "or a webhook.ping."
    )
    message_id: str = strawberry.field(description="The webhook-id header: the same on every attempt.")
    type: str
    outcome: DeliveryOutcome
    occurred_at: datetime
    created_at: datetime
    delivery_id: strawberry.Private[int]

    @resolver(description="Its attempts, oldest first (kept [retention] webhook_attempts).")
    async def attempts(self, info: strawberry.Info[Context, None]) -> list[DeliveryAttempt]:
        return await info.context.webhook_attempts.load(self.delivery_id)


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type(description="A page of a webhook's deliveries, newest first.")
class WebhookDeliveryConnection:
    page_info: relay.PageInfo
    nodes: list[WebhookDelivery]
    next_token: str | None
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description=EDGES)
    def edges(self) -> list[WebhookDeliveryEdge]:
        return [WebhookDeliveryEdge(cursor=c, node=n) for c, n in zip(self.cursors(), self.nodes, strict=True)]


@strawberry.input(description="Which deliveries to list.")
class WebhookDeliveryFilter:
    outcome: DeliveryOutcome | None = None


@strawberry.type(description="A webhook declared in the inventory file, as the workers deliver it.")
class Webhook:
    name: str
    url: str
    status: WebhookStatus
    disabled_reason: str | None = strawberry.field(description="gone (it answered 410) or failing (5 days).")
    backlog: int = strawberry.field(description="Deliveries still pending.")
    last_success_at: datetime | None
    failing_since: datetime | None = strawberry.field(description="The first failure since the last success.")

    @resolver(description="Its deliveries, newest first.")
    async def deliveries(
        self, info: strawberry.Info[Context, None], first: int | None = None, after: str | None = None,
        filter: WebhookDeliveryFilter | None = None,
    ) -> WebhookDeliveryConnection:  # fmt: skip
        size = page_size(first)
        outcome = filter.outcome.value if filter is not None and filter.outcome is not None else None
        bound_to = cursors.binding("deliveries", self.name, outcome)
        before = _delivery_id(after, bound_to) if after is not None else None
        rows = await info.context.rows(webhook_deliveries.page(self.name, outcome, before, size))
        page = keyset_page(rows, size, after, lambda row: cursors.encode(bound_to, [row.id]))
        nodes = [
            WebhookDelivery(
                event_id=strawberry.ID(event_node_id(row.event_id)) if row.event_id is not None else None,
                message_id=row.message_id, type=row.type, outcome=DeliveryOutcome(row.state),
                occurred_at=row.occurred_at, created_at=row.created_at, delivery_id=row.id,
            )
            for row in page.rows
        ]  # fmt: skip
        return WebhookDeliveryConnection(
            page_info=page.page_info, nodes=nodes, next_token=page.next_token, cursors=page.cursors
        )

    @classmethod
    def from_endpoint(cls, e: Endpoint) -> Webhook:
        if e.status == "disabled":
            status = WebhookStatus.DISABLED
        else:
            status = WebhookStatus.FAILING if e.failing_since is not None else WebhookStatus.ENABLED
        return cls(
            name=e.name,
            url=redact.url(e.url),
            status=status,
            disabled_reason=e.disabled_reason,
            backlog=e.backlog,
            last_success_at=e.last_success_at,
            failing_since=e.failing_since,
        )


def _delivery_id(after: str, bound_to: str) -> int:
    (delivery_id,) = cursors.decode(after, bound_to, [cursors.integer])
    return int(delivery_id)


async def webhooks(context: Context) -> list[Webhook]:
    rows = await context.rows(webhook_endpoints.listing())
    return [Webhook.from_endpoint(Endpoint(**row._mapping)) for row in rows]


async def load_attempts(context: Context, delivery_ids: list[int]) -> list[list[DeliveryAttempt]]:
    found: dict[int, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
    for row in await context.rows(webhook_deliveries.attempts_of(delivery_ids)):
        found[row.delivery_id].append(
            DeliveryAttempt(at=row.at, status_code=row.status_code, duration_ms=row.duration_ms, error=row.error)
        )
    return [found[i] for i in delivery_ids]
