"""Webhooks benchmark: the dispatcher against a bare HTTP client, and the lag from commit to receipt.

    python bench/webhooks.py [--events 50000] [--rate 200] [--seconds 15]

A receiver (starlette on uvicorn, answering 204) runs in a process of its own. In the same run:

1. the limit: a bare ``httpx.AsyncClient`` (4 kept-alive connections, 4 requests in flight) posts
   the 50,000 payloads of the feed's events, already built and signed, to the receiver;
2. the dispatcher (``inventory.webhooks.dispatch``, concurrency 4) delivers the same 50,000 events
   from the feed: reading it, writing each delivery, signing, posting, recording outcomes;
3. steady state: a writer commits 200 events a second, one per transaction (as small syncs do,
   each notifying the dispatchers); each one's lag is from its commit to its arrival at the receiver.

4. history: a steady-state poll (one new event: the feed read past the cursor, its delivery written,
   its outcome recorded) and the backlog read (``webhooks list``, ``/metrics``), timed as the run
   left the database, then again after bulk-loading ``--history`` more events, delivered deliveries
   and their attempts, and ``--images`` images (VACUUM ANALYZE after each fill).

Prints the dispatcher's throughput ÷ the bare client's (goal >= 0.5), by wall time and by this
process's CPU time per event, the p99 lag ÷ the receiver's own p99 response time as the bare
client saw it (goal <= 5), and what a poll and the backlog read cost at ``--history`` rows of
history ÷ before (goal <= 1.5: the same after a year as on day one). ``--history 0`` skips 4.

Uses INVENTORY_DATABASE_URL's server, else the embedded one; works in a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import create_engine, make_url, text

from inventory.config import InventoryConfig, RegistryConfig, Settings, WebhookConfig
from inventory.db import create, database_url, driver_connection, migrate
from inventory.feed import query
from inventory.feed.event import event_node_id
from inventory.feed.write import notify
from inventory.tables import webhook_endpoints
from inventory.tables.webhook_deliveries import Outcome
from inventory.webhooks.delivery import Signer
from inventory.webhooks.dispatch import Dispatcher, Health, Store
from inventory.webhooks.payloads import event_message
from inventory.webhooks.service import listen

DATABASE = "inventory_bench_webhooks"
ACCOUNT, REGION = "111111111111", "us-east-1"
SECRET = "whsec_" + base64.b64encode(b"bench-secret-of-32-bytes-exactly").decode()
CONCURRENCY = 4
OWNER = "bench:1"
HISTORY_TABLES = ("images", "image_events", "webhook_deliveries", "webhook_attempts")

RECEIVER = """
import sys, time
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
import uvicorn

arrivals = {}

async def hook(request):
    await request.body()
    arrivals[request.headers["webhook-id"]] = time.time()
    return Response(status_code=204)

async def stats(request):
    return JSONResponse(arrivals)

async def count(request):
    return JSONResponse(len(arrivals))

async def reset(request):
    arrivals.clear()
    return Response(status_code=204)

app = Starlette(routes=[Route("/hooks", hook, methods=["POST"]), Route("/stats", stats), Route("/count", count),
                Route("/reset", reset, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

IMAGES = """
INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, image_tags,
  image_size_in_bytes, image_pushed_at, image_scan_status, finding_severity_counts, image_status)
SELECT 'ecr', :account, :region, 'team-' || lpad((n % CAST(:repositories AS int))::text, 3, '0') || '/service',
  'sha256:' || md5(n::text) || md5(n::text || 'x'), ARRAY['v' || n, 'build-' || n * 7], 1048576 + n,
  now() - n * interval '1 second', 'COMPLETE', jsonb_build_object('HIGH', n % 3, 'LOW', n % 11), 'ACTIVE'
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n
"""
EVENTS = """
INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, repository_name, image_digest, type,
  backfill, changes)
SELECT 1, 'ecr', :account, :region, 'team-' || lpad((n % CAST(:repositories AS int))::text, 3, '0') || '/service',
  'sha256:' || md5(n::text) || md5(n::text || 'x'), 'image.added', false,
  jsonb_build_object('image_tags', jsonb_build_array(NULL, jsonb_build_array('v' || n, 'build-' || n * 7)))
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n ORDER BY n
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(engine: Any, events: int, repositories: int) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO registries (name, type, account_id, regions) "
                                "VALUES ('bench', 'ecr', :a, ARRAY[:r])"), {"a": ACCOUNT, "r": REGION})  # fmt: skip
        connection.execute(
            text("INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name) "
                 "SELECT 'ecr', :a, :r, 'team-' || lpad(n::text, 3, '0') || '/service', 'bench' "
                 "FROM generate_series(0, CAST(:n AS int) - 1) n"),
            {"a": ACCOUNT, "r": REGION, "n": repositories},
        )  # fmt: skip
        connection.execute(text("INSERT INTO webhook_endpoints (name, url, cursor_xid, cursor_id, owner, "
                                "lease_expires_at) VALUES ('bench', 'http://unused', 0, 0, :o, now() + interval "
                                "'1 day')"), {"o": OWNER})  # fmt: skip
    write(engine, 1, events, repositories)


# A history of deliveries made and attempts at them (payloads shorter than real ones: the size of a row
# does not change an index probe, and 10,000,000 real ones would fill 15 GB).
HISTORY = """
WITH delivered AS (
  INSERT INTO webhook_deliveries (webhook, message_id, type, event_id, ordering_key, occurred_at, payload, state,
    attempts, finished_at)
  SELECT 'bench', 'history_' || n, 'image.added', n, 'ecr/' || :account || '/' || :region || '/history@' || n,
    now() - interval '20 days', repeat('x', 300), 'delivered', 1, now() - interval '20 days'
  FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n
  RETURNING id, finished_at)
INSERT INTO webhook_attempts (delivery_id, at, status_code, duration_ms) SELECT id, finished_at, 204, 3 FROM delivered
"""
FILL_BATCH = 1_000_000


def write(engine: Any, first: int, last: int, repositories: int) -> None:
    """Images first..last and their image.added events, in one transaction that notifies."""
    params = {"account": ACCOUNT, "region": REGION, "repositories": repositories, "first": first, "last": last}
    with engine.begin() as connection:
        connection.execute(text(IMAGES), params)
        connection.execute(text(EVENTS), params)
        notify(connection=driver_connection(connection))


def payloads(engine: Any) -> list[tuple[str, str]]:
    """(message id, body) of every event, as the dispatcher will build them."""
    with engine.connect() as connection:
        statement = query.feed_with_images(query.EventFilter())
        rows = connection.execute(statement, query.feed_parameters(None, 10**9)).all()
    return [(m.message_id, m.payload) for m in map(event_message, rows)]


async def bare(url: str, messages: list[tuple[str, str]], library: str) -> tuple[float, float, list[float]]:
    """(wall seconds, CPU seconds, per-request seconds) of a bare ``httpx`` or ``aiohttp`` client posting
    ``messages``, signed beforehand, ``CONCURRENCY`` at a time over as many kept-alive connections."""
    signer = Signer((SECRET,))
    now = datetime.now(UTC)
    prepared = iter([(body.encode(), signer.headers(message_id, now, body)) for message_id, body in messages])
    latencies: list[float] = []

    async def lanes(post: Callable[[bytes, dict[str, str]], Awaitable[int]]) -> tuple[float, float]:
        async def lane() -> None:
            for body, headers in prepared:
                started = time.perf_counter()
                status = await post(body, headers)
                latencies.append(time.perf_counter() - started)
                assert status == 204

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        return time.perf_counter() - wall, time.process_time() - cpu

    if library == "httpx":
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits) as client:

            async def post_httpx(body: bytes, headers: dict[str, str]) -> int:
                return (await client.post(url, content=body, headers=headers)).status_code

            return (*await lanes(post_httpx), latencies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def post_aiohttp(body: bytes, headers: dict[str, str]) -> int:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        return (*await lanes(post_aiohttp), latencies)


def received(base: str) -> dict[str, float]:
    """Each webhook-id received, and when."""
    return httpx.get(f"{base}/stats", timeout=60).json()  # type: ignore[no-any-return]


def count(base: str) -> int:
    """How many were received (what is polled while waiting: cheap for the receiver, which shares the CPU)."""
    return int(httpx.get(f"{base}/count", timeout=60).json())


def dispatcher(engine: Any, url: str) -> Dispatcher:
    config = InventoryConfig(
        registries=(RegistryConfig(name="bench", account_id=ACCOUNT, regions=(REGION,)),),
        webhooks=(WebhookConfig(name="bench", url=url, secret_env="UNUSED", concurrency=CONCURRENCY),),
    )
    return Dispatcher(Store(engine, config, config.webhooks[0], OWNER), Signer((SECRET,)), timeout=15, retry_scale=1)


async def until_received(base: str, total: int, task: asyncio.Task[None], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(count, base) < total:
        assert time.monotonic() < deadline and not task.done(), "the dispatcher did not deliver in time"
        await asyncio.sleep(0.1)


def steady(url: str, rate: float, seconds: float, first: int, repositories: int) -> dict[int, float]:
    """Commit ``rate`` events a second, one per transaction; event id → commit time. Run in a process of its
    own, as a sync in another worker would be: in this one it would take the dispatcher's GIL."""
    engine = create(url)
    committed: dict[int, float] = {}
    n = first
    interval = 1 / rate
    next_at = time.perf_counter()
    end = next_at + seconds
    while next_at < end:
        write(engine, n, n, repositories)
        committed[n] = time.time()
        n += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    engine.dispose()
    return committed


def fill(engine: Any, statement: str, first: int, count: int, repositories: int) -> None:
    """Run ``statement`` over first..first + count - 1, a million rows a transaction."""
    params = {"account": ACCOUNT, "region": REGION, "repositories": repositories}
    for start in range(first, first + count, FILL_BATCH):
        last = min(start + FILL_BATCH, first + count) - 1
        with engine.begin() as connection:
            connection.execute(text(statement), params | {"first": start, "last": last})
        table = statement.split("INSERT INTO ")[1].split()[0]
        print(f"  {table}: {last + 1 - first:,} of {count:,}", end="\r", flush=True)
    print()


def polls(engine: Any, store: Store, first: int, count: int, repositories: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of a steady-state poll (one event written beforehand, untimed: its feed
    read, delivery and outcome), and median wall seconds of the backlog read."""
    poll_wall, poll_cpu, backlog_wall = [], [], []
    for n in range(first, first + count):
        write(engine, n, n, repositories)
        wall, cpu = time.perf_counter(), time.process_time()
        [written] = store.enqueue().written
        now = datetime.now(UTC)
        outcome = Outcome(written.id, now, 204, 1, None, "delivered")
        store.record([outcome], Health(delivered=1, succeeded_at=now), None, None)
        poll_wall.append(time.perf_counter() - wall)
        poll_cpu.append(time.process_time() - cpu)
        wall = time.perf_counter()
        with engine.connect() as connection:
            [endpoint] = webhook_endpoints.endpoints(["bench"], connection=connection)
        backlog_wall.append(time.perf_counter() - wall)
        assert endpoint.backlog == 0
    return statistics.median(poll_wall), statistics.median(poll_cpu), statistics.median(backlog_wall)


def history(engine: Any, store: Store, args: argparse.Namespace) -> None:
    """Part 4: a poll and the backlog read on the run's database, then at ``--history`` more rows of history."""

    def rows() -> str:
        with engine.connect() as connection:
            counts = [connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in HISTORY_TABLES]
        return ", ".join(f"{t} {n:,}" for t, n in zip(HISTORY_TABLES, counts, strict=True))

    def vacuum() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM ANALYZE {', '.join(HISTORY_TABLES)}"))

    vacuum()
    n = args.events + int(args.rate * args.seconds) + 10  # past the events written so far
    before = rows()
    few = polls(engine, store, n, args.polls, args.repositories)
    n += args.polls
    fill(engine, IMAGES, n, args.images, args.repositories)
    fill(engine, EVENTS, n, args.history, args.repositories)
    fill(engine, HISTORY, n, args.history, args.repositories)
    n += args.history
    with engine.begin() as connection:  # the loaded events were delivered: the cursor moves past them
        raw = driver_connection(connection)
        horizon = connection.execute(query.HORIZON).scalar_one()
        position, _ = webhook_endpoints.cursor("bench", connection=raw)
        assert webhook_endpoints.advance("bench", OWNER, query.after_page(position, horizon), connection=raw)
    vacuum()
    after = rows()
    many = polls(engine, store, n, args.polls, args.repositories)
    print(f"history before: {before}")
    print(f"history after:  {after}")
    print(f"steady-state poll (1 event):       {few[0] * 1000:.2f} → {many[0] * 1000:.2f} ms wall, "
          f"{few[1] * 1000:.2f} → {many[1] * 1000:.2f} ms CPU: {many[0] / few[0]:.2f} by wall time, "
          f"{many[1] / few[1]:.2f} by CPU   (goal <= 1.5)")  # fmt: skip
    print(f"backlog read (webhooks list):      {few[2] * 1000:.2f} → {many[2] * 1000:.2f} ms wall: "
          f"{many[2] / few[2]:.2f}   (goal <= 1.5)")  # fmt: skip


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(url: str, base: str, engine: Any, args: argparse.Namespace) -> None:
    messages = payloads(engine)
    total = len(messages)
    wall_bare, cpu_bare, latencies = await bare(url, messages, "httpx")
    httpx.post(f"{base}/reset")
    wall_aiohttp, cpu_aiohttp, latencies_aiohttp = await bare(url, messages, "aiohttp")
    httpx.post(f"{base}/reset")

    gc.freeze()  # as ``inventory worker`` does once started
    sender = dispatcher(engine, url)
    listener = asyncio.create_task(listen(engine, sender.wake.set))  # as a worker wakes it: at each commit
    stop = asyncio.Event()
    wall, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(sender.run(stop))
    await until_received(base, total, task)
    wall_dispatch, cpu_dispatch = time.perf_counter() - wall, time.process_time() - cpu
    httpx.post(f"{base}/reset")

    # steady state, the dispatcher still running: one event per transaction, at the rate
    with engine.connect() as connection:
        last_event = connection.execute(text("SELECT max(id) FROM image_events")).scalar_one()
    url = engine.url.render_as_string(hide_password=False)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as writer:
        committed = await asyncio.get_running_loop().run_in_executor(
            writer, steady, url, args.rate, args.seconds, args.events + 1, args.repositories
        )
    await until_received(base, len(committed), task, timeout=120)
    got = received(base)
    stop.set()
    sender.wake.set()
    await task
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    with engine.connect() as connection:
        new = connection.execute(text("SELECT id FROM image_events WHERE id > :last ORDER BY id"),
                                 {"last": last_event}).scalars().all()  # fmt: skip
    # the writer's n-th event is the n-th new one (each its own transaction, committed in turn)
    lags = [got[event_node_id(event_id)] - committed[n] for event_id, n in zip(new, sorted(committed), strict=True)]

    rate_bare, rate_aiohttp, rate_dispatch = total / wall_bare, total / wall_aiohttp, total / wall_dispatch
    receiver_p99, receiver_p99_aiohttp = percentile(latencies, 0.99), percentile(latencies_aiohttp, 0.99)
    lag_p50, lag_p99 = statistics.median(lags), percentile(lags, 0.99)

    def per_event(cpu: float) -> str:
        return f"CPU {cpu / total * 1e6:.0f} µs per event"

    print(f"events:                            {total:,} to a local receiver (uvicorn, 204), concurrency {CONCURRENCY}")
    print(f"bare httpx client (the limit):     {wall_bare:.1f} s, {rate_bare:,.0f} events/s; {per_event(cpu_bare)}")
    print(f"bare aiohttp client:               {wall_aiohttp:.1f} s, {rate_aiohttp:,.0f} events/s; "
          f"{per_event(cpu_aiohttp)}")  # fmt: skip
    print(f"dispatcher (feed → outbox → POST): {wall_dispatch:.1f} s, {rate_dispatch:,.0f} events/s; "
          f"{per_event(cpu_dispatch)}")  # fmt: skip
    print(f"dispatcher ÷ bare httpx client:    {rate_dispatch / rate_bare:.2f} by wall time, "
          f"{cpu_bare / cpu_dispatch:.2f} by CPU per event   (goal >= 0.5)")  # fmt: skip
    print(f"dispatcher ÷ bare aiohttp client:  {rate_dispatch / rate_aiohttp:.2f} by wall time, "
          f"{cpu_aiohttp / cpu_dispatch:.2f} by CPU per event   (same client: the rest's cost)")  # fmt: skip
    print(f"receiver's response (bare client): p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {receiver_p99 * 1000:.1f} ms (httpx); p99 {receiver_p99_aiohttp * 1000:.1f} ms (aiohttp)")  # fmt: skip
    print(f"steady {args.rate:g} events/s for {args.seconds:g} s:  {len(committed):,} events; lag from commit to "
          f"receipt p50 {lag_p50 * 1000:.1f} ms, p99 {lag_p99 * 1000:.1f} ms")  # fmt: skip
    print(f"p99 lag ÷ receiver p99:            {lag_p99 / receiver_p99:.2f} (httpx's), "
          f"{lag_p99 / receiver_p99_aiohttp:.2f} (aiohttp's)   (goal <= 5)")  # fmt: skip
    if args.history:
        history(engine, sender.store, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repositories", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--history", type=int, default=10_000_000, help="rows of history loaded for part 4 (0: skip)")
    parser.add_argument("--images", type=int, default=1_000_000, help="images loaded for part 4")
    parser.add_argument("--polls", type=int, default=200, help="polls timed before and after the load")
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as scratch:
        server = database_url(Settings(home=Path(scratch) / "home"))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {DATABASE}"))
        engine = create(make_url(server).set(database=DATABASE).render_as_string(hide_password=False))
        try:
            migrate(engine)
            setup(engine, args.events, args.repositories)
            for _ in range(100):
                try:
                    httpx.get(f"{base}/stats")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            asyncio.run(run(f"{base}/hooks", base, engine, args))
        finally:
            receiver.terminate()
            engine.dispose()
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE {DATABASE} WITH (FORCE)"))
            admin.dispose()


if __name__ == "__main__":
    main()
