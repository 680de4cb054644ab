"""A scratch database for a bench: on INVENTORY_DATABASE_URL's server, else on an embedded one in a
temporary home; migrated, filled by the bench's SQL script, and dropped at the end."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, make_url, text

from inventory.api.auth import new_token, token_hash
from inventory.config import Settings
from inventory.db import create, database_url, driver_connection, migrate
from inventory.tables import api_tokens


@dataclass(frozen=True)
class Scratch:
    url: str
    """The scratch database's URL."""
    home: Path
    """The temporary INVENTORY_HOME (the embedded server's, if one was started)."""


@contextmanager
def scratch_database(name: str) -> Iterator[Scratch]:
    """The database ``name``, new and migrated, for the duration of the block; dropped after it."""
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as directory:
        home = Path(directory) / "home"
        server = database_url(Settings(home=home))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        engine = create(url)
        migrate(engine)
        engine.dispose()
        try:
            yield Scratch(url, home)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()


def run_script(engine: Engine, script: str, **parameters: Any) -> None:
    """Run a SQL script (statements ending with ``;`` and a newline) in one transaction."""
    with engine.begin() as connection:
        for statement in script.split(";\n"):
            if statement.strip():
                connection.execute(text(statement), parameters)


def settle(engine: Engine, *tables: str) -> None:
    """``VACUUM ANALYZE`` each table, as autovacuum leaves a table that has settled after a load: statistics,
    and a GIN index's pending list merged (its fresh entries wait in a list every search reads through)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in tables:
            connection.execute(text(f"VACUUM ANALYZE {table}"))


def read_token(engine: Engine, name: str, registries: Sequence[str] | None = None) -> str:
    """A read token (limited to ``registries`` when given), stored as ``inventory tokens create`` stores it."""
    token = new_token()
    with engine.begin() as connection:
        api_tokens.create(name, token_hash(token), scopes=["read"], registries=registries, expires_at=None,
                          connection=driver_connection(connection))  # fmt: skip
    return token


def free_port() -> int:
    """A port of 127.0.0.1 free now, for a server the bench starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str) -> None:
    """Until the server at ``url`` answers /healthz (a minute at most)."""
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start")
