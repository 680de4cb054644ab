"""GraphQL benchmark: images(first: 100) on an inventory of 1,000,000 images.

    python bench/api_page.py [--images 1000000] [--requests 60]

Through the ASGI app (httpx, no network), with a token limited to the registry
``bench`` (another registry, ``other``, holds a tenth as many images interleaved
with them): p50/p99 of the first page and of a page at a cursor ~90% deep (goal:
deep ÷ first <= 1.2), and a 100-node GraphQL page ÷ the same page (the same
scoped SQL) fetched with raw SQL right after it, twice (the second, its caches warm, is
the baseline), as the median of those pairs (goal <= 2.5); totalCount's SQL ÷ that page, from the
syncs' counters (the token's scope only) and counted up to its cap (a tag filter) (goal <= 5).
Prints the deep page's plan: an
index range scan. Uses INVENTORY_DATABASE_URL's server, else the embedded one;
works in a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
from scratch import read_token, run_script, scratch_database, settle
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from inventory.api.app import async_engine, create_app
from inventory.db import create
from inventory.read import cursors, search

QUERY = """query($after: String) { images(first: 100, after: $after) { nextToken
  nodes { registryId region repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt imageStatus } } }"""

FILL = """
INSERT INTO registries (name, type, account_id, regions) VALUES ('bench', 'ecr', '111111111111', '{us-east-1}'),
  ('other', 'ecr', '222222222222', '{us-east-1}');
INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name)
  SELECT 'ecr', '111111111111', 'us-east-1', 'team-' || r || '/service', 'bench' FROM generate_series(0, 99) r;
INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name)
  SELECT 'ecr', '222222222222', 'us-east-1', 'team-' || r || '/service', 'other' FROM generate_series(0, 9) r;
INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, image_tags,
                    image_size_in_bytes, image_pushed_at, image_status, finding_severity_counts)
  SELECT 'ecr', '222222222222', 'us-east-1', 'team-' || (i % 10) || '/service',
         'sha256:' || lpad(to_hex(i), 64, '0'), ARRAY['v' || i], 1048576 + i * 37,
         timestamptz '2026-01-01' + (i * interval '170 seconds'), 'ACTIVE', '{"LOW": 3}'
  FROM generate_series(1, :n / 10) i;
INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, image_tags,
                    image_size_in_bytes, image_pushed_at, image_status, finding_severity_counts)
  SELECT 'ecr', '111111111111', 'us-east-1', 'team-' || (i % 100) || '/service',
         'sha256:' || lpad(to_hex(i), 64, '0'), ARRAY['v' || i, 'build-' || (i % 977)], 1048576 + i * 37,
         timestamptz '2026-01-01' + (i * interval '17 seconds'), 'ACTIVE', '{"LOW": 3}'
  FROM generate_series(1, :n) i;
UPDATE repositories r SET image_count = c.n FROM (
  SELECT registry_type, registry_id, region, repository_name, count(*) AS n FROM images GROUP BY 1, 2, 3, 4
) c WHERE (r.registry_type, r.registry_id, r.region, r.repository_name)
        = (c.registry_type, c.registry_id, c.region, c.repository_name);
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


SCOPE = search.ImageFilter(scope=("bench",))
"""What the bench's token may see: the registry ``bench``."""
NARROWED = search.ImageFilter(scope=("bench",), tags=["build-1"], tag_status="TAGGED")
"""A filter the syncs' counters cannot answer: its totalCount is counted (up to ``search.COUNT_CAP``)."""


async def timed_page(client: httpx.AsyncClient, after: str | None) -> float:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": QUERY, "variables": {"after": after}})
    elapsed = time.perf_counter() - started
    body = response.json()
    assert "errors" not in body and len(body["data"]["images"]["nodes"]) == 100, body
    assert {node["registryId"] for node in body["data"]["images"]["nodes"]} == {"111111111111"}
    return elapsed


def raw_sql_page(connection: Any, statement: Any, parameters: dict[str, Any]) -> float:
    """The same 100 rows with psycopg and the same keyset SQL (one statement, its position as parameters,
    as the API runs it), no GraphQL."""
    started = time.perf_counter()
    rows = connection.execute(statement, parameters).all()
    elapsed = time.perf_counter() - started
    assert len(rows) == 101
    return elapsed


async def measure(url: str, engine: Any, key: list[Any], requests: int, token: str) -> dict[str, list[float]]:
    """Samples taken in turns (first page, deep page, raw SQL page), so that a noisy moment hits all three."""
    order = search.ORDERS["PUSHED_AT"]
    deep = cursors.encode(cursors.binding("images", SCOPE, order.name), key)
    statement = search.image_page(SCOPE, order, key, 100)
    parameters = search.position_parameters(key)
    api_engine = async_engine(url)
    samples: dict[str, list[float]] = {
        "first": [],
        "deep": [],
        "raw": [],
        "raw again": [],
        "count (counters)": [],
        "count (counted)": [],
    }
    transport = httpx.ASGITransport(app=create_app(api_engine))
    headers = {"Authorization": f"Bearer {token}"}
    with engine.connect() as connection:
        plan = [row[0] for row in connection.execute(text("EXPLAIN " + compiled(statement)))]
        print("deep page's plan:\n  " + "\n  ".join(plan))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            for warm_up in [True] * 5 + [False] * requests:
                first = await timed_page(client, None)
                deeper = await timed_page(client, deep)
                raw = raw_sql_page(connection, statement, parameters)
                again = raw_sql_page(connection, statement, parameters)  # its caches warm: the faster baseline
                counted = [timed(connection, search.image_count(f)) for f in (SCOPE, NARROWED)]
                if not warm_up:
                    samples["first"].append(first)
                    samples["deep"].append(deeper)
                    samples["raw"].append(raw)
                    samples["raw again"].append(again)
                    samples["count (counters)"].append(counted[0])
                    samples["count (counted)"].append(counted[1])
    await api_engine.dispose()
    return samples


def timed(connection: Any, statement: Any) -> float:
    started = time.perf_counter()
    connection.execute(statement).all()
    return time.perf_counter() - started


def compiled(statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def bench_token(engine: Any) -> str:
    """A read token limited to the registry ``bench``."""
    return read_token(engine, "bench", ["bench"])


def load(engine: Any, images: int) -> list[Any]:
    """The bench's inventory of ``images`` images, settled; the keyset key of the image ~90 % deep."""
    started = time.perf_counter()
    run_script(engine, FILL, n=images)
    settle(engine, "images", "repositories")
    print(f"loaded {images:,} images in {time.perf_counter() - started:.1f} s")
    order = search.ORDERS["PUSHED_AT"]
    with engine.connect() as connection:  # the key of the row ~90% deep: setup only, OFFSET is fine here
        row = connection.execute(search.image_page(SCOPE, order, None, 0).limit(1).offset(int(images * 0.9))).one()
    return search.image_key(order, row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with scratch_database("inventory_bench_graphql") as scratch:
        url = scratch.url
        engine = create(url)
        key = load(engine, args.images)
        samples = asyncio.run(measure(url, engine, key, args.requests, bench_token(engine)))
        engine.dispose()

    ms = 1000
    first, deeper = samples["first"], samples["deep"]
    raw = samples["raw again"]
    print(f"first page:   p50 {statistics.median(first) * ms:.1f} ms, p99 {percentile(first, 0.99) * ms:.1f} ms")
    print(f"~90% deep:    p50 {statistics.median(deeper) * ms:.1f} ms, p99 {percentile(deeper, 0.99) * ms:.1f} ms")
    print(
        f"raw SQL page: p50 {statistics.median(samples['raw']) * ms:.1f} ms after the GraphQL pages, "
        f"{statistics.median(raw) * ms:.1f} ms run again at once (the baseline: its caches warm)"
    )
    print(f"deep ÷ first (p50):            {statistics.median(deeper) / statistics.median(first):.2f}   (goal <= 1.2)")
    # Each GraphQL page over the raw page measured beside it, so that a slower moment of the machine slows both.
    paired = statistics.median(d / r for d, r in zip(deeper, raw, strict=True))
    print(f"GraphQL page ÷ raw SQL (p50 of pairs): {paired:.2f}   (goal <= 2.5)")
    for kind in ("count (counters)", "count (counted)"):
        ratio = statistics.median(c / r for c, r in zip(samples[kind], raw, strict=True))
        print(f"totalCount {kind} ÷ its page (p50): {ratio:.2f}   (goal <= 5)")


if __name__ == "__main__":
    main()
