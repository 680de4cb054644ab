"""Freshness from the current-state rows: ``region_status``, ``repositories.image_count``, retention.

``inventory status``, ``/metrics`` and ``Registry.syncStatus`` read one row per region, kept by
``region_status.record``; old sync runs are pruned in small batches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from dbview import DatabaseView
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.config import DEFAULT_SYNC_RUNS_RETENTION, load_config
from inventory.db import alembic_config, create, driver_connection
from inventory.errors import ConfigError
from inventory.metrics import QUERIES, exposition, fleet_metrics
from inventory.retention import prune_sync_runs
from inventory.status import REGION_STATUS, RegionStatus
from inventory.tables.region_status import RegionOutcome, record

US, EU = "us-east-1", "eu-west-1"
DAY = 86400.0


def outcome(
    region: str = US,
    *,
    succeeded: int = 0,
    failed: int = 0,
    api_calls: int = 0,
    throttled_calls: int = 0,
    error: tuple[str, str] | None = None,
    complete: bool = True,
    registry_name: str = "prod",
) -> RegionOutcome:
    return RegionOutcome(registry_name, region, succeeded, failed, api_calls, throttled_calls, error, complete)


class Fleet(DatabaseView):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, *outcomes: RegionOutcome) -> None:
        """Each call its own transaction: now() moves on between calls."""
        with self.engine.begin() as connection:
            record(outcomes, connection=driver_connection(connection))

    def declare(self, name: str, regions: list[str], kind: str = "ecr", account: str = "111111111111") -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO registries (name, type, account_id, regions) VALUES (:n, :t, :a, :r)"),
                {"n": name, "t": kind, "a": account, "r": regions},
            )

    def status(self, region: str = US, registry_name: str = "prod") -> RegionStatus:
        [row] = self.rows(
            "SELECT :n AS registry_name, :r AS region, s.* FROM (SELECT 1) one "
            "LEFT JOIN region_status s ON (s.registry_name, s.region) = (:n, :r)",
            n=registry_name,
            r=region,
        )
        return RegionStatus.from_row(row)

    def counters(self, region: str = US) -> tuple[int, int, int, int]:
        [row] = self.rows(
            "SELECT syncs_succeeded, syncs_failed, api_calls, throttled_calls FROM region_status "
            "WHERE registry_name = 'prod' AND region = :r",
            r=region,
        )
        return tuple(row)


@pytest.fixture
def fleet(engine: Engine) -> Fleet:
    return Fleet(engine)


# record ---------------------------------------------------------------------------


def test_a_complete_round_without_failures_is_a_success(fleet: Fleet) -> None:
    fleet.record(outcome(succeeded=3, api_calls=7, throttled_calls=1))
    status = fleet.status()
    assert status.last_success_at is not None and status.stale_since is None
    assert status.last_error_at is None and status.last_error_code is None
    assert fleet.counters() == (3, 0, 7, 1)


def test_a_failure_makes_the_region_stale_since_its_last_success(fleet: Fleet) -> None:
    fleet.record(outcome(succeeded=2))
    succeeded_at = fleet.status().last_success_at
    fleet.record(outcome(succeeded=1, failed=1, error=("AccessDeniedException", "denied")))
    first = fleet.status()
    assert first.stale_since == succeeded_at and first.last_success_at == succeeded_at
    assert (first.last_error_code, first.last_error_message) == ("AccessDeniedException", "denied")
    fleet.record(outcome(failed=2, error=("ThrottlingException", "slow down")))
    second = fleet.status()
    assert second.stale_since == succeeded_at  # still as of the same success
    assert second.last_error_code == "ThrottlingException" and second.last_error_at > first.last_error_at  # type: ignore[operator]
    failing_since = fleet.scalar("SELECT failing_since FROM region_status")
    assert failing_since == first.last_error_at  # the first failure after the success
    assert fleet.counters() == (3, 3, 0, 0)


def test_a_region_that_never_succeeded_is_stale_since_its_first_failure(fleet: Fleet) -> None:
    fleet.record(outcome(failed=1, error=("AccessDeniedException", "denied")))
    first = fleet.status()
    fleet.record(outcome(failed=1, error=("AccessDeniedException", "denied again")))
    status = fleet.status()
    assert status.last_success_at is None and status.stale_since == first.last_error_at
    assert status.last_error_message == "denied again"


def test_a_complete_successful_round_recovers_the_region(fleet: Fleet) -> None:
    fleet.record(outcome(succeeded=1))
    fleet.record(outcome(failed=1, error=("AccessDeniedException", "denied")))
    failed = fleet.status()
    fleet.record(outcome(succeeded=2))
    recovered = fleet.status()
    assert recovered.stale_since is None and recovered.last_success_at > failed.last_error_at  # type: ignore[operator]
    assert recovered.last_error_code == "AccessDeniedException"  # the last error is kept, just not current
    assert fleet.scalar("SELECT failing_since FROM region_status") is None
    fleet.record(outcome(failed=1, error=("ThrottlingException", "again")))
    assert fleet.status().stale_since == recovered.last_success_at


def test_incomplete_rounds_do_not_mark_a_success_and_a_complete_empty_one_does(fleet: Fleet) -> None:
    fleet.record(outcome(succeeded=1))
    fleet.record(outcome(failed=1, error=("AccessDeniedException", "denied")))
    stale = fleet.status()
    fleet.record(outcome(succeeded=1, api_calls=2, complete=False))  # --target of one repository
    assert fleet.status() == stale
    assert fleet.counters() == (2, 1, 2, 0)
    fleet.record(outcome(succeeded=0, complete=True))  # a region listed whole, with no repository in it
    assert fleet.status().stale_since is None and fleet.status().last_success_at is not None

    fleet.record(outcome(EU, succeeded=4, complete=False))
    assert fleet.status(EU).last_success_at is None and fleet.status(EU).stale_since is None


def test_one_call_records_several_regions_and_merges_repeats(fleet: Fleet) -> None:
    fleet.record(
        outcome(US, succeeded=2, api_calls=3),
        outcome(EU, failed=1, error=("AccessDeniedException", "denied"), api_calls=1),
        outcome(US, succeeded=1, api_calls=2, throttled_calls=1, complete=False),
        outcome(US, succeeded=1, registry_name="staging"),
    )
    assert fleet.counters(US) == (3, 0, 5, 1) and fleet.counters(EU) == (0, 1, 1, 0)
    assert fleet.status(US).last_success_at is not None and fleet.status(EU).stale_since is not None
    assert fleet.status(US, "staging").last_success_at is not None
    fleet.record()  # nothing to record: no statement
    assert fleet.scalar("SELECT count(*) FROM region_status") == 3


def test_record_never_commits(fleet: Fleet) -> None:
    with pytest.raises(RuntimeError), fleet.engine.begin() as connection:
        record([outcome(succeeded=1)], connection=driver_connection(connection))
        raise RuntimeError("the caller's transaction fails")
    assert fleet.scalar("SELECT count(*) FROM region_status") == 0


# what the status reads ------------------------------------------------------------


def test_region_status_lists_every_declared_region(fleet: Fleet) -> None:
    fleet.declare("prod", [US, EU])
    fleet.declare("staging", [US], account="222222222222")
    fleet.record(outcome(US, succeeded=1), outcome(EU, failed=1, error=("AccessDeniedException", "denied")))
    fleet.record(outcome(US, succeeded=1, registry_name="gone"))  # a registry no longer stored: not listed
    with fleet.engine.connect() as connection:
        statuses = [RegionStatus.from_row(row) for row in connection.execute(REGION_STATUS)]
    assert [(s.registry_name, s.region) for s in statuses] == [("prod", EU), ("prod", US), ("staging", US)]
    eu, us, staging = statuses
    assert eu.stale_since is not None and eu.last_success_at is None
    assert us.last_success_at is not None and us.stale_since is None
    assert staging.last_success_at is None and staging.stale_since is None  # never synced


# metrics and GraphQL --------------------------------------------------------------


def seed_fleet(fleet: Fleet) -> None:
    """prod: us-east-1 fresh (2 repositories, 7 + 3 images, one removed repository), eu-west-1 stale;
    staging: never synced."""
    fleet.declare("prod", [US, EU])
    fleet.declare("staging", [US], account="222222222222")
    fleet.record(outcome(US, succeeded=2, api_calls=9, throttled_calls=2), outcome(EU, succeeded=1, api_calls=1))
    fleet.record(outcome(EU, failed=1, error=("AccessDeniedException", "denied"), api_calls=1))
    with fleet.engine.begin() as connection:
        for region, name, count, removed in ((US, "app/web", 7, False), (US, "app/api", 3, False),
                                             (US, "old/gone", 5, True), (EU, "app/web", 0, False)):  # fmt: skip
            connection.execute(
                text(
                    "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name, "
                    "image_count, removed_at) VALUES ('ecr', '111111111111', :r, :n, 'prod', :c, "
                    "CASE WHEN :removed THEN now() END)"
                ),
                {"r": region, "n": name, "c": count, "removed": removed},
            )


def samples(body: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


def test_metrics_come_from_region_status_and_image_counts(fleet: Fleet) -> None:
    seed_fleet(fleet)
    with fleet.engine.connect() as connection:
        rows = {name: list(connection.execute(query)) for name, query in QUERIES.items()}
    scraped = samples(exposition(fleet_metrics(rows)).decode())
    prod_us, prod_eu = '{region="us-east-1",registry="prod"}', '{region="eu-west-1",registry="prod"}'
    staging = '{region="us-east-1",registry="staging"}'
    assert scraped['inventory_scope_syncs_total{region="us-east-1",registry="prod",status="succeeded"}'] == 2
    assert scraped['inventory_scope_syncs_total{region="us-east-1",registry="prod",status="failed"}'] == 0
    assert scraped['inventory_scope_syncs_total{region="eu-west-1",registry="prod",status="failed"}'] == 1
    assert scraped["inventory_api_calls_total" + prod_us] == 9 and scraped["inventory_api_calls_total" + prod_eu] == 2
    assert scraped["inventory_throttled_calls_total" + prod_us] == 2
    assert 0 <= scraped["inventory_seconds_since_last_success" + prod_us] < 600
    assert "inventory_seconds_since_last_success" + staging not in scraped  # never synced
    assert scraped["inventory_region_stale" + prod_eu] == 1 and scraped["inventory_region_stale" + prod_us] == 0
    assert scraped["inventory_region_stale" + staging] == 0
    assert scraped["inventory_images" + prod_us] == 10  # the removed repository's images do not count
    assert scraped["inventory_images" + prod_eu] == 0


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as test:
        yield test


SYNC_STATUS = (
    "{ registries { name syncStatus { staleSince lastErrorCode regions { region lastSuccessAt staleSince } } } }"
)


def test_the_api_serves_the_same_status_and_metrics(fleet: Fleet, client: TestClient) -> None:
    seed_fleet(fleet)
    scraped = samples(client.get("/metrics").text)
    assert scraped['inventory_images{region="us-east-1",registry="prod"}'] == 10
    assert scraped['inventory_region_stale{region="eu-west-1",registry="prod"}'] == 1
    answer = client.post("/graphql", json={"query": SYNC_STATUS}).json()["data"]["registries"]
    status = {registry["name"]: registry["syncStatus"] for registry in answer}
    us_success = fleet.status(US).last_success_at
    eu_success = fleet.status(EU).last_success_at
    assert us_success is not None and eu_success is not None
    assert status["prod"]["lastErrorCode"] == "AccessDeniedException"
    assert status["prod"]["staleSince"] == eu_success.isoformat()
    assert status["prod"]["regions"] == [
        {"region": EU, "lastSuccessAt": eu_success.isoformat(), "staleSince": eu_success.isoformat()},
        {"region": US, "lastSuccessAt": us_success.isoformat(), "staleSince": None},
    ]
    never = {"region": US, "lastSuccessAt": None, "staleSince": None}
    assert status["staging"] == {"staleSince": None, "lastErrorCode": None, "regions": [never]}


# retention ------------------------------------------------------------------------


def add_runs(fleet: Fleet, count: int, days_ago: float) -> None:
    with fleet.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sync_runs (registry_name, registry_id, region, status, started_at, finished_at) "
                "SELECT 'prod', '111111111111', 'us-east-1', 'succeeded', now() - make_interval(days => :d), "
                "now() - make_interval(days => :d) FROM generate_series(1, :n)"
            ),
            {"n": count, "d": days_ago},
        )


def test_old_sync_runs_are_pruned_in_batches_and_recent_ones_kept(fleet: Fleet) -> None:
    add_runs(fleet, 7, days_ago=45)
    add_runs(fleet, 3, days_ago=31)
    add_runs(fleet, 4, days_ago=29)
    add_runs(fleet, 2, days_ago=0)
    assert prune_sync_runs(fleet.engine, 30 * DAY, batch=3, max_batches=2) == 6  # bounded: 2 batches of 3
    assert fleet.scalar("SELECT count(*) FROM sync_runs") == 10
    assert prune_sync_runs(fleet.engine, 30 * DAY, batch=3) == 4  # the oldest went first
    assert fleet.scalar("SELECT count(*) FROM sync_runs WHERE started_at < now() - interval '30 days'") == 0
    assert fleet.scalar("SELECT count(*) FROM sync_runs") == 6
    assert prune_sync_runs(fleet.engine, 30 * DAY) == 0
    assert prune_sync_runs(fleet.engine, 1 * DAY) == 4


def test_the_default_horizon_is_30_days() -> None:
    assert DEFAULT_SYNC_RUNS_RETENTION == 30 * DAY


# the [retention] table ------------------------------------------------------------

REGISTRY = '[[registries]]\nname = "prod"\naccount_id = "111111111111"\nregions = ["us-east-1", "eu-west-1"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_retention_defaults_to_30_days_and_reads_a_duration(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, REGISTRY)).retention.sync_runs == 30 * DAY
    config = load_config(write(tmp_path, REGISTRY + '\n[retention]\nsync_runs = "7d"\n'))
    assert config.retention.sync_runs == 7 * DAY
    assert load_config(write(tmp_path, '[retention]\nsync_runs = "12h30m"\n')).retention.sync_runs == 45000


def test_retention_problems_are_reported_with_the_rest(tmp_path: Path) -> None:
    text = (
        '[[registries]]\nname = "prod"\naccount_id = "1234"\nregions = ["us-east-1"]\n\n'
        '[retention]\nsync_runs = "forever"\nimages = "30d"\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    problems = exc.value.problems
    assert problems == [
        f"{path}: registries[0] ('prod'): account_id: must be a string of 12 digits, got '1234'",
        f"{path}: retention: sync_runs: not a duration: 'forever' (expected e.g. 30s, 15m, 1h, 30d)",
        f"{path}: retention: images: unknown key",
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[retention]\nsync_runs = "0d"\n', "retention: sync_runs: must be longer than zero, got '0d'"),
        ("[retention]\nsync_runs = 30\n", 'retention: sync_runs: must be a duration string such as "30d", got 30'),
        (
            '[retention]\nsync_runs = "-1d"\n',
            "retention: sync_runs: not a duration: '-1d' (expected e.g. 30s, 15m, 1h, 30d)",
        ),
        ("retention = 30\n", "retention: must be a table ([retention]), got an integer"),
    ],
)
def test_single_retention_problems(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == [f"{path}: {fragment}"]


# inventory status -c FILE ---------------------------------------------------------


def test_status_command_shows_the_regions_the_file_declares(fleet: Fleet, db_url: str, tmp_path: Path) -> None:
    from inventory.cli import main

    new = '[[registries]]\nname = "new"\naccount_id = "222222222222"\nregions = ["us-east-1"]\n'
    path = write(tmp_path, REGISTRY + "\n" + new)
    fleet.record(outcome(US, succeeded=1), outcome(EU, succeeded=1))
    fleet.record(outcome(EU, failed=1, error=("AccessDeniedException", "denied")))
    env = {"INVENTORY_DATABASE_URL": db_url, "INVENTORY_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    result = CliRunner().invoke(main, ["status", "-c", str(path)], env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(lines) == 3, result.output
    assert "prod" in lines[0] and EU in lines[0] and "stale" in lines[0] and "AccessDeniedException" in lines[0]
    assert result.output.endswith("┘\nlast error of prod/eu-west-1: AccessDeniedException: denied\n")  # in full
    assert "new" in lines[1] and "never synced" in lines[1]  # declared, never synced
    assert "prod" in lines[2] and US in lines[2] and "fresh" in lines[2]

    long = CliRunner().invoke(main, ["status", "--config", str(path)], env=env)
    assert long.exit_code == 0 and long.output == result.output
    empty = CliRunner().invoke(main, ["status", "-c", str(write(tmp_path, ""))], env=env)
    assert empty.exit_code == 0 and "No registries declared in" in empty.output


def test_status_fits_80_columns_and_cuts_nothing(fleet: Fleet, db_url: str, tmp_path: Path) -> None:
    from inventory.cli import main

    new = '[[registries]]\nname = "new"\naccount_id = "222222222222"\nregions = ["us-east-1"]\n'
    path = write(tmp_path, REGISTRY + "\n" + new)
    fleet.record(outcome(US, succeeded=1), outcome(EU, succeeded=1))
    message = "User: arn:aws:sts::111111111111:assumed-role/inventory/x is not authorized to perform: ecr:ListImages"
    fleet.record(outcome(EU, failed=1, error=("AccessDeniedException", message)))
    env = {"INVENTORY_DATABASE_URL": db_url, "INVENTORY_HOME": str(tmp_path / "home")}
    moment = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
    for columns in (80, 81, 82, 83, 84, 85, 90, 100, 108, 109, 120):
        result = CliRunner().invoke(main, ["status", "-c", str(path)], env={**env, "COLUMNS": str(columns)})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert all(len(line) <= columns for line in lines), result.output
        header = next(line for line in lines if "registry" in line)
        assert all(f" {name} " in header for name in ("region", "state", "last success", "stale since")), header
        rows = [line for line in lines if line.startswith("│") and line[2] != " "]  # a row's first line
        assert [row.split("│")[1].strip() for row in rows] == ["prod", "new", "prod"], result.output
        assert [len(re.findall(moment, row)) for row in rows] == [2, 0, 1], result.output  # every time whole
        below = lines[lines.index(next(line for line in lines if line.startswith("└"))) + 1 :]
        assert below[0].startswith("last error of prod/eu-west-1: AccessDeniedException: User:"), result.output
        assert " ".join(below).split() == f"last error of prod/eu-west-1: AccessDeniedException: {message}".split()
        assert ("last error" in header) is (columns >= 109)  # the codes when all fits unwrapped: 90 + 19 borders
    assert "AccessDeniedException" in rows[0]


def test_status_command_refuses_a_bad_file(db_url: str, tmp_path: Path) -> None:
    from inventory.cli import main

    env = {"INVENTORY_DATABASE_URL": db_url, "INVENTORY_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(main, ["status", "-c", str(tmp_path / "absent.toml")], env=env)
    assert result.exit_code == 1 and "no such file" in result.output


# the migration's backfill ---------------------------------------------------------


def test_the_migration_backfills_region_status_and_image_counts(empty_database_url: str) -> None:
    engine = create(empty_database_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(text(
            "INSERT INTO registries (name, type, account_id, regions) VALUES ('prod', 'ecr', '111111111111', "
            "'{us-east-1,eu-west-1}');"
            "INSERT INTO sync_runs (registry_name, registry_id, region, status, started_at, finished_at, "
            "api_calls, throttled_calls, error_code, error_message) VALUES "
            "('prod', '111111111111', 'us-east-1', 'succeeded', '2026-01-01', '2026-01-01 00:01', 3, 1, NULL, NULL),"
            "('prod', '111111111111', 'us-east-1', 'failed', '2026-01-02', '2026-01-02 00:01', 1, 0, 'A', 'first'),"
            "('prod', '111111111111', 'us-east-1', 'failed', '2026-01-03', '2026-01-03 00:01', 1, 0, 'B', 'second'),"
            "('prod', '111111111111', 'us-east-1', 'running', '2026-01-04', NULL, 0, 0, NULL, NULL),"
            "('prod', '111111111111', 'eu-west-1', 'failed', '2026-01-01', '2026-01-01 00:01', 1, 0, 'C', 'never');"
            "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name) VALUES "
            "('ecr', '111111111111', 'us-east-1', 'app/web', 'prod'),"
            "('ecr', '111111111111', 'us-east-1', 'empty', 'prod');"
            "INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, removed_at) VALUES "
            "('ecr', '111111111111', 'us-east-1', 'app/web', 'sha256:a', NULL),"
            "('ecr', '111111111111', 'us-east-1', 'app/web', 'sha256:b', NULL),"
            "('ecr', '111111111111', 'us-east-1', 'app/web', 'sha256:c', now())"
        ))  # fmt: skip
        command.upgrade(config, "head")
    view = Fleet(engine)
    rows = {row.region: row for row in view.rows("SELECT * FROM region_status")}
    us, eu = rows[US], rows[EU]
    assert (us.syncs_succeeded, us.syncs_failed, us.api_calls, us.throttled_calls) == (1, 2, 5, 1)
    assert (us.last_error_code, us.last_error_message) == ("B", "second")
    assert us.failing_since == datetime.fromisoformat("2026-01-02T00:01:00+00:00")
    assert us.last_success_at == datetime.fromisoformat("2026-01-01T00:01:00+00:00")
    assert eu.last_success_at is None and eu.failing_since == eu.last_error_at and eu.last_error_code == "C"
    counts = dict(view.rows("SELECT repository_name, image_count FROM repositories"))
    assert counts == {"app/web": 2, "empty": 0}
    engine.dispose()
