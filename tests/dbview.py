"""Reading the inventory's rows in tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

from sqlalchemy import Engine, text

from inventory.read import past


class DatabaseView:
    """``rows`` and ``scalar`` over ``self.engine`` (set by the class that mixes this in)."""

    engine: Engine

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()


def each_way_to_the_past() -> Iterator[str]:
    """Repeats a loop's body for both ways the inventory at a past time is read (``inventory.read.past``):
    candidates through their bound's index (the only way a small inventory takes), then keyset walks."""
    yield "by bound"
    with mock.patch.object(past, "FEW", 0):
        yield "walk"
