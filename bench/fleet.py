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
    peak RSS of one worker syncing one repository of --big images, and of a tenth of it
                                                                            (goal: flat, < 300 MB)

Wall time runs from the first claim to the last release (``sync_scopes``), so process start-up
and migrations are not counted. Uses INVENTORY_DATABASE_URL's server, else the embedded one.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def run_workers(
    url: str, engine: Engine, config: Path, workers: int, args: argparse.Namespace, regions: int
) -> tuple[float, list[int]]:
    """Start ``workers`` workers, wait for every region to be synced once; (wall seconds, peak RSS KiB each)."""
    env = {**os.environ, "INVENTORY_DATABASE_URL": url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    command = [sys.executable, "-c", WORKER, str(args.page_size), "worker", "-c", str(config), "--interval", "1h",
               "--concurrency", str(args.concurrency), "--rate", str(args.rate)]  # fmt: skip
    processes = [
        subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(workers)
    ]
    peaks = [0] * workers
    try:
        while True:
            for i, process in enumerate(processes):
                assert process.poll() is None, "a worker exited"
                peaks[i] = max(peaks[i], _peak_rss(process.pid))
            with engine.connect() as connection:
                done, first, last = connection.execute(text(
                    "SELECT count(*) FILTER (WHERE last_finished_at IS NOT NULL AND owner IS NULL), "
                    "min(last_claimed_at), max(last_finished_at) FROM sync_scopes"
                )).one()  # fmt: skip
            if done == regions:
                break
            time.sleep(0.2)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait()
    with engine.connect() as connection:
        failed = connection.execute(text("SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'")).scalar_one()
    assert failed == 0, f"{failed} scopes failed"
    return (last - first).total_seconds(), peaks


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
        for workers in (1, 2):
            url, engine = databases.fresh()
            before = api_calls(admin)
            walls[workers], _ = run_workers(url, engine, config, workers, args, regions)
            calls = api_calls(admin) - before
            ideals[workers] = calls * args.latency / (args.concurrency * workers)
            engine.dispose()
            print(f"{workers} worker(s): {regions} regions x {args.repositories} repositories x 2 pages, "
                  f"{calls} API calls, wall {walls[workers]:.2f} s, ideal {ideals[workers]:.2f} s, "
                  f"wall ÷ ideal = {walls[workers] / ideals[workers]:.2f}", flush=True)  # fmt: skip

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
            _, (peak,) = run_workers(url, engine, big_config, 1, big_args, 1)
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
    for images, peak in peaks.items():
        print(f"peak RSS, one repository of {images:>7,} images: {peak:.0f} MB")
    print(f"RSS growth for 10x the images:      {peaks[args.big] / peaks[args.big // 10]:.2f}x  (goal: flat, < 300 MB)")


if __name__ == "__main__":
    main()
