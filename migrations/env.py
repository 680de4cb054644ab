"""Alembic environment: the inventory's metadata, on the inventory's database.

``inventory`` passes its own connection in ``config.attributes["connection"]``;
the ``alembic`` command line resolves the database like the program does.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine

from inventory import models
from inventory.config import Settings
from inventory.db import database_url

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url=database_url(Settings()), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    run_migrations(connection)
else:
    engine = create_engine(database_url(Settings()))
    with engine.connect() as own_connection:
        run_migrations(own_connection)
        own_connection.commit()
    engine.dispose()
