"""Storage: migrations, the tables' types, the embedded default, and bad database URLs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select, text
from sqlmodel import Session

from inventory.config import Settings
from inventory.db import alembic_config, mask_password, open_inventory
from inventory.models import ImageRow, RegistryRow, RepositoryRow, SyncRunRow

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_alembic_upgrade_head_then_check_on_an_empty_database(empty_database_url: str) -> None:
    env = {**os.environ, "INVENTORY_DATABASE_URL": empty_database_url}
    alembic = str(Path(sys.executable).with_name("alembic"))
    upgrade = run(alembic, "upgrade", "head", env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Running upgrade  -> 0001" in upgrade.stderr
    check = run(alembic, "check", env=env)
    assert check.returncode == 0, check.stderr + check.stdout
    assert "No new upgrade operations detected" in check.stdout + check.stderr


def test_every_image_detail_field_round_trips(engine: Engine) -> None:
    pushed = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with Session(engine) as session:
        session.add(RegistryRow(name="prod", type="ecr", account_id="111111111111", regions=["us-east-1"]))
        session.add(
            RepositoryRow(
                registry_type="ecr",
                registry_id="111111111111",
                region="us-east-1",
                repository_name="app/web",
                registry_name="prod",
            )
        )
        session.flush()
        session.add(
            ImageRow(
                registry_type="ecr",
                registry_id="111111111111",
                region="us-east-1",
                repository_name="app/web",
                image_digest="sha256:" + "a" * 64,
                image_tags=["prod", "v1.2.3"],
                image_size_in_bytes=3_500_000_000,
                image_pushed_at=pushed,
                image_scan_status="COMPLETE",
                image_scan_status_description="The scan was completed successfully.",
                image_scan_completed_at=pushed,
                vulnerability_source_updated_at=pushed,
                finding_severity_counts={"CRITICAL": 1, "HIGH": 4},
                image_manifest_media_type="application/vnd.oci.image.manifest.v1+json",
                artifact_media_type="application/vnd.oci.image.config.v1+json",
                last_recorded_pull_time=pushed,
                subject_manifest_digest="sha256:" + "b" * 64,
                image_status="ACTIVE",
                last_archived_at=pushed,
                last_activated_at=pushed,
            )
        )
        session.commit()
        image = session.exec(select(ImageRow)).scalar_one()  # type: ignore[call-overload]
        assert image.image_size_in_bytes == 3_500_000_000
        assert image.image_tags == ["prod", "v1.2.3"]
        assert image.finding_severity_counts == {"CRITICAL": 1, "HIGH": 4}
        assert image.image_pushed_at == pushed
        assert image.first_seen_at is not None and image.removed_at is None
        tagged = session.execute(
            select(func.count()).select_from(ImageRow).where(ImageRow.image_tags.contains(["prod"]))  # type: ignore[attr-defined]
        ).scalar_one()
        assert tagged == 1
        critical = session.execute(
            text("SELECT count(*) FROM images WHERE (finding_severity_counts->>'CRITICAL')::int > 0")
        ).scalar_one()
        assert critical == 1


def test_schema_types_and_indexes(engine: Engine) -> None:
    inspector = inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("images")}
    assert columns["image_tags"]["type"].compile(dialect=engine.dialect) == "TEXT[]"
    assert str(columns["finding_severity_counts"]["type"]) == "JSONB"
    assert str(columns["image_size_in_bytes"]["type"]) == "BIGINT"
    assert columns["image_pushed_at"]["type"].timezone is True
    assert [c for c in inspector.get_pk_constraint("images")["constrained_columns"]] == [
        "registry_type", "registry_id", "region", "repository_name", "image_digest",
    ]  # fmt: skip
    with engine.connect() as connection:
        index = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_images_image_tags'")
        ).scalar_one()
    assert "USING gin (image_tags)" in index
    assert {c["name"] for c in inspector.get_columns("sync_runs")} >= {
        "status", "started_at", "finished_at", "images_seen", "images_added", "images_changed",
        "images_removed", "api_calls", "throttled_calls", "error_code", "error_message",
    }  # fmt: skip
    assert SyncRunRow.__tablename__ == "sync_runs"


def test_embedded_default_starts_and_migrates(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}
    env["INVENTORY_HOME"] = str(tmp_path / "home")
    result = run(sys.executable, "-m", "inventory", "migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"embedded PostgreSQL in {tmp_path / 'home' / 'pgdata'}")
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()
    engine = open_inventory(Settings(database_url=None, home=tmp_path / "home"))
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine.dispose()


def bad_url_result(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INVENTORY_DATABASE_URL": url, "INVENTORY_HOME": str(tmp_path / "home")}
    result = run(sys.executable, "-m", "inventory", "migrate", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "home").exists()
    return result


def test_unreachable_server_gives_one_line_with_the_password_masked(tmp_path: Path) -> None:
    result = bad_url_result("postgresql://inventory:hunter2@127.0.0.1:1/inventory", tmp_path)
    assert "cannot connect to the inventory database at" in result.stderr
    assert "inventory:***@127.0.0.1:1/inventory" in result.stderr
    assert "hunter2" not in result.stderr


def test_missing_database_gives_one_line(tmp_path: Path, server_url: str) -> None:
    from sqlalchemy import make_url

    url = make_url(server_url).set(database="no_such_inventory_db").render_as_string(hide_password=False)
    result = bad_url_result(url, tmp_path)
    assert "no_such_inventory_db" in result.stderr


@pytest.mark.parametrize("url", ["nonsense", "mysql://u:pw@localhost/x"])
def test_malformed_url_gives_one_line(tmp_path: Path, url: str) -> None:
    result = bad_url_result(url, tmp_path)
    assert result.stderr.startswith("error: ")
    assert "pw" not in result.stderr.replace("error: ", "")


def test_mask_password() -> None:
    assert mask_password("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert mask_password("postgresql://u@h/d") == "postgresql://u@h/d"
