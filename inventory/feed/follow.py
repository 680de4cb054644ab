"""The change feed on the command line, read page by page: ``inventory events [--follow]``.

``FeedReader`` pages ``query.feed_page`` oldest first from a position, each page in a snapshot of its own,
and keeps the position: a follower calls ``read`` again and again and gets each event exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from sqlalchemy import Engine

from inventory.feed import query
from inventory.feed.event import Event, Position
from inventory.feed.query import EventFilter

PAGE = 1000
"""Events read per statement."""


class FeedReader:
    """The feed after a position, oldest first, read page by page."""

    def __init__(self, engine: Engine, where: EventFilter, *, page: int = PAGE) -> None:
        self.engine = engine
        self.where = where
        self.page = page
        self.position: Position | None = None
        """After the last event returned, or further: past every event the last read could see."""

    def read(self) -> Iterator[Event]:
        """Every event after the position that is visible now, advancing the position as they go."""
        while True:
            # Repeatable read: the horizon and the page are of one snapshot.
            repeatable = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
            with repeatable as connection, connection.begin():
                horizon = connection.execute(query.HORIZON).scalar_one()
                page = query.feed_parameters(self.position, self.page)
                rows = connection.execute(query.feed_page(self.where), page).all()
            for row in rows[: self.page]:
                self.position = (row.xid, row.id)
                yield Event.from_row(row)
            if len(rows) <= self.page:
                self.position = query.after_page(self.position, horizon)
                return

    def follow(self, emit: Callable[[Event], None], stop: threading.Event, interval: float = 1.0) -> None:
        """Emit every event, then each new one as it becomes visible, until ``stop`` is set."""
        while True:
            for row in self.read():
                emit(row)
                if stop.is_set():
                    return
            if stop.wait(interval):
                return
