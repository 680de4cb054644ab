"""Console benchmark: the search page (``GET /console/images``, 100 rows) ÷ the same ``images`` query
through GraphQL, on the 1,000,000-image inventory of ``api_page.py``.

    python bench/console.py [--images 1000000] [--requests 60]

Through the ASGI app (httpx, no network), with a token limited to the registry ``bench``: the console
signed in with it (a session), GraphQL with it as a bearer. Both read the first page and a page ~90%
deep, with the total count; the page also renders its HTML (goal: page ÷ GraphQL <= 1.5, p50). Samples
are taken in turns, so that a noisy moment hits both. Uses INVENTORY_DATABASE_URL's server, else the
embedded one; works in a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time

import httpx
from api_page import SCOPE, bench_token, load, percentile
from scratch import scratch_database

from inventory.api.app import async_engine, create_app
from inventory.db import create
from inventory.read import cursors, search

QUERY = """query($after: String) { images(first: 100, after: $after) { totalCount nextToken
  nodes { registryId region repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt imageStatus
          imageScanFindingsSummary { findingSeverityCounts { severity count } } } } }"""


async def graphql_page(client: httpx.AsyncClient, after: str | None) -> float:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": QUERY, "variables": {"after": after}})
    elapsed = time.perf_counter() - started
    body = response.json()
    assert "errors" not in body and len(body["data"]["images"]["nodes"]) == 100, body
    return elapsed


async def console_page(client: httpx.AsyncClient, after: str | None) -> float:
    started = time.perf_counter()
    response = await client.get("/console/images", params={} if after is None else {"after": after})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:2000]
    assert response.text.count('class="digest"') == 100
    return elapsed


async def signed_in(client: httpx.AsyncClient, token: str) -> None:
    form = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    answer = await client.post("/console/login", data={"token": token, "csrf": csrf[1]})
    assert answer.status_code == 303, answer.text


async def measure(url: str, deep: str, requests: int, token: str) -> dict[str, list[float]]:
    api_engine = async_engine(url)
    samples: dict[str, list[float]] = {"console first": [], "graphql first": [], "console deep": [],
                                       "graphql deep": []}  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(api_engine))
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as graphql,
        httpx.AsyncClient(transport=transport, base_url="http://bench") as console,
    ):
        await signed_in(console, token)
        for warm_up in [True] * 5 + [False] * requests:
            taken = {}
            for where, after in (("first", None), ("deep", deep)):
                taken[f"console {where}"] = await console_page(console, after)
                taken[f"graphql {where}"] = await graphql_page(graphql, after)
            if not warm_up:
                for name, elapsed in taken.items():
                    samples[name].append(elapsed)
    await api_engine.dispose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with scratch_database("inventory_bench_console") as scratch:
        engine = create(scratch.url)
        key = load(engine, args.images)
        deep = cursors.encode(cursors.binding("images", SCOPE, search.ORDERS["PUSHED_AT"].name), key)
        samples = asyncio.run(measure(scratch.url, deep, args.requests, bench_token(engine)))
        engine.dispose()

    ms = 1000
    for name, taken in samples.items():
        print(f"{name:14} p50 {statistics.median(taken) * ms:6.1f} ms, p99 {percentile(taken, 0.99) * ms:6.1f} ms")
    for where in ("first", "deep"):
        ratio = statistics.median(samples[f"console {where}"]) / statistics.median(samples[f"graphql {where}"])
        print(f"search page ÷ GraphQL, {where} page (p50): {ratio:.2f}   (goal <= 1.5)")


if __name__ == "__main__":
    main()
