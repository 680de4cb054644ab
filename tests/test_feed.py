"""The feed under concurrency: events committed out of the order of their ids are never skipped.

Writers insert events with ``inventory.feed.write.write_repository`` in their own transactions (psycopg
connections); readers poll the feed, through GraphQL ``events`` or ``inventory.feed.query.feed_page`` on their
own connection, and must see every event exactly once, whatever order the writers commit in.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.db import autocommit, create
from inventory.feed import query, write
from inventory.feed.event import Position
from inventory.feed.query import EventFilter
from inventory.sync.plan import Scope

FEED = """query($after: String) {
  events(first: 2, after: $after) { pageInfo { endCursor } nextToken nodes { id repositoryName } }
}"""


def scope(name: str) -> Scope:
    return Scope("prod", "ecr", "111111111111", "us-east-1", name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as test_client:
        yield test_client


class Writer:
    """One transaction on its own psycopg connection."""

    def __init__(self, engine: Engine) -> None:
        self._raw = engine.raw_connection()
        self.connection: psycopg.Connection[Any] = self._raw.driver_connection  # type: ignore[assignment]

    def write(self, name: str, run_id: int = 1) -> int:
        """A repository.added event for ``name``: its id."""
        write.write_repository(scope(name), run_id, "repository.added", backfill=False, connection=self.connection)
        row = self.connection.execute("SELECT currval('image_events_id_seq')").fetchone()
        assert row is not None
        return int(row[0])

    def take_xid(self) -> None:
        self.connection.execute("SELECT pg_current_xact_id()")

    def commit(self) -> None:
        self.connection.commit()
        self._raw.close()


class Poller:
    """A feed reader through GraphQL: keeps its endCursor across polls, as a consumer would."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.position: str | None = None
        self.seen: list[str] = []

    def poll(self) -> list[str]:
        """The repositories of the events that appeared since the last poll (paging to the end)."""
        new: list[str] = []
        while True:
            body = self.client.post("/graphql", json={"query": FEED, "variables": {"after": self.position}}).json()
            assert "errors" not in body, body
            events = body["data"]["events"]
            new += [node["repositoryName"] for node in events["nodes"]]
            self.position = events["pageInfo"]["endCursor"]
            if events["nextToken"] is None:
                self.seen += new
                return new


def committed(engine: Engine) -> set[str]:
    """Every event committed so far: what a reader trusting "id > last" would already see."""
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(text("SELECT repository_name FROM image_events"))}


def test_events_of_later_ids_wait_for_the_transaction_holding_earlier_ones(engine: Engine, client: TestClient) -> None:
    reader = Poller(client)
    assert reader.poll() == [] and reader.position is None
    with autocommit(engine) as connection:
        write.write_repository(scope("before"), 1, "repository.added", backfill=False, connection=connection)
    assert reader.poll() == ["before"]

    a, b = Writer(engine), Writer(engine)
    ids = {"a1": a.write("a1"), "b1": b.write("b1"), "a2": a.write("a2"), "b2": b.write("b2")}
    assert ids["a1"] < ids["b1"] < ids["a2"] < ids["b2"]
    b.commit()  # the transaction with the higher ids commits first
    assert committed(engine) == {"before", "b1", "b2"}
    assert reader.poll() == []  # b's events wait: a, still in progress, holds lower ids
    assert reader.poll() == []
    a.commit()
    assert reader.poll() == ["a1", "a2", "b1", "b2"]
    assert reader.poll() == []
    assert reader.seen == ["before", "a1", "a2", "b1", "b2"]


def test_an_event_with_a_lower_id_committed_last_is_not_skipped(engine: Engine, client: TestClient) -> None:
    """A transaction that took its xid first writes a higher id than one that started later."""
    reader = Poller(client)
    a, b = Writer(engine), Writer(engine)
    a.take_xid()
    low = b.write("b-low")
    high = a.write("a-high")
    assert low < high
    a.commit()
    assert reader.poll() == ["a-high"]  # a reader of "id > last" would now be past b's event
    b.commit()  # the lower id commits last
    assert reader.poll() == ["b-low"]
    assert reader.poll() == []
    assert reader.seen == ["a-high", "b-low"]


def _feed_rows(engine: Engine, after: Position | None) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(query.feed_page(EventFilter()), query.feed_parameters(after, 50)))


def test_a_poller_sees_every_event_exactly_once_while_writers_commit_in_any_order(engine: Engine) -> None:
    writers, transactions = 3, 12
    failures: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for t in range(transactions):
                writer = Writer(engine)
                if rng.random() < 0.5:
                    writer.take_xid()
                for e in range(rng.randint(1, 3)):
                    time.sleep(rng.random() * 0.01)
                    writer.write(f"w{seed}-t{t}-e{e}", run_id=seed)
                time.sleep(rng.random() * 0.02)
                writer.commit()
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    position: Position | None = None
    polls = 0
    while True:
        finished = not any(thread.is_alive() for thread in threads)
        while True:
            rows = _feed_rows(engine, position)
            page = rows[:50]
            seen += [row.id for row in page]
            if page:
                position = (page[-1].xid, page[-1].id)
            if len(rows) <= 50:
                break
        polls += 1
        if finished:
            break
        time.sleep(0.002)
    for thread in threads:
        thread.join()
    assert not failures, failures
    with engine.connect() as connection:
        everything = [row[0] for row in connection.execute(text("SELECT id FROM image_events ORDER BY xid, id"))]
    assert polls > 10
    assert len(seen) == len(set(seen))  # never twice
    assert seen == everything  # never skipped, in the feed's order
