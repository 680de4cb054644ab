"""``inventory webhooks list|test|recover|enable``: what an operator does to a webhook from the command line."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.table import Table
from sqlalchemy import Engine

from inventory import redact
from inventory.config import InventoryConfig, WebhookConfig, webhook_secrets
from inventory.db import driver_connection
from inventory.errors import InventoryError
from inventory.feed import write as feed
from inventory.feed.render import when
from inventory.tables import webhook_deliveries, webhook_endpoints
from inventory.tables.webhook_deliveries import Outcome, Recovered
from inventory.tables.webhook_endpoints import Endpoint
from inventory.webhooks import delivery, payloads
from inventory.webhooks.delivery import Answer, Signer


def declared(config: InventoryConfig, name: str) -> WebhookConfig:
    """The config's webhook ``name``; otherwise an error listing the names there are."""
    try:
        return config.webhook(name)
    except KeyError:
        known = ", ".join(w.name for w in config.webhooks) or "none"
        raise InventoryError(f"{name!r}: no such webhook in the inventory file (webhooks: {known})") from None


def status_of(endpoint: Endpoint) -> str:
    """``enabled``, ``failing`` (enabled, failing since its last success) or ``disabled (reason)``."""
    if endpoint.status == "disabled":
        return f"disabled ({endpoint.disabled_reason})" if endpoint.disabled_reason else "disabled"
    return "failing" if endpoint.failing_since is not None else "enabled"


def endpoints(engine: Engine, config: InventoryConfig) -> list[Endpoint]:
    """The declared webhooks' rows (a webhook no worker has taken up yet has none)."""
    with engine.begin() as connection:
        raw = driver_connection(connection)
        webhook_endpoints.reconcile(config, connection=raw)
        return webhook_endpoints.endpoints([w.name for w in config.webhooks], connection=connection)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else when(moment)


def table(found: Sequence[Endpoint]) -> Table:
    view = Table(title="Webhooks", title_justify="left")
    for column in ("webhook", "url", "status", "last success", "failing since", "backlog", "delivered", "failed"):
        view.add_column(column, justify="right" if column in ("backlog", "delivered", "failed") else "left")
    for e in found:
        view.add_row(
            e.name,
            redact.url(e.url),
            status_of(e),
            _when(e.last_success_at),
            _when(e.failing_since),
            str(e.backlog),
            str(e.delivered_total),
            str(e.failed_total),
        )
    return view


def ping(engine: Engine, config: InventoryConfig, name: str, timeout: float) -> Answer:
    """Send ``webhook.ping`` to the webhook now, whatever its status; record it with its attempt."""
    webhook = declared(config, name)
    try:
        signer = Signer(webhook_secrets(webhook))
    except ValueError as exc:
        raise InventoryError(f"webhook {name!r}: secret_env: {exc}") from None
    now = datetime.now(UTC)
    message = payloads.ping_message(name, f"ping_{uuid.uuid4().hex}", now)

    async def send() -> Answer:
        async with delivery.client(webhook.url, 1) as http:
            return await delivery.attempt(http, webhook.url, signer, message.message_id, message.payload, timeout)

    answer = asyncio.run(send())
    with engine.begin() as connection:
        raw = driver_connection(connection)
        webhook_endpoints.reconcile(config, connection=raw)
        [written] = webhook_deliveries.insert(name, [message], connection=raw)
        state = "delivered" if answer.delivered else "failed"
        outcome = Outcome(written.id, answer.at, answer.status_code, answer.duration_ms, answer.error, state)
        webhook_deliveries.record([outcome], connection=raw)
    return answer


def recover(engine: Engine, config: InventoryConfig, name: str, since: datetime) -> tuple[Recovered, Endpoint]:
    """Send now the deliveries written since ``since`` that wait for a retry, and make those that failed
    pending again; (how many of each, the webhook's row), and the workers woken to send them."""
    declared(config, name)
    with engine.begin() as connection:
        raw = driver_connection(connection)
        webhook_endpoints.reconcile(config, connection=raw)
        recovered = webhook_deliveries.recover(name, since, connection=raw)
        feed.notify(connection=raw)
        [endpoint] = webhook_endpoints.endpoints([name], connection=connection)
    return recovered, endpoint


def enable(engine: Engine, config: InventoryConfig, name: str) -> Endpoint:
    """Deliver to a disabled webhook again, from where it stopped."""
    declared(config, name)
    with engine.begin() as connection:
        raw = driver_connection(connection)
        webhook_endpoints.reconcile(config, connection=raw)
        webhook_endpoints.enable(name, connection=raw)
        feed.notify(connection=raw)
        [endpoint] = webhook_endpoints.endpoints([name], connection=connection)
    return endpoint
