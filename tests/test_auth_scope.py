"""Tokens limited to registries see only those registries' objects, from every entry point of the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from auth_fleet import NAMES, Fleet
from graphql_client import data, gql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app

Key = tuple[str, str, str, str]

LOCATION = "registryType registryId region repositoryName"
IMAGES = f"""query($asOf: DateTime, $after: String, $first: Int) {{
  images(first: $first, after: $after, asOf: $asOf, filter: {{includeRemoved: true}}) {{
    totalCount pageInfo {{ endCursor }} nodes {{ id imageDigest {LOCATION}
      repository {{ id registryName }} history(first: 50) {{ nodes {{ id {LOCATION} syncRun {{ registryName }} }} }} }}
  }}
}}"""
REPOSITORIES = f"""query($asOf: DateTime) {{
  repositories(first: 1000, asOf: $asOf, filter: {{includeRemoved: true}}) {{
    totalCount pageInfo {{ endCursor }} nodes {{ id registryName {LOCATION} imageCount
      images(first: 100) {{ totalCount nodes {{ {LOCATION} }} }} }}
  }}
}}"""
REGISTRIES = """{ registries { id name syncStatus { regions { region } }
  repositories(first: 1000) { totalCount nodes { registryName } } } }"""
EVENTS = f"{{ events(first: 1000) {{ pageInfo {{ endCursor }} nodes {{ id {LOCATION} image {{ {LOCATION} }} }} }} }}"
SYNC_RUNS = "{ syncRuns(first: 1000) { totalCount nodes { registryName } } }"
DIFF = f"""query($from: DateTime!, $to: DateTime!) {{
  diff(from: $from, to: $to, first: 1000) {{ nodes {{ {LOCATION} }} }} }}"""
NODE = f"""query($id: ID!) {{ node(id: $id) {{ id
  ... on Image {{ {LOCATION} }} ... on Repository {{ {LOCATION} }} ... on Registry {{ name }}
  ... on ImageEvent {{ {LOCATION} }} }} }}"""
REPOSITORY = """query($t: RegistryType!, $id: String!, $region: String!, $name: String!) {
  repository(registryType: $t, registryId: $id, region: $region, repositoryName: $name) { id registryName } }"""
IMAGE = """query($t: RegistryType!, $id: String!, $region: String!, $name: String!, $digest: String!) {
  image(registryType: $t, registryId: $id, region: $region, repositoryName: $name, imageDigest: $digest) { id } }"""
DESCRIBE = """query($t: RegistryType!, $id: String!, $region: String!, $name: String!) {
  describeImages(registryType: $t, registryId: $id, region: $region, repositoryName: $name) {
    imageDetails { imageDigest repositoryName } } }"""
TAG_HISTORY = """query($t: RegistryType!, $id: String!, $region: String!, $name: String!, $tag: String!) {
  tagHistory(registryType: $t, registryId: $id, region: $region, repositoryName: $name, tag: $tag) {
    nodes { imageDigest image { id } } } }"""


def key_of(node: dict[str, Any]) -> Key:
    kind = "ecr-public" if node["registryType"] == "ECR_PUBLIC" else "ecr"
    return kind, node["registryId"], node["region"], node["repositoryName"]


def graphql_type(kind: str) -> str:
    return "ECR_PUBLIC" if kind == "ecr-public" else "ECR"


class Truth:
    """What the tables hold, read with SQL: the expected answers."""

    def __init__(self, fleet: Fleet) -> None:
        engine = create_engine(fleet.url)
        with engine.connect() as connection:
            self.images = [tuple(r) for r in connection.execute(text(
                "SELECT registry_type, registry_id, region, repository_name, image_digest, image_tags FROM images"
            ))]  # fmt: skip
            self.events = connection.execute(
                text("SELECT registry_type, registry_id, region, repository_name FROM image_events")
            ).all()
            self.runs = [r[0] for r in connection.execute(text("SELECT registry_name FROM sync_runs"))]
        engine.dispose()
        self.owner = fleet.owner

    def mine(self, key: Key, scope: frozenset[str]) -> bool:
        return self.owner[key] in scope


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(fleet.url))) as test_client:
        yield test_client


def _as(client: TestClient, token: str) -> TestClient:
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scope=st.frozensets(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES) - 1))
def test_a_token_sees_only_its_registries_from_every_entry_point(
    fleet: Fleet, client: TestClient, scope: frozenset[str]
) -> None:
    truth = Truth(fleet)
    broad = fleet.token(None)
    narrow = fleet.token(sorted(scope))
    # What a token for every registry obtains: ids and cursors to try with the narrow one.
    everything = data(_as(client, broad), IMAGES, first=3)["images"]
    broad_cursor = everything["pageInfo"]["endCursor"]
    ids = [node["id"] for node in data(client, IMAGES, first=1000)["images"]["nodes"]]
    ids += [node["id"] for node in data(client, REPOSITORIES)["repositories"]["nodes"]]
    ids += [node["id"] for node in data(client, EVENTS)["events"]["nodes"]]
    ids += [node["id"] for node in data(client, REGISTRIES)["registries"]]

    _as(client, narrow)
    in_scope = [i for i in truth.images if truth.mine(i[:4], scope)]
    for as_of in (None, fleet.between.isoformat()):
        found = data(client, IMAGES, first=1000, asOf=as_of)["images"]
        for node in found["nodes"]:
            assert truth.mine(key_of(node), scope), node
            assert node["repository"]["registryName"] in scope
            for event in node["history"]["nodes"]:
                assert truth.mine(key_of(event), scope) and event["syncRun"]["registryName"] in scope
        if as_of is None:
            assert found["totalCount"] == len(in_scope) == len(found["nodes"])
        repositories = data(client, REPOSITORIES, asOf=as_of)["repositories"]
        assert {node["registryName"] for node in repositories["nodes"]} <= scope
        for node in repositories["nodes"]:
            assert all(truth.mine(key_of(image), scope) for image in node["images"]["nodes"])
        if as_of is None:
            expected = sum(1 for key in truth.owner if truth.mine(key, scope))
            assert repositories["totalCount"] == expected == len(repositories["nodes"])

    registries = data(client, REGISTRIES)["registries"]
    assert {r["name"] for r in registries} == scope
    for registry in registries:
        assert registry["syncStatus"]["regions"]
        assert {n["registryName"] for n in registry["repositories"]["nodes"]} == {registry["name"]}

    events = data(client, EVENTS)["events"]["nodes"]
    assert all(truth.mine(key_of(e), scope) for e in events)
    assert len(events) == sum(1 for e in truth.events if truth.mine(tuple(e), scope))
    assert all(e["image"] is None or truth.mine(key_of(e["image"]), scope) for e in events)

    runs = data(client, SYNC_RUNS)["syncRuns"]
    assert {r["registryName"] for r in runs["nodes"]} <= scope
    assert runs["totalCount"] == sum(1 for name in truth.runs if name in scope) == len(runs["nodes"])

    changed = data(client, DIFF, **{"from": fleet.between.isoformat(), "to": datetime.now(UTC).isoformat()})["diff"][
        "nodes"
    ]
    assert changed and all(truth.mine(key_of(node), scope) for node in changed)

    hidden = 0
    for node_id in ids:
        node = data(client, NODE, id=node_id)["node"]
        if node is None:
            hidden += 1
        elif "name" in node:
            assert node["name"] in scope
        else:
            assert truth.mine(key_of(node), scope), node
    assert hidden > 0  # something was out of scope, and it read as missing

    for key, owner in truth.owner.items():
        kind, registry_id, region, name = key
        where = {"t": graphql_type(kind), "id": registry_id, "region": region, "name": name}
        repository = data(client, REPOSITORY, **where)["repository"]
        assert (repository is not None) == (owner in scope)
        described = gql(client, DESCRIBE, **where)
        if owner in scope:
            assert "errors" not in described, described
        else:
            assert described["errors"][0]["extensions"]["code"] == "RepositoryNotFoundException"
        tags = data(client, TAG_HISTORY, **where, tag="latest")["tagHistory"]["nodes"]
        assert bool(tags) == (owner in scope)

    for kind, registry_id, region, name, digest, _ in truth.images:
        where = {"t": graphql_type(kind), "id": registry_id, "region": region, "name": name, "digest": digest}
        image = data(client, IMAGE, **where)["image"]
        assert (image is not None) == truth.mine((kind, registry_id, region, name), scope)

    # A cursor obtained with a broader token shows nothing beyond the narrow token's scope.
    body = gql(client, IMAGES, first=1000, after=broad_cursor)
    if "errors" in body:
        assert body["errors"][0]["extensions"]["code"] == "InvalidParameterException"
    else:
        assert all(truth.mine(key_of(node), scope) for node in body["data"]["images"]["nodes"])
