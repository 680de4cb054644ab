"""The webhooks side of ``inventory worker``: one thread running an event loop for every webhook it leases.

Each turn (about a second) it claims the declared, enabled webhooks whose lease is free
or expired (``webhook_endpoints.claim``: one worker serves a webhook at a time), renews
the leases it holds (a lost one stops its dispatcher), and restarts a dispatcher whose
webhook's config changed. One connection listens on ``inventory.feed.write.CHANNEL``: every
commit that writes events wakes every dispatcher at once. On stop, dispatchers drop
their attempts in flight (those deliveries stay pending: the next holder sends them
again), write the outcomes they have, and the leases are given back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

from inventory import redact
from inventory.config import InventoryConfig, WebhookConfig, webhook_secrets
from inventory.db import autocommit
from inventory.feed.write import CHANNEL
from inventory.outage import Outage, is_outage
from inventory.tables import webhook_endpoints
from inventory.webhooks.delivery import Signer
from inventory.webhooks.dispatch import Dispatcher, Store

log = logging.getLogger("inventory.webhooks")

TURN_SECONDS = 1.0


async def listen(engine: Engine, wake: Callable[[], None], outage: Outage | None = None) -> None:
    """Call ``wake`` at each commit that wrote events (and on connecting); reconnect when the connection drops
    (a database outage is said by ``outage``, once)."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                wake()  # what was committed while not listening
                async for _ in connection.notifies():
                    wake()
        except psycopg.Error as exc:
            if outage is not None and is_outage(exc):
                outage.began(exc)
            else:
                log.warning("webhooks: listening for new events failed (%s); polling meanwhile", exc)
            await asyncio.sleep(TURN_SECONDS)


@dataclass
class _Running:
    webhook: WebhookConfig
    dispatcher: Dispatcher
    stop: asyncio.Event
    task: asyncio.Task[None]


class WebhookService:
    """Delivers the webhooks this worker leases, on a thread of its own."""

    def __init__(
        self, engine: Engine, owner: str, *, lease: float, timeout: float, retry_scale: float,
        outage: Outage | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.outage = outage
        """Says a database outage once for the whole worker (None: each failure is logged)."""
        self.owner = owner
        self.lease = lease
        self.timeout = timeout
        self.retry_scale = retry_scale
        self.config: InventoryConfig | None = None
        self.changes = 0
        """Deliveries written or settled so far (a test waits on it)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[str, _Running] = {}

    def start(self, config: InventoryConfig) -> None:
        self.config = config
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    async def _main(self) -> None:
        listener = asyncio.create_task(self._listen())
        renewed = time.monotonic()
        while not self._stop.is_set():
            try:
                await self._claim()
                if time.monotonic() - renewed >= self.lease / 3:
                    renewed = time.monotonic()
                    await self._renew()
                await self._reap()
            except Exception as exc:  # try again next turn
                if self.outage is not None and is_outage(exc):
                    self.outage.began(exc)
                else:
                    log.exception("webhooks")
            await asyncio.sleep(TURN_SECONDS)
        listener.cancel()
        for running in self._running.values():
            running.stop.set()
        await asyncio.gather(*(r.task for r in self._running.values()), return_exceptions=True)
        with autocommit(self.engine) as connection:
            webhook_endpoints.release(self.owner, list(self._running), connection=connection)

    async def _claim(self) -> None:
        config = self.config
        assert config is not None
        declared = {w.name: w for w in config.webhooks}
        for name, running in list(self._running.items()):
            if declared.get(name) != running.webhook:  # changed or no longer declared: start it again
                running.stop.set()
        claimed = await asyncio.to_thread(self._db, webhook_endpoints.claim, self.owner, self.lease)
        foreign = [name for name in claimed if name not in declared]  # declared by another worker's config
        if foreign:
            await asyncio.to_thread(self._db, webhook_endpoints.release, self.owner, foreign)
        for name in claimed:
            if name in self._running or name not in declared:
                continue
            webhook = declared[name]
            try:
                signer = Signer(webhook_secrets(webhook))
            except ValueError as exc:
                log.error("webhook %s: not delivered: secret_env: %s", name, exc)
                await asyncio.to_thread(self._db, webhook_endpoints.release, self.owner, [name])
                continue
            store = Store(self.engine, config, webhook, self.owner)
            dispatcher = Dispatcher(store, signer, timeout=self.timeout, retry_scale=self.retry_scale,
                                    on_change=self._changed)  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop), name=f"webhook {name}")
            self._running[name] = _Running(webhook, dispatcher, stop, task)
            log.info("webhook %s: delivering to %s", name, redact.url(webhook.url))

    async def _renew(self) -> None:
        held = set(self._running)
        kept = await asyncio.to_thread(self._db, webhook_endpoints.renew, self.owner, held, self.lease)
        for name in held - kept:
            log.warning("webhook %s: lease lost; another worker delivers it now", name)
            self._running[name].stop.set()

    async def _reap(self) -> None:
        """Forget dispatchers that ended (stopped, disabled, lease lost or failed), giving their leases back."""
        ended = [name for name, running in self._running.items() if running.task.done()]
        for name in ended:
            running = self._running.pop(name)
            if not running.task.cancelled() and (error := running.task.exception()) is not None:
                log.error("webhook %s: dispatcher failed", name, exc_info=error)
        if ended:
            await asyncio.to_thread(self._db, webhook_endpoints.release, self.owner, ended)

    async def _listen(self) -> None:
        await listen(self.engine, self._wake_all, self.outage)

    def _wake_all(self) -> None:
        for running in self._running.values():
            running.dispatcher.wake.set()

    def _changed(self) -> None:
        self.changes += 1

    def _db(self, function: Any, *args: Any) -> Any:
        with autocommit(self.engine) as connection:
            return function(*args, connection=connection)
