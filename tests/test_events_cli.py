"""``inventory events`` and ``inventory history`` over applies against the emulator, and events' retention."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from queue import Empty, Queue
from typing import IO, Any

import pytest
from sqlalchemy import Engine, text
from test_engine import run_worker_round
from test_sync import PROD, STAGING, US, Inventory, aws_client, seed
from test_sync import inventory as inventory  # the fixture

from inventory.config import parse_config
from inventory.errors import ConfigError
from inventory.feed.follow import FeedReader
from inventory.feed.query import EventFilter
from inventory.retention import prune_events

DIGEST = "sha256:" + "c" * 64


@dataclass
class Changed:
    """An inventory applied twice: first app/web (2 images) and app/api, then a retag and a delete."""

    fleet: Inventory
    web: list[str]
    api: str


@pytest.fixture
def changed(inventory: Inventory) -> Changed:
    web = seed(inventory.admin, PROD, US, "app/web", 2)
    (api,) = seed(inventory.admin, STAGING, US, "app/api", 1)
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    inventory.admin.set_image(PROD, US, "app/web", web[1], imageTags=["app-web-0"])  # the tag moves from web[0]
    aws_client(inventory, "ecr", STAGING).batch_delete_image(repositoryName="app/api", imageIds=[{"imageDigest": api}])
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    return Changed(inventory, web, api)


def events(fleet: Inventory, *args: str) -> list[str]:
    result = fleet.run("events", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def json_events(fleet: Inventory, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in events(fleet, "--format", "json", *args)]


def test_the_feed_prints_every_event_once_oldest_first(changed: Changed) -> None:
    fleet, web, api = changed.fleet, changed.web, changed.api
    lines = events(fleet)
    stored = fleet.scalar("SELECT count(*) FROM image_events")
    assert len(lines) == stored == 2 + 3 + 3  # repositories and images added; two retagged, one removed
    first, second = lines[:5], lines[5:]
    assert all(line.endswith(" (backfill)") for line in first)
    assert not any("(backfill)" in line for line in second)
    assert sum(" repository.added staging/us-east-1/app/api" in line for line in first) == 1
    assert any(f" image.added prod/us-east-1/app/web {web[0]} tags +app-web-0 (backfill)" in line for line in first)
    assert any(line.endswith(f" image.changed prod/us-east-1/app/web {web[0]} tags -app-web-0") for line in second)
    assert any(line.endswith(f" image.changed prod/us-east-1/app/web {web[1]} tags +app-web-0 -app-web-1")
               for line in second)  # fmt: skip
    assert any(line.endswith(f" image.removed staging/us-east-1/app/api {api} tags -app-api-0") for line in second)
    stamp = lines[0].split(" ")[0]
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")

    objects = json_events(fleet)
    assert len(objects) == stored
    positions = [tuple(o["position"]) for o in objects]
    assert positions == sorted(positions) and len(set(positions)) == stored
    assert len({o["id"] for o in objects}) == stored
    (moved,) = [o for o in objects if o["imageDigest"] == web[1] and o["type"] == "image.changed"]
    assert moved["registryId"] == PROD and moved["region"] == US and moved["repositoryName"] == "app/web"
    assert moved["registryType"] == "ECR" and moved["backfill"] is False
    assert moved["tagsAdded"] == ["app-web-0"] and moved["tagsRemoved"] == ["app-web-1"]
    assert moved["changes"] == [{"field": "image_tags", "before": ["app-web-1"], "after": ["app-web-0"]}]
    run = fleet.scalar("SELECT sync_run_id FROM image_events WHERE id = :i", i=moved["position"][1])
    assert moved["syncRunId"] == run
    assert datetime.fromisoformat(moved["occurredAt"]).tzinfo is not None
    (repository,) = [o for o in objects if o["type"] == "repository.added" and o["registryId"] == STAGING]
    assert repository["imageDigest"] is None and repository["changes"] == [] and repository["backfill"] is True


def test_since_type_and_target_narrow_the_feed(changed: Changed) -> None:
    fleet = changed.fleet
    with fleet.engine.begin() as connection:  # the first apply's events happened two days ago
        connection.execute(text("UPDATE image_events SET occurred_at = now() - interval '2 days' WHERE backfill"))
    assert len(events(fleet, "--since", "1d")) == 3
    assert len(events(fleet, "--since", "3d")) == 8
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(events(fleet, "--since", yesterday)) == 3
    assert len(events(fleet, "--since", (datetime.now(UTC) - timedelta(days=3)).date().isoformat())) == 8

    assert [o["type"] for o in json_events(fleet, "--type", "image.removed")] == ["image.removed"]
    both = json_events(fleet, "--type", "image.removed", "--type", "repository.added")
    assert sorted(o["type"] for o in both) == ["image.removed", "repository.added", "repository.added"]

    prod = json_events(fleet, "--target", "prod")
    assert len(prod) == 1 + 2 + 2 and {o["registryId"] for o in prod} == {PROD}
    assert json_events(fleet, "--target", "prod/eu-west-1") == []
    assert len(json_events(fleet, "--target", "prod/us-east-1/app/web", "--target", "staging")) == 8
    assert json_events(fleet, "--target", "prod/us-east-1/app") == []  # an exact repository name, not a prefix
    assert json_events(fleet, "--target", "public") == []  # ECR Public of the same account is another registry
    assert len(json_events(fleet, "--target", "staging", "--type", "image.removed", "--since", "1h")) == 1


def test_bad_options_are_reported(inventory: Inventory) -> None:
    for args, code, message in [
        (["--since", "yesterday"], 2, "Invalid value for '--since': 'yesterday' is neither a duration"),
        (["--since", "7x"], 2, "Invalid value for '--since'"),
        (["--type", "image.exploded"], 2, "Invalid value for '--type': 'image.exploded' is not one of"),
        (["--format", "xml"], 2, "Invalid value for '--format'"),
        (["--target", "nowhere"], 1, "error: --target 'nowhere': no such registry in the inventory file"),
        (["--target", "prod/ap-south-1"], 1, "--target prod/ap-south-1: the registry covers us-east-1, eu-west-1"),
        (["--target", "prod//x"], 1, "expected NAME[/REGION[/REPOSITORY]]"),
    ]:
        result = inventory.run("events", *args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
    empty = inventory.run("events")
    assert empty.exit_code == 0 and empty.stdout == ""


def _lines(stream: IO[str]) -> Queue[str]:
    """The lines of ``stream`` as they come (read on a thread of their own)."""
    found: Queue[str] = Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def _take(lines: Queue[str], n: int, timeout: float = 30) -> list[str]:
    deadline, taken = time.monotonic() + timeout, list[str]()
    while len(taken) < n:
        taken.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
    return taken


@pytest.fixture
def follower(changed: Changed) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory", "events", "--follow", "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_follow_prints_the_feed_then_each_new_event_once_and_stops_on_sigint(
    changed: Changed, follower: subprocess.Popen[str]
) -> None:
    fleet = changed.fleet
    assert follower.stdout is not None
    lines = _lines(follower.stdout)
    existing = [json.loads(line) for line in _take(lines, 8)]
    fleet.admin.put_images(PROD, US, "app/web", [{"imageDigest": DIGEST, "imageTags": ["new"]}])
    fleet.admin.set_image(PROD, US, "app/web", changed.web[0], imageTags=["prod"])
    assert fleet.run("apply", "--auto-approve").exit_code == 0
    new = [json.loads(line) for line in _take(lines, 2)]
    assert sorted((o["type"], o["imageDigest"], o["tagsAdded"]) for o in new) == [
        ("image.added", DIGEST, ["new"]),
        ("image.changed", changed.web[0], ["prod"]),
    ]
    time.sleep(2.5)  # more than two polls: nothing is printed again
    with pytest.raises(Empty):
        lines.get_nowait()
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=30) == 0
    printed = existing + new
    assert len({o["id"] for o in printed}) == 10 == fleet.scalar("SELECT count(*) FROM image_events")
    assert [o["position"] for o in printed] == sorted(o["position"] for o in printed)


def test_history_of_a_tag_and_of_an_image(changed: Changed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # room for whole digests
    fleet, web = changed.fleet, changed.web
    result = fleet.run("history", "prod/us-east-1/app/web:app-web-0")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "sha256:" in line]
    assert len(rows) == 2
    assert web[1] in rows[0] and "now" in rows[0]  # newest first: where it points now
    assert web[0] in rows[1] and "now" not in rows[1]
    assert rows[1].count("Z") == 2  # from and until

    result = fleet.run("history", f"prod/us-east-1/app/web@{web[1]}")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "image." in line]
    assert len(rows) == 2
    assert "image.changed" in rows[0] and "tags +app-web-0 -app-web-1" in rows[0]
    assert "image.added (backfill)" in rows[1] and "tags +app-web-1" in rows[1]

    removed = fleet.run("history", f"staging/us-east-1/app/api@{changed.api}")
    assert "image.removed" in removed.stdout and "tags -app-api-0" in removed.stdout

    nothing = fleet.run("history", "prod/us-east-1/app/web:never")
    assert nothing.exit_code == 0 and nothing.stdout.strip() == "No history of tag 'never' in prod/us-east-1/app/web."
    nothing = fleet.run("history", f"prod/eu-west-1/app/web@{DIGEST}")
    assert nothing.exit_code == 0 and nothing.stdout.strip() == f"No events of {DIGEST} in prod/eu-west-1/app/web."
    assert "note:" not in nothing.stderr

    fleet.config.write_text(fleet.config.read_text() + '\n[retention]\nevents = "400d"\n')
    pruned = fleet.run("history", "prod/us-east-1/app/web:app-web-0")
    assert pruned.exit_code == 0 and web[1] in pruned.stdout
    assert (
        pruned.stderr
        == "note: events older than [retention] events (400d) are pruned: what happened before is not shown\n"
    )


MOMENT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_histories_fit_80_columns_digests_shortened_in_the_middle(
    changed: Changed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    fleet, web = changed.fleet, changed.web
    result = fleet.run("history", "prod/us-east-1/app/web:app-web-0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert lines[0] == "prod/us-east-1/app/web:app-web-0: where the tag pointed, newest first"
    assert re.fullmatch(r"┃ digest +┃ from {17}┃ until {16}┃", lines[2]), lines[2]
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in lines if "sha256:" in line]
    for (digest, since, _), full in zip(rows, (web[1], web[0]), strict=True):
        head, ellipsis, tail = digest.partition("…")  # shortened in the middle
        assert ellipsis and full.startswith(head) and full.endswith(tail) and len(head + tail) >= 16, digest
        assert re.fullmatch(MOMENT, since), since  # times whole
    assert rows[0][2] == "now" and re.fullmatch(MOMENT, rows[1][2]), rows

    result = fleet.run("history", f"prod/us-east-1/app/web@{web[1]}")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert re.fullmatch(rf"Events of {web[1][:13]}\w*…\w*{web[1][-4:]} in prod/us-east-1/app/web, newest first",
                        lines[0]), lines[0]  # fmt: skip
    assert re.fullmatch(r"┃ when {17}┃ type +┃ changes +┃", lines[2]), lines[2]
    rows = [line for line in lines if "image." in line]
    assert len(rows) == 2 and all(re.match(rf"│ {MOMENT} │ image\.", row) for row in rows), result.stdout
    assert "image.added (backfill)" in rows[1] and "tags +app-web-1" in rows[1]


@pytest.mark.parametrize(
    "argument",
    ["prod/us-east-1/app/web", "prod/app/web:tag", "prod/us-east-1/app/web:", "prod/us-east-1/app/web@c0ffee",
     "prod/us-east-1/app/web@sha256:", "prod/us-east-1/app:web:tag", "/us-east-1/app/web:tag"],
)  # fmt: skip
def test_a_malformed_history_argument_is_a_usage_error(inventory: Inventory, argument: str) -> None:
    result = inventory.run("history", argument)
    assert result.exit_code == 2
    assert "expected REGISTRY/REGION/REPOSITORY:TAG or REGISTRY/REGION/REPOSITORY@DIGEST" in result.output


def test_history_of_an_unknown_registry_or_region_is_an_error(inventory: Inventory) -> None:
    result = inventory.run("history", "prod/ap-south-1/app/web:prod")
    assert result.exit_code == 1
    assert "error: prod/ap-south-1: the registry covers us-east-1, eu-west-1" in result.output
    result = inventory.run("history", "nowhere/us-east-1/app/web:prod")
    assert result.exit_code == 1
    assert "error: 'nowhere': no such registry in the inventory file (registries: prod, public, staging)" in (
        result.output
    )


# retention ---------------------------------------------------------------------------


def test_events_retention_is_optional_and_a_duration() -> None:
    assert parse_config({}, "f.toml").retention.events is None
    assert parse_config({"retention": {"events": "400d"}}, "f.toml").retention.events == 400 * 86400
    for value, message in [
        ("0d", "f.toml: retention: events: must be longer than zero, got '0d'"),
        ("soon", "f.toml: retention: events: not a duration: 'soon'"),
        (30, 'f.toml: retention: events: must be a duration string such as "30d", got 30'),
    ]:
        with pytest.raises(ConfigError) as raised:
            parse_config({"retention": {"events": value}}, "f.toml")
        assert any(problem.startswith(message) for problem in raised.value.problems), raised.value.problems


def test_prune_events_deletes_only_events_past_the_horizon(changed: Changed) -> None:
    fleet = changed.fleet
    with fleet.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, repository_name, "
            "image_digest, type, changes, occurred_at) SELECT 1, 'ecr', :a, :r, 'old/one', :d, 'image.changed', "
            "'{}', now() - make_interval(days => 3 + n) FROM generate_series(1, 25) AS n"
        ), {"a": PROD, "r": US, "d": DIGEST})  # fmt: skip
    assert prune_events(fleet.engine, 2 * 86400, batch=10) == 25
    assert fleet.scalar("SELECT count(*) FROM image_events") == 8
    assert fleet.scalar("SELECT count(*) FROM image_events WHERE repository_name = 'old/one'") == 0
    assert prune_events(fleet.engine, 2 * 86400) == 0


@pytest.mark.parametrize("retention", ["", '\n[retention]\nevents = "1d"\n'])
def test_workers_prune_events_only_when_a_retention_is_set(inventory: Inventory, retention: str) -> None:
    inventory.write_config(staging=False, prod_regions=(US,))
    inventory.config.write_text(inventory.config.read_text() + retention)
    with inventory.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, repository_name, "
            "image_digest, type, changes, occurred_at) SELECT 1, 'ecr', :a, :r, 'app/web', :d, 'image.changed', "
            "'{}', now() - make_interval(hours => h) FROM generate_series(1, 30) AS h"
        ), {"a": PROD, "r": US, "d": DIGEST})  # fmt: skip
    run_worker_round(inventory.engine, inventory.config)
    kept = inventory.scalar("SELECT count(*) FROM image_events")
    assert kept == (23 if retention else 30)  # kept forever by default; else those 24 to 30 hours old go


# the reader's position ------------------------------------------------------------------

_INSERT = text(
    "INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, repository_name, image_digest, "
    "type, changes) VALUES (1, 'ecr', :a, 'us-east-1', :repository, :d, 'image.changed', '{}')"
)


def test_a_reader_never_skips_an_event_committed_late_even_past_its_last_match(engine: Engine) -> None:
    every = FeedReader(engine, EventFilter(), page=2)
    narrow = FeedReader(engine, EventFilter(repository_names=["late"]), page=2)
    with engine.begin() as connection:  # history before the reader starts
        for _ in range(5):
            connection.execute(_INSERT, {"a": PROD, "repository": "early", "d": DIGEST})
    assert len(list(every.read())) == 5 and list(narrow.read()) == []
    late = engine.connect()
    late.begin()
    late.execute(_INSERT, {"a": PROD, "repository": "late", "d": DIGEST})  # the lower xid, still in progress
    with engine.begin() as connection:
        connection.execute(_INSERT, {"a": PROD, "repository": "early", "d": DIGEST})
    assert list(every.read()) == [] and list(narrow.read()) == []  # held back below the open transaction
    late.commit()
    late.close()
    assert [row.repository_name for row in every.read()] == ["late", "early"]
    assert [row.repository_name for row in narrow.read()] == ["late"]
    assert list(every.read()) == [] and list(narrow.read()) == []
