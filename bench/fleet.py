"""Fleet benchmark: `inventory worker` processes against the emulator with a fixed latency per call.

    python bench/fleet.py [--regions 200] [--repositories 10] [--latency 0.05] [--concurrency 16]
                          [--page-size 10] [--big 100000]

The emulator runs as a process of its own and answers every call after
``--latency`` seconds. It holds ``--regions`` account-regions (two regions per
account) of ``--repositories`` repositories, each listed in exactly 2 pages of
DescribeImages: the workers are started with a page size of ``--page-size``
(the product's is 1000; small pages keep this about latency, not about
ingesting millions of rows). Each run syncs into a fresh database. Prints:

    1 worker:  wall time ÷ ideal, ideal = API calls x latency ÷ concurrency   (goal <= 1.3)
    2 workers: speed-up over 1 worker                                        (goal >= 1.7)
    worker CPU seconds per API call ÷ those of a bare boto3 paginator loop over the same
    emulator and fleet, in this run (the AWS client's own cost)              (goal <= 2)
    a second round with nothing changed: its worker CPU ÷ the first round's  (goal <= 0.5),
    and the image rows it wrote                                              (must be 0)
    peak RSS of one worker syncing one repository of --big images, and of a tenth of it
                                                                            (goal: flat, < 300 MB)

Wall time runs from the first claim to the last release (``sync_scopes``), so process start-up
and migrations are not counted; CPU seconds (the worker process's user + system time, read
from /proc) likewise from the first claim. The CPU figures hold on a busy machine, where the
wall-clock ones swing. Uses INVENTORY_DATABASE_URL's server, else the embedded one.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from sqlalchemy import Engine, create_engine, make_url, text

from inventory.config import Settings
from inventory.db import create, database_url, migrate
from inventory.testing import AdminClient
from inventory.testing.store import synthetic_digest

REGIONS = ("us-east-1", "eu-west-1")
# A worker whose DescribeImages pages hold ``page size`` images (argv[1]), then the CLI as usual.
WORKER = (
    "import sys, inventory.aws.paging as paging; paging.PAGE_SIZE = int(sys.argv.pop(1)); "
    "from inventory.cli import main; sys.argv[0] = 'inventory'; main()"
)


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


def config_text(endpoint: str, accounts: list[str], regions: tuple[str, ...]) -> str:
    return "\n".join(
        f'[[registries]]\nname = "team-{account}"\naccount_id = "{account}"\n'
        f'regions = [{", ".join(f"{chr(34)}{r}{chr(34)}" for r in regions)}]\nendpoint_url = "{endpoint}"\n'
        for account in accounts
    )


class Databases:
    """Fresh databases on the benchmark's server, one per run."""

    def __init__(self, scratch: Path) -> None:
        self.server = database_url(Settings(home=scratch / "home"))
        self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def fresh(self) -> tuple[str, Engine]:
        name = f"inventory_fleet_bench_{len(self.made)}"
        with self.admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
        self.made.append(name)
        url = make_url(self.server).set(database=name).render_as_string(hide_password=False)
        engine = create(url)
        migrate(engine)
        return url, engine

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.made:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self.admin.dispose()


@dataclass
class Run:
    """What ``run_workers`` measured: per round, wall seconds and the workers' CPU seconds."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    rewritten: int = 0
    """Image rows written by the rounds after the first."""


def run_workers(
    url: str, engine: Engine, config: Path, workers: int, args: argparse.Namespace, regions: int, rounds: int = 1
) -> Run:
    """Start ``workers`` workers; wait for every region to be synced ``rounds`` times (the later rounds
    with nothing changed); what it took."""
    env = {**os.environ, "INVENTORY_DATABASE_URL": url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    command = [sys.executable, "-c", WORKER, str(args.page_size), "worker", "-c", str(config), "--interval", "1h",
               "--concurrency", str(args.concurrency), "--rate", str(args.rate)]  # fmt: skip
    processes = [
        subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(workers)
    ]
    run = Run(peaks=[0] * workers)

    def wait(condition: str) -> tuple[datetime, datetime]:
        while True:
            for i, process in enumerate(processes):
                assert process.poll() is None, "a worker exited"
                run.peaks[i] = max(run.peaks[i], _peak_rss(process.pid))
            with engine.connect() as connection:
                met, first, last = connection.execute(text(
                    f"SELECT {condition}, min(last_claimed_at), max(last_finished_at) FROM sync_scopes"
                )).one()  # fmt: skip
            if met:
                return first, last
            time.sleep(0.05)

    try:
        wait("count(*) FILTER (WHERE last_claimed_at IS NOT NULL) > 0")
        cpu = sum(_cpu_seconds(p.pid) for p in processes)
        for round_ in range(rounds):
            if round_:
                with engine.begin() as connection:
                    xid = connection.execute(text("SELECT txid_current() % 4294967296")).scalar_one()
                    connection.execute(text("UPDATE sync_scopes SET next_due_at = now(), last_finished_at = NULL"))
            first, last = wait(f"count(*) FILTER (WHERE last_finished_at IS NOT NULL AND owner IS NULL) = {regions}")
            spent = sum(_cpu_seconds(p.pid) for p in processes)
            run.cpus.append(spent - cpu)
            cpu = spent
            if round_:
                with engine.connect() as connection:
                    run.rewritten += connection.execute(
                        text("SELECT count(*) FROM images WHERE xmin::text::bigint > :xid"), {"xid": xid}
                    ).scalar_one()
            run.walls.append((last - first).total_seconds())
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait()
    with engine.connect() as connection:
        failed = connection.execute(text("SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'")).scalar_one()
    assert failed == 0, f"{failed} scopes failed"
    return run


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_paginator_loop(endpoint: str, accounts: list[str], args: argparse.Namespace) -> tuple[float, int]:
    """The AWS client's own cost: page DescribeRepositories and DescribeImages over the same fleet with
    plain boto3 clients (one per account-region, like the worker), ``--concurrency`` threads;
    (CPU seconds of this process, calls)."""
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench")
    clients = {
        (account, region): session.client("ecr", region_name=region, endpoint_url=endpoint)
        for account in accounts for region in REGIONS
    }  # fmt: skip
    calls = 0
    lock = threading.Lock()

    def page(client: Any, operation: str, **options: Any) -> list[dict[str, Any]]:
        nonlocal calls
        pages = list(client.get_paginator(operation).paginate(**options))
        with lock:
            calls += len(pages)
        return pages

    def repository(client: Any, account: str, name: str) -> None:
        every = {"tagStatus": "ANY", "imageStatus": "ANY"}
        pages = {"PageSize": args.page_size}
        page(client, "describe_images", registryId=account, repositoryName=name, filter=every, PaginationConfig=pages)

    started = time.process_time()
    with ThreadPoolExecutor(args.concurrency) as pool:
        tasks = []
        for (account, _), client in clients.items():
            listing = {"PageSize": args.page_size}
            for listed in page(client, "describe_repositories", registryId=account, PaginationConfig=listing):
                for description in listed["repositories"]:
                    tasks.append(pool.submit(repository, client, account, description["repositoryName"]))
        for task in tasks:
            task.result()
    return time.process_time() - started, calls


def _peak_rss(pid: int) -> int:
    """VmHWM of a running process, in KiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) if match else 0


def api_calls(admin: AdminClient) -> int:
    return sum(admin.calls().values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=int, default=200, help="account-regions (two regions per account)")
    parser.add_argument("--repositories", type=int, default=10, help="repositories per account-region")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the emulator waits per call")
    parser.add_argument("--concurrency", type=int, default=16, help="--concurrency of each worker")
    parser.add_argument("--rate", type=float, default=50.0, help="--rate of each worker (calls/s per region)")
    parser.add_argument("--page-size", type=int, default=10, help="images per DescribeImages page")
    parser.add_argument("--big", type=int, default=100_000, help="images of the repository the RSS is measured on")
    args = parser.parse_args()

    accounts = [f"{300000000000 + i}" for i in range(args.regions // len(REGIONS))]
    regions = len(accounts) * len(REGIONS)
    per_repository = args.page_size + args.page_size // 2  # exactly two pages
    with tempfile.TemporaryDirectory(prefix="inventory-fleet-") as scratch_dir, emulator() as endpoint:
        scratch = Path(scratch_dir)
        databases = Databases(scratch)
        admin = AdminClient(endpoint)
        for account in accounts:
            for region in REGIONS:
                for r in range(args.repositories):
                    admin.put_images(account, region, f"service-{r:02d}/app",
                                     [{"imageTags": [f"v{i}"]} for i in range(per_repository)])  # fmt: skip
        config = scratch / "inventory.toml"
        config.write_text(config_text(endpoint, accounts, REGIONS))
        admin.fault("latency", seconds=args.latency)

        walls: dict[int, float] = {}
        ideals: dict[int, float] = {}
        runs: dict[int, Run] = {}
        for workers in (1, 2):
            url, engine = databases.fresh()
            before = api_calls(admin)
            runs[workers] = run = run_workers(
                url, engine, config, workers, args, regions, rounds=2 if workers == 1 else 1
            )
            calls = (api_calls(admin) - before) // len(run.walls)
            walls[workers] = run.walls[0]
            ideals[workers] = calls * args.latency / (args.concurrency * workers)
            engine.dispose()
            if workers == 1:
                worker_calls = calls
            print(f"{workers} worker(s): {regions} regions x {args.repositories} repositories x 2 pages, "
                  f"{calls} API calls, wall {walls[workers]:.2f} s, ideal {ideals[workers]:.2f} s, "
                  f"wall ÷ ideal = {walls[workers] / ideals[workers]:.2f}", flush=True)  # fmt: skip

        bare_cpu, bare_calls = bare_paginator_loop(endpoint, accounts, args)
        assert bare_calls == worker_calls, (bare_calls, worker_calls)

        admin.reset()
        admin.fault("latency", seconds=0)
        peaks = {}
        for images in (args.big // 10, args.big):
            admin.reset()
            for start in range(0, images, 1000):
                # untagged: the emulator looks tags up image by image, quadratic over 100,000 images
                batch = [{"imageDigest": synthetic_digest("big", i)} for i in range(start, min(images, start + 1000))]
                admin.put_images("399999999999", "us-east-1", "big/app", batch)
            big_config = scratch / "big.toml"
            big_config.write_text(config_text(endpoint, ["399999999999"], ("us-east-1",)))
            url, engine = databases.fresh()
            big_args = argparse.Namespace(**{**vars(args), "page_size": 1000})
            (peak,) = run_workers(url, engine, big_config, 1, big_args, 1).peaks
            with engine.connect() as connection:
                stored = connection.execute(text("SELECT count(*) FROM images")).scalar_one()
            assert stored == images, f"{stored} images stored, {images} expected"
            peaks[images] = peak / 1024
            engine.dispose()
        databases.drop_all()

    print()
    print(f"1 worker, wall ÷ ideal:             {walls[1] / ideals[1]:.2f}   (goal <= 1.3; ideal = calls x "
          f"{args.latency * 1000:g} ms ÷ {args.concurrency})")  # fmt: skip
    print(f"2 workers, wall ÷ ideal:            {walls[2] / ideals[2]:.2f}   (ideal with 2 x {args.concurrency})")
    print(f"2 workers speed-up over 1:          {walls[1] / walls[2]:.2f}x  (goal >= 1.7)")
    first, second = runs[1].cpus
    worker_per_call, bare_per_call = first / worker_calls, bare_cpu / bare_calls
    print(f"worker CPU per API call:            {worker_per_call * 1000:.2f} ms; bare boto3 paginator loop "
          f"{bare_per_call * 1000:.2f} ms; ratio {worker_per_call / bare_per_call:.2f}   (goal <= 2)")  # fmt: skip
    print(f"second round, nothing changed:      worker CPU {second:.2f} s ÷ first round {first:.2f} s = "
          f"{second / first:.2f}   (goal <= 0.5); image rows written: {runs[1].rewritten}   (must be 0)")  # fmt: skip
    for images, peak in peaks.items():
        print(f"peak RSS, one repository of {images:>7,} images: {peak:.0f} MB")
    print(f"RSS growth for 10x the images:      {peaks[args.big] / peaks[args.big // 10]:.2f}x  (goal: flat, < 300 MB)")


if __name__ == "__main__":
    main()
