"""``images.totalCount`` costs what its page costs: exact from the syncs' counters when the filter narrows by
location only, otherwise counted up to ``COUNT_CAP``, past which it is a lower bound and says so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from test_sync import EU, PROD, US, Inventory, seed
from test_sync import inventory as inventory  # the fixture

from inventory.api.app import async_engine, create_app
from inventory.read import search

QUERY = """query($filter: ImageFilter, $asOf: DateTime) {
  images(first: 1000, filter: $filter, asOf: $asOf) { totalCount totalCountIsLowerBound nodes { imageDigest } } }"""
FILTERS: list[dict[str, Any]] = [
    {},
    {"regions": [US]},
    {"registryIds": [PROD], "regions": [EU]},
    {"repositoryNames": ["app/*"]},
    {"repositoryNames": ["tools/cli"], "regions": [US]},
    {"registryTypes": ["ECR_PUBLIC"]},
    {"tagStatus": "TAGGED"},
    {"includeRemoved": True},
    {"imageStatus": "ACTIVE", "regions": [US]},
]


@pytest.fixture
def client(inventory: Inventory, db_url: str) -> Iterator[TestClient]:
    for region, repository, n in ((US, "app/web", 3), (US, "tools/cli", 2), (EU, "app/web", 4), (EU, "app/api", 1)):
        seed(inventory.admin, PROD, region, repository, n)
    seed(inventory.admin, PROD, US, "base", 2, registry_type="ecr-public")
    inventory.write_config(staging=False)
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    seed(inventory.admin, PROD, EU, "app/api", 0)  # its image gone at the next apply: a removed row
    assert inventory.run("apply", "--auto-approve").exit_code == 0
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as test_client:
        yield test_client


def images(client: TestClient, **variables: Any) -> dict[str, Any]:
    body = client.post("/graphql", json={"query": QUERY, "variables": variables}).json()
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["images"]
    return found


@pytest.mark.parametrize("given", FILTERS, ids=[str(f) for f in FILTERS])
def test_total_count_is_exact_below_the_cap(client: TestClient, given: dict[str, Any]) -> None:
    found = images(client, filter=given)
    assert found["totalCount"] == len(found["nodes"]) and found["totalCountIsLowerBound"] is False


def test_past_the_cap_a_count_says_it_is_a_lower_bound(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "COUNT_CAP", 3)
    counted = images(client, filter={"tagStatus": "TAGGED"})  # counted row by row: stops at the cap
    assert len(counted["nodes"]) > 3
    assert counted["totalCount"] == 3 and counted["totalCountIsLowerBound"] is True
    from_counters = images(client, filter={"regions": [US, EU]})  # the syncs' counters: exact, however many
    assert from_counters["totalCount"] == len(from_counters["nodes"]) > 3
    assert from_counters["totalCountIsLowerBound"] is False
