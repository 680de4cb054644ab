"""A worker applies ECR's events from its queues: real Postgres, real boto3 over HTTP, the emulator's SQS."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dbview import DatabaseView
from prometheus_client import generate_latest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.aws.clients import ClientFactory
from inventory.cli import main
from inventory.config import load_config
from inventory.db import autocommit, create
from inventory.sync.engine import RegionSync
from inventory.sync.plan import Scope
from inventory.sync.runner import sync_fleet
from inventory.sync.targeted import Affected, sync_affected
from inventory.tables import registries, sync_scopes
from inventory.testing import AdminClient, Emulator
from inventory.worker.loop import Worker, WorkerOptions

PROD, OTHER = "111111111111", "222222222222"
US = "us-east-1"
MANIFEST = '{{"schemaVersion": 2, "n": {n}}}'


def wait_until(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Events(DatabaseView):
    engine: Engine
    admin: AdminClient
    ecr: Any
    sqs: Any
    queue_url: str
    config: Path
    url: str
    worker: Worker | None = None

    def tags(self, repository: str = "app/web") -> dict[str, list[str]]:
        rows = self.rows("SELECT image_digest, image_tags FROM images WHERE repository_name = :r "
                         "AND removed_at IS NULL", r=repository)  # fmt: skip
        return {row.image_digest: sorted(row.image_tags) for row in rows}

    def push(self, n: int, tag: str, repository: str = "app/web") -> str:
        answer = self.ecr.put_image(repositoryName=repository, imageManifest=MANIFEST.format(n=n), imageTag=tag)
        digest: str = answer["image"]["imageId"]["imageDigest"]
        return digest

    def held(self) -> int:
        return int(self.admin.event_queues()["queues"][f"123456789012/{US}/ecr-events"]["held"])

    def counted(self, outcome: str) -> float:
        assert self.worker is not None
        value = self.worker.metrics.registry.get_sample_value(
            "inventory_events_received_total", {"queue": "local", "outcome": outcome}
        )
        return value or 0.0

    def converged(self) -> bool:
        """Whether a full sync of this moment would write nothing."""
        seen: list[Any] = []
        result = sync_fleet(self.engine, load_config(self.config), on_scope=seen.append)
        return not result.failures and all(s.counts.total == 0 for s in seen)


@pytest.fixture
def events(admin: AdminClient, emulator: Emulator, aws: Any, db_url: str, tmp_path: Path) -> Iterator[Events]:
    url = admin.event_queue(US, "ecr-events", visibility_timeout=2)
    config = tmp_path / "inventory.toml"
    config.write_text(
        f'[[registries]]\nname = "prod"\naccount_id = "{PROD}"\nregions = ["{US}"]\nexclude = ["tmp/*"]\n'
        f'endpoint_url = "{emulator.url}"\n\n'
        f'[[event_queues]]\nname = "local"\nurl = "{url}"\nregion = "{US}"\nendpoint_url = "{emulator.url}"\n'
    )
    engine = create(db_url)
    ecr = aws("ecr", account=PROD)
    ecr.create_repository(repositoryName="app/web")
    yield Events(engine, admin, ecr, aws("sqs"), url, config, db_url)
    engine.dispose()


@pytest.fixture
def running(events: Events) -> Iterator[Events]:
    """A worker whose full rounds are an hour apart: after the first, only events move the inventory."""
    events.push(0, "latest")
    worker = Worker(events.engine, events.config,
                    WorkerOptions(interval=3600, lease=10, event_wait=1), name="w1")  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    events.worker = worker
    wait_until(lambda: events.rows("SELECT 1 FROM region_status WHERE last_round_at IS NOT NULL"), what="a round")
    wait_until(lambda: events.held() == 0, what="the first push's event")
    yield events
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_push_a_retag_a_delete_an_archive_and_a_scan_reach_the_inventory_within_seconds(running: Events) -> None:
    first = next(iter(running.tags()))
    started = time.monotonic()
    pushed = running.push(1, "latest")  # moves latest away from the first image: no event says so
    wait_until(lambda: running.tags().get(pushed) == ["latest"], what="the push")
    assert time.monotonic() - started < 5
    assert running.tags()[first] == []
    events = running.rows("SELECT type, image_digest, changes FROM image_events "
                          "WHERE type LIKE 'image.%' AND NOT backfill ORDER BY id")  # fmt: skip
    assert sorted((e.type, e.image_digest, e.changes["image_tags"]) for e in events) == sorted(
        [("image.changed", first, [["latest"], []]), ("image.added", pushed, [None, ["latest"]])]
    )
    assert running.converged()

    running.ecr.batch_delete_image(repositoryName="app/web", imageIds=[{"imageDigest": first}])
    wait_until(lambda: first not in running.tags(), what="the delete")
    running.admin.set_image(PROD, US, "app/web", pushed, imageStatus="ARCHIVED")
    wait_until(lambda: running.scalar("SELECT image_status FROM images WHERE image_digest = :d", d=pushed)
               == "ARCHIVED", what="the archive")  # fmt: skip
    running.admin.set_image(PROD, US, "app/web", pushed, imageScanStatus={"status": "COMPLETE"},
                            imageScanFindingsSummary={"findingSeverityCounts": {"CRITICAL": 1}})  # fmt: skip
    wait_until(lambda: running.scalar("SELECT finding_severity_counts FROM images WHERE image_digest = :d", d=pushed)
               == {"CRITICAL": 1}, what="the scan")  # fmt: skip
    assert running.converged()
    wait_until(lambda: running.held() == 0, what="every message deleted")
    assert running.counted("applied") >= 5
    status = running.rows("SELECT last_event_at, last_event_applied_at, events_applied FROM region_status")[0]
    assert status.last_event_applied_at is not None and status.events_applied >= 5
    assert running.worker is not None
    exposition = generate_latest(running.worker.metrics.registry).decode()
    assert "inventory_event_lag_seconds_count " in exposition

    env = {"INVENTORY_DATABASE_URL": running.url, "COLUMNS": "100"}
    table = CliRunner().invoke(main, ["status", "-c", str(running.config)], env=env).output
    assert "Full rounds and ECR events" in table, table
    (row,) = [line for line in table.splitlines() if "prod/us-east-1" in line]
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row)) == 2, table  # the round, the last event

    query = "{ registries { syncStatus { regions { region lastRoundAt lastEventAt lastEventAppliedAt } } } }"
    with TestClient(create_app(async_engine(running.url), allow_anonymous=True)) as client:
        (registry,) = client.post("/graphql", json={"query": query}).json()["data"]["registries"]
    (region,) = registry["syncStatus"]["regions"]
    assert region["region"] == US and region["lastRoundAt"] and region["lastEventAppliedAt"]
    applied = datetime.fromisoformat(region["lastEventAppliedAt"])
    assert applied == status.last_event_applied_at and datetime.fromisoformat(region["lastEventAt"]) <= applied


def test_a_burst_on_one_repository_is_one_sync(running: Events) -> None:
    runs_before = running.scalar("SELECT count(*) FROM sync_runs")
    digests = [running.push(n, f"v{n}") for n in range(10, 16)]
    wait_until(lambda: set(digests) <= set(running.tags()), what="the burst")
    wait_until(lambda: running.held() == 0, what="every message deleted")
    assert running.scalar("SELECT count(*) FROM sync_runs") - runs_before == 1


def test_junk_irrelevant_and_failed_messages(running: Events) -> None:
    send = running.sqs.send_message
    send(QueueUrl=running.queue_url, MessageBody="not json")
    send(QueueUrl=running.queue_url, MessageBody=json.dumps({"source": "aws.ecr", "detail-type": "ECR Image Action",
                                                             "detail": "broken"}))  # fmt: skip
    send(QueueUrl=running.queue_url, MessageBody=json.dumps({"source": "aws.s3", "detail-type": "Object Created"}))
    running.admin.put_images(OTHER, US, "app/web", [{"imageTags": ["x"]}])  # an account not declared
    running.admin.put_images(PROD, US, "tmp/scratch", [{"imageTags": ["x"]}])  # excluded
    pushed = running.push(2, "behind")  # behind the junk, applied all the same
    wait_until(lambda: pushed in running.tags(), what="the push behind the junk")
    wait_until(lambda: running.held() == 0, what="every message deleted")
    assert running.counted("malformed") == 2 and running.counted("ignored") == 3

    # A sync AWS refuses leaves its message, which comes back after the visibility timeout and applies.
    running.admin.fault("throttle", operation="DescribeImages", count=20)
    retried = running.push(3, "retried")
    wait_until(lambda: running.counted("failed") >= 1, what="a failed sync")
    assert retried not in running.tags() and running.held() == 1
    running.admin.clear_faults()
    wait_until(lambda: retried in running.tags(), timeout=30, what="the redelivered message")
    wait_until(lambda: running.held() == 0, what="every message deleted")


def test_a_new_repository_and_a_deleted_one(running: Events) -> None:
    running.ecr.create_repository(repositoryName="app/api")
    pushed = running.push(4, "v1", repository="app/api")
    wait_until(lambda: pushed in running.tags("app/api"), what="the new repository's push")
    assert running.scalar("SELECT count(*) FROM image_events WHERE type = 'repository.added' "
                          "AND repository_name = 'app/api'") == 1  # fmt: skip
    assert running.converged()


def test_an_events_sync_writes_only_while_its_region_is_declared(events: Events) -> None:
    """Events hold no lease: their sync's last check is that the region is still declared (``sync_scopes``)."""
    config = load_config(events.config)
    registry = config.registries[0]
    pushed = events.push(5, "v1")
    affected = Affected(Scope("prod", "ecr", PROD, US, "app/web"), registry, frozenset({pushed}), frozenset({"v1"}),
                        datetime.now(UTC))  # fmt: skip
    sync = RegionSync(events.engine, ClientFactory(), worker="w1", fence="declared")
    with autocommit(events.engine) as connection:
        registries.upsert(config.registries, connection=connection)  # but no region of it in sync_scopes
    refused = sync_affected(sync, affected)
    assert refused.failure is not None and refused.failure.code == "RegionUndeclared"
    assert events.tags() == {}  # rolled back
    with autocommit(events.engine) as connection:
        sync_scopes.reconcile(config, connection=connection)
    assert sync_affected(sync, affected).failure is None
    assert events.tags() == {pushed: ["v1"]}
