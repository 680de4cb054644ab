"""The served schema fuzzed by a scoped token: queries from ``hypothesis-graphql`` (valid ones, and ones
with one violation each), and every root field with adversarial variables of its arguments' types.

No answer may be an HTTP 5xx or an INTERNAL_SERVER_ERROR, every error has a code, and nothing of a
registry outside the token's scope appears. ``--fuzz-examples N`` runs longer (``make test
PYTEST_ARGS="--fuzz-examples 5000 tests/test_fuzz.py"``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import graphql
import pytest
from auth_fleet import STAGING, Fleet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.api.schema import schema

SERVED = schema._schema
TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)) | st.just(
    datetime.now(UTC) - timedelta(days=1)
)
IDS = [base64.b64encode(raw.encode()).decode() for raw in ("Registry:staging", "Registry:prod", "ImageEvent:1",
       "ImageEvent:99999999999999999999", "Image:x/y/z/w", "Repository:222222222222/us-east-1/app/web")]  # fmt: skip
SCALARS = {
    "DateTime": st.one_of(
        *[TIMES.map(lambda t: nodes.String(t.isoformat()))] * 4, st.text(max_size=9).map(nodes.String)
    ),
    "Long": st.integers(min_value=-(2**63), max_value=2**63 - 1).map(nodes.Int),
    "JSON": st.text(max_size=20).map(nodes.String),
    "ID": st.one_of(*[st.sampled_from(IDS).map(nodes.String)] * 3, st.text(max_size=20).map(nodes.String)),
}
HOSTILE_TEXT = st.text(max_size=60) | st.sampled_from(["", "*", "[!]", "[z-a]", "a\x00b", "\ud800", "x" * 3000])

NULL = st.none()


def _value(type_: graphql.GraphQLInputType, nullable: st.SearchStrategy[Any] = NULL) -> st.SearchStrategy[Any]:
    """JSON values for a variable of ``type_``: mostly of its type, sometimes out of its bounds, now and then not."""
    if isinstance(type_, graphql.GraphQLNonNull):
        return _value(type_.of_type, st.nothing())
    if isinstance(type_, graphql.GraphQLList):
        item = _value(type_.of_type)
        return st.one_of(nullable, *[st.lists(item, max_size=3)] * 4, st.lists(item, min_size=101, max_size=102))
    if isinstance(type_, graphql.GraphQLInputObjectType):
        fields = {name: _value(field.type) for name, field in type_.fields.items()}
        return st.one_of(nullable, *[st.fixed_dictionaries({}, optional=fields)] * 4)
    if isinstance(type_, graphql.GraphQLEnumType):
        return st.one_of(nullable, *[st.sampled_from(list(type_.values))] * 6, st.just("NOT_A_VALUE"))
    name = getattr(type_, "name", "")
    if name == "Int":
        return st.one_of(nullable, st.integers(-(2**31), 2**31 - 1), *[st.sampled_from([1, 2, 5, 1000, 1001])] * 3)
    if name == "Boolean":
        return nullable | st.booleans()
    if name == "DateTime":
        return st.one_of(
            nullable, *[TIMES.map(datetime.isoformat)] * 4, st.sampled_from(["0001-01-01T00:00:00+05:00", "x"])
        )
    return nullable | HOSTILE_TEXT


def _query_of(field_name: str) -> str:
    """A query of the root field with each of its arguments a variable."""
    field = SERVED.query_type.fields[field_name]  # type: ignore[union-attr]
    declared = ", ".join(f"${name}: {arg.type}" for name, arg in field.args.items())
    passed = ", ".join(f"{name}: ${name}" for name in field.args)
    arguments = f"({passed})" if passed else ""
    return f"query{f'({declared})' if declared else ''} {{ {field_name}{arguments} {{ __typename }} }}"


@st.composite
def _with_variables(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    fields = SERVED.query_type.fields  # type: ignore[union-attr]
    name = draw(st.sampled_from(sorted(name for name, field in fields.items() if field.args)))
    variables = {arg_name: draw(_value(arg.type)) for arg_name, arg in fields[name].args.items()}
    return _query_of(name), variables


REQUESTS = (
    from_schema(SERVED, custom_scalars=SCALARS, allow_x00=True).map(lambda q: (q, {}))
    | from_schema(SERVED, custom_scalars=SCALARS, mode=Mode.NEGATIVE).map(lambda q: (q, {}))
    | _with_variables()
)


@pytest.fixture
def scoped(fleet: Fleet) -> Iterator[tuple[TestClient, list[str]]]:
    """A client with a token limited to staging, and what must never show: the other registries' digests
    and their account."""
    engine = create_engine(fleet.url)
    with engine.connect() as connection:
        hidden = [r[0] for r in connection.execute(text("SELECT image_digest FROM images WHERE registry_id <> :a"),
                                                   {"a": STAGING})]  # fmt: skip
    engine.dispose()
    with TestClient(create_app(async_engine(fleet.url)), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {fleet.token(['staging'])}"
        yield client, [*hidden, "111111111111"]


def test_no_generated_request_fails_on_our_side_or_shows_another_registry(
    scoped: tuple[TestClient, list[str]], request: pytest.FixtureRequest
) -> None:
    client, hidden = scoped

    @settings(
        max_examples=request.config.getoption("fuzz_examples"),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(REQUESTS)
    def run(asked: tuple[str, dict[str, Any]]) -> None:
        query, variables = asked
        body = json.dumps({"query": query, "variables": variables})
        answer = client.post("/graphql", content=body, headers={"content-type": "application/json"})
        assert answer.status_code < 500, (query, variables, answer.text)
        found = answer.json()
        for error in found.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            assert code and code != "INTERNAL_SERVER_ERROR", (query, variables, error)
        shown = json.dumps(found.get("data"))
        assert not [secret for secret in hidden if secret in shown], (query, variables)

    run()
