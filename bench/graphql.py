"""GraphQL benchmark: images(first: 100) on an inventory of 1,000,000 images.

    python bench/graphql.py [--images 1000000] [--requests 60]

Through the ASGI app (httpx, no network): p50/p99 of the first page and of a page
at a cursor ~90% deep (goal: deep ÷ first <= 1.2), and a 100-node GraphQL page
÷ the same page fetched with raw SQL (goal <= 5). Uses INVENTORY_DATABASE_URL's
server, else the embedded one; works in a scratch database.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the graphql package, and Python puts its folder first on the path.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

from inventory.api import cursors, search
from inventory.api.app import async_engine, create_app
from inventory.config import Settings
from inventory.db import create, database_url, migrate

QUERY = """query($after: String) { images(first: 100, after: $after) { nextToken
  nodes { registryId region repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt imageStatus } } }"""

FILL = """
INSERT INTO registries (name, type, account_id, regions) VALUES ('bench', 'ecr', '111111111111', '{us-east-1}');
INSERT INTO repositories (registry_id, region, repository_name, registry_name)
  SELECT '111111111111', 'us-east-1', 'team-' || r || '/service', 'bench' FROM generate_series(0, 99) r;
INSERT INTO images (registry_id, region, repository_name, image_digest, image_tags, image_size_in_bytes,
                    image_pushed_at, image_status, finding_severity_counts)
  SELECT '111111111111', 'us-east-1', 'team-' || (i % 100) || '/service',
         'sha256:' || lpad(to_hex(i), 64, '0'), ARRAY['v' || i, 'build-' || (i % 977)], 1048576 + i * 37,
         timestamptz '2026-01-01' + (i * interval '17 seconds'), 'ACTIVE', '{"LOW": 3}'
  FROM generate_series(1, :n) i;
ANALYZE images;
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_pages(client: httpx.AsyncClient, after: str | None, requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": QUERY, "variables": {"after": after}})
        samples.append(time.perf_counter() - started)
        body = response.json()
        assert "errors" not in body and len(body["data"]["images"]["nodes"]) == 100, body
    return samples


async def measure(url: str, deep: str, requests: int) -> tuple[list[float], list[float]]:
    engine = async_engine(url)
    app = create_app(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        await timed_pages(client, None, 5)  # warm up the pool and the caches
        first = await timed_pages(client, None, requests)
        deeper = await timed_pages(client, deep, requests)
    await engine.dispose()
    return first, deeper


def raw_sql_pages(engine: Any, key: list[Any], requests: int) -> list[float]:
    """The same 100 rows with psycopg and the same keyset SQL, no GraphQL."""
    order = search.ORDERS["PUSHED_AT"]
    statement = search.image_page(search.ImageFilter(), order, key, 100)
    samples = []
    with engine.connect() as connection:
        for _ in range(requests):
            started = time.perf_counter()
            rows = connection.execute(statement).all()
            samples.append(time.perf_counter() - started)
            assert len(rows) == 101
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as scratch:
        server = database_url(Settings(home=Path(scratch) / "home"))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS inventory_bench_graphql WITH (FORCE)"))
            connection.execute(text("CREATE DATABASE inventory_bench_graphql"))
        url = make_url(server).set(database="inventory_bench_graphql").render_as_string(hide_password=False)
        engine = create(url)
        migrate(engine)
        started = time.perf_counter()
        with engine.begin() as connection:
            for statement in FILL.split(";\n"):
                if statement.strip():
                    connection.execute(text(statement), {"n": args.images})
        print(f"loaded {args.images:,} images in {time.perf_counter() - started:.1f} s")

        order = search.ORDERS["PUSHED_AT"]
        with engine.connect() as connection:  # the key of the row ~90% deep: setup only, OFFSET is fine here
            row = connection.execute(
                search.image_page(search.ImageFilter(), order, None, 0).limit(1).offset(int(args.images * 0.9))
            ).one()
        key = search.image_key(order, row)
        deep = cursors.encode(cursors.binding("images", search.ImageFilter(), order.name), key)
        first, deeper = asyncio.run(measure(url, deep, args.requests))
        raw = raw_sql_pages(engine, key, args.requests)
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE inventory_bench_graphql WITH (FORCE)"))
        admin.dispose()

    ms = 1000
    print(f"first page:   p50 {statistics.median(first) * ms:.1f} ms, p99 {percentile(first, 0.99) * ms:.1f} ms")
    print(f"~90% deep:    p50 {statistics.median(deeper) * ms:.1f} ms, p99 {percentile(deeper, 0.99) * ms:.1f} ms")
    print(f"raw SQL page: p50 {statistics.median(raw) * ms:.1f} ms")
    print(f"deep ÷ first (p50):            {statistics.median(deeper) / statistics.median(first):.2f}   (goal <= 1.2)")
    print(f"GraphQL page ÷ raw SQL (p50):  {statistics.median(deeper) / statistics.median(raw):.2f}   (goal <= 5)")


if __name__ == "__main__":
    main()
