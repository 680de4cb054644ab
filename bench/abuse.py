"""Abuse benchmark: does the costliest request the limits allow stall the API?

    python bench/abuse.py [--images 20000] [--clients 4] [--seconds 20]

Runs ``inventory serve`` as a process (uvicorn, its one event loop) on a scratch database of
``--images`` images, and a read token. Measures ``/healthz`` (one request at a time) idle, then
while ``--clients`` clients send, back to back, the costliest requests the limits allow: 15
aliases (the most) of ``images(first: 1000)`` with 100 tags and 100 globs (the longest lists)
and every field, and the same of ``events``. Prints /healthz p99 loaded ÷ p99 idle (goal <= 3),
how many costly requests were answered, and the server's CPU seconds over the loaded phase.

Beside it, in turns with each of its samples, the same of ``bench/bare_healthz.py``: a process that
answers /healthz as the server does and does nothing else. Its ratio is this machine's floor (on 2
cores the load keeps every core busy, and any process waits for one); the server's loaded p99 ÷ the
bare one's is what the server itself adds.
Uses INVENTORY_DATABASE_URL's server, else the embedded one; works in a scratch database.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from scratch import free_port, read_token, run_script, scratch_database, wait_healthy

from inventory.api.cost import MAX_COST, query_cost
from inventory.api.schema import MAX_ALIASES, schema
from inventory.db import create

FILL = """
INSERT INTO registries (name, type, account_id, regions) VALUES ('bench', 'ecr', '111111111111', '{us-east-1}');
INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name)
  SELECT 'ecr', '111111111111', 'us-east-1', 'team-' || r || '/service', 'bench' FROM generate_series(0, 99) r;
INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, image_tags,
                    image_size_in_bytes, image_pushed_at, image_status, finding_severity_counts)
  SELECT 'ecr', '111111111111', 'us-east-1', 'team-' || (i % 100) || '/service',
         'sha256:' || lpad(to_hex(i), 64, '0'), ARRAY['v' || i, 'build-' || (i % 97)], 1048576 + i * 37,
         timestamptz '2026-01-01' + (i * interval '17 seconds'), 'ACTIVE', '{"LOW": 3, "HIGH": 1}'
  FROM generate_series(1, :n) i;
ANALYZE images;
"""

TAGS = [f"build-{i}" for i in range(97)] + ["v1", "v2", "v3"]
GLOBS = [f"team-{i}/*" for i in range(100)]
IMAGE_FIELDS = """id registryType registryId region repositoryName imageDigest imageTags imageSizeInBytes
  imagePushedAt imageManifestMediaType artifactMediaType imageScanStatus { status description }
  imageScanFindingsSummary { findingSeverityCounts { severity count } } lastRecordedPullTime imageStatus
  firstSeenAt lastSeenAt removedAt"""


def _costliest() -> list[str]:
    """The requests: the lists in variables (literal ones would pass the document's token limit first)."""
    where = "filter: {tags: $tags, repositoryNames: $globs}"
    images = " ".join(
        f"i{n}: images(first: 1000, {where}) {{ nodes {{ {IMAGE_FIELDS} }} }}" for n in range(MAX_ALIASES)
    )
    events = " ".join(f"e{n}: events(first: 1000, {where}) {{ nodes {{ id type }} }}" for n in range(MAX_ALIASES))
    declared = "query($tags: [String!], $globs: [String!])"
    return [f"{declared} {{ {images} }}", f"{declared} {{ {events} }}"]


VARIABLES = {"tags": TAGS, "globs": GLOBS}


def abuse(url: str, token: str, query: str, stop: Any, answered: Any) -> None:
    """Send ``query`` back to back until ``stop``; put the seconds each answer took on ``answered``."""
    took = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.post("/graphql", json={"query": query, "variables": VARIABLES})
            # the head says whether it failed: parsing megabytes would only load the machine
            assert response.status_code == 200 and b'"errors"' not in response.content[:100], response.text[:300]
            took.append(time.perf_counter() - started)
    answered.put(took)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def healthz_samples(urls: list[str], seconds: float) -> list[list[float]]:
    """/healthz's latencies of each of ``urls``, asked in turns (so that a noisy moment hits them alike)."""
    samples: list[list[float]] = [[] for _ in urls]
    clients = [httpx.Client(base_url=url) for url in urls]
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for client, taken in zip(clients, samples, strict=True):
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                taken.append(time.perf_counter() - started)
                time.sleep(0.01)
    finally:
        for client in clients:
            client.close()
    return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    queries = _costliest()
    from graphql import parse

    costs = [query_cost(schema._schema, parse(q), VARIABLES) for q in queries]
    print(f"costliest requests: cost {costs[0]:,} and {costs[1]:,} (limit {MAX_COST:,})")
    with scratch_database("inventory_bench_abuse") as scratch:
        engine = create(scratch.url)
        run_script(engine, FILL, n=args.images)
        token = read_token(engine, "abuse")
        engine.dispose()
        port, bare_port = free_port(), free_port()
        url, bare_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
        env = {**os.environ, "INVENTORY_DATABASE_URL": scratch.url, "INVENTORY_HOME": str(scratch.home)}
        quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        process = subprocess.Popen([sys.executable, "-m", "inventory", "serve", "--port", str(port)], **quiet)
        bare = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("bare_healthz.py")), str(bare_port)], **quiet
        )
        try:
            wait_healthy(url)
            wait_healthy(bare_url)
            idle, bare_idle = healthz_samples([url, bare_url], args.seconds / 2)
            # The clients are processes of their own: reading megabytes of answers in this one would
            # hold its interpreter, and /healthz would be measured waiting on the bench, not the server.
            stop = multiprocessing.Event()
            answered = multiprocessing.Queue()
            clients = [
                multiprocessing.Process(target=abuse, args=(url, token, queries[n % len(queries)], stop, answered))
                for n in range(args.clients)
            ]
            cpu_before = cpu_seconds(process.pid)
            for client in clients:
                client.start()
            time.sleep(1)  # the load is on
            loaded, bare_loaded = healthz_samples([url, bare_url], args.seconds)
            cpu = cpu_seconds(process.pid) - cpu_before
            stop.set()
            times = [answered.get(timeout=300) for _ in clients]
            for client in clients:
                client.join(timeout=120)
        finally:
            for server in (process, bare):
                server.terminate()
                server.wait(timeout=30)

    ms = 1000
    print(f"/healthz idle:   p50 {statistics.median(idle) * ms:.1f} ms, p99 {p99(idle) * ms:.1f} ms ({len(idle)})")
    print(
        f"/healthz loaded: p50 {statistics.median(loaded) * ms:.1f} ms, p99 {p99(loaded) * ms:.1f} ms ({len(loaded)})"
    )
    took = [seconds for each in times for seconds in each]
    print(f"costly requests answered: {len(took)}, p50 {statistics.median(took or [0]):.2f} s; "
          f"server CPU {cpu:.1f} s over the loaded {args.seconds:g} s")  # fmt: skip
    print(f"/healthz p99 loaded ÷ idle: {p99(loaded) / p99(idle):.2f}   (goal <= 3)")
    print(
        f"bare /healthz (the floor): idle p99 {p99(bare_idle) * ms:.1f} ms, loaded p50 "
        f"{statistics.median(bare_loaded) * ms:.1f} ms, p99 {p99(bare_loaded) * ms:.1f} ms; "
        f"p99 loaded ÷ idle {p99(bare_loaded) / p99(bare_idle):.2f}"
    )
    print(f"/healthz p99 loaded ÷ the bare one's, loaded: {p99(loaded) / p99(bare_loaded):.2f}")


if __name__ == "__main__":
    main()
