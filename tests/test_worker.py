"""Acceptance: `inventory worker` processes sharing one database, against the emulator over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from dbview import DatabaseView
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.db import create
from inventory.testing import AdminClient, Emulator

US, EU = "us-east-1", "eu-west-1"


def account(i: int) -> str:
    return f"{100000000000 + i}"


def registry_toml(name: str, account_id: str, regions: list[str], endpoint: str) -> str:
    return (
        f'[[registries]]\nname = "{name}"\naccount_id = "{account_id}"\n'
        f'regions = {json.dumps(regions)}\nendpoint_url = "{endpoint}"\n'
    )


def wait_until(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Fleet(DatabaseView):
    """Worker processes on a fresh database, the emulator they read, and a view of the rows."""

    engine: Engine
    admin: AdminClient
    endpoint: str
    env: dict[str, str]
    config: Path
    logs: Path
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def write(self, *registries: tuple[str, str, list[str]]) -> None:
        text_ = "\n".join(registry_toml(name, acct, regions, self.endpoint) for name, acct, regions in registries)
        self.config.write_text(text_)

    def start(self, *args: str) -> subprocess.Popen[str]:
        log = (self.logs / f"worker-{len(self.workers)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "inventory", "worker", "-c", str(self.config), *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.workers.append(process)
        return process

    def log_of(self, process: subprocess.Popen[str]) -> str:
        return (self.logs / f"worker-{self.workers.index(process)}.log").read_text()

    def stop(self, process: subprocess.Popen[str], timeout: float = 30) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def finished_regions(self) -> int:
        return int(self.scalar("SELECT count(*) FROM sync_scopes WHERE last_finished_at IS NOT NULL AND owner IS NULL"))


@pytest.fixture
def fleet(admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path) -> Iterator[Fleet]:
    env = {
        **os.environ,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_HOME": str(tmp_path / "home"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    engine = create(db_url)
    running = Fleet(engine, admin, emulator.url, env, tmp_path / "inventory.toml", tmp_path)
    yield running
    for process in running.workers:
        if process.poll() is None:
            process.kill()
            process.wait()
    engine.dispose()


def test_two_workers_share_100_regions_each_synced_once_per_round(fleet: Fleet) -> None:
    registries = []
    for i in range(50):
        for region in (US, EU):
            fleet.admin.put_images(account(i), region, "app/web", [{"imageTags": [f"v{i}"]}, {"imageTags": []}])
        registries.append((f"team-{i:02d}", account(i), [US, EU]))
    fleet.write(*registries)
    first = fleet.start("--interval", "1h", "--concurrency", "4", "--lease", "5s")
    second = fleet.start("--interval", "1h", "--concurrency", "4", "--lease", "5s")
    wait_until(lambda: fleet.finished_regions() == 100, what="a round over 100 regions")

    runs = fleet.rows("SELECT registry_name, region, repository_name, status, worker FROM sync_runs")
    assert len(runs) == 100 and {run.status for run in runs} == {"succeeded"}
    assert len({(run.registry_name, run.region, run.repository_name) for run in runs}) == 100  # each once
    assert len({run.worker for run in runs}) == 2  # both took part
    assert fleet.scalar("SELECT count(*) FROM images WHERE removed_at IS NULL") == 200
    assert fleet.scalar("SELECT count(*) FROM image_events WHERE type = 'image.added'") == 200

    assert fleet.stop(first) == 0 and fleet.stop(second) == 0
    assert fleet.scalar("SELECT count(*) FROM sync_scopes WHERE owner IS NOT NULL") == 0
    assert "stopped" in fleet.log_of(first)


def test_a_killed_worker_s_region_is_taken_over_after_its_lease_expires(fleet: Fleet) -> None:
    owner = account(1)
    for repository in ("app/a", "app/b", "app/c"):
        fleet.admin.put_images(owner, US, repository, [{"imageTags": [f"{repository}-{i}"]} for i in range(3)])
    fleet.write(("team", owner, [US]))
    with fleet.engine.begin() as connection:  # the registry row, so that the blocker below can reference it
        connection.execute(text(
            "INSERT INTO registries (name, type, account_id, regions) VALUES ('team', 'ecr', :a, ARRAY['us-east-1'])"
        ), {"a": owner})  # fmt: skip
    # Hold app/b's repository row in an open transaction: the first worker's apply of app/b blocks on it,
    # inside its own transaction, after taking the scope's lock and writing its sync run.
    blocker = fleet.engine.connect()
    blocker.begin()
    blocker.execute(text(
        "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name) "
        "VALUES ('ecr', :a, 'us-east-1', 'app/b', 'team')"
    ), {"a": owner})  # fmt: skip
    try:
        victim = fleet.start("--interval", "1h", "--concurrency", "4", "--lease", "3s")
        wait_until(lambda: fleet.scalar("SELECT count(*) FROM images") == 6, what="app/a and app/c applied")
        wait_until(
            lambda: fleet.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ),
            what="the apply of app/b waiting, mid-transaction",
        )
        heir = fleet.start("--interval", "1h", "--concurrency", "4", "--lease", "3s")
        time.sleep(1.5)  # the heir is up and polling, and cannot claim a leased region
        victim.kill()
        victim.wait()
        expired_at = fleet.scalar("SELECT lease_expires_at FROM sync_scopes")
        assert fleet.scalar("SELECT owner FROM sync_scopes") != "" and expired_at is not None
    finally:
        blocker.rollback()
        blocker.close()
    # The killed worker's transaction is gone with its connection: no partial rows, no run left 'running'.
    wait_until(lambda: fleet.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0,
               what="the killed worker's transaction rolled back")  # fmt: skip
    heir_pid = heir.pid
    wait_until(
        lambda: fleet.scalar("SELECT count(*) FROM sync_runs WHERE repository_name = 'app/b'"),
        what="app/b synced by the heir",
    )
    wait_until(lambda: fleet.finished_regions() == 1, what="the region released")
    runs = fleet.rows("SELECT repository_name, status, worker, started_at FROM sync_runs ORDER BY id")
    assert {run.status for run in runs} == {"succeeded"}
    b_runs = [run for run in runs if run.repository_name == "app/b"]
    assert len(b_runs) == 1 and b_runs[0].worker.endswith(f":{heir_pid}")
    assert b_runs[0].started_at >= expired_at  # taken over only once the lease expired
    assert fleet.scalar("SELECT count(*) FROM images WHERE removed_at IS NULL") == 9
    added = fleet.rows("SELECT image_digest, count(*) AS n FROM image_events WHERE type = 'image.added' GROUP BY 1")
    assert len(added) == 9 and all(row.n == 1 for row in added)  # nothing lost, nothing twice
    assert fleet.stop(heir) == 0


def metric(body: str, name: str, **labels: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            shown = dict(part.split("=", 1) for part in line[line.find("{") + 1 : line.find("}")].split(",") if part)
            if all(shown.get(key) == f'"{value}"' for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in\n{body}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_throttling_one_account_slows_that_account_only(fleet: Fleet) -> None:
    slow, fast = account(1), account(2)
    for owner in (slow, fast):
        for r in range(8):
            fleet.admin.put_images(owner, US, f"app/r{r}", [{"imageTags": ["v1"]}])
    fleet.admin.fault("rate_limit", registryId=slow, perSecond=4)
    fleet.write(("slow", slow, [US]), ("fast", fast, [US]))
    port = free_port()
    fleet.env["INVENTORY_AWS_MAX_ATTEMPTS"] = "8"
    worker = fleet.start("--interval", "1h", "--concurrency", "8", "--rate", "50", "--metrics-port", str(port))
    wait_until(lambda: fleet.finished_regions() == 2, what="both regions synced")

    runs = fleet.rows(
        "SELECT registry_name, count(*) AS runs, sum(throttled_calls) AS throttled, max(finished_at) AS done, "
        "bool_and(status = 'succeeded') AS ok FROM sync_runs GROUP BY 1"
    )
    by_name = {run.registry_name: run for run in runs}
    assert by_name["slow"].runs == by_name["fast"].runs == 8
    assert by_name["slow"].ok and by_name["fast"].ok  # throttling slowed the account down, failed nothing
    assert by_name["slow"].throttled > 0 and by_name["fast"].throttled == 0
    assert by_name["fast"].done < by_name["slow"].done
    body = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert metric(body, "inventory_worker_rate_budget", account_id=slow, region=US) < 50
    assert metric(body, "inventory_worker_rate_budget", account_id=fast, region=US) == 50
    assert metric(body, "inventory_throttled_calls_total", registry="slow", region=US) > 0
    assert metric(body, "inventory_scope_syncs_total", registry="fast", region=US, status="succeeded") == 8
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert fleet.stop(worker) == 0


SYNC_STATUS = """{
  registries { name syncStatus { lastSuccessAt lastErrorCode staleSince } }
  syncRuns(filter: {status: FAILED}) { nodes { registryName errorCode worker } }
}"""


def test_a_denied_account_keeps_its_rows_and_shows_its_error_while_others_stay_fresh(fleet: Fleet) -> None:
    denied, fine = account(1), account(2)
    for owner in (denied, fine):
        fleet.admin.put_images(owner, US, "app/web", [{"imageTags": ["v1"]}, {"imageTags": ["v2"]}])
    fleet.write(("denied", denied, [US]), ("fine", fine, [US]))
    worker = fleet.start("--interval", "1s", "--log-format", "json")
    wait_until(lambda: fleet.finished_regions() == 2, what="the first round")
    before = fleet.rows("SELECT image_digest, xmin::text AS version FROM images WHERE registry_id = :a", a=denied)
    fleet.admin.fault("deny", registryId=denied)
    denied_at = fleet.scalar("SELECT now()")
    wait_until(lambda: fleet.scalar(
        "SELECT count(*) FROM sync_runs WHERE registry_name = 'denied' AND status = 'failed'"
    ), what="a failed sync of the denied account")  # fmt: skip
    wait_until(lambda: fleet.scalar(
        "SELECT count(*) FROM sync_runs WHERE registry_name = 'fine' AND status = 'succeeded' AND started_at > :t",
        t=denied_at,
    ), what="a sync of the other account after the denial")  # fmt: skip
    assert fleet.stop(worker) == 0

    after = fleet.rows("SELECT image_digest, xmin::text AS version FROM images WHERE registry_id = :a", a=denied)
    assert after == before  # untouched: not removed, not rewritten
    with TestClient(
        create_app(async_engine(str(fleet.engine.url.render_as_string(hide_password=False))), allow_anonymous=True)
    ) as api:
        answer = api.post("/graphql", json={"query": SYNC_STATUS}).json()["data"]
    status = {registry["name"]: registry["syncStatus"] for registry in answer["registries"]}
    failed = answer["syncRuns"]["nodes"]
    assert failed and {(run["registryName"], run["errorCode"]) for run in failed} == {
        ("denied", "AccessDeniedException")
    }
    assert all(run["worker"].endswith(f":{worker.pid}") for run in failed)
    assert status["denied"]["lastErrorCode"] == "AccessDeniedException" and status["denied"]["staleSince"]
    assert status["fine"]["staleSince"] is None and status["fine"]["lastSuccessAt"] > denied_at.isoformat()
    logged = [json.loads(line) for line in fleet.log_of(worker).splitlines() if line.startswith("{")]
    failures = [entry for entry in logged if entry.get("status") == "failed"]
    assert failures and failures[0]["error_code"] == "AccessDeniedException" and failures[0]["level"] == "warning"
    assert any(entry.get("scope") == "fine/us-east-1/app/web" and entry.get("added") == 2 for entry in logged)


def test_config_changes_are_picked_up_without_a_restart(fleet: Fleet) -> None:
    first, second = account(1), account(2)
    for owner in (first, second):
        fleet.admin.put_images(owner, US, "app/web", [{"imageTags": ["v1"]}])
    fleet.write(("first", first, [US]))
    worker = fleet.start("--interval", "1h")
    wait_until(lambda: fleet.finished_regions() == 1, what="the first registry synced")

    fleet.config.write_text("[[registries]]\nname = 'broken'\n")  # invalid: logged, the old config kept
    wait_until(lambda: "config not reloaded" in fleet.log_of(worker), what="the broken config reported")
    assert worker.poll() is None
    fleet.write(("first", first, [US]), ("second", second, [US]))
    wait_until(lambda: fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a", a=second) == 1,
               what="the added registry synced")  # fmt: skip

    fleet.write(("second", second, [US]))  # first dropped: its images are removed, its schedule goes
    wait_until(lambda: fleet.scalar(
        "SELECT count(*) FROM images WHERE registry_id = :a AND removed_at IS NOT NULL", a=first
    ) == 1, what="the dropped registry's images removed")  # fmt: skip
    wait_until(lambda: fleet.rows("SELECT registry_name FROM sync_scopes") == [("second",)], what="its scope gone")
    assert fleet.scalar("SELECT count(*) FROM images WHERE registry_id = :a AND removed_at IS NULL", a=second) == 1
    assert fleet.stop(worker) == 0
    log = fleet.log_of(worker)
    assert "registries[0] ('broken'): account_id: required key is missing" in log
    assert "config reloaded: 2 registries" in log and "config reloaded: 1 registries" in log


def test_sigterm_finishes_the_repositories_in_progress_and_releases_the_rest(fleet: Fleet) -> None:
    owner = account(1)
    for r in range(12):
        fleet.admin.put_images(owner, US, f"app/r{r:02d}", [{"imageTags": ["v1"]}])
    fleet.admin.fault("latency", seconds=1.0)  # 12 repositories two at a time: ~6 s to stop it midway, even when busy
    fleet.write(("team", owner, [US]))
    worker = fleet.start("--interval", "1h", "--concurrency", "2")
    wait_until(lambda: fleet.scalar("SELECT count(*) FROM sync_runs") >= 2, what="a few repositories synced")
    assert fleet.stop(worker, timeout=20) == 0
    synced = fleet.scalar("SELECT count(*) FROM sync_runs")
    assert 2 <= synced < 12
    assert fleet.scalar("SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'") == 0
    lease = fleet.rows("SELECT owner, next_due_at <= now() AS due, last_finished_at FROM sync_scopes")
    assert lease == [(None, True, None)]  # released unfinished: due again at once, for any worker
    fleet.admin.clear_faults()
    heir = fleet.start("--interval", "1h", "--concurrency", "4")
    wait_until(lambda: fleet.finished_regions() == 1, what="another worker finishing the region")
    assert fleet.scalar("SELECT count(*) FROM images") == 12
    assert fleet.stop(heir) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0s"], "Invalid value for --interval: must be at least 1s, got 0s"),
        (["--interval", "soon"], "not a duration: 'soon'"),
        (["--lease", "500ms"], "Invalid value for --lease: must be at least 1s, got 0.5s"),
        (["--concurrency", "0"], "Invalid value for '--concurrency'"),
        (["--rate", "0"], "Invalid value for '--rate'"),
    ],
)
def test_worker_refuses_bad_options(args: list[str], message: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from inventory.cli import main

    result = CliRunner().invoke(main, ["worker", "-c", str(tmp_path / "missing.toml"), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_worker_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from inventory.cli import main

    config = tmp_path / "inventory.toml"
    config.write_text('[[registries]]\nname = "x"\naccount_id = "1"\nregions = ["us-east-1"]\n')
    result = CliRunner().invoke(main, ["worker", "-c", str(config)])
    assert result.exit_code == 1
    assert "account_id: must be a string of 12 digits, got '1'" in result.output
