"""Ingest benchmark: an unattended apply of 200,000 images into an empty inventory (pages streamed
into each repository's transaction, as `apply --auto-approve` and the worker do), the same again
unchanged, and COPY of the same rows.

    python bench/ingest.py [--images 200000] [--repositories 50]

Pages are prepared in memory in the exact shape boto3 returns (no network) and
served by a stand-in client. In the same run, the same rows are COPYed into a
table identical to ``images``, by text COPY (the baseline of earlier reports) and by binary
COPY (the fastest load there is; the sync itself writes images by binary COPY). Prints:

    first apply rows/s, first apply ÷ COPY (goal >= 0.7),
    re-apply time ÷ first apply time (goal <= 0.25), rows written by the re-apply (must be 0),
    peak RSS.

Each ratio is given twice: by wall time, and by CPU seconds (this process's, plus the
database server processes' serving the bench database, read from /proc), which holds on
a busy machine where wall times swing.

Uses INVENTORY_DATABASE_URL's server, else the embedded one; works in a scratch database.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import create_engine, make_url, text

from inventory.aws.clients import CallCounter
from inventory.config import InventoryConfig, RegistryConfig, Settings
from inventory.db import create, database_url, driver_connection, migrate
from inventory.sync.runner import sync_fleet
from inventory.sync.transform import FIELDS, image_values
from inventory.tables.images import COPY_TYPES  # the rows' types, as the sync writes them
from inventory.testing.store import synthetic_digest

ACCOUNT, REGION = "111111111111", "us-east-1"
PAGE = 1000


def make_pages(images: int, repositories: int) -> dict[str, list[dict[str, Any]]]:
    """ImageDetail pages per repository, as our boto3 clients return them (UTC datetimes)."""
    rng = random.Random(7)
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    per_repository = images // repositories
    pages: dict[str, list[dict[str, Any]]] = {}
    for r in range(repositories):
        name = f"team-{r:03}/service"
        details = []
        for i in range(per_repository):
            pushed = epoch + timedelta(seconds=rng.randrange(30_000_000))
            detail: dict[str, Any] = {
                "registryId": ACCOUNT,
                "repositoryName": name,
                "imageDigest": synthetic_digest(name, i),
                "imageSizeInBytes": rng.randrange(1 << 20, 4 << 30),
                "imagePushedAt": pushed,
                "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactMediaType": "application/vnd.oci.image.config.v1+json",
                "imageStatus": "ACTIVE",
                "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
                "imageScanFindingsSummary": {
                    "imageScanCompletedAt": pushed + timedelta(minutes=3),
                    "vulnerabilitySourceUpdatedAt": pushed - timedelta(hours=2),
                    "findingSeverityCounts": {"HIGH": rng.randrange(5), "LOW": rng.randrange(40)},
                },
                "lastRecordedPullTime": pushed + timedelta(days=rng.randrange(30)),
            }
            if rng.random() < 0.8:
                detail["imageTags"] = [f"v{i}", f"build-{rng.randrange(10**6)}"]
            details.append(detail)
        pages[name] = details
    return pages


class _Paginator:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return self.pages


class StandInClient:
    """``get_paginator`` over prepared pages: DescribeRepositories and DescribeImages."""

    def __init__(self, pages: dict[str, list[dict[str, Any]]]) -> None:
        self.repositories = [
            {"repositoryName": name, "repositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}",
             "repositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}", "createdAt": datetime.now(UTC)}
            for name in pages
        ]  # fmt: skip
        self.pages = pages
        self.repository = ""

    def get_paginator(self, operation: str) -> _Paginator:
        if operation == "describe_repositories":
            return _Paginator([{"repositories": self.repositories}])
        return _Pages(self.pages)


class _Pages(_Paginator):
    def __init__(self, pages: dict[str, list[dict[str, Any]]]) -> None:
        self.by_repository = pages

    def paginate(self, **options: Any) -> list[dict[str, Any]]:
        details = self.by_repository[options["repositoryName"]]
        return [{"imageDetails": details[i : i + PAGE]} for i in range(0, len(details), PAGE)]


class StandInFactory:
    def __init__(self, client: StandInClient) -> None:
        self.client = client
        self.stats = CallCounter()

    def __call__(self, registry: RegistryConfig, region: str) -> StandInClient:
        return self.client


def server_cpu(engine: Any) -> float:
    """CPU seconds of the server processes serving this database (its connections), from /proc."""
    with engine.connect() as connection:
        pids = (
            connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
            .scalars()
            .all()
        )
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measured(engine: Any, work: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and of the database's server processes) of ``work()``."""
    wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu(engine)
    work()
    return time.perf_counter() - wall, time.process_time() - cpu + server_cpu(engine) - server


def sync(engine: Any, config: InventoryConfig, client: StandInClient) -> tuple[float, float]:
    """One unattended apply; (wall, CPU) seconds."""

    def apply() -> None:
        result = sync_fleet(engine, config, clients=StandInFactory(client))  # type: ignore[arg-type]
        assert not result.failures, result.failures

    return measured(engine, apply)


def copy_baseline(engine: Any, pages: dict[str, list[dict[str, Any]]], binary: bool) -> tuple[float, float]:
    """COPY the same rows into a fresh table identical to ``images`` (text or binary COPY); (wall, CPU) seconds."""
    columns = ", ".join(("registry_type", "registry_id", "region", "repository_name", "image_digest", *FIELDS))
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS scratch_images"))
        connection.execute(text("CREATE TABLE scratch_images (LIKE images INCLUDING ALL)"))
    counts = FIELDS.index("finding_severity_counts")
    rows = [
        ("ecr", ACCOUNT, REGION, name, digest, *values[:counts], Jsonb(values[counts]), *values[counts + 1 :])
        for name, details in pages.items()
        for digest, values in map(image_values, details)
    ]

    def copy_rows() -> None:
        with engine.begin() as connection:
            raw = driver_connection(connection)
            statement = f"COPY scratch_images ({columns}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                if binary:
                    copy.set_types(COPY_TYPES[:-1])  # no fingerprint
                for row in rows:
                    copy.write_row(row)

    return measured(engine, copy_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--repositories", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        server = database_url(Settings(home=scratch / "home"))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS inventory_bench WITH (FORCE)"))
            connection.execute(text("CREATE DATABASE inventory_bench"))
        engine = create(make_url(server).set(database="inventory_bench").render_as_string(hide_password=False))
        migrate(engine)

        pages = make_pages(args.images, args.repositories)
        total = sum(len(details) for details in pages.values())
        client = StandInClient(pages)
        registry = RegistryConfig(name="bench", account_id=ACCOUNT, regions=(REGION,))
        config = InventoryConfig(registries=(registry,))

        prepared = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first_run = sync(engine, config, client)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM images")).scalar_one() == total
            xid = connection.execute(text("SELECT txid_current() % 4294967296")).scalar_one()
        second_run = sync(engine, config, client)
        with engine.connect() as connection:
            written = connection.execute(
                text("SELECT count(*) FROM images WHERE xmin::text::bigint > :xid"), {"xid": xid}
            ).scalar_one()
            events = connection.execute(
                text("SELECT count(*) FROM image_events WHERE xmin::text::bigint > :xid"), {"xid": xid}
            ).scalar_one()
        synced = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        copies = {binary: copy_baseline(engine, pages, binary) for binary in (False, True)}
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE inventory_bench WITH (FORCE)"))
        admin.dispose()

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"images:                         {total:,} in {args.repositories} repositories")
    (first, first_cpu), (again, again_cpu) = first_run, second_run
    print(f"first apply:                    {first:.2f} s, {total / first:,.0f} rows/s; CPU {first_cpu:.2f} s")
    for binary, (copy_seconds, copy_cpu) in copies.items():
        kind = "binary" if binary else "text"
        print(f"{kind} COPY, an identical table: {copy_seconds:.2f} s, {total / copy_seconds:,.0f} rows/s; "
              f"CPU {copy_cpu:.2f} s")  # fmt: skip
        print(f"first apply ÷ {kind} COPY (rate): {copy_seconds / first:.2f} by wall time, "
              f"{copy_cpu / first_cpu:.2f} by CPU   (goal >= 0.7)")  # fmt: skip
    print(f"re-apply unchanged:             {again:.2f} s; CPU {again_cpu:.2f} s")
    print(f"re-apply ÷ first apply (time):  {again / first:.2f} by wall time, {again_cpu / first_cpu:.2f} by CPU   "
          "(goal <= 0.25)")  # fmt: skip
    print(f"rows written by the re-apply:   {written} images, {events} events   (must be 0)")
    print(f"peak RSS:                       {peak:.0f} MB; the applies added {synced - prepared:.0f} MB "
          f"to the {prepared:.0f} MB of prepared pages")  # fmt: skip


if __name__ == "__main__":
    main()
