"""The API's one way to run a read: on a connection of its pool, again on a new one when the server had
dropped it (a restart), and ``Unavailable`` when the database cannot be reached (``/graphql`` answers 503).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from inventory.outage import Outage, is_outage

OUTAGE = Outage(logging.getLogger("inventory.api"))
"""The process's view of the database (the API's reads all go through ``rows``)."""
RETRY_AFTER_SECONDS = 5


class Unavailable(Exception):
    """The inventory database is unavailable; retry in a few seconds."""


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
        if not is_outage(exc):
            raise
        OUTAGE.began(exc)
        raise Unavailable(Unavailable.__doc__) from exc
    OUTAGE.ended()
    return found


async def _rows(engine: AsyncEngine, statement: Any, parameters: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(statement, parameters))
