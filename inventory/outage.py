"""Database outages as a long-running process meets them: which errors are one, and what is said.

An outage is said once: one line when it starts (the first error that is one), one when it ends (the
first success after it), however many requests or turns meet it in between.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool

from inventory.errors import DatabaseUnavailable

_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "53300")
"""Shut down (by an admin, a crash), starting up, too many connections; and class 08, connection exceptions."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or went away, not what a statement did."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig  # type: ignore[assignment]
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate is None:  # the client's side: refused, timed out, the connection closed
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return exc.sqlstate.startswith("08") or exc.sqlstate in _UNAVAILABLE_STATES


def reason(exc: BaseException) -> str:
    """The first line of what the driver said."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


class Outage:
    """Whether the database is down as this process last found it; says so once per outage."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def began(self, exc: BaseException) -> None:
        """A call met ``exc``, an outage (``is_outage``)."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        self.log.error("the inventory database is unavailable: %s", reason(exc))

    def ended(self) -> None:
        """A call reached the database."""
        if self._since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            self.log.warning("the inventory database is available again, after %.1fs", time.monotonic() - since)


class PoolNoise(logging.Filter):
    """Drops SQLAlchemy's pool's tracebacks of a connection it could not reset because the database went
    away (``Exception during reset or similar``): that outage is said once by an ``Outage``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        return not is_outage(record.exc_info[1])


def quiet(pool: Pool) -> None:
    """Give an engine's pool's logger the ``PoolNoise`` filter, once."""
    logger = logging.getLogger(f"sqlalchemy.pool.impl.{type(pool).__name__}")  # the class's logger, as it names it
    if not any(isinstance(f, PoolNoise) for f in logger.filters):
        logger.addFilter(PoolNoise())
