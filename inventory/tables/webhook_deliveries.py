"""SQL of ``webhook_deliveries`` and ``webhook_attempts``: each message to a webhook, and each HTTP attempt at it.

A delivery is written when the webhook's lease holder reads its event from the feed
(``insert``; a message already written is left as it is, so reading a page again after a
takeover sends nothing twice), and its outcome once attempted (``record``: one attempt
row, and the delivery delivered, due again, or failed). Retention prunes finished
deliveries and attempts older than ``[retention] webhook_attempts``; pending ones stay.

Functions take a psycopg connection keyword-only and never commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import class_row
from sqlalchemy import Select, and_, select

from inventory.models import WebhookAttemptRow, WebhookDeliveryRow

deliveries = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]
attempts = WebhookAttemptRow.__table__  # type: ignore[attr-defined]

STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class Message:
    """What to send: built from an event (or a summary, or a ping) before it is written."""

    message_id: str
    type: str
    event_id: int | None
    ordering_key: str
    occurred_at: datetime
    payload: str


@dataclass
class Pending:
    """A written delivery not yet delivered: what the dispatcher holds in memory."""

    id: int
    message_id: str
    type: str
    ordering_key: str
    occurred_at: datetime
    payload: str
    attempts: int
    next_attempt_at: datetime


@dataclass(frozen=True)
class Outcome:
    """One attempt's result, and what becomes of the delivery: ``state`` and, while pending, when next."""

    delivery_id: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    state: str
    next_attempt_at: datetime | None = None


_PENDING = "id, message_id, type, ordering_key, occurred_at, payload, attempts, next_attempt_at"


def insert(webhook: str, messages: Sequence[Message], *, connection: psycopg.Connection[Any]) -> list[Pending]:
    """Write the messages as pending deliveries; the ones written (not those already there), in order."""
    if not messages:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO webhook_deliveries (webhook, message_id, type, event_id, ordering_key, occurred_at, payload) "
            "SELECT %s, message_id, type, event_id, ordering_key, occurred_at, payload "
            "FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::text[], %b::timestamptz[], %b::text[]) "
            "WITH ORDINALITY AS m(message_id, type, event_id, ordering_key, occurred_at, payload, n) ORDER BY n "
            "ON CONFLICT (webhook, message_id) DO NOTHING RETURNING id, message_id, next_attempt_at",
            (
                webhook,
                [m.message_id for m in messages],
                [m.type for m in messages],
                [m.event_id for m in messages],
                [m.ordering_key for m in messages],
                [m.occurred_at for m in messages],
                [m.payload for m in messages],
            ),
        )
        written = {message_id: (id_, due) for id_, message_id, due in cursor}  # not the payloads back again
    found = [
        Pending(
            written[m.message_id][0],
            m.message_id,
            m.type,
            m.ordering_key,
            m.occurred_at,
            m.payload,
            0,
            written[m.message_id][1],
        )
        for m in messages
        if m.message_id in written
    ]
    return sorted(found, key=lambda p: p.id)


def pending(webhook: str, after_id: int, limit: int, *, connection: psycopg.Connection[Any]) -> list[Pending]:
    """The webhook's pending deliveries after ``after_id``, oldest first."""
    with connection.cursor(row_factory=class_row(Pending)) as cursor:
        cursor.execute(
            f"SELECT {_PENDING} FROM webhook_deliveries WHERE webhook = %s AND state = 'pending' AND id > %s "
            "ORDER BY id LIMIT %s",
            (webhook, after_id, limit),
        )
        return cursor.fetchall()


def record(outcomes: Sequence[Outcome], *, connection: psycopg.Connection[Any]) -> None:
    """Each outcome's attempt, and its delivery's new state."""
    if not outcomes:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO webhook_attempts (delivery_id, at, status_code, duration_ms, error) "
            "SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[], %s::int[], %s::text[])",
            (
                [o.delivery_id for o in outcomes],
                [o.at for o in outcomes],
                [o.status_code for o in outcomes],
                [o.duration_ms for o in outcomes],
                [o.error for o in outcomes],
            ),
        )
        # A delivery retried quickly has several attempts in one batch: its last one decides.
        last = {o.delivery_id: o for o in outcomes}
        tried = Counter(o.delivery_id for o in outcomes)
        cursor.execute(
            "UPDATE webhook_deliveries d SET state = o.state, attempts = d.attempts + o.tried, "
            "next_attempt_at = coalesce(o.next_at, d.next_attempt_at), "
            "finished_at = CASE WHEN o.state = 'pending' THEN NULL ELSE o.at END "
            "FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::timestamptz[], %s::timestamptz[]) "
            "AS o(id, tried, state, next_at, at) WHERE d.id = o.id",
            (
                list(last),
                [tried[i] for i in last],
                [o.state for o in last.values()],
                [o.next_attempt_at for o in last.values()],
                [o.at for o in last.values()],
            ),
        )


class Recovered(NamedTuple):
    """What ``recover`` did."""

    waiting: int
    """Pending deliveries waiting for a retry, due now instead."""
    failed: int
    """Failed deliveries, pending again with a fresh schedule."""


def recover(webhook: str, since: datetime, *, connection: psycopg.Connection[Any]) -> Recovered:
    """Make the webhook's deliveries written since ``since`` that wait for a retry due now (their schedule
    goes on from there), and those that failed pending again, due now; how many of each. The webhook's
    ``recovered_at`` tells its sender to read its pending deliveries again."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE webhook = %s AND state = 'pending' "
            "AND attempts > 0 AND next_attempt_at > now() AND created_at >= %s",
            (webhook, since),
        )
        waiting = cursor.rowcount
        cursor.execute(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(), "
            "finished_at = NULL WHERE webhook = %s AND state = 'failed' AND created_at >= %s",
            (webhook, since),
        )
        failed = cursor.rowcount
        cursor.execute("UPDATE webhook_endpoints SET recovered_at = clock_timestamp() WHERE name = %s", (webhook,))
        return Recovered(waiting, failed)


def prune(older_than: float, *, connection: psycopg.Connection[Any], batch: int = 1000) -> int:
    """Delete at most ``batch`` attempts older than ``older_than`` seconds, then as many finished
    deliveries (with what remains of their attempts)."""
    deleted = 0
    with connection.cursor() as cursor:
        for table, at in (("webhook_attempts", "at"), ("webhook_deliveries", "finished_at")):
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {at} < now() - "
                f"make_interval(secs => %s) ORDER BY {at} LIMIT %s FOR UPDATE SKIP LOCKED)",
                (older_than, batch),
            )
            deleted += cursor.rowcount
    return deleted


# reads for GraphQL ----------------------------------------------------------------------


def page(webhook: str, state: str | None, before_id: int | None, first: int) -> Select[Any]:
    """``first + 1`` of a webhook's deliveries (in ``state`` when given), newest first, before ``before_id``."""
    c = deliveries.c
    where = [c.webhook == webhook]
    if state is not None:
        where.append(c.state == state)
    if before_id is not None:
        where.append(c.id < before_id)
    columns = (c.id, c.message_id, c.type, c.event_id, c.state, c.occurred_at, c.created_at, c.attempts)
    return select(*columns).where(and_(*where)).order_by(c.id.desc()).limit(first + 1)


def attempts_of(delivery_ids: Sequence[int]) -> Select[Any]:
    """The attempts at these deliveries, oldest first."""
    a = attempts.c
    return (
        select(a.delivery_id, a.at, a.status_code, a.duration_ms, a.error)
        .where(a.delivery_id.in_(list(delivery_ids)))
        .order_by(a.delivery_id, a.id)
    )
