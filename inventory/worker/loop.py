"""``inventory worker``: keep every declared registry region converged, sharing the work through Postgres.

The loop claims due registry regions (``inventory.tables.sync_scopes``) while its
thread pool has room, syncs each on a coordinator thread of its own
(``inventory.worker.region``), and releases it due again ``interval`` later. A
heartbeat thread renews the leases it holds; one it finds lost (the worker
stalled past its lease and another took over) is cancelled. The config file is
re-read when it changes. ``stop`` (SIGTERM, SIGINT) makes the loop claim
nothing more: repositories already syncing finish, the rest are released at
once for another worker, and ``run`` returns.

The same worker reads every declared queue of ECR's events and applies them with targeted
syncs on its pool (``inventory.worker.events``), delivers the webhooks it leases
(``inventory.webhooks.service``, on a thread of its own), and prunes what retention lets go.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from inventory.aws.budget import Budgets
from inventory.aws.clients import ClientFactory
from inventory.config import InventoryConfig, load_config
from inventory.db import autocommit
from inventory.errors import ConfigError, LeaseLost
from inventory.outage import is_outage
from inventory.retention import prune_events, prune_sync_runs, prune_webhook_deliveries
from inventory.sync.engine import RegionSync
from inventory.tables import registries, sync_scopes, webhook_endpoints
from inventory.tables.sync_scopes import Lease
from inventory.webhooks.service import WebhookService
from inventory.worker.events import COALESCE_SECONDS, WAIT_SECONDS, EventConsumer
from inventory.worker.metrics import WorkerMetrics
from inventory.worker.region import RegionPool, RegionResult, ScopeReport

log = logging.getLogger("inventory.worker")

POLL_SECONDS = 1.0
"""How often an idle worker looks for due regions (and at the config file)."""
RETRY_SECONDS = 60.0
"""When a region whose sync failed unexpectedly is due again (at most ``interval``)."""
PRUNE_SECONDS = 60.0
"""How often a worker prunes history older than its retention (a few small batches each time)."""
PRUNE_BATCHES = 10


@dataclass(frozen=True)
class WorkerOptions:
    interval: float = 15 * 60
    concurrency: int = 16
    lease: float = 60.0
    rate: float = 50.0
    lock_timeout: float = 30.0
    aws_max_attempts: int = 5
    webhook_timeout: float = 15.0
    webhook_retry_scale: float = 1.0
    event_wait: float = WAIT_SECONDS
    """How long one receive from an event queue waits for a message (SQS's long poll, 0..20 s)."""
    event_coalesce: float = COALESCE_SECONDS
    """How long a repository's events gather before their one sync."""


def worker_name() -> str:
    """``host:pid``: unique among live workers, and says where to look."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Running:
    """A region being synced: its coordinator thread, and the event that stops it starting repositories."""

    thread: threading.Thread = field(init=False)
    cancelled: threading.Event = field(default_factory=threading.Event)


class Worker:
    """One worker process's loop; any number of them may share one database."""

    def __init__(self, engine: Engine, config_path: Path, options: WorkerOptions, name: str | None = None) -> None:
        self.engine = engine
        self.config_path = config_path
        self.options = options
        self.name = name or worker_name()
        self.budgets = Budgets(options.rate)
        self.metrics = WorkerMetrics(self.budgets)
        self.config = load_config(config_path)  # a bad file at start is an error; later, it is logged
        self._config_signature = _signature(config_path)
        self._running: dict[Lease, _Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pruned_at = -PRUNE_SECONDS
        self.events: EventConsumer | None = None
        self.webhooks = WebhookService(
            engine,
            self.name,
            lease=options.lease,
            timeout=options.webhook_timeout,
            retry_scale=options.webhook_retry_scale,
            outage=self.metrics.outage,
        )

    # the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Sync until ``stop`` is set; then finish or release what is held, and return."""
        self._declare(self.config)
        clients = ClientFactory(self.options.aws_max_attempts, self.budgets)
        # What is alive now (modules, the config) lives as long as the worker: out of the collector's full
        # passes, each of which held every thread, webhook deliveries included, for ~100 ms (bench/webhooks.py).
        gc.freeze()
        heartbeat_stop = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(heartbeat_stop,), name="heartbeat", daemon=True)
        heartbeat.start()
        self.webhooks.start(self.config)
        log.info(
            "worker %s started: %d regions declared, %d event queues, interval %gs, concurrency %d, lease %gs",
            self.name,
            sum(len(r.regions) for r in self.config.registries),
            len(self.config.event_queues),
            self.options.interval,
            self.options.concurrency,
            self.options.lease,
        )
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="sync") as pool:
            sync = RegionSync(self.engine, clients, worker=self.name, lock_timeout=self.options.lock_timeout)
            regions = RegionPool(sync, pool, report=self._report)
            # The events' syncs hold no lease: their fence is that the region is still declared.
            targeted = RegionSync(
                self.engine, clients, worker=self.name, lock_timeout=self.options.lock_timeout, fence="declared"
            )
            self.events = EventConsumer(
                targeted,
                pool,
                self.metrics,
                wait_seconds=self.options.event_wait,
                coalesce=self.options.event_coalesce,
                max_attempts=self.options.aws_max_attempts,
            )
            self.events.start(self.config)
            while not stop.is_set():
                self.metrics.last_tick = time.monotonic()
                self._turn(regions)
                self._wake.wait(POLL_SECONDS * random.uniform(0.5, 1.5))  # workers out of step
                self._wake.clear()
            self.events.stop()
            self._drain()
        self.webhooks.stop()
        heartbeat_stop.set()
        heartbeat.join()
        log.info("worker %s stopped", self.name)

    def _turn(self, regions: RegionPool) -> None:
        """One turn of the loop; a database outage is said once (and /healthz answers 503 meanwhile), any
        other failure is logged with its traceback; either way the next turn tries again."""
        outage = self.metrics.outage
        try:
            if outage.ongoing:
                with autocommit(self.engine) as connection:
                    connection.execute("SELECT 1")
            outage.ended()
            self._reload_if_changed()
            self._claim(regions)
            self._prune()
        except Exception as exc:
            if is_outage(exc):
                outage.began(exc)
            else:
                log.exception("worker loop")

    def _claim(self, regions: RegionPool) -> None:
        with self._lock:
            room = self.options.concurrency - len(self._running)
        if regions.backlog >= self.options.concurrency:
            room = 0
        # A few regions a turn: a worker that polls first does not take every due region,
        # so workers share even a small fleet; a large one is paced by the backlog anyway.
        room = min(room, max(1, self.options.concurrency // 4))
        if room <= 0:
            return
        with autocommit(self.engine) as connection:
            claimed = sync_scopes.claim(self.name, room, self.options.lease, connection=connection)
        config = self.config
        for lease in claimed:
            running = _Running()
            running.thread = threading.Thread(
                target=self._sync_region, args=(regions, lease, config, running), name=lease.label, daemon=True
            )
            with self._lock:
                self._running[lease] = running
                self.metrics.leases.set(len(self._running))
            running.thread.start()

    def _sync_region(self, regions: RegionPool, lease: Lease, config: InventoryConfig, running: _Running) -> None:
        started = time.monotonic()
        due_in, finished = self.options.interval, False
        try:
            result = regions.run(lease, config, running.cancelled)
            if any(failure.code == LeaseLost.code for failure in result.failures):
                running.cancelled.set()  # as if the heartbeat had found it lost: not finished, due at once
            finished = result.complete and not running.cancelled.is_set()
            if not finished:
                # given back: any worker may take it at once, or after a while when it failed unfinished
                failed = result.failures and not running.cancelled.is_set()
                due_in = min(self.options.interval, RETRY_SECONDS) if failed else 0.0
            self._log_region(lease, result, time.monotonic() - started)
        except Exception as exc:
            self._failed(exc, "%s: sync failed", lease.label)
            due_in = min(self.options.interval, RETRY_SECONDS)
        finally:
            with self._lock:  # first: the heartbeat stops renewing it, and takes its release for no loss
                del self._running[lease]
                self.metrics.leases.set(len(self._running))
            try:
                with autocommit(self.engine) as connection:
                    sync_scopes.release(self.name, lease, due_in=due_in, finished=finished, connection=connection)
            except Exception as exc:  # its lease expires by itself
                self._failed(exc, "%s: cannot release the lease", lease.label)
            self._wake.set()

    def _drain(self) -> None:
        with self._lock:
            running = list(self._running.values())
        if running:
            log.info("stopping: finishing the repositories in progress, releasing %d regions", len(running))
        for region in running:
            region.cancelled.set()
        for region in running:
            region.thread.join()

    def _prune(self) -> None:
        """Every ``PRUNE_SECONDS``, a few batches of sync runs and events past retention: bounded work per
        turn, and workers that share the database share the pruning too."""
        if time.monotonic() - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = time.monotonic()
        retention = self.config.retention
        pruned = prune_sync_runs(self.engine, retention.sync_runs, max_batches=PRUNE_BATCHES)
        if pruned:
            log.info("pruned %d sync runs older than the retention", pruned)
        if retention.events is not None:  # unset: events are kept forever
            pruned = prune_events(self.engine, retention.events, max_batches=PRUNE_BATCHES)
            if pruned:
                log.info("pruned %d change events older than the retention", pruned)
        pruned = prune_webhook_deliveries(self.engine, retention.webhook_attempts, max_batches=PRUNE_BATCHES)
        if pruned:
            log.info("pruned %d webhook deliveries and attempts older than the retention", pruned)

    def _failed(self, exc: Exception, message: str, *args: object) -> None:
        """A database outage is said once for the whole worker; anything else with its traceback."""
        if is_outage(exc):
            self.metrics.outage.began(exc)
        else:
            log.exception(message, *args)

    # leases ------------------------------------------------------------------------

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.options.lease / 3):
            with self._lock:
                held = dict(self._running)
            if not held:
                continue
            try:
                with autocommit(self.engine) as connection:
                    kept = sync_scopes.renew(self.name, list(held), self.options.lease, connection=connection)
            except Exception as exc:  # past its lease, a region's writes are refused (``sync_scopes.hold``)
                self._failed(exc, "cannot renew leases")
                continue
            for lease, running in held.items():
                with self._lock:
                    still_held = self._running.get(lease) is running
                if lease not in kept and still_held and not running.cancelled.is_set():
                    log.warning("%s: lease lost to another worker; stopping its sync", lease.label)
                    running.cancelled.set()

    # config --------------------------------------------------------------------------

    def _reload_if_changed(self) -> None:
        signature = _signature(self.config_path)
        if signature == self._config_signature:
            return
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self._config_signature = signature  # reported once, not at every turn
            for problem in exc.problems:
                log.error("config not reloaded: %s", problem)
            return
        self._declare(config)  # should the database fail here, the next turn tries again
        self._config_signature = signature
        self.config = config
        self.webhooks.config = config
        if self.events is not None:
            self.events.reconcile(config)
        log.info("config reloaded: %d registries", len(config.registries))

    def _declare(self, config: InventoryConfig) -> None:
        with autocommit(self.engine) as connection:
            registries.upsert(config.registries, connection=connection)
            sync_scopes.reconcile(config, connection=connection)
            webhook_endpoints.reconcile(config, connection=connection)

    def _report(self, report: ScopeReport) -> None:
        self.metrics.observe(report)
        if report.failure is not None:
            failure = report.failure
            log.warning(
                "%s: failed: %s: %s",
                report.label,
                failure.code,
                failure.message,
                extra={"scope": report.label, "status": "failed", "error_code": failure.code},
            )
            return
        counts = report.counts
        assert counts is not None
        log.info(
            "%s: +%d ~%d -%d (%.2fs, %d calls, %d throttled)",
            report.label,
            counts.add,
            counts.change,
            counts.remove,
            report.seconds,
            report.api_calls,
            report.throttled_calls,
            extra={
                "scope": report.label,
                "status": "succeeded",
                "added": counts.add,
                "changed": counts.change,
                "removed": counts.remove,
                "seconds": round(report.seconds, 3),
                "api_calls": report.api_calls,
                "throttled_calls": report.throttled_calls,
            },
        )

    def _log_region(self, lease: Lease, result: RegionResult, seconds: float) -> None:
        counts = result.counts
        log.info(
            "%s: region %s: +%d ~%d -%d, %d failures (%.2fs)",
            lease.label,
            "synced" if result.complete else "released unfinished",
            counts.add,
            counts.change,
            counts.remove,
            len(result.failures),
            seconds,
            extra={"region_scope": lease.label, "complete": result.complete, "failures": len(result.failures)},
        )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
