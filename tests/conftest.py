"""Fixtures: a real PostgreSQL (the server of INVENTORY_DATABASE_URL, else the embedded one),
a migrated template database cloned per test, and the ECR emulator over HTTP.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from auth_fleet import fleet  # noqa: F401  (the multi-registry inventory of the access tests)
from sqlalchemy import Engine, create_engine, make_url, text

from inventory.config import Settings
from inventory.db import create, database_url, migrate
from inventory.testing import AdminClient, Emulator

_TEMPLATE = f"inventory_template_{os.getpid()}"
_counter = itertools.count()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the PostgreSQL server the suite runs against (its maintenance database)."""
    home = tmp_path_factory.mktemp("inventory-home")
    settings = Settings(database_url=os.environ.get("INVENTORY_DATABASE_URL"), home=home)
    return database_url(settings)


def url_of(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def admin_engine(server_url: str) -> Iterator[Engine]:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def template_database(server_url: str, admin_engine: Engine) -> Iterator[str]:
    """A database migrated to head, cloned by ``CREATE DATABASE ... TEMPLATE`` for each test."""
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"'))
        connection.execute(text(f'CREATE DATABASE "{_TEMPLATE}"'))
    engine = create_engine(url_of(server_url, _TEMPLATE))
    migrate(engine)
    engine.dispose()
    yield _TEMPLATE
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))


@pytest.fixture
def empty_database_url(server_url: str, admin_engine: Engine) -> Iterator[str]:
    """The URL of a new, empty database (no schema), dropped after the test."""
    yield from _scratch_database(server_url, admin_engine, template=None)


@pytest.fixture
def db_url(server_url: str, admin_engine: Engine, template_database: str) -> Iterator[str]:
    """The URL of a new database at the latest migration, dropped after the test."""
    yield from _scratch_database(server_url, admin_engine, template=template_database)


def _scratch_database(server_url: str, admin_engine: Engine, template: str | None) -> Iterator[str]:
    name = f"inventory_test_{os.getpid()}_{next(_counter)}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    yield url_of(server_url, name)
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def inventory_env(server_url: str, db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running ``inventory`` as a process against a fresh database."""
    return {
        **os.environ,
        "INVENTORY_DATABASE_URL": db_url,
        "INVENTORY_HOME": str(tmp_path / "home"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


# the emulator --------------------------------------------------------------------


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.fixture
def admin(emulator: Emulator) -> Iterator[AdminClient]:
    """The emulator's admin API, on a fresh state for each test."""
    emulator.admin.reset()
    yield emulator.admin
    emulator.admin.reset()


@pytest.fixture
def aws(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A factory of boto3 clients of the emulator: ``aws("ecr", account=..., region=...)``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    def client(service: str, account: str | None = None, region: str = "us-east-1", **kw: Any) -> Any:
        options: dict[str, Any] = {"endpoint_url": emulator.url, "region_name": region, **kw}
        if account is not None:
            sts = boto3.client("sts", endpoint_url=emulator.url, region_name=region)
            credentials = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/inventory-reader", RoleSessionName="tests"
            )["Credentials"]
            options |= {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return boto3.client(service, **options)  # type: ignore[call-overload]

    return client


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples", type=int, default=300,
        help="examples of tests/test_fuzz.py's schema-driven fuzzing (default 300; more for a longer run)",
    )  # fmt: skip
