"""GraphQL ``webhooks`` (admin tokens): each declared webhook's status and backlog, and its deliveries with
their attempts, over ``inventory.read.webhooks``.

Secrets never appear here (the API does not read them). Deliveries are paged newest
first by id, like the other connections (``first``, ``after``, ``nextToken``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from inventory import redact
from inventory.api.auth import require_scope
from inventory.api.paging import Connection, connection
from inventory.api.resolvers import resolver
from inventory.feed.event import event_node_id
from inventory.read import webhooks
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
        rows = await info.context.webhook_attempts.load(self.delivery_id)
        return [
            DeliveryAttempt(at=row.at, status_code=row.status_code, duration_ms=row.duration_ms, error=row.error)
            for row in rows
        ]


@strawberry.type(description="A page of a webhook's deliveries, newest first.")
class WebhookDeliveryConnection(Connection[WebhookDelivery]):
    pass


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
        outcome = filter.outcome.value if filter is not None and filter.outcome is not None else None
        page = await webhooks.delivery_page(info.context, self.name, outcome, first, after)
        nodes = [
            WebhookDelivery(
                event_id=strawberry.ID(event_node_id(row.event_id)) if row.event_id is not None else None,
                message_id=row.message_id, type=row.type, outcome=DeliveryOutcome(row.state),
                occurred_at=row.occurred_at, created_at=row.created_at, delivery_id=row.id,
            )
            for row in page.items
        ]  # fmt: skip
        return connection(WebhookDeliveryConnection, page, nodes)

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


@strawberry.type
class WebhookQuery:
    @resolver(
        description="The webhooks declared in the inventory file, by name: status, backlog, deliveries "
        "(tokens with the admin scope)."
    )
    async def webhooks(self, info: strawberry.Info[Context, None]) -> list[Webhook]:
        require_scope(info, "admin")
        return [Webhook.from_endpoint(e) for e in await webhooks.webhooks(info.context)]
