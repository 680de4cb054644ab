"""Reads added for the console: a repository's tags, and each registry's activity over time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from auth_fleet import PROD, US, Fleet
from sqlalchemy.ext.asyncio import create_async_engine

from inventory.read import history, inventory
from inventory.read.database import Engine
from inventory.read.errors import ReadError


def _run(fleet: Fleet, read: Any) -> Any:
    async def go() -> Any:
        engine = create_async_engine(fleet.url)
        try:
            return await read(Engine(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_repository_tags(fleet: Fleet) -> None:
    web = ("ecr", PROD, US, "app/web")
    tags = _run(fleet, lambda db: inventory.repository_tags(db, None, web))
    assert tags == sorted(tags) and {"latest", "prod", "web-1"} <= set(tags)
    then = _run(fleet, lambda db: inventory.repository_tags(db, None, web, inventory.AsOf(fleet.between)))
    assert "prod" not in then and "latest" in then  # `prod` came with the second sync
    assert _run(fleet, lambda db: inventory.repository_tags(db, ("staging",), web)) == []  # out of scope: none


def test_activity_per_registry(fleet: Fleet) -> None:
    until = datetime.now(UTC) + timedelta(seconds=1)
    since = until - timedelta(days=2)
    found = _run(fleet, lambda db: history.activity(db, None, since, until, 4))
    assert set(found) == set(fleet.owner.values())
    for series in found.values():
        assert len(series) == 4 and [p.start for p in series] == sorted(p.start for p in series)
    assert sum(series[-1].images for series in found.values()) == fleet.present  # the present, at the end
    last = found["staging"][-1]
    assert last.events >= last.added > 0 and found["staging"][0].images == 0  # nothing two days ago
    scoped = _run(fleet, lambda db: history.activity(db, ("staging",), since, until, 4))
    assert set(scoped) == {"staging"} and scoped["staging"] == found["staging"]


def test_activity_needs_a_window(fleet: Fleet) -> None:
    now = datetime.now(UTC)
    try:
        _run(fleet, lambda db: history.activity(db, None, now, now, 4))
    except ReadError as refused:
        assert refused.code == "InvalidParameterException"
    else:
        raise AssertionError("an empty window was accepted")


def test_the_chart_is_an_svg_with_a_text_alternative() -> None:
    from inventory.console import chart

    since = datetime(2026, 1, 1, tzinfo=UTC)
    points = [history.Activity(since + timedelta(days=i), 10 + i, 1, 0, 1 + i % 3) for i in range(chart.BUCKETS)]
    drawn = str(chart.svg(points, since, since + timedelta(days=chart.DAYS)))
    assert drawn.startswith("<svg") and drawn.endswith("</svg>")
    assert 'aria-label="39 images now; ' in drawn and drawn.count('<rect class="bar"') == chart.BUCKETS
    assert "<script" not in drawn
