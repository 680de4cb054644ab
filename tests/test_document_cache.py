"""Parsed and validated documents are cached (bounded), and a cached document is checked as a new one:
its variables' bounds and cost on every request, its errors with their codes every time."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionResult

from inventory.api.context import Context
from inventory.api.schema import CACHED_QUERIES, MAX_ALIASES, schema

NOWHERE = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
"""No request here reaches the database: each is answered, or refused, before anything runs."""
PAGES = """query($tags: [String!], $n: Int, $m: Int) {
  images(first: $n, filter: {tags: $tags}) { nodes { history(first: $m) { nodes { id } } } } }"""


def execute(query: str, **variables: Any) -> ExecutionResult:
    return asyncio.run(schema.execute(query, variable_values=variables, context_value=Context(NOWHERE)))


def codes(result: ExecutionResult) -> list[tuple[str, str]]:
    assert result.errors, result
    return [((error.extensions or {}).get("code", ""), error.message) for error in result.errors]


def parsed() -> Any:
    return ParserCache(maxsize=CACHED_QUERIES).cached_parse_document.cache_info()


def validated() -> Any:
    return ValidationCache(maxsize=CACHED_QUERIES).cached_validate_document.cache_info()


def test_a_document_is_parsed_and_validated_once() -> None:
    query = f"query Once_{uuid.uuid4().hex} {{ __typename }}"  # a text no other test sends
    before_parsed, before_validated = parsed(), validated()
    for _ in range(3):
        assert execute(query).data == {"__typename": "Query"}
    assert parsed().misses - before_parsed.misses == 1 and parsed().hits - before_parsed.hits >= 2
    assert validated().misses - before_validated.misses == 1 and validated().hits - before_validated.hits >= 2


def test_the_caches_are_bounded() -> None:
    assert parsed().maxsize == validated().maxsize == CACHED_QUERIES
    for i in range(CACHED_QUERIES + 10):  # more distinct documents than the caches hold
        execute(f"query Many_{i}_{uuid.uuid4().hex} {{ __typename }}")
    assert parsed().currsize <= CACHED_QUERIES and validated().currsize <= CACHED_QUERIES


def test_a_cached_document_checks_its_variables_on_every_request() -> None:
    hits = validated().hits
    (too_many,) = codes(execute(PAGES, tags=[f"t{i}" for i in range(101)]))  # validated: cached from here on
    assert too_many[0] == "InvalidParameterException" and "filter.tags" in too_many[1]
    (too_long,) = codes(execute(PAGES, tags=["x" * 3000]))
    assert too_long[0] == "InvalidParameterException" and "filter.tags" in too_long[1]
    (too_costly,) = codes(execute(PAGES, n=1000, m=1000))
    assert too_costly[0] == "QUERY_TOO_COSTLY" and "1,001,000" in too_costly[1]
    assert validated().hits - hits >= 2


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ images { nodes { nope } } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ " + " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1)) + " }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ images { nodes ", "GRAPHQL_PARSE_FAILED"),
        ("query A { __typename } query B { __typename }", "OPERATION_RESOLUTION_FAILURE"),
    ],
)
def test_a_refused_document_is_refused_with_its_code_every_time(query: str, code: str) -> None:
    first, again = codes(execute(query)), codes(execute(query))
    assert first == again and {found for found, _ in first} == {code}
