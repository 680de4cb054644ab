"""Asking the GraphQL API in tests, through a starlette TestClient of the real app."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """The whole response body."""
    body: dict[str, Any] = client.post("/graphql", json={"query": query, "variables": variables}).json()
    return body


def data(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """The data of a request that must not fail."""
    body = gql(client, query, **variables)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def error(client: TestClient, query: str, **variables: Any) -> tuple[str, str]:
    """(code, message) of the request's first error: every error has both."""
    body = gql(client, query, **variables)
    assert body.get("errors"), body
    first = body["errors"][0]
    assert first["message"]
    return str(first["extensions"]["code"]), str(first["message"])


def error_code(client: TestClient, query: str, **variables: Any) -> str:
    return error(client, query, **variables)[0]
