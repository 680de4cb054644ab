"""How the read layer runs a statement: on a connection of the engine's pool, again on a new one when
the server had dropped it (a restart); ``Unavailable`` when the database cannot be reached, QUERY_TIMEOUT
past the statement timeout.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from psycopg.errors import QueryCanceled
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from inventory.outage import Outage, is_outage
from inventory.read.errors import Unavailable, query_timeout

OUTAGE = Outage(logging.getLogger("inventory.api"))
"""The process's view of the database (every read goes through ``rows``)."""


class Database(Protocol):
    """What the read layer's functions read through: one statement's rows at a time."""

    async def rows(self, statement: Any, parameters: Any = None) -> list[Any]: ...


class Engine:
    """A ``Database`` over an async engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rows(self, statement: Any, parameters: Any = None) -> list[Any]:
        return await rows(self.engine, statement, parameters)


async def rows(engine: AsyncEngine, statement: Any, parameters: Any = None) -> list[Any]:
    """The statement's rows. A connection the server dropped is replaced once (its pool is then renewed:
    SQLAlchemy invalidates every connection older than the one found dropped)."""
    try:
        try:
            found = await _rows(engine, statement, parameters)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            found = await _rows(engine, statement, parameters)
    except Exception as exc:
        if isinstance(exc, OperationalError) and isinstance(exc.orig, QueryCanceled):
            raise query_timeout() from None
        if not is_outage(exc):
            raise
        OUTAGE.began(exc)
        raise Unavailable() from exc
    OUTAGE.ended()
    return found


async def _rows(engine: AsyncEngine, statement: Any, parameters: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(statement, parameters))
