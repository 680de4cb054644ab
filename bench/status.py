"""Status benchmark: what freshness costs with 10,000,000 sync runs ÷ with 10,000.

    python bench/status.py [--registries 50] [--runs 10000] [--many-runs 10000000] [--repeat 30]

A fleet of ``--registries`` registries x 2 declared regions (their ``region_status``
rows, 20 repositories per region with their image counts) is read three ways:
``inventory status``'s query path (the function the command calls; and the command
itself as a process, fewer repetitions), a ``/metrics`` scrape and a GraphQL
``registries { syncStatus { … } }`` query (both through the ASGI app, httpx, no
network). Each is timed (median of ``--repeat``) with ``--runs`` rows in ``sync_runs``,
then again after bulk-inserting rows up to ``--many-runs`` (VACUUM ANALYZE after each
fill). Prints each median and each ratio, many ÷ few (goal <= 1.5 each).

Uses INVENTORY_DATABASE_URL's server, else the embedded one; works in a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, make_url, text

from inventory.api.app import async_engine, create_app
from inventory.config import InventoryConfig, RegistryConfig, Settings
from inventory.db import create, database_url, driver_connection, migrate
from inventory.status import declared_statuses
from inventory.tables.region_status import RegionOutcome, record

DATABASE = "inventory_bench_status"
REGIONS = ("us-east-1", "eu-west-1")
REPOSITORIES = 20
BATCH = 1_000_000
SYNC_STATUS = """{ registries { name syncStatus { staleSince lastErrorCode
  regions { region lastSuccessAt staleSince lastErrorCode } } } }"""

# Runs spread over the fleet's regions and repositories, one in ten failed, over the last 30 days.
FILL_RUNS = """
INSERT INTO sync_runs (registry_name, registry_id, region, repository_name, status, started_at, finished_at,
                       images_seen, api_calls, throttled_calls, error_code, error_message, worker)
SELECT 'reg-' || lpad((i % CAST(:registries AS bigint))::text, 2, '0'),
       lpad((100000000000 + i % :registries)::text, 12, '0'),
       CASE WHEN i / :registries % 2 = 0 THEN 'us-east-1' ELSE 'eu-west-1' END,
       'team-' || (i % 20) || '/service',
       CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
       now() - (i % 2592000) * interval '1 second', now() - (i % 2592000) * interval '1 second' + interval '2 seconds',
       i % 500, 1 + i % 7, CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i % 10 = 0 THEN 'ThrottlingException' END, CASE WHEN i % 10 = 0 THEN 'Rate exceeded' END,
       'bench:' || (i % 8)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) i
"""


def fleet(registries: int) -> InventoryConfig:
    return InventoryConfig(
        registries=tuple(
            RegistryConfig(name=f"reg-{r:02}", account_id=f"{100000000000 + r:012}", regions=REGIONS)
            for r in range(registries)
        )
    )


def seed(engine: Engine, config: InventoryConfig) -> None:
    """The declared registries, their region_status rows (one region in five stale), their repositories."""
    with engine.begin() as connection:
        raw = driver_connection(connection)
        with raw.cursor() as cursor:
            for registry in config.registries:
                cursor.execute(
                    "INSERT INTO registries (name, type, account_id, regions) VALUES (%s, 'ecr', %s, %s)",
                    (registry.name, registry.account_id, list(registry.regions)),
                )
                cursor.execute(
                    "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name, "
                    "image_count) SELECT 'ecr', %s, region, 'team-' || n || '/service', %s, 100 + n "
                    "FROM unnest(%s::text[]) region, generate_series(0, %s) n",
                    (registry.account_id, registry.name, list(registry.regions), REPOSITORIES - 1),
                )
        regions = [(registry.name, region) for registry in config.registries for region in registry.regions]
        record([RegionOutcome(name, region, REPOSITORIES, 0, 40, 1, None, True) for name, region in regions],
               connection=raw)  # fmt: skip
    with engine.begin() as connection:  # a later round: some regions fail
        failing = [
            RegionOutcome(name, region, 0, 1, 1, 0, ("AccessDeniedException", "denied"), True)
            for i, (name, region) in enumerate(regions)
            if i % 5 == 0
        ]
        record(failing, connection=driver_connection(connection))


def fill_runs(engine: Engine, registries: int, first: int, last: int) -> float:
    """Insert sync runs numbered ``first..last`` in batches, then VACUUM ANALYZE; seconds taken."""
    started = time.perf_counter()
    for start in range(first, last + 1, BATCH):
        end = min(last, start + BATCH - 1)
        with engine.begin() as connection:
            connection.execute(text(FILL_RUNS), {"registries": registries, "first": start, "last": end})
        if end - first + 1 >= BATCH:
            print(f"  {end:,} sync runs", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def timed(function: Callable[[], Any], repeat: int, warm_up: int = 3) -> float:
    """The median seconds of ``function`` over ``repeat`` calls, after ``warm_up`` untimed ones."""
    samples = []
    for i in range(warm_up + repeat):
        started = time.perf_counter()
        function()
        if i >= warm_up:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def timed_async(function: Callable[[], Any], repeat: int, warm_up: int = 3) -> float:
    samples = []
    for i in range(warm_up + repeat):
        started = time.perf_counter()
        await function()
        if i >= warm_up:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(url: str, engine: Engine, config: InventoryConfig, config_path: Path, repeat: int) -> dict[str, float]:
    """Median seconds of each way of reading the fleet's freshness."""
    regions = sum(len(registry.regions) for registry in config.registries)

    def status_path() -> None:
        with engine.connect() as connection:
            statuses = declared_statuses(config, connection=driver_connection(connection))
        assert len(statuses) == regions

    env = {**os.environ, "INVENTORY_DATABASE_URL": url, "COLUMNS": "200"}

    def status_process() -> None:
        result = subprocess.run(
            [sys.executable, "-m", "inventory", "status", "-c", str(config_path)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert result.stdout.count("│ reg-") == regions, result.stdout

    async def through_the_api() -> dict[str, float]:
        api_engine = async_engine(url)
        transport = httpx.ASGITransport(app=create_app(api_engine, allow_anonymous=True))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def scrape() -> None:
                response = await client.get("/metrics")
                assert response.status_code == 200 and "inventory_images{" in response.text

            async def sync_status() -> None:
                response = await client.post("/graphql", json={"query": SYNC_STATUS})
                body = response.json()
                assert "errors" not in body and len(body["data"]["registries"]) == len(config.registries), body

            found = {
                "/metrics scrape": await timed_async(scrape, repeat),
                "Registry.syncStatus": await timed_async(sync_status, repeat),
            }
        await api_engine.dispose()
        return found

    return {
        "inventory status (query path)": timed(status_path, repeat),
        **asyncio.run(through_the_api()),
        "inventory status (process)": timed(status_process, max(3, repeat // 6), warm_up=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--many-runs", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    config = fleet(args.registries)
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as scratch:
        config_path = Path(scratch) / "inventory.toml"
        config_path.write_text(
            "".join(
                f'[[registries]]\nname = "{r.name}"\naccount_id = "{r.account_id}"\n'
                f'regions = ["{REGIONS[0]}", "{REGIONS[1]}"]\n\n'
                for r in config.registries
            )
        )
        server = database_url(Settings(home=Path(scratch) / "home"))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {DATABASE}"))
        url = make_url(server).set(database=DATABASE).render_as_string(hide_password=False)
        engine = create(url)
        migrate(engine)
        seed(engine, config)
        regions = sum(len(r.regions) for r in config.registries)
        print(f"fleet: {args.registries} registries, {regions} regions, {regions * REPOSITORIES:,} repositories")

        seconds = fill_runs(engine, args.registries, 1, args.runs)
        print(f"{args.runs:,} sync runs loaded in {seconds:.1f} s")
        few = measure(url, engine, config, config_path, args.repeat)
        seconds = fill_runs(engine, args.registries, args.runs + 1, args.many_runs)
        print(f"{args.many_runs:,} sync runs loaded in {seconds:.1f} s")
        many = measure(url, engine, config, config_path, args.repeat)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM sync_runs")).scalar_one()
            size = connection.execute(text("SELECT pg_size_pretty(pg_total_relation_size('sync_runs'))")).scalar_one()
        assert stored == args.many_runs, stored
        print(f"sync_runs: {stored:,} rows, {size} with its indexes")
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {DATABASE} WITH (FORCE)"))
        admin.dispose()

    ms = 1000
    width = max(map(len, few))
    print(f"\nmedians: {args.runs:,} runs → {args.many_runs:,} runs (goal: ratio <= 1.5 each)")
    for name in few:
        ratio = many[name] / few[name]
        print(f"  {name:<{width}}  {few[name] * ms:8.2f} ms → {many[name] * ms:8.2f} ms   ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
