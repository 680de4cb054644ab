"""One paging behaviour for every connection: the page after the last one is empty, with
``hasNextPage: false``, ``nextToken: null`` and ``endCursor: null`` (no position to go on from),
except on the resumable feed, ``events``, whose empty page hands back the position it was asked
from (to poll with)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient
from test_sync import PROD, US, Inventory, seed
from test_sync import inventory as inventory  # the fixture

from inventory.api.app import async_engine, create_app

PAGE = "pageInfo { hasNextPage endCursor } nextToken"
IMAGE = f'image(registryId: "{PROD}", region: "{US}", repositoryName: "app/web", imageDigest: $digest)'
CONNECTIONS = {
    "images": ("query($after: String) { images(after: $after) { %s } }", ["images"]),
    "repositories": ("query($after: String) { repositories(after: $after) { %s } }", ["repositories"]),
    "repository.images": (
        f'query($after: String) {{ repository(registryId: "{PROD}", region: "{US}", repositoryName: "app/web") '
        "{ images(after: $after) { %s } } }",
        ["repository", "images"],
    ),
    "syncRuns": ("query($after: String) { syncRuns(after: $after) { %s } }", ["syncRuns"]),
    "image.history": (
        f"query($after: String, $digest: String!) {{ {IMAGE} {{ history(after: $after) {{ %s }} }} }}",
        ["image", "history"],
    ),
    "tagHistory": (
        f'query($after: String, $tag: String!) {{ tagHistory(registryId: "{PROD}", region: "{US}", '
        'repositoryName: "app/web", tag: $tag, after: $after) { %s } }',
        ["tagHistory"],
    ),
    "diff": (
        "query($after: String, $from: DateTime!, $to: DateTime!) { diff(from: $from, to: $to, after: $after) { %s } }",
        ["diff"],
    ),
}


@pytest.fixture
def client(inventory: Inventory, db_url: str) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    before = datetime.now(UTC)
    [digest] = seed(inventory.admin, PROD, US, "app/web", 1)
    inventory.write_config(staging=False, prod_regions=(US,))
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    variables = {"digest": digest, "from": before.isoformat(), "to": datetime.now(UTC).isoformat()}
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as test_client:
        query = "query($digest: String!) { " + IMAGE + " { imageTags } }"
        [tag] = test_client.post("/graphql", json={"query": query, "variables": variables}).json()["data"]["image"][
            "imageTags"
        ]
        yield test_client, {**variables, "tag": tag}


def page(client: TestClient, name: str, variables: dict[str, Any], after: str | None) -> dict[str, Any]:
    query, path = CONNECTIONS[name]
    body = client.post("/graphql", json={"query": query % PAGE, "variables": {**variables, "after": after}}).json()
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]
    for key in path:
        found = found[key]
    return found


@pytest.mark.parametrize("name", sorted(CONNECTIONS))
def test_the_page_after_the_last_has_no_end_cursor(client: tuple[TestClient, dict[str, Any]], name: str) -> None:
    test_client, variables = client
    last = page(test_client, name, variables, None)
    assert last["pageInfo"]["hasNextPage"] is False and last["nextToken"] is None
    assert last["pageInfo"]["endCursor"] is not None, f"{name}: the test needs a non-empty first page"
    empty = page(test_client, name, variables, last["pageInfo"]["endCursor"])
    assert empty == {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nextToken": None}


def test_the_feed_s_empty_page_hands_back_its_position(client: tuple[TestClient, dict[str, Any]]) -> None:
    test_client, _ = client
    query = "query($after: String) { events(after: $after) { " + PAGE + " } }"
    last = test_client.post("/graphql", json={"query": query}).json()["data"]["events"]
    position = last["pageInfo"]["endCursor"]
    assert position is not None and last["nextToken"] is None
    empty = test_client.post("/graphql", json={"query": query, "variables": {"after": position}}).json()
    assert empty["data"]["events"] == {"pageInfo": {"hasNextPage": False, "endCursor": position}, "nextToken": None}
    nothing = test_client.post(
        "/graphql", json={"query": query.replace("events(", 'events(filter: {types: ["image.removed"]}, ')}
    ).json()
    assert nothing["data"]["events"]["pageInfo"]["endCursor"] is None  # asked from the start: nothing to resume
