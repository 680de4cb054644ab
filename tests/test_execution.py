"""The fast path through plain fields (``inventory.api.execution``) answers exactly as graphql-core does:
same data, same errors, same field order, for leaves and for lists of objects of leaves."""

from __future__ import annotations

from typing import Any, NewType

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


Big = strawberry.scalar(NewType("Big", int), name="Big", serialize=int, parse_value=int)
"""A scalar of the schema's own whose ints are their own serialization (as ``Long``'s are)."""


@strawberry.type
class Mark:
    on: bool
    key: strawberry.ID
    size: int
    label: str | None
    flags: list[bool]
    big: Big | None = None  # type: ignore[valid-type]


@strawberry.type
class Event:
    name: str
    tags: list[str]
    changes: list[Change]
    maybe: list[Change | None] | None
    marks: list[Mark] = strawberry.field(default_factory=list)

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
    fast.execution_context_class = execution_context_class(fast._schema, {"Big": int})
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


class Shout(str):
    """A str of a subclass: not its own serialization for the fast path (graphql-core's coercion decides)."""


@pytest.mark.parametrize(
    "mark",
    [
        Mark(on=True, key=strawberry.ID("k"), size=3, label="x", flags=[True, False]),
        Mark(on=False, key=7, size=-1, label=None, flags=[]),  # type: ignore[arg-type]  # an int id: "7"
        Mark(on=True, key=strawberry.ID("k"), size=3, label=Shout("loud"), flags=[1]),  # type: ignore[list-item]
        # Values the fast path hands back to graphql-core: a null boolean, an Int past 32 bits, an error.
        Mark(on=None, key=strawberry.ID("k"), size=3, label="x", flags=[]),  # type: ignore[arg-type]
        Mark(on=True, key=strawberry.ID("k"), size=2**40, label="x", flags=[]),
        Mark(on=True, key=strawberry.ID("k"), size=3, label=ValueError("no label"), flags=[]),  # type: ignore[arg-type]
        Mark(on=True, key=strawberry.ID("k"), size=3, label="x", flags=[None]),  # type: ignore[list-item]
    ],
)
@pytest.mark.parametrize("selection", ["marks { on key size label flags }", "marks { label on }"])
def test_leaves_of_each_scalar_answer_as_graphql_core_does(mark: Mark, selection: str) -> None:
    EVENTS[:] = [Event(name="m", tags=[], changes=[], maybe=None, marks=[mark, mark])]
    slow, fast = answers("{ events { " + selection + " } }")
    assert fast == slow
    if slow[0] is not None:
        assert [list(m) for m in fast[0]["events"][0]["marks"]] == [list(m) for m in slow[0]["events"][0]["marks"]]


@pytest.mark.parametrize("big", [2**40, -3, True, "12", 1.5, None])
def test_a_scalar_of_self_serialized_ints_answers_as_graphql_core_does(big: Any) -> None:
    """An exact int is answered as it is; anything else (a bool, a str, a float) through the scalar's serialize."""
    mark = Mark(on=True, key=strawberry.ID("k"), size=3, label="x", flags=[], big=big)
    EVENTS[:] = [Event(name="m", tags=[], changes=[], maybe=None, marks=[mark])]
    slow, fast = answers("{ events { marks { big size } } }")
    assert fast == slow
