"""Asking the GraphQL API in tests, through a starlette TestClient of the real app."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """The whole response body."""
    # Sent as ASCII JSON, so that any string (a lone surrogate included) reaches the server as written.
    request = json.dumps({"query": query, "variables": variables}, separators=(",", ":"))
    body: dict[str, Any] = client.post("/graphql", content=request, headers={"content-type": "application/json"}).json()
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
