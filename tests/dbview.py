"""Reading the inventory's rows in tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


class DatabaseView:
    """``rows`` and ``scalar`` over ``self.engine`` (set by the class that mixes this in)."""

    engine: Engine

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()
