"""The fast path through plain fields (``inventory.api.execution``) answers exactly as graphql-core does:
same data, same errors, same field order, for leaves and for lists of objects of leaves."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry.scalars import JSON

from inventory.api.execution import execution_context_class


@strawberry.type
class Change:
    field: str
    before: JSON | None
    after: JSON | None


@strawberry.type
class Other:
    field: str
    before: JSON | None
    after: JSON | None


@strawberry.type
class Event:
    name: str
    tags: list[str]
    changes: list[Change]
    maybe: list[Change | None] | None

    @strawberry.field
    def upper(self) -> str:
        return self.name.upper()


EVENTS: list[Any] = []


@strawberry.type
class Query:
    @strawberry.field
    def events(self) -> list[Event]:
        return EVENTS


def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query)
    fast = strawberry.Schema(query=Query)
    fast.execution_context_class = execution_context_class(fast._schema)
    return plain, fast


def answers(query: str) -> tuple[Any, Any]:
    plain, fast = schemas()
    slow_result, fast_result = plain.execute_sync(query), fast.execute_sync(query)
    slow = (slow_result.data, [(e.message, e.path) for e in slow_result.errors or []])
    quick = (fast_result.data, [(e.message, e.path) for e in fast_result.errors or []])
    return slow, quick


@pytest.mark.parametrize(
    "events",
    [
        [Event(name="a", tags=["x"], changes=[Change(field="f", before=None, after={"k": [1]})], maybe=None)],
        [Event(name="b", tags=[], changes=[], maybe=[None, Change(field="g", before=1, after=2)])],
        # Values the fast path hands back to graphql-core: a null in a non-null list, an object of another type.
        [Event(name="c", tags=["y"], changes=[None], maybe=None)],  # type: ignore[list-item]
        [Event(name="d", tags=["y"], changes=[Other(field="f", before=1, after=2)], maybe=None)],  # type: ignore[list-item]
        [Event(name="e", tags=["y"], changes=[Change(field=None, before=1, after=2)], maybe=None)],  # type: ignore[arg-type]
    ],
)
@pytest.mark.parametrize(
    "selection",
    [
        "name tags changes { field before after } maybe { after field }",
        "upper changes { renamed: field before } name",
        "changes { __typename field } maybe { field }",
        "changes { ... on Change { field after } before }",
    ],
)
def test_fast_path_answers_as_graphql_core_does(events: list[Any], selection: str) -> None:
    EVENTS[:] = events
    slow, fast = answers("{ events { " + selection + " } }")
    assert fast == slow
    if slow[0] is not None:  # the order of the fields is the query's
        assert [list(e) for e in fast[0]["events"]] == [list(e) for e in slow[0]["events"]]
