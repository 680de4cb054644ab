"""Property: paging over random filters and page sizes sees every matching image exactly once, in order,
even when images are added or removed between pages."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app

REGISTRIES = (("prod", "111111111111", ("us-east-1", "eu-west-1")), ("staging", "222222222222", ("us-east-1",)))
REPOSITORIES = ("app/web", "app/api", "tools/cli")
TAGS = ("latest", "prod", "v1", "v2", "canary")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUERY = """query($first: Int, $after: String, $filter: ImageFilter, $orderBy: ImageOrder!) {
  images(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    nextToken nodes { registryId region repositoryName imageDigest imagePushedAt imageSizeInBytes
                      lastRecordedPullTime } } }"""
KEYS = {"PUSHED_AT": "imagePushedAt", "SIZE": "imageSizeInBytes", "LAST_PULL": "lastRecordedPullTime"}


def _insert(engine: Engine, rng: random.Random, count: int, prefix: str) -> list[tuple[str, str, str, str]]:
    keys = []
    with engine.begin() as connection:
        for i in range(count):
            _, account, regions = rng.choice(REGISTRIES)
            key = (account, rng.choice(regions), rng.choice(REPOSITORIES), f"sha256:{prefix}{i:060d}")
            pushed = None if rng.random() < 0.05 else T0 + timedelta(minutes=rng.randrange(50))  # ties happen
            pulled = None if rng.random() < 0.4 else T0 + timedelta(days=rng.randrange(5))
            connection.execute(
                text("INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, "
                     "image_tags, image_size_in_bytes, image_pushed_at, last_recorded_pull_time, image_status, "
                     "finding_severity_counts) VALUES ('ecr', :a, :r, :n, :d, :tags, :size, :pushed, :pulled, :status, "
                     "CAST(:counts AS jsonb)) ON CONFLICT DO NOTHING"),
                {"a": key[0], "r": key[1], "n": key[2], "d": key[3], "tags": rng.sample(TAGS, rng.randrange(3)),
                 "size": rng.choice([None, rng.randrange(10), rng.randrange(5_000_000_000)]), "pushed": pushed,
                 "pulled": pulled, "status": rng.choice(["ACTIVE", "ACTIVE", "ARCHIVED"]),
                 "counts": rng.choice(['{"HIGH": 1}', '{"LOW": 2}', None])},
            )  # fmt: skip
            keys.append(key)
    return keys


@pytest.fixture
def inventory(engine: Engine, db_url: str) -> Iterator[tuple[Engine, TestClient]]:
    with engine.begin() as connection:
        for name, account, regions in REGISTRIES:
            connection.execute(
                text("INSERT INTO registries (name, type, account_id, regions) VALUES (:n, 'ecr', :a, :r)"),
                {"n": name, "a": account, "r": list(regions)},
            )
            for region in regions:
                for repository in REPOSITORIES:
                    connection.execute(
                        text("INSERT INTO repositories (registry_type, registry_id, region, repository_name, "
                             "registry_name) VALUES ('ecr', :a, :r, :n, :g)"),
                        {"a": account, "r": region, "n": repository, "g": name},
                    )  # fmt: skip
    _insert(engine, random.Random(1), 120, "a")
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as client:
        yield engine, client


filters = st.fixed_dictionaries(
    {},
    optional={
        "registryIds": st.lists(st.sampled_from(["111111111111", "222222222222"]), min_size=1, unique=True),
        "regions": st.lists(st.sampled_from(["us-east-1", "eu-west-1"]), min_size=1, unique=True),
        "repositoryNames": st.lists(st.sampled_from(["app/*", "tools/cl?", "app/web"]), min_size=1, unique=True),
        "tags": st.lists(st.sampled_from(TAGS), min_size=1, unique=True),
        "tagStatus": st.sampled_from(["TAGGED", "UNTAGGED", "ANY"]),
        "imageStatus": st.sampled_from(["ACTIVE", "ARCHIVED", "ANY"]),
        "minSeverity": st.sampled_from(["HIGH", "LOW"]),
    },
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter_=filters, order=st.sampled_from(list(KEYS)), first=st.integers(1, 40), seed=st.integers(0, 10**6))
def test_every_matching_image_exactly_once_in_order(
    inventory: tuple[Engine, TestClient], filter_: dict[str, Any], order: str, first: int, seed: int
) -> None:
    engine, client = inventory
    rng = random.Random(seed)

    def page(size: int, after: str | None) -> dict[str, Any]:
        body = client.post("/graphql", json={"query": QUERY, "variables": {
            "first": size, "after": after, "filter": filter_, "orderBy": order}}).json()  # fmt: skip
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]["images"]
        return result

    def identity(node: dict[str, Any]) -> tuple[str, ...]:
        return (node["registryId"], node["region"], node["repositoryName"], node["imageDigest"])

    at_start = {identity(n) for n in page(1000, None)["nodes"]}
    removed: set[tuple[str, ...]] = set()
    inserted: list[tuple[str, str, str, str]] = []
    seen: list[dict[str, Any]] = []
    after = None
    try:
        for step in range(200):
            result = page(first, after)
            seen += result["nodes"]
            after = result["nextToken"]
            if after is None:
                break
            if rng.random() < 0.5:  # someone removes images, someone pushes new ones
                victims = rng.sample(sorted(at_start), min(2, len(at_start)))
                with engine.begin() as connection:
                    for key in victims:
                        connection.execute(
                            text("UPDATE images SET removed_at = now() WHERE (registry_id, region, repository_name, "
                                 "image_digest) = (:a, :r, :n, :d) AND removed_at IS NULL"),
                            dict(zip("arnd", key, strict=True)),
                        )  # fmt: skip
                removed.update(victims)
                inserted += _insert(engine, rng, 2, f"b{step:02d}{seed % 1000:03d}")
        keys = [identity(node) for node in seen]
        assert len(keys) == len(set(keys)), "an image was listed twice"
        assert at_start - removed <= set(keys), "an image present throughout was missed"
        assert set(keys) <= at_start | set(inserted)
        sort_key = [(_key(node[KEYS[order]]), identity(node)) for node in seen]
        assert sort_key == sorted(sort_key, reverse=True)
    finally:
        with engine.begin() as connection:
            connection.execute(text("UPDATE images SET removed_at = NULL"))
            for key in inserted:
                connection.execute(
                    text("DELETE FROM images WHERE (registry_id, region, repository_name, image_digest) = "
                         "(:a, :r, :n, :d)"),
                    dict(zip("arnd", key, strict=True)),
                )  # fmt: skip


def _key(value: Any) -> tuple[int, Any]:
    """A missing value sorts last, as the API's coalesce to -infinity / -1 does."""
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (1, datetime.fromisoformat(value).timestamp())
    return (1, value)
