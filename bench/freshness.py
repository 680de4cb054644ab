"""Freshness benchmark: ECR's events through SQS vs polling, on the emulator (as a process of its own).

    python bench/freshness.py [--repositories 1000] [--pushes 40]

One ``inventory worker`` process at ``--interval 1h`` reads the emulator's queue of ECR events. Prints:

    push -> visible in the inventory, p50 / p99, from the moment the push returned (its event is then in
    the queue): the worker's commit seen by a reader polling the images table every 10 ms (GraphQL reads
    the same rows)                                                                  (goal p99 <= 2 s)
    the same with polling only at --interval 60s: half the interval on average, all of it at worst
    (computed, not measured: a push waits for the next round)
    AWS calls per hour for 10,000 repositories with 1 % of them changing per hour, counted on the emulator:
    one full round of --repositories repositories (scaled to 10,000: a round's calls grow with the
    repositories), the calls of each applied event, and the idle long polls; events + a 6 h reconcile
    divided by polling every 15 min                                                 (goal <= 0.05)
    worker CPU per applied event (user + system, the idle worker's CPU over as long subtracted)

Uses INVENTORY_DATABASE_URL's server, else an embedded one in a temporary home.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import psutil
from scratch import scratch_database
from sqlalchemy import text

from inventory.db import create
from inventory.testing import AdminClient

ACCOUNT, REGION = "111111111111", "us-east-1"
FLEET, CHANGING, RECONCILE, POLL = 10_000, 0.01, 6 * 3600, 15 * 60


@contextmanager
def emulator() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory", "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    match = re.search(r"listening on (\S+)", process.stdout.readline())
    assert match, "the emulator did not start"
    try:
        yield match[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--pushes", type=int, default=40)
    args = parser.parse_args()
    with (
        emulator() as url,
        scratch_database("inventory_freshness_bench") as scratch,
        tempfile.TemporaryDirectory() as d,
    ):
        admin = AdminClient(url)
        for n in range(args.repositories):
            admin.put_images(ACCOUNT, REGION, f"team/repo-{n}", [{"imageTags": ["latest"]}])
        queue = admin.event_queue(REGION, "ecr-events")
        config = Path(d) / "inventory.toml"
        config.write_text(
            f'[[registries]]\nname = "prod"\naccount_id = "{ACCOUNT}"\nregions = ["{REGION}"]\n'
            f'endpoint_url = "{url}"\n\n[[event_queues]]\nname = "ecr-events"\nurl = "{queue}"\n'
            f'region = "{REGION}"\nendpoint_url = "{url}"\n'
        )
        env = {**os.environ, "INVENTORY_DATABASE_URL": scratch.url, "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench"}  # fmt: skip
        engine = create(scratch.url)
        before = admin.calls()
        worker = subprocess.Popen(
            [sys.executable, "-m", "inventory", "worker", "-c", str(config), "--interval", "1h"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with engine.connect() as connection:
                while not connection.execute(
                    text("SELECT 1 FROM region_status WHERE last_round_at IS NOT NULL")
                ).first():
                    time.sleep(0.2)
                    connection.commit()
            round_calls = sum(admin.calls().values()) - sum(before.values())
            drain = time.monotonic() + 5
            while time.monotonic() < drain:  # the seed's own events, applied (or found applied)
                time.sleep(0.5)
            process = psutil.Process(worker.pid)
            idle_started, idle_cpu = time.monotonic(), cpu(process)
            time.sleep(10)
            idle_per_second = (cpu(process) - idle_cpu) / (time.monotonic() - idle_started)

            ecr = boto3.client("ecr", endpoint_url=url, region_name=REGION, aws_access_key_id="bench",
                               aws_secret_access_key="bench")  # fmt: skip
            latencies, calls_before, cpu_before, started = [], admin.calls(), cpu(process), time.monotonic()
            for n in range(args.pushes):
                manifest = json.dumps({"schemaVersion": 2, "n": n})
                pushed_at = time.monotonic()
                answer = ecr.put_image(registryId=ACCOUNT, repositoryName=f"team/repo-{n % args.repositories}",
                                       imageManifest=manifest, imageTag="latest")  # fmt: skip
                digest = answer["image"]["imageId"]["imageDigest"]
                with engine.connect() as connection:
                    while not connection.execute(
                        text("SELECT 1 FROM images WHERE image_digest = :d"), {"d": digest}
                    ).first():
                        time.sleep(0.01)
                        connection.commit()
                latencies.append(time.monotonic() - pushed_at)
            spent = cpu(process) - cpu_before - idle_per_second * (time.monotonic() - started)
            after = admin.calls()
            event_calls = sum(after.get(k, 0) - calls_before.get(k, 0)
                              for k in ("DescribeImages", "DescribeRepositories", "DeleteMessageBatch"))  # fmt: skip
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait()
            engine.dispose()

    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"push -> visible: p50 {p50:.2f} s, p99 {p99:.2f} s over {len(latencies)} pushes (goal p99 <= 2 s)")
    print("polling only at --interval 60s: p50 ~30 s, p99 ~59 s (computed: a push waits for the next round)")
    per_round = round_calls * FLEET / args.repositories
    per_event = event_calls / args.pushes
    events_per_hour = FLEET * CHANGING
    idle_polls = 3600 / 20
    with_events = events_per_hour * per_event + per_round * 3600 / RECONCILE + idle_polls
    polling = per_round * 3600 / POLL
    print(f"a full round: {round_calls} calls for {args.repositories} repositories -> {per_round:,.0f} for {FLEET:,}")
    print(f"an applied event: {per_event:.2f} calls (DescribeImages, DescribeRepositories, DeleteMessageBatch)")
    print(f"calls per hour for {FLEET:,} repositories, 1 % changing: events + 6 h reconcile {with_events:,.0f} "
          f"/ polling every 15 min {polling:,.0f} = {with_events / polling:.3f} (goal <= 0.05)")  # fmt: skip
    print(f"worker CPU per applied event: {spent / args.pushes * 1000:.1f} ms")


if __name__ == "__main__":
    main()
