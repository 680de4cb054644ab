"""SQL of the ``webhook_endpoints`` table: each declared webhook's place in the feed, lease and health.

A worker claims webhooks with ``FOR UPDATE SKIP LOCKED`` like registry regions
(``sync_scopes``): the holder of a webhook's lease is the only one reading the feed
for it and delivering to it, renews the lease by heartbeat, and another worker takes
the webhook over once a lease expires. Writes a holder makes (the cursor, the health)
are fenced: they only land while its lease holds, so a worker that stalled past its
lease cannot move a cursor under the new holder.

Functions that write take a psycopg connection keyword-only and never commit; ``listing``
is a SQLAlchemy select for the API and the command line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Select, func, select, true

from inventory.config import InventoryConfig
from inventory.models import WebhookDeliveryRow, WebhookEndpointRow

endpoints_table = WebhookEndpointRow.__table__  # type: ignore[attr-defined]
deliveries_table = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]

Position = tuple[int, int]
"""A place in the change feed: (xid, event id), as ``inventory.tables.image_events`` reads it."""

_NOW = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1, 9223372036854775807)"
"""The feed's position now: past every event of every transaction that has ended (those still
running have xids from the snapshot's xmin on, so a new webhook still gets their events)."""

_HELD = "name = %(name)s AND owner = %(owner)s AND lease_expires_at > now()"


@dataclass(frozen=True)
class Endpoint:
    """A webhook's row, as ``inventory webhooks list``, GraphQL and the metrics show it."""

    name: str
    url: str
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    cursor_xid: int
    cursor_id: int
    owner: str | None
    lease_expires_at: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failing_since: datetime | None
    delivered_total: int
    failed_total: int
    retried_total: int
    backlog: int
    """Deliveries still pending."""
    oldest_pending_at: datetime | None
    """When the event of the oldest pending delivery occurred."""


def reconcile(config: InventoryConfig, *, connection: psycopg.Connection[Any]) -> None:
    """One row per declared webhook, a new one starting at the feed's end (it is told of what happens
    from now on); a webhook no longer declared keeps its row and deliveries, marked undeclared."""
    names = [w.name for w in config.webhooks]
    urls = [w.url for w in config.webhooks]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO webhook_endpoints (name, url, cursor_xid, cursor_id) "
            f"SELECT n, u, ({_NOW}).* FROM unnest(%s::text[], %s::text[]) AS t(n, u) "
            "ON CONFLICT (name) DO UPDATE SET url = excluded.url, declared = true "
            "WHERE webhook_endpoints.url IS DISTINCT FROM excluded.url OR NOT webhook_endpoints.declared",
            (names, urls),
        )
        cursor.execute(
            "UPDATE webhook_endpoints SET declared = false WHERE declared AND name <> ALL(%s::text[])", (names,)
        )


def claim(owner: str, lease_seconds: float, *, connection: psycopg.Connection[Any]) -> list[str]:
    """Take every declared, enabled webhook whose lease is free or expired."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH free AS (SELECT name FROM webhook_endpoints WHERE declared AND status = 'enabled' "
            "  AND (lease_expires_at IS NULL OR lease_expires_at < now()) ORDER BY name FOR UPDATE SKIP LOCKED) "
            "UPDATE webhook_endpoints w SET owner = %s, lease_expires_at = now() + make_interval(secs => %s) "
            "FROM free WHERE w.name = free.name RETURNING w.name",
            (owner, lease_seconds),
        )
        return sorted(row[0] for row in cursor)


def renew(owner: str, held: Iterable[str], lease_seconds: float, *, connection: psycopg.Connection[Any]) -> set[str]:
    """Extend the leases ``owner`` still holds on enabled webhooks; return those (a missing one is lost)."""
    held = list(held)
    if not held:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE webhook_endpoints SET lease_expires_at = now() + make_interval(secs => %s) "
            "WHERE owner = %s AND lease_expires_at >= now() AND status = 'enabled' AND declared "
            "AND name = ANY(%s::text[]) RETURNING name",
            (lease_seconds, owner, held),
        )
        return {row[0] for row in cursor}


def release(owner: str, names: Iterable[str], *, connection: psycopg.Connection[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE webhook_endpoints SET owner = NULL, lease_expires_at = NULL WHERE owner = %s AND name = ANY(%s)",
            (owner, list(names)),
        )


def cursor(name: str, *, connection: psycopg.Connection[Any]) -> tuple[Position, datetime | None]:
    """(the webhook's place in the feed, when its failed deliveries were last recovered)."""
    with connection.cursor() as c:
        c.execute("SELECT cursor_xid, cursor_id, recovered_at FROM webhook_endpoints WHERE name = %s", (name,))
        row = c.fetchone()
    assert row is not None, name
    return (row[0], row[1]), row[2]


def advance(name: str, owner: str, position: Position, *, connection: psycopg.Connection[Any]) -> bool:
    """Move the cursor to ``position``; False (nothing written) when ``owner`` no longer holds the lease."""
    with connection.cursor() as c:
        c.execute(
            f"UPDATE webhook_endpoints SET cursor_xid = %(xid)s, cursor_id = %(id)s WHERE {_HELD}",
            {"xid": position[0], "id": position[1], "name": name, "owner": owner},
        )
        return c.rowcount == 1


def record(
    name: str,
    *,
    delivered: int,
    failed: int,
    retried: int,
    succeeded_at: datetime | None,
    failed_at: datetime | None,
    failing_since: datetime | None,
    connection: psycopg.Connection[Any],
) -> None:
    """Count outcomes and keep the health, ``failing_since`` as the sender saw it (the first failure
    after the last success). Not fenced: what was attempted is written, whoever holds the lease now."""
    with connection.cursor() as c:
        c.execute(
            "UPDATE webhook_endpoints SET delivered_total = delivered_total + %(delivered)s, "
            "failed_total = failed_total + %(failed)s, retried_total = retried_total + %(retried)s, "
            "last_success_at = greatest(last_success_at, %(succeeded_at)s), "
            "last_failure_at = greatest(last_failure_at, %(failed_at)s), failing_since = %(failing_since)s "
            "WHERE name = %(name)s",
            {
                "delivered": delivered,
                "failed": failed,
                "retried": retried,
                "succeeded_at": succeeded_at,
                "failed_at": failed_at,
                "failing_since": failing_since,
                "name": name,
            },
        )


def disable(name: str, reason: str, *, connection: psycopg.Connection[Any]) -> None:
    """Stop delivering to the webhook (``gone``: it answered 410; ``failing``: no success for days)."""
    with connection.cursor() as c:
        c.execute(
            "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = %s, disabled_at = now(), "
            "owner = NULL, lease_expires_at = NULL WHERE name = %s AND status = 'enabled'",
            (reason, name),
        )


def enable(name: str, *, connection: psycopg.Connection[Any]) -> bool:
    """Deliver to the webhook again, from where it stopped; False when there is no such webhook."""
    with connection.cursor() as c:
        c.execute(
            "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, disabled_at = NULL, "
            "failing_since = NULL WHERE name = %s",
            (name,),
        )
        return c.rowcount == 1


def listing(names: Iterable[str] | None = None) -> Select[Any]:
    """The declared webhooks (or those named), by name, with their backlog: rows of ``Endpoint``'s fields."""
    w, d = endpoints_table.c, deliveries_table.c
    pending = (
        select(func.count().label("backlog"), func.min(d.occurred_at).label("oldest_pending_at"))
        .where(d.webhook == w.name, d.state == "pending")
        .lateral("pending")
    )
    columns = [w[f.name] for f in fields(Endpoint) if f.name in w]
    chosen = w.declared if names is None else w.name.in_(list(names))
    return (
        select(*columns, pending.c.backlog, pending.c.oldest_pending_at)
        .select_from(endpoints_table.join(pending, true()))
        .where(chosen)
        .order_by(w.name)
    )


def endpoints(names: Iterable[str] | None = None, *, connection: Connection) -> list[Endpoint]:
    """``listing`` read on a SQLAlchemy connection."""
    return [Endpoint(**row._mapping) for row in connection.execute(listing(names))]
