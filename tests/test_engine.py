"""The one region sync: `apply` and a worker converge alike, unchanged scopes write nothing of their own,
and our own defects surface instead of passing for AWS failures."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dbview import DatabaseView
from sqlalchemy import Engine
from test_sync import EU, PROD, STAGING, US, Inventory, aws_client, seed
from test_sync import inventory as inventory  # the fixture
from test_worker import wait_until

from inventory.db import create, migrate
from inventory.sync import engine as sync_engine
from inventory.worker import Worker, WorkerOptions

_IMAGES = (
    "SELECT registry_type, registry_id, region, repository_name, image_digest, image_tags, image_status, "
    "removed_at IS NULL AS present FROM images ORDER BY 1, 2, 3, 4, 5"
)
_EVENTS = (
    "SELECT registry_type, registry_id, region, repository_name, image_digest, type, backfill, changes "
    "FROM image_events "
    "ORDER BY 1, 2, 3, 4, 5, 6, changes::text"
)
_RUNS = (
    "SELECT registry_name, region, repository_name, status, images_seen, images_added, images_changed, "
    "images_removed, api_calls, error_code FROM sync_runs ORDER BY 1, 2, 3 NULLS FIRST, id"
)
_REPOSITORIES = (
    "SELECT registry_type, registry_id, region, repository_name, registry_name, image_count, "
    "removed_at IS NULL FROM repositories ORDER BY 1, 2, 3, 4"
)


class Database(DatabaseView):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def snapshot(self) -> dict[str, list[Any]]:
        queries = {"images": _IMAGES, "events": _EVENTS, "runs": _RUNS, "repositories": _REPOSITORIES}
        return {name: self.rows(sql) for name, sql in queries.items()}


@pytest.fixture
def second(empty_database_url: str) -> Iterator[Database]:
    """Another inventory database, for the worker to converge beside `apply`'s."""
    engine = create(empty_database_url)
    migrate(engine)
    yield Database(engine)
    engine.dispose()


def run_worker_round(engine: Engine, config: Path) -> None:
    """One worker, in this process, until every declared region has been synced once more."""
    view = Database(engine)
    started = view.scalar("SELECT now()")
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE sync_scopes SET next_due_at = now()")
    worker = Worker(engine, config, WorkerOptions(interval=3600, concurrency=4, lease=30), name="test:1")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_until(
            lambda: view.scalar(
                "SELECT count(*) > 0 AND bool_and(coalesce(last_finished_at > :started, false)) FROM sync_scopes",
                started=started,
            ),
            what="the worker's round",
        )
    finally:
        stop.set()
        thread.join(timeout=60)


def test_apply_and_a_worker_converge_to_the_same_inventory(inventory: Inventory, second: Database) -> None:
    admin = inventory.admin
    seed(admin, PROD, US, "app/web", 3)
    seed(admin, PROD, EU, "app/web", 2)
    seed(admin, STAGING, US, "app/api", 2)
    seed(admin, PROD, US, "app/web", 2, registry_type="ecr-public")  # same name as the private one
    first = Database(inventory.engine)
    plan = inventory.run("plan").stdout
    assert "prod/us-east-1/app/web:" in plan and "public/us-east-1/app/web:" in plan  # two repositories, one name

    def both() -> None:
        assert inventory.run("apply", "--auto-approve").exit_code == 0
        run_worker_round(second.engine, inventory.config)

    both()
    assert first.snapshot() == second.snapshot()
    assert first.scalar("SELECT count(*) FROM repositories WHERE repository_name = 'app/web'") == 3
    public = "SELECT count(*) FROM images WHERE registry_type = 'ecr-public' AND repository_name = 'app/web'"
    assert first.scalar(public) == second.scalar(public) == 2

    web = [r[0] for r in first.rows("SELECT image_digest FROM images WHERE registry_type = 'ecr' "
                                    "AND region = :r AND repository_name = 'app/web' ORDER BY 1", r=US)]  # fmt: skip
    admin.set_image(PROD, US, "app/web", web[0], imageTags=["moved"])
    aws_client(inventory, "ecr", STAGING).batch_delete_image(
        repositoryName="app/api", imageIds=[{"imageTag": "app-api-0"}]
    )
    seed(admin, PROD, EU, "app/web", 3)
    both()
    changed = first.snapshot()
    assert changed == second.snapshot()
    assert {row.type for row in changed["events"]} == {
        "repository.added",
        "image.added",
        "image.changed",
        "image.removed",
    }

    # A round with nothing changed: no image row, no event, no transaction of a scope's own.
    versions = [
        first.rows("SELECT xmin::text FROM images ORDER BY 1"),
        second.rows("SELECT xmin::text FROM images ORDER BY 1"),
    ]
    both()
    assert [
        first.rows("SELECT xmin::text FROM images ORDER BY 1"),
        second.rows("SELECT xmin::text FROM images ORDER BY 1"),
    ] == versions
    assert first.snapshot()["events"] == changed["events"]
    assert first.snapshot() == second.snapshot()
    for database in (first, second):
        last = database.rows(
            "SELECT registry_name, region, count(DISTINCT xmin::text) FROM sync_runs WHERE id > "
            "(SELECT max(id) FROM sync_runs WHERE images_added + images_changed + images_removed > 0) "
            "GROUP BY 1, 2"
        )
        assert last and all(transactions == 1 for *_, transactions in last), last  # one batch per region


MALFORMED = {
    "without its digest": ("identity", "describe_images: an item of imageDetails has no imageDigest"),
    "of the wrong shape": ("shape", "describe_images: the response does not parse: "),
    "with a text size": ("type", "describe_images: imageSizeInBytes of sha256:"),
}


@pytest.mark.parametrize("how", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_response_fails_its_scope_only(inventory: Inventory, how: tuple[str, str]) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    seed(inventory.admin, PROD, US, "app/web", 2)
    seed(inventory.admin, PROD, US, "app/zzz", 1)
    inventory.admin.fault("malformed", operation="DescribeImages", count=1, how=how[0])  # app/web's first page
    result = inventory.run("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert f"Error: prod/us-east-1/app/web: MalformedResponse: {how[1]}" in result.output
    assert inventory.scalar("SELECT count(*) FROM images WHERE repository_name = 'app/web'") == 0
    assert inventory.scalar("SELECT count(*) FROM images WHERE repository_name = 'app/zzz'") == 1


def test_applying_a_saved_plan_records_every_region_listed(inventory: Inventory, tmp_path: Path) -> None:
    seed(inventory.admin, PROD, US, "app/web", 1)  # eu-west-1, public and staging hold nothing
    saved = tmp_path / "saved.plan"
    assert inventory.run("plan", "--out", str(saved)).exit_code == 0
    assert inventory.run("apply", str(saved)).exit_code == 0
    fresh = inventory.rows("SELECT registry_name, region FROM region_status WHERE last_success_at IS NOT NULL "
                           "AND failing_since IS NULL ORDER BY 1, 2")  # fmt: skip
    assert fresh == [("prod", EU), ("prod", US), ("public", US), ("staging", US)]
    calls = inventory.scalar("SELECT sum(api_calls) FROM region_status")
    assert calls == inventory.scalar("SELECT sum(api_calls) FROM sync_runs") + 4  # and the 4 listings


_DEFECT = """
import sys
from inventory.cli import main
from inventory.sync import engine

def image_values(detail):
    raise ZeroDivisionError("an injected defect")

engine.image_values = image_values
sys.exit(main(["apply", "--auto-approve"]))
"""


def test_a_defect_of_ours_stops_apply_with_its_traceback(inventory: Inventory) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    seed(inventory.admin, PROD, US, "app/web", 2)
    process = subprocess.run([sys.executable, "-c", _DEFECT], env=dict(os.environ), capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert process.returncode == 1
    assert "Traceback" in process.stderr and "ZeroDivisionError: an injected defect" in process.stderr
    assert inventory.scalar("SELECT count(*) FROM images") == 0
    assert inventory.scalar("SELECT count(*) FROM sync_runs WHERE status = 'failed'") == 0  # not an AWS failure


def test_a_worker_records_a_defect_as_an_internal_error_and_carries_on(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    seed(inventory.admin, PROD, US, "app/web", 2)
    seed(inventory.admin, PROD, US, "app/zzz", 1)
    seed(inventory.admin, PROD, US, "tools/cli", 1, registry_type="ecr-public")
    values = sync_engine.image_values

    def defective(detail: dict[str, Any]) -> Any:
        if detail["imageTags"][0].startswith("app-web"):
            raise ZeroDivisionError("an injected defect")
        return values(detail)

    monkeypatch.setattr(sync_engine, "image_values", defective)
    run_worker_round(inventory.engine, inventory.config)
    failed = inventory.rows("SELECT repository_name, error_code FROM sync_runs WHERE status = 'failed'")
    assert failed == [("app/web", "InternalError")]
    assert inventory.scalar("SELECT count(*) FROM images") == 2  # app/zzz and tools/cli applied
    assert "ZeroDivisionError: an injected defect" in caplog.text


def test_workers_prune_sync_runs_past_the_retention(inventory: Inventory) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    inventory.config.write_text(inventory.config.read_text() + '\n[retention]\nsync_runs = "1d"\n')
    with inventory.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO sync_runs (registry_name, registry_id, region, status, started_at, finished_at) "
            "SELECT 'prod', '111111111111', 'us-east-1', 'succeeded', now() - make_interval(hours => h), "
            "now() - make_interval(hours => h) FROM generate_series(1, 30) AS h"
        )
    run_worker_round(inventory.engine, inventory.config)
    ages = inventory.rows("SELECT extract(epoch FROM now() - started_at) / 3600 FROM sync_runs ORDER BY 1")
    assert max(age for (age,) in ages) < 24  # runs 24 to 30 hours old are gone
    assert sum(1 for (age,) in ages if age >= 1) == 23  # those 1 to 23 hours old are kept
