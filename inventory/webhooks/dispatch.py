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
from typing import Any, NamedTuple

import aiohttp
from sqlalchemy import Engine

from inventory.config import InventoryConfig, WebhookConfig
from inventory.db import driver_connection
from inventory.feed import query
from inventory.feed.query import EventFilter
from inventory.feed.render import Labels
from inventory.tables import webhook_deliveries, webhook_endpoints
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
HELD_BACK_SECONDS = 0.01
"""How soon the feed is read again when events wait behind a transaction in progress; twice as long
each time they still do, up to POLL_SECONDS."""
FLUSH_SECONDS = 0.1
"""Outcomes are written in a batch every FLUSH_SECONDS while they come."""


class Read(NamedTuple):
    """What ``Store.enqueue`` did."""

    written: list[Pending]
    """The deliveries written from the page (not those already there), in feed order."""
    more: bool
    """The feed has more now."""
    held_back: bool
    """Committed events wait behind a transaction still in progress: read again soon."""
    recovered_at: datetime | None
    """When failed deliveries were last made pending again (``inventory webhooks recover``)."""


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
        self.feed = query.feed_with_images(event_filter(config, webhook))

    def enqueue(self, page: int = PAGE) -> Read:
        """Write the deliveries of the next page of the feed and move the cursor past it."""
        name = self.webhook.name
        with self.engine.begin() as connection:
            raw = driver_connection(connection)
            position, recovered_at = webhook_endpoints.cursor(name, connection=raw)
            # The horizon before the page: every event below it is visible to the page's later snapshot.
            horizon, hidden = connection.execute(query.HORIZON_AND_HIDDEN).one()
            rows = connection.execute(self.feed, query.feed_parameters(position, page)).all()
            more = len(rows) > page
            rows = rows[:page]

            def images_added(row: Any) -> int:
                key = (row.registry_type, row.registry_id, row.region, row.repository_name)
                return int(connection.execute(query.images_added(key, row.sync_run_id)).scalar_one())

            messages = payloads.messages(self.webhook, rows, self._registry_of, images_added)
            written = webhook_deliveries.insert(name, messages, connection=raw)
            last = (rows[-1].xid, rows[-1].id) if rows else position
            after = last if more else query.after_page(last, horizon)
            if after != position and not webhook_endpoints.advance(name, self.owner, after, connection=raw):
                raise LeaseLost(name)
        return Read(written, more, not more and hidden, recovered_at)

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

    def record(
        self, outcomes: list[Outcome], health: Health, failing_since: datetime | None, disable: str | None
    ) -> None:
        """Write outcomes, and the endpoint's health as the sender sees it (``failing_since``: the first
        failure after the last success)."""
        with self.engine.begin() as connection:
            raw = driver_connection(connection)
            webhook_deliveries.record(outcomes, connection=raw)
            webhook_endpoints.record(
                self.webhook.name, delivered=health.delivered, failed=health.failed, retried=health.retried,
                succeeded_at=health.succeeded_at, failed_at=health.failed_at, failing_since=failing_since,
                connection=raw,
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
    size: int = 0
    in_flight: set[int] = field(default_factory=set)
    """The ids of the heads taken and not yet ``done`` or ``retry``."""

    def __len__(self) -> int:
        return self.size

    def add(self, item: Pending) -> None:
        """Hold the delivery; one held already is due sooner if ``item`` says so (``inventory webhooks
        recover`` made it due now), unless in flight."""
        self.loaded_upto = max(self.loaded_upto, item.id)
        line = self.lines.get(item.ordering_key)
        if line is None:
            self.lines[item.ordering_key] = deque([item])
            heapq.heappush(self.due, (item.next_attempt_at, item.id, item.ordering_key))
        elif (held := next((p for p in line if p.id == item.id), None)) is None:
            line.append(item)
        else:
            if item.next_attempt_at < held.next_attempt_at and held.id not in self.in_flight:
                held.next_attempt_at = item.next_attempt_at
                if line[0] is held:  # its entry due later stays in the heap, stale: ``_drop_stale`` skips it
                    heapq.heappush(self.due, (held.next_attempt_at, held.id, held.ordering_key))
            return
        self.size += 1

    def _drop_stale(self) -> None:
        """Pop the heap's entries no longer a waiting head's time (its head rescheduled sooner)."""
        while self.due:
            at, id_, key = self.due[0]
            line = self.lines.get(key)
            if line and line[0].id == id_ and line[0].next_attempt_at == at and id_ not in self.in_flight:
                return
            heapq.heappop(self.due)

    def take(self, now: datetime) -> Pending | None:
        """The head due soonest, if it is due now (it is then in flight until ``done`` or ``retry``)."""
        self._drop_stale()
        if self.due and self.due[0][0] <= now:
            _, id_, key = heapq.heappop(self.due)
            self.in_flight.add(id_)
            return self.lines[key][0]
        return None

    def next_due(self) -> datetime | None:
        self._drop_stale()
        return self.due[0][0] if self.due else None

    def done(self, item: Pending) -> None:
        """The head is delivered or given up on: the next of its line becomes sendable."""
        self.in_flight.discard(item.id)
        line = self.lines[item.ordering_key]
        line.popleft()
        self.size -= 1
        if line:
            heapq.heappush(self.due, (line[0].next_attempt_at, line[0].id, item.ordering_key))
        else:
            del self.lines[item.ordering_key]

    def retry(self, item: Pending, at: datetime) -> None:
        self.in_flight.discard(item.id)
        item.next_attempt_at = at
        heapq.heappush(self.due, (at, item.id, item.ordering_key))


async def _end(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait for them; the first one's failure, if any failed, is raised."""
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception):
            raise result


class Dispatcher:
    """Sends one webhook's deliveries until stopped, the lease lost, or the endpoint disabled.

    ``concurrency`` lanes each send one delivery at a time, taking the next sendable head as
    soon as an attempt ends; a flusher writes their outcomes; ``run`` reads the feed. A lane
    or flusher that fails (a defect of ours) ends the dispatcher with its exception.
    """

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
        """Set when the feed may have grown: the loop reads it."""
        self.sendable = asyncio.Event()
        """Set when the queue changed: idle lanes look again."""
        self.settled = asyncio.Event()
        """Set while outcomes wait to be written."""
        self.outcomes: list[Outcome] = []
        self.health = Health()
        self.disabled: str | None = None
        self.failing_since: datetime | None = None
        self.recovered_at: datetime | None = None
        self.on_change = on_change
        self.flushing: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        name = self.webhook.name
        self.failing_since = await asyncio.to_thread(self.store.failing_since)
        try:
            async with delivery.client(self.webhook.url, self.webhook.concurrency) as http:
                await self._load()
                tasks = {asyncio.create_task(self._lane(http)) for _ in range(self.webhook.concurrency)}
                tasks.add(asyncio.create_task(self._flusher()))
                try:
                    await self._read(tasks, stop)
                finally:
                    await _end(tasks)  # an attempt in flight is dropped: its delivery stays pending
        except LeaseLost:
            log.warning("webhook %s: lease lost; another worker delivers it now", name)
        finally:
            if self.flushing is not None and not self.flushing.done():
                await asyncio.wait([self.flushing])
            if self.outcomes or self.disabled is not None:
                await self._flush()
            log.info("webhook %s: stopped delivering%s", name, f" ({self.disabled})" if self.disabled else "")

    async def _read(self, tasks: set[asyncio.Task[None]], stop: asyncio.Event) -> None:
        """Read the feed when woken, every POLL_SECONDS, and sooner while committed events wait behind a
        transaction in progress (its end may notify no one), until stopped or disabled; a failure of one
        of ``tasks`` (the lanes and the flusher) is raised."""
        read_at = -POLL_SECONDS
        interval = POLL_SECONDS
        held = 0
        while not stop.is_set() and self.disabled is None:
            for task in tasks:
                if task.done():
                    task.result()
            if self.wake.is_set() or time.monotonic() - read_at >= interval:
                self.wake.clear()
                read_at = time.monotonic()
                held = min(held + 1, 16) if await self._read_feed() else 0
                interval = min(HELD_BACK_SECONDS * 2 ** (held - 1), POLL_SECONDS) if held else POLL_SECONDS
            waiters = {asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())}
            timeout = max(0.0, read_at + interval - time.monotonic())
            await asyncio.wait(tasks | waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def _flusher(self) -> None:
        """Write the outcomes in batches, at most every FLUSH_SECONDS (a write per attempt would cost more
        than the attempt). A write under way is shielded: stopping waits for it, then writes the rest."""
        while True:
            await self.settled.wait()
            self.flushing = asyncio.create_task(self._flush())
            await asyncio.shield(self.flushing)
            await asyncio.sleep(FLUSH_SECONDS)

    async def _lane(self, http: aiohttp.ClientSession) -> None:
        """Send the sendable heads one at a time, until the endpoint is disabled."""
        while self.disabled is None:
            item = self.queue.take(datetime.now(UTC))
            if item is None:
                await self._until_sendable()
                continue
            answer = await delivery.attempt(http, self.webhook.url, self.signer, item.message_id, item.payload,
                                            self.timeout)  # fmt: skip
            self._settle(item, answer)
            self.sendable.set()

    async def _until_sendable(self) -> None:
        """Until the queue changes or its next head falls due."""
        self.sendable.clear()
        next_due = self.queue.next_due()
        wait = None if next_due is None else max(0.0, (next_due - datetime.now(UTC)).total_seconds())
        try:
            async with asyncio.timeout(wait):
                await self.sendable.wait()
        except TimeoutError:
            pass

    async def _load(self) -> None:
        """The pending deliveries left by the last holder of the lease (or by a failed window)."""
        while len(self.queue) < WINDOW:
            found = await asyncio.to_thread(self.store.pending, self.queue.loaded_upto, WINDOW)
            for item in found:
                self.queue.add(item)
            self.sendable.set()
            if len(found) < WINDOW:
                return

    async def _read_feed(self) -> bool:
        """Enqueue what the feed has, while fewer than WINDOW wait in memory; whether events wait behind a
        transaction in progress."""
        while len(self.queue) < WINDOW:
            read = await asyncio.to_thread(self.store.enqueue)
            for item in read.written:
                self.queue.add(item)
            if read.written:
                self.sendable.set()
                self.on_change()
            if read.recovered_at != self.recovered_at:  # recovered: failed ones pending again, waiting ones due
                self.recovered_at = read.recovered_at
                self.queue.loaded_upto = 0
                await self._load()
            if not read.more:
                return read.held_back
        return False

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
        self.settled.set()
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
        self.settled.clear()
        health, self.health = self.health, Health()
        await asyncio.to_thread(self.store.record, outcomes, health, self.failing_since, self.disabled)
        self.on_change()
