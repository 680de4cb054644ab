"""How the read layer runs a statement: on a connection of the engine's pool, again on a new one when
the server had dropped it (a restart); ``Unavailable`` when the database cannot be reached, QUERY_TIMEOUT
past the statement timeout.

A ``Prepared`` statement (the pages every face reads most) runs on the driver's connection itself.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

import psycopg
from psycopg.errors import QueryCanceled
from sqlalchemy import ARRAY, Dialect, Select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
        except _Dropped:
            found = await _rows(engine, statement, parameters)
    except Exception as exc:
        if isinstance(exc, _Dropped):
            exc = exc.orig
        if isinstance(exc.orig if isinstance(exc, OperationalError) else exc, QueryCanceled):
            raise query_timeout() from None
        if not is_outage(exc):
            raise
        OUTAGE.began(exc)
        raise Unavailable() from exc
    OUTAGE.ended()
    return found


async def _rows(engine: AsyncEngine, statement: Any, parameters: Any) -> list[Any]:
    async with engine.connect() as connection:
        if isinstance(statement, Prepared):
            return await statement.rows(connection, parameters)
        return list(await connection.execute(statement, parameters))


class Prepared:
    """A select compiled once, run by psycopg itself: its SQL, its own parameters' values (its ``IN`` lists
    expanded) and what its columns are named, made on its first run. SQLAlchemy's work per execution (the
    statement's cache key, the adaption of asyncio, a result object) costs more than a page of 100 rows
    takes Postgres: a page statement, cached and run again and again with another position, skips it.

    Its rows are tuples with the columns as attributes and ``_fields``, as SQLAlchemy's are. Only columns
    whose values SQLAlchemy would not process (as psycopg loads them) are allowed, and parameters given at
    a run that it would not process: anything else fails here, on its first run."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: tuple[str, dict[str, Any], frozenset[str], frozenset[str]] | None = None
        self._row: type[tuple[Any, ...]] | None = None

    def compiled(self, dialect: Dialect) -> tuple[str, dict[str, Any], frozenset[str], frozenset[str]]:
        """The SQL (psycopg's ``%(name)s`` parameters), its own parameters' values (processed, as SQLAlchemy
        would on every run), the names of the parameters SQLAlchemy processes and of those without a value
        (each run gives them)."""
        if self._compiled is None:
            processed = [c.name for c in self.statement.selected_columns if _processed(c.type, dialect)]
            if processed:
                raise TypeError(f"a Prepared statement's columns must need no processing: {processed}")
            compiled = self.statement.compile(dialect=dialect)
            given = frozenset(b.key for b in compiled.binds.values() if b.required)  # at every run
            expanded = compiled.construct_expanded_state(dict.fromkeys(given))
            processors = {name: p for name, p in expanded.processors.items() if p is not None}
            own = {n: processors[n](v) if n in processors else v for n, v in expanded.parameters.items()}
            self._compiled = expanded.statement, own, frozenset(processors), given
        return self._compiled

    async def rows(self, connection: AsyncConnection, parameters: Mapping[str, Any] | None) -> list[Any]:
        sql, own, processed, given = self.compiled(connection.dialect)
        names = parameters.keys() if parameters else frozenset()
        if not given <= names <= own.keys() - processed:
            raise TypeError(f"parameters {sorted(names)} for a statement of {sorted(own)} ({sorted(given)} needed)")
        driver: psycopg.AsyncConnection[Any] = (await connection.get_raw_connection()).driver_connection  # type: ignore[assignment]
        try:
            async with driver.cursor(row_factory=self._row_maker) as cursor:
                await cursor.execute(sql, {**own, **parameters} if parameters else own)
                return await cursor.fetchall()
        except psycopg.Error as exc:
            if not driver.broken:
                raise
            await connection.invalidate(exc)  # as SQLAlchemy does: the pool makes a new connection in its place
            raise _Dropped(exc) from exc

    def _row_maker(self, cursor: Any) -> Any:
        """psycopg's row factory: rows of the class of the statement's columns (named once: a cursor's
        ``description`` makes an object per column)."""
        if self._row is None:
            self._row = _row_class(tuple(column.name for column in cursor.description or ()))
        return self._row


class Statements:
    """The most recently used ``Prepared`` statements, by what they list: building a page's statement (and
    compiling it) costs more than running it, and a listing is paged again and again (its position is a
    parameter of the statement)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.held: OrderedDict[Hashable, Prepared] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Select[Any]]) -> Prepared:
        """The statement listed by ``key``; made (``make``) if none is held."""
        found = self.held.get(key)
        if found is not None:
            self.held.move_to_end(key)
            return found
        found = self.held[key] = Prepared(make())
        if len(self.held) > self.size:
            self.held.popitem(last=False)
        return found


class _Dropped(Exception):
    """A ``Prepared`` statement's connection was found dropped (and invalidated): ``rows`` tries a new one."""

    def __init__(self, orig: psycopg.Error) -> None:
        super().__init__(str(orig))
        self.orig = orig


def _processed(column_type: Any, dialect: Dialect) -> bool:
    """Whether SQLAlchemy processes a column's values (an ARRAY's only to copy psycopg's list, if its items are not)."""
    impl = column_type.dialect_impl(dialect)
    if isinstance(impl, ARRAY) and not impl.as_tuple:
        impl = impl.item_type.dialect_impl(dialect)
    return impl.result_processor(dialect, None) is not None


@functools.cache
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    """A tuple with ``names`` as attributes (a namedtuple without the cost of its ``__new__`` per row)."""
    attributes: dict[str, Any] = {name: property(operator.itemgetter(i)) for i, name in enumerate(names)}
    return type("Row", (tuple,), {"__slots__": (), "_fields": names, **attributes})
