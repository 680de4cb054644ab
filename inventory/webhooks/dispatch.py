"""Delivering one webhook: from its place in the feed to its endpoint, while this worker holds its lease.

``Store`` is the webhook's database side (plain SQL in short transactions, run off the
event loop): ``enqueue`` reads a page of the feed after the webhook's cursor, writes
the messages that pass its filters as pending deliveries and moves the cursor past the
page, all in one transaction, fenced by the lease; ``record`` writes attempts' outcomes.

``Dispatcher`` sends. Its ``Queue`` holds the pending deliveries in memory, in a first-in
first-out line per image (``ordering_key``): only the head of a line may be in flight, so
an image's events arrive in feed order (a ``removed`` never overtakes its ``added``), while
up to ``concurrency`` images are delivered at once. A failed head is retried on the
schedule, holding its line. Outcomes are written in batches while sending goes on; a
worker that dies before writing one leaves the delivery pending, and the next holder of
the lease sends it again (at least once).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from inventory.config import InventoryConfig, WebhookConfig
from inventory.db import driver_connection
from inventory.feed import Labels
from inventory.tables import image_events, webhook_deliveries, webhook_endpoints
from inventory.tables.image_events import EventFilter
from inventory.tables.webhook_deliveries import Outcome, Pending
from inventory.webhooks import delivery, payloads
from inventory.webhooks.delivery import Answer, Signer

log = logging.getLogger("inventory.webhooks")

PAGE = 1000
"""Events read from the feed per transaction."""
WINDOW = 10_000
"""Pending deliveries held in memory at most; more wait in the database."""
POLL_SECONDS = 1.0
"""How often the feed is read without being woken (a missed notification costs at most this)."""
FLUSH_SECONDS = 0.1
FLUSH_BATCH = 200
"""Outcomes are written at most every FLUSH_SECONDS, or once FLUSH_BATCH of them wait."""


class LeaseLost(Exception):
    """Another worker holds the webhook now: this one stops delivering it."""


def event_filter(config: InventoryConfig, webhook: WebhookConfig) -> EventFilter:
    """What of the feed the webhook may be sent, as far as SQL can tell (``payloads.messages`` decides)."""
    scopes = None
    if webhook.registries is not None:
        chosen = [config.registry(name) for name in webhook.registries]
        scopes = [(r.type, r.account_id, region, None) for r in chosen for region in r.regions]
    names = None if "*" in webhook.repositories else webhook.repositories
    return EventFilter(scopes=scopes, repository_names=names)


class Store:
    """One webhook's reads and writes, each its own short transaction (called from a thread)."""

    def __init__(self, engine: Engine, config: InventoryConfig, webhook: WebhookConfig, owner: str) -> None:
        self.engine = engine
        self.webhook = webhook
        self.owner = owner
        self.labels = Labels(config)
        self.where = event_filter(config, webhook)

    def enqueue(self, page: int = PAGE) -> tuple[list[Pending], bool, datetime | None]:
        """(the deliveries written from the next page of the feed, whether the feed has more now, when
        failed deliveries were last made pending again)."""
        name = self.webhook.name
        with self.engine.begin() as connection:
            raw = driver_connection(connection)
            position, recovered_at = webhook_endpoints.cursor(name, connection=raw)
            # The horizon before the page: every event below it is visible to the page's later snapshot.
            horizon = connection.execute(image_events.HORIZON).scalar_one()
            rows = connection.execute(image_events.feed_with_images(self.where, position, page)).all()
            more = len(rows) > page
            rows = rows[:page]

            def images_added(row: Any) -> int:
                key = (row.registry_type, row.registry_id, row.region, row.repository_name)
                return int(connection.execute(image_events.images_added(key, row.sync_run_id)).scalar_one())

            messages = payloads.messages(self.webhook, rows, self._registry_of, images_added)
            written = webhook_deliveries.insert(name, messages, connection=raw)
            last = (rows[-1].xid, rows[-1].id) if rows else position
            after = last if more else image_events.after_page(last, horizon)
            if after != position and not webhook_endpoints.advance(name, self.owner, after, connection=raw):
                raise LeaseLost(name)
        return written, more, recovered_at

    def _registry_of(self, row: Any) -> str:
        return self.labels.registry(row.registry_type, row.registry_id, row.region, row.repository_name)

    def pending(self, after_id: int, limit: int) -> list[Pending]:
        with self.engine.connect() as connection:
            return webhook_deliveries.pending(
                self.webhook.name, after_id, limit, connection=driver_connection(connection)
            )

    def failing_since(self) -> datetime | None:
        with self.engine.connect() as connection:
            found = webhook_endpoints.endpoints([self.webhook.name], connection=connection)
        return found[0].failing_since if found else None

    def record(self, outcomes: list[Outcome], health: Health, disable: str | None) -> None:
        with self.engine.begin() as connection:
            raw = driver_connection(connection)
            webhook_deliveries.record(outcomes, connection=raw)
            webhook_endpoints.record(
                self.webhook.name, delivered=health.delivered, failed=health.failed, retried=health.retried,
                succeeded_at=health.succeeded_at, failed_at=health.failed_at, connection=raw,
            )  # fmt: skip
            if disable is not None:  # its pending deliveries wait for ``inventory webhooks enable``
                webhook_endpoints.disable(self.webhook.name, disable, connection=raw)


@dataclass
class Health:
    """Outcomes not yet written: counts, and the last success and failure."""

    delivered: int = 0
    failed: int = 0
    retried: int = 0
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None


@dataclass
class Queue:
    """Pending deliveries: a line per ordering key; only a line's head is sendable, when it is due."""

    lines: dict[str, deque[Pending]] = field(default_factory=dict)
    due: list[tuple[datetime, int, str]] = field(default_factory=list)
    """Heap of the heads not in flight: (when due, id, key)."""
    loaded_upto: int = 0
    """Every pending delivery with a lower or equal id is here (or done)."""

    def __len__(self) -> int:
        return sum(len(line) for line in self.lines.values())

    def add(self, item: Pending) -> None:
        self.loaded_upto = max(self.loaded_upto, item.id)
        line = self.lines.get(item.ordering_key)
        if line is None:
            self.lines[item.ordering_key] = deque([item])
            heapq.heappush(self.due, (item.next_attempt_at, item.id, item.ordering_key))
        elif all(p.id != item.id for p in line):
            line.append(item)

    def take(self, now: datetime) -> Pending | None:
        """The head due soonest, if it is due now (it is then in flight until ``done`` or ``retry``)."""
        if self.due and self.due[0][0] <= now:
            _, _, key = heapq.heappop(self.due)
            return self.lines[key][0]
        return None

    def next_due(self) -> datetime | None:
        return self.due[0][0] if self.due else None

    def done(self, item: Pending) -> None:
        """The head is delivered or given up on: the next of its line becomes sendable."""
        line = self.lines[item.ordering_key]
        line.popleft()
        if line:
            heapq.heappush(self.due, (line[0].next_attempt_at, line[0].id, item.ordering_key))
        else:
            del self.lines[item.ordering_key]

    def retry(self, item: Pending, at: datetime) -> None:
        item.next_attempt_at = at
        heapq.heappush(self.due, (at, item.id, item.ordering_key))


class Dispatcher:
    """Sends one webhook's deliveries until stopped, the lease lost, or the endpoint disabled."""

    def __init__(
        self, store: Store, signer: Signer, *, timeout: float, retry_scale: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        self.store = store
        self.webhook = store.webhook
        self.signer = signer
        self.timeout = timeout
        self.retry_scale = retry_scale
        self.queue = Queue()
        self.wake = asyncio.Event()
        self.outcomes: list[Outcome] = []
        self.health = Health()
        self.disabled: str | None = None
        self.failing_since: datetime | None = None
        self.recovered_at: datetime | None = None
        self.on_change = on_change

    async def run(self, stop: asyncio.Event) -> None:
        name = self.webhook.name
        self.failing_since = await asyncio.to_thread(self.store.failing_since)
        in_flight: set[asyncio.Task[tuple[Pending, Answer]]] = set()
        flushing: asyncio.Task[None] | None = None
        read_at = -POLL_SECONDS
        flushed_at = time.monotonic()
        try:
            async with delivery.client(self.webhook.concurrency) as http:
                await self._load()
                while not stop.is_set() and self.disabled is None:
                    if self.wake.is_set() or time.monotonic() - read_at >= POLL_SECONDS:
                        self.wake.clear()
                        read_at = time.monotonic()
                        await self._read_feed()
                    now = datetime.now(UTC)
                    while len(in_flight) < self.webhook.concurrency and (item := self.queue.take(now)):
                        in_flight.add(asyncio.create_task(self._send(http, item)))
                    # Outcomes are written in batches, one at a time: at most every FLUSH_SECONDS, or
                    # sooner once FLUSH_BATCH wait (a write per attempt would cost more than the attempt).
                    ready = len(self.outcomes) >= FLUSH_BATCH or time.monotonic() - flushed_at >= FLUSH_SECONDS
                    if self.outcomes and ready and (flushing is None or flushing.done()):
                        if flushing is not None:
                            flushing.result()  # a failed write is raised here
                        flushing = asyncio.create_task(self._flush())
                        flushed_at = time.monotonic()
                    await self._wait(in_flight, stop)
                for task in in_flight:
                    task.cancel()
        except LeaseLost:
            log.warning("webhook %s: lease lost; another worker delivers it now", name)
        finally:
            if flushing is not None and not flushing.done():
                await asyncio.wait([flushing])
            if self.outcomes or self.disabled is not None:
                await self._flush()
            log.info("webhook %s: stopped delivering%s", name, f" ({self.disabled})" if self.disabled else "")

    async def _wait(self, in_flight: set[asyncio.Task[tuple[Pending, Answer]]], stop: asyncio.Event) -> None:
        """Until a send ends, a wake-up, the next due retry, or the poll."""
        timeout = FLUSH_SECONDS if self.outcomes else POLL_SECONDS
        next_due = self.queue.next_due()
        if next_due is not None and len(in_flight) < self.webhook.concurrency:
            timeout = min(timeout, max(0.0, (next_due - datetime.now(UTC)).total_seconds()))
        waiters = {asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())}
        done, _ = await asyncio.wait(in_flight | waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        for task in in_flight & done:
            in_flight.discard(task)
            self._settle(*task.result())

    async def _load(self) -> None:
        """The pending deliveries left by the last holder of the lease (or by a failed window)."""
        while len(self.queue) < WINDOW:
            found = await asyncio.to_thread(self.store.pending, self.queue.loaded_upto, WINDOW)
            for item in found:
                self.queue.add(item)
            if len(found) < WINDOW:
                return

    async def _read_feed(self) -> None:
        more = True
        while more and len(self.queue) < WINDOW:
            written, more, recovered_at = await asyncio.to_thread(self.store.enqueue)
            for item in written:
                self.queue.add(item)
            if written:
                self.on_change()
            if recovered_at != self.recovered_at:  # failed deliveries are pending again: read them in
                self.recovered_at = recovered_at
                self.queue.loaded_upto = 0
                await self._load()

    async def _send(self, http: httpx.AsyncClient, item: Pending) -> tuple[Pending, Answer]:
        answer = await delivery.attempt(http, self.webhook.url, self.signer, item.message_id, item.payload,
                                        self.timeout)  # fmt: skip
        return item, answer

    def _settle(self, item: Pending, answer: Answer) -> None:
        """Decide what follows an attempt, in memory; ``_flush`` writes it."""
        item.attempts += 1
        health = self.health
        if answer.delivered:
            state, next_at = "delivered", None
            health.delivered += 1
            health.succeeded_at = answer.at
            self.failing_since = None
        else:
            health.failed_at = answer.at
            self.failing_since = self.failing_since or answer.at
            delay = None if answer.gone else delivery.next_attempt(item.attempts, answer, self.retry_scale)
            if answer.gone:
                self.disabled = "gone"
            elif answer.at - self.failing_since > delivery.DISABLE_AFTER * self.retry_scale:
                self.disabled = "failing"
            if delay is None or self.disabled is not None:
                state, next_at = "failed", None
                health.failed += 1
            else:
                state, next_at = "pending", answer.at + timedelta(seconds=delay)
                health.retried += 1
        self.outcomes.append(Outcome(item.id, answer.at, answer.status_code, answer.duration_ms, answer.error,
                                     state, next_at))  # fmt: skip
        if state == "pending":
            assert next_at is not None
            self.queue.retry(item, next_at)
        else:
            self.queue.done(item)
        if self.disabled is not None:
            log.warning("webhook %s: disabled (%s) after %s", self.webhook.name, self.disabled,
                        answer.error or answer.status_code)  # fmt: skip

    async def _flush(self) -> None:
        outcomes, self.outcomes = self.outcomes, []
        health, self.health = self.health, Health()
        await asyncio.to_thread(self.store.record, outcomes, health, self.disabled)
        self.on_change()
