"""The API's hot paths, held to what they stand in for: the JSON encoder in pieces to ``json.dumps``, the
image maker to the dataclass it fills, a cached page statement to a fresh one, a page psycopg runs itself to
SQLAlchemy's."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import namedtuple
from datetime import UTC, datetime
from typing import Any

import pytest
from auth_fleet import Fleet
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import cast, literal, select
from sqlalchemy.types import Integer, TypeDecorator

from inventory.api.app import async_engine
from inventory.api.inventory import Image
from inventory.api.offloop import encode_json
from inventory.feed import query
from inventory.read import database, past, search

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=120) | st.dictionaries(st.text(), children, max_size=8),
    max_leaves=400,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_the_json_encoded_in_pieces_is_json_dumps_compact(value: Any) -> None:
    assert encode_json(value) == json.dumps(value, separators=(",", ":"))


_Row = namedtuple("_Row", [column.name for column in search.shown_images])  # type: ignore[misc]
"""A row as the read layer reads one (by position, and by name through ``_fields``)."""


def _row(**values: Any) -> Any:
    empty: dict[str, Any] = dict.fromkeys(_Row._fields)
    return _Row(**(empty | values))


def test_an_image_made_from_its_row_has_every_field_its_dataclass_init_would_set() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    common = dict(registry_type="ecr-public", registry_id="111111111111", region="us-east-1",
                  repository_name="team/app", image_digest="sha256:" + "a" * 64, image_tags=["v1"],
                  first_seen_at=now, last_seen_at=now)  # fmt: skip
    scanned = _row(**common, image_scan_status="COMPLETE", finding_severity_counts={"LOW": 2, "HIGH": 1})
    plain = _row(**common)
    for row in (scanned, plain):
        (made,) = Image.from_rows([row])
        fields = {f.name for f in dataclasses.fields(Image) if f.init}
        rebuilt = Image(**{name: getattr(made, name) for name in fields})
        assert vars(made) == vars(rebuilt) and made == rebuilt
    (made,) = Image.from_rows([scanned])
    assert made.image_scan_findings_summary is not None
    assert [(c.severity, c.count) for c in made.image_scan_findings_summary.finding_severity_counts] == [
        ("HIGH", 1), ("LOW", 2)
    ]  # fmt: skip
    assert made.node_id == "ecr-public/111111111111/us-east-1/sha256:" + "a" * 64 + "/team/app"


class _Doubled(TypeDecorator[int]):
    """A column type whose values SQLAlchemy processes (doubles) after psycopg loads them."""

    impl = Integer
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else value * 2


def test_a_prepared_page_reads_the_rows_sqlalchemy_reads(fleet: Fleet) -> None:
    """The pages psycopg runs itself (``Prepared``) read what SQLAlchemy reads of the same statement: values,
    column names, order; image pages at present and in the past, with the filters whose parameters SQLAlchemy
    processes, and feed pages with their position as parameters; a statement whose columns SQLAlchemy would
    process is refused."""
    order = search.ORDERS["PUSHED_AT"]
    filters = [
        search.ImageFilter(),
        search.ImageFilter(scope=("prod",), tags=["latest"], repository_names=["app/*"]),
        search.ImageFilter(regions=["us-east-1"], tag_status="TAGGED", pushed_after=datetime(2025, 1, 1, tzinfo=UTC)),
    ]
    statements: list[tuple[Any, Any]] = [(search.image_page(f, order, None, 5), None) for f in filters]
    statements.append((search.image_page(filters[0], order, None, 50, past.images_at(fleet.between)), None))
    statements.append((query.feed_page(query.EventFilter()), query.feed_parameters(None, 40)))
    statements.append((query.feed_page(query.EventFilter(types=["image.added"])), query.feed_parameters((0, 3), 9)))
    engine = async_engine(fleet.url)

    async def go() -> None:
        for statement, parameters in statements:
            expected = await database.rows(engine, statement, parameters)
            assert expected, statement
            prepared = database.Prepared(statement)
            for _ in range(2):  # the second from its compiled form
                found = await database.rows(engine, prepared, parameters)
                assert [tuple(row) for row in found] == [tuple(row) for row in expected]
                assert found[0]._fields == expected[0]._fields
                assert found[0][0] == expected[0][0] and getattr(found[0], found[0]._fields[-1]) == expected[0][-1]
        processed = database.Prepared(select(cast(literal("1"), _Doubled).label("document")))
        with pytest.raises(TypeError, match="document"):
            await database.rows(engine, processed)
        await engine.dispose()

    asyncio.run(go())
