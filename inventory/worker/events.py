"""A worker's consumer of ECR's events: every declared ``[[event_queues]]`` queue, read continuously.

Each queue is long polled by a thread of its own (``ReceiveMessage``, 10 messages, up to
``wait_seconds``), without any lease: SQS shares its messages between the workers that read
it. Each message is judged on its own, so a junk message never holds back the ones behind it:

- *malformed* (not an ECR event of the documented shape): logged once, deleted;
- *ignored* (another source or kind, a failed action, an account, region or repository the
  inventory file does not declare or cover): deleted;
- otherwise its repository's *burst* collects it, and about ``coalesce`` seconds after a burst's
  first message, one targeted sync (``inventory.sync.targeted``) converges every image the
  burst names, on the worker's sync pool. Once it has committed, its messages are deleted
  (*applied*); when it failed (AWS, the network, a lock held too long), they are left to come
  back after the queue's visibility timeout (*failed*). A defect of ours is logged with its
  traceback, and its messages left the same way; the consumer carries on.

One repository has one sync in flight at a time; what arrives meanwhile waits for the next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from inventory.aws.clients import sqs_client
from inventory.aws.errors import NETWORK_OR_CREDENTIALS
from inventory.aws.events import EcrEvent, IgnoredEvent, MalformedEvent, parse
from inventory.config import EventQueueConfig, InventoryConfig, RegistryConfig
from inventory.sync.engine import RegionSync, ScopeResult
from inventory.sync.plan import Scope
from inventory.sync.targeted import Affected, sync_affected
from inventory.worker.metrics import WorkerMetrics

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef

log = logging.getLogger("inventory.worker.events")

WAIT_SECONDS = 20.0
"""The longest long poll SQS allows: an idle queue costs a call every 20 s per worker."""
COALESCE_SECONDS = 1.0
BATCH = 10
"""Messages per ``ReceiveMessage`` and per ``DeleteMessageBatch``: SQS's maximum."""
BACKOFF_SECONDS = (1.0, 30.0)
"""After a failed receive: the first wait, doubling up to the second."""


def covering(config: InventoryConfig, event: EcrEvent) -> RegistryConfig | None:
    """The declared private registry whose account, regions and globs cover the event's repository."""
    for registry in config.registries:
        if (
            registry.type == "ecr"
            and registry.account_id == event.account
            and event.region in registry.regions
            and registry.covers(event.repository_name)
        ):
            return registry
    return None


@dataclass
class _Message:
    queue: str
    receipt_handle: str
    event: EcrEvent


@dataclass
class _Burst:
    """The messages of one repository waiting for their sync."""

    scope: Scope
    registry: RegistryConfig
    since: float
    messages: list[_Message] = field(default_factory=list)

    def affected(self) -> Affected:
        events = [m.event for m in self.messages]
        return Affected(
            self.scope,
            self.registry,
            frozenset(e.image_digest for e in events),
            frozenset(tag for e in events for tag in e.image_tags),
            max(e.time for e in events),
            len(events),
        )


class _Poller:
    """One queue's thread: receive, judge, hand the relevant messages to the consumer."""

    def __init__(self, consumer: EventConsumer, queue: EventQueueConfig) -> None:
        self.consumer = consumer
        self.queue = queue
        self.client = sqs_client(queue, consumer.wait_seconds, consumer.max_attempts)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"events:{queue.name}", daemon=True)

    def run(self) -> None:
        backoff, failing = BACKOFF_SECONDS[0], False
        while not self.stopping.is_set():
            try:
                answer = self.client.receive_message(
                    QueueUrl=self.queue.url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=int(self.consumer.wait_seconds)
                )
            except (ClientError, *NETWORK_OR_CREDENTIALS) as exc:
                if not failing:
                    log.warning(
                        "%s: cannot receive from the queue (retrying): %s",
                        self.queue.name,
                        exc,
                        extra={"queue": self.queue.name},
                    )
                failing = True
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_SECONDS[1])
                continue
            except Exception:
                log.exception("%s: receiving from the queue", self.queue.name, extra={"queue": self.queue.name})
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_SECONDS[1])
                continue
            if failing:
                log.info("%s: receiving from the queue again", self.queue.name, extra={"queue": self.queue.name})
            backoff, failing = BACKOFF_SECONDS[0], False
            try:
                self.consumer.received(self, [dict(message) for message in answer.get("Messages", [])])
            except Exception:  # a defect of ours: said loudly, and the queue is read on
                log.exception("%s: handling received messages", self.queue.name, extra={"queue": self.queue.name})

    def delete(self, receipt_handles: Iterable[str]) -> None:
        """Delete messages, 10 a call; one that cannot be deleted comes back, and is found applied already."""
        handles = list(receipt_handles)
        for start in range(0, len(handles), BATCH):
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + BATCH])
            ]
            try:
                answer = self.client.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)
            except (ClientError, *NETWORK_OR_CREDENTIALS) as exc:
                log.warning(
                    "%s: cannot delete %d messages (they will come back): %s",
                    self.queue.name,
                    len(entries),
                    exc,
                    extra={"queue": self.queue.name},
                )
                continue
            for failed in answer.get("Failed", []):
                log.warning(
                    "%s: cannot delete a message (it will come back): %s: %s",
                    self.queue.name,
                    failed.get("Code"),
                    failed.get("Message"),
                    extra={"queue": self.queue.name},
                )


class EventConsumer:
    """Reads every declared queue and applies its events with targeted syncs on ``pool``."""

    def __init__(
        self,
        sync: RegionSync,
        pool: Executor,
        metrics: WorkerMetrics,
        *,
        wait_seconds: float = WAIT_SECONDS,
        coalesce: float = COALESCE_SECONDS,
        max_attempts: int = 5,
        apply: Callable[[RegionSync, Affected], ScopeResult] = sync_affected,
    ) -> None:
        self.sync = sync
        self.pool = pool
        self.metrics = metrics
        self.wait_seconds = wait_seconds
        self.coalesce = coalesce
        self.max_attempts = max_attempts
        self.apply = apply
        self.config = InventoryConfig()
        self._pollers: dict[str, _Poller] = {}
        self._bursts: dict[tuple[str, ...], _Burst] = {}
        self._in_flight: set[tuple[str, ...]] = set()
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch, name="events", daemon=True)

    # lifecycle ------------------------------------------------------------------------

    def start(self, config: InventoryConfig) -> None:
        self.reconcile(config)
        self._dispatcher.start()

    def reconcile(self, config: InventoryConfig) -> None:
        """Read the queues ``config`` declares: new or changed ones start, dropped ones stop."""
        self.config = config
        wanted = {queue.name: queue for queue in config.event_queues}
        for name, poller in list(self._pollers.items()):
            if wanted.get(name) != poller.queue:
                poller.stopping.set()
                del self._pollers[name]
        for name, queue in wanted.items():
            if name not in self._pollers:
                poller = self._pollers[name] = _Poller(self, queue)
                poller.thread.start()
                log.info("%s: reading ECR events from %s", name, queue.url, extra={"queue": name})

    def stop(self) -> None:
        """Receive nothing more and start no sync; what is in flight finishes (bursts not started come back
        to some worker after their visibility timeout)."""
        self._stopping.set()
        for poller in self._pollers.values():
            poller.stopping.set()
        with self._condition:
            self._condition.notify_all()
        if self._dispatcher.is_alive():
            self._dispatcher.join()

    # receiving ------------------------------------------------------------------------

    def received(self, poller: _Poller, messages: list[dict[str, Any]]) -> None:
        """Judge each message on its own; delete at once those that will never apply."""
        name, done = poller.queue.name, []
        for message in messages:
            try:
                outcome = self._judge(poller, message)
            except Exception:
                log.exception("%s: judging message %s", name, message.get("MessageId"), extra={"queue": name})
                self.metrics.events.labels(name, "failed").inc()
                continue
            if outcome is not None:
                self.metrics.events.labels(name, outcome).inc()
                done.append(message["ReceiptHandle"])
        if done:
            poller.delete(done)

    def _judge(self, poller: _Poller, message: dict[str, Any]) -> str | None:
        """``malformed`` or ``ignored`` (to delete), or None once the message joined its repository's burst."""
        name = poller.queue.name
        try:
            event = parse(message["Body"])
        except MalformedEvent as exc:
            log.warning(
                "%s: malformed message %s deleted: %s", name, message.get("MessageId"), exc, extra={"queue": name}
            )
            return "malformed"
        except IgnoredEvent as exc:
            log.debug("%s: message %s ignored: %s", name, message.get("MessageId"), exc, extra={"queue": name})
            return "ignored"
        registry = covering(self.config, event)
        if registry is None:
            log.debug(
                "%s: event of %s/%s/%s ignored: not declared or not covered",
                name,
                event.account,
                event.region,
                event.repository_name,
                extra={"queue": name},
            )
            return "ignored"
        scope = Scope(registry.name, registry.type, registry.account_id, event.region, event.repository_name)
        with self._condition:
            burst = self._bursts.get(scope.key)
            if burst is None:
                burst = self._bursts[scope.key] = _Burst(scope, registry, time.monotonic())
            burst.messages.append(_Message(name, message["ReceiptHandle"], event))
            self._condition.notify_all()
        return None

    # applying -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start each burst's sync once it is ``coalesce`` old and its repository has none in flight."""
        with self._condition:
            while not self._stopping.is_set():
                now = time.monotonic()
                due = [
                    key
                    for key, burst in self._bursts.items()
                    if burst.since + self.coalesce <= now and key not in self._in_flight
                ]
                for key in due:
                    burst = self._bursts.pop(key)
                    self._in_flight.add(key)
                    try:
                        self.pool.submit(self._apply, burst)
                    except RuntimeError:  # the pool is shutting down: the messages come back
                        self._in_flight.discard(key)
                waiting = [b.since + self.coalesce - now for k, b in self._bursts.items() if k not in self._in_flight]
                self._condition.wait(max(0.01, min(waiting, default=1.0)))

    def _apply(self, burst: _Burst) -> None:
        started = time.monotonic()
        try:
            result: ScopeResult | None = self.apply(self.sync, burst.affected())
        except Exception:
            log.exception(
                "%s: the sync of %d events failed",
                burst.scope.label,
                len(burst.messages),
                extra={"scope": burst.scope.label},
            )
            result = None
        finally:
            with self._condition:
                self._in_flight.discard(burst.scope.key)
                self._condition.notify_all()
        if result is None or result.failure is not None:
            self._failed(burst, result)
            return
        committed = datetime.now(UTC)
        for message in burst.messages:
            self.metrics.events.labels(message.queue, "applied").inc()
            self.metrics.event_lag.observe(max(0.0, (committed - message.event.time).total_seconds()))
        for name, handles in _by_queue(burst.messages).items():
            poller = self._pollers.get(name)
            if poller is not None:
                poller.delete(handles)
        counts, lag = result.counts, max((committed - m.event.time).total_seconds() for m in burst.messages)
        log.info(
            "%s: %d events applied: +%d ~%d -%d (%.2fs, %d calls, lag %.1fs)",
            burst.scope.label,
            len(burst.messages),
            counts.add,
            counts.change,
            counts.remove,
            time.monotonic() - started,
            result.stats.api_calls,
            lag,
            extra={
                "scope": burst.scope.label,
                "status": "applied",
                "events": len(burst.messages),
                "added": counts.add,
                "changed": counts.change,
                "removed": counts.remove,
                "api_calls": result.stats.api_calls,
                "lag_seconds": round(lag, 3),
            },
        )

    def _failed(self, burst: _Burst, result: ScopeResult | None) -> None:
        for message in burst.messages:
            self.metrics.events.labels(message.queue, "failed").inc()
        if result is not None and result.failure is not None:
            failure = result.failure
            log.warning(
                "%s: %d events not applied (they will come back): %s: %s",
                burst.scope.label,
                len(burst.messages),
                failure.code,
                failure.message,
                extra={"scope": burst.scope.label, "status": "failed", "error_code": failure.code},
            )


def _by_queue(messages: list[_Message]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for message in messages:
        grouped.setdefault(message.queue, []).append(message.receipt_handle)
    return grouped
