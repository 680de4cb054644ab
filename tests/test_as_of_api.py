"""The inventory at a past time over GraphQL: ``asOf`` on ``images``, ``image``, ``repositories``,
``repository`` and ``Repository.images``.

Synced from the emulator with the CLI at recorded times T0, T1, T2; what the emulator held at
each Ti (read through its own ECR API) is the answer ``asOf: Ti`` must give, field by field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from dbview import each_way_to_the_past
from graphql_client import data, error
from sqlalchemy import Engine, text
from starlette.testclient import TestClient
from test_sync import EU, PROD, STAGING, US, Inventory, aws_client, seed
from test_sync import inventory as inventory  # the fixture

from inventory.api.app import async_engine, create_app
from inventory.read import past, search

SCOPES = (("ecr", PROD, US), ("ecr", PROD, EU), ("ecr", STAGING, US), ("ecr-public", PROD, US))
"""What the test config syncs (tmp/* of prod is excluded, and nothing is put there)."""
GRAPHQL_TYPE = {"ecr": "ECR", "ecr-public": "ECR_PUBLIC"}

ImageKey = tuple[str, str, str, str, str]
"""(registry type as GraphQL spells it, registry id, region, repository, digest)."""
RepositoryKey = tuple[str, str, str, str]

IMAGE = (
    "registryType registryId region repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt "
    "imageStatus imageScanStatus { status description } removedAt"
)
IMAGES = (
    "query($first: Int, $after: String, $asOf: DateTime, $filter: ImageFilter, $orderBy: ImageOrder! = PUSHED_AT) {"
    " images(first: $first, after: $after, asOf: $asOf, filter: $filter, orderBy: $orderBy) {"
    "  totalCount nextToken pageInfo { hasNextPage endCursor } nodes { " + IMAGE + " } } }"
)
ONE_IMAGE = (
    "query($registryType: RegistryType!, $registryId: String!, $region: String!, $repositoryName: String!, "
    "$imageDigest: String!, $asOf: DateTime) {"
    " image(registryType: $registryType, registryId: $registryId, region: $region, repositoryName: $repositoryName, "
    "imageDigest: $imageDigest, asOf: $asOf) { " + IMAGE + " repository { repositoryName removedAt } } }"
)
REPOSITORY = "registryType registryId region repositoryName removedAt imageCount"
REPOSITORIES = (
    "query($first: Int, $after: String, $asOf: DateTime) {"
    " repositories(first: $first, after: $after, asOf: $asOf) {"
    "  totalCount nextToken nodes { " + REPOSITORY + " } } }"
)
ONE_REPOSITORY = (
    "query($registryType: RegistryType!, $registryId: String!, $region: String!, $repositoryName: String!, "
    "$asOf: DateTime, $imagesAsOf: DateTime) {"
    " repository(registryType: $registryType, registryId: $registryId, region: $region, "
    "repositoryName: $repositoryName, asOf: $asOf) { " + REPOSITORY + " images(first: 100, asOf: $imagesAsOf) {"
    "  totalCount nodes { " + IMAGE + " } } } }"
)


@dataclass
class State:
    """What the emulator held: each image's fields as the API shows them, and the repositories."""

    images: dict[ImageKey, dict[str, Any]] = field(default_factory=dict)
    repositories: set[RepositoryKey] = field(default_factory=set)

    def of(self, repository: RepositoryKey) -> dict[ImageKey, dict[str, Any]]:
        return {key: image for key, image in self.images.items() if key[:4] == repository}


@dataclass
class World:
    inventory: Inventory
    client: TestClient
    times: list[datetime] = field(default_factory=list)
    states: list[State] = field(default_factory=list)

    def apply_and_record(self) -> None:
        """Apply, then record the time and what the emulator held (nothing changes it until the next step)."""
        result = self.inventory.run("apply", "--auto-approve")
        assert result.exit_code == 0, result.output
        self.times.append(datetime.now(UTC))
        self.states.append(emulator_state(self.inventory))

    def ecr(self, account: str, region: str = US) -> Any:
        return aws_client(self.inventory, "ecr", account, region)


def emulator_state(inventory: Inventory) -> State:
    """Read through the emulator's ECR API, every repository and image the config covers."""
    state = State()
    for registry_type, account, region in SCOPES:
        client = aws_client(inventory, registry_type, account, region)
        for page in client.get_paginator("describe_repositories").paginate():
            for repository in page["repositories"]:
                name = repository["repositoryName"]
                state.repositories.add((GRAPHQL_TYPE[registry_type], account, region, name))
                options: dict[str, Any] = {"repositoryName": name}
                if registry_type == "ecr":
                    options["filter"] = {"imageStatus": "ANY"}
                for images in client.get_paginator("describe_images").paginate(**options):
                    for detail in images["imageDetails"]:
                        key = (GRAPHQL_TYPE[registry_type], account, region, name, detail["imageDigest"])
                        state.images[key] = shown(detail)
    return state


def shown(detail: dict[str, Any]) -> dict[str, Any]:
    """The fields compared, from an ECR ImageDetail."""
    scan = detail.get("imageScanStatus")
    return {
        "imageTags": sorted(detail.get("imageTags", [])),
        "imageSizeInBytes": detail.get("imageSizeInBytes"),
        "imagePushedAt": detail["imagePushedAt"].astimezone(UTC),
        "imageStatus": detail.get("imageStatus"),
        "imageScanStatus": None if scan is None else {"status": scan["status"], "description": scan["description"]},
    }


def from_api(node: dict[str, Any]) -> tuple[ImageKey, dict[str, Any]]:
    assert node["removedAt"] is None
    key = (node["registryType"], node["registryId"], node["region"], node["repositoryName"], node["imageDigest"])
    return key, {
        "imageTags": sorted(node["imageTags"]),
        "imageSizeInBytes": node["imageSizeInBytes"],
        "imagePushedAt": datetime.fromisoformat(node["imagePushedAt"]).astimezone(UTC),
        "imageStatus": node["imageStatus"],
        "imageScanStatus": node["imageScanStatus"],
    }


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def all_images(client: TestClient, at: datetime | None, first: int = 1000, **variables: Any) -> list[dict[str, Any]]:
    """Every image as of ``at``, page by page."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        found = data(client, IMAGES, first=first, after=after, asOf=iso(at), **variables)["images"]
        nodes += found["nodes"]
        after = found["nextToken"]
        if after is None:
            return nodes


@pytest.fixture
def world(inventory: Inventory, db_url: str) -> Iterator[World]:
    """T0: a first sync; T1: a retag, a scan, an archive, a deleted image and repository, a push;
    T2: the deleted image restored (same digest) and the deleted repository created again."""
    admin = inventory.admin
    web = seed(admin, PROD, US, "app/web", 3)
    eu = seed(admin, PROD, EU, "app/web", 2)
    api = seed(admin, STAGING, US, "app/api", 2)
    seed(admin, PROD, US, "tools/cli", 2, registry_type="ecr-public")
    seed(admin, PROD, US, "tools/gone", 2)
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as client:
        found = World(inventory, client)
        found.apply_and_record()  # T0

        admin.set_image(PROD, US, "app/web", web[1], imageTags=["app-web-0", "release"])  # the tag moves from web[0]
        admin.set_image(PROD, EU, "app/web", eu[0], imageScanStatus={"status": "COMPLETE", "description": "done"})
        admin.set_image(PROD, EU, "app/web", eu[1], imageStatus="ARCHIVED", lastArchivedAt="2026-06-01T00:00:00Z")
        found.ecr(STAGING).batch_delete_image(repositoryName="app/api", imageIds=[{"imageDigest": api[0]}])
        found.ecr(PROD).delete_repository(repositoryName="tools/gone", force=True)
        admin.put_images(PROD, US, "app/web", [{"imageDigest": "sha256:" + "f" * 64, "imageTags": ["new"]}])
        assert web
        found.apply_and_record()  # T1

        admin.put_images(STAGING, US, "app/api", [{"imageDigest": api[0], "imageTags": ["app-api-0"]}])
        admin.put_images(PROD, US, "tools/gone", [{"imageDigest": "sha256:" + "e" * 64, "imageTags": ["back"]}])
        found.apply_and_record()  # T2
        yield found


def test_images_as_of_each_time_are_what_the_emulator_held_then(world: World) -> None:
    first, second, third = world.states
    assert first.images != second.images != third.images  # every step changed something
    for way in each_way_to_the_past():
        for at, state in zip(world.times, world.states, strict=True):
            found = dict(from_api(node) for node in all_images(world.client, at))
            assert found == state.images, (at, way)
            total = data(world.client, IMAGES, first=1, asOf=iso(at))["images"]["totalCount"]
            assert total == len(state.images)


def test_every_order_pages_through_each_image_once_with_small_pages(world: World) -> None:
    for way in each_way_to_the_past():
        for at, state in zip(world.times, world.states, strict=True):
            for order in ("PUSHED_AT", "SIZE", "LAST_PULL"):
                nodes = all_images(world.client, at, first=2, orderBy=order)
                keys = [from_api(node)[0] for node in nodes]
                assert len(keys) == len(set(keys)) == len(state.images), (at, order, way)
                assert set(keys) == set(state.images)


def test_filters_apply_to_the_past(world: World) -> None:
    t0, t1, _ = world.times
    tagged = all_images(world.client, t0, filter={"tags": ["app-web-0"], "regions": [US]})
    assert [node["imageTags"] for node in tagged] == [["app-web-0"]]
    moved = all_images(world.client, t1, filter={"tags": ["app-web-0"], "regions": [US]})
    assert [sorted(node["imageTags"]) for node in moved] == [["app-web-0", "release"]]
    archived = all_images(world.client, t1, filter={"imageStatus": "ARCHIVED"})
    assert len(archived) == 1
    assert all_images(world.client, t0, filter={"imageStatus": "ARCHIVED"}) == []
    repository = all_images(world.client, t0, filter={"repositoryNames": ["tools/*"], "registryTypes": ["ECR"]})
    assert {node["repositoryName"] for node in repository} == {"tools/gone"}


def test_image_as_of_each_time(world: World) -> None:
    every = set().union(*(state.images for state in world.states))
    for at, state in zip(world.times, world.states, strict=True):
        for key in sorted(every):
            kind, account, region, repository, digest = key
            image = data(
                world.client, ONE_IMAGE, registryType=kind, registryId=account, region=region,
                repositoryName=repository, imageDigest=digest, asOf=iso(at),
            )["image"]  # fmt: skip
            if key not in state.images:
                assert image is None, (at, key)
                continue
            assert image is not None, (at, key)
            assert from_api(image) == (key, state.images[key])
            assert image["repository"] == {"repositoryName": repository, "removedAt": None}


def test_repositories_as_of_each_time(world: World) -> None:
    for at, state in zip(world.times, world.states, strict=True):
        nodes = data(world.client, REPOSITORIES, first=1000, asOf=iso(at))["repositories"]["nodes"]
        found = {(n["registryType"], n["registryId"], n["region"], n["repositoryName"]): n for n in nodes}
        assert set(found) == state.repositories, at
        for key, node in found.items():
            assert node["removedAt"] is None
            assert node["imageCount"] == len(state.of(key)), (at, key)
        paged, after = [], None
        while True:
            page = data(world.client, REPOSITORIES, first=2, after=after, asOf=iso(at))["repositories"]
            assert page["totalCount"] == len(state.repositories)
            paged += [n["repositoryName"] + "@" + n["region"] + n["registryType"] for n in page["nodes"]]
            after = page["nextToken"]
            if after is None:
                break
        assert len(paged) == len(set(paged)) == len(state.repositories)


def test_a_repository_removed_then_created_again_is_absent_only_in_between(world: World) -> None:
    gone: RepositoryKey = ("ECR", PROD, US, "tools/gone")
    present = [gone in state.repositories for state in world.states]
    assert present == [True, False, True]
    for at, state, held in zip(world.times, world.states, present, strict=True):
        variables = {"registryType": "ECR", "registryId": PROD, "region": US, "repositoryName": "tools/gone"}
        repository = data(world.client, ONE_REPOSITORY, asOf=iso(at), **variables)["repository"]
        if not held:
            assert repository is None, at
            continue
        # Its images and imageCount are as of the time the repository was read at.
        assert repository["imageCount"] == repository["images"]["totalCount"] == len(state.of(gone))
        images = dict(from_api(node) for node in repository["images"]["nodes"])
        assert images == state.of(gone)


def test_repository_images_take_their_own_as_of(world: World) -> None:
    t0, _, t2 = world.times
    web: RepositoryKey = ("ECR", PROD, US, "app/web")
    variables = {"registryType": "ECR", "registryId": PROD, "region": US, "repositoryName": "app/web"}
    at_t2 = data(world.client, ONE_REPOSITORY, asOf=iso(t2), imagesAsOf=iso(t0), **variables)["repository"]
    assert at_t2["imageCount"] == len(world.states[2].of(web))
    assert dict(from_api(node) for node in at_t2["images"]["nodes"]) == world.states[0].of(web)
    present = data(world.client, ONE_REPOSITORY, imagesAsOf=iso(t0), **variables)["repository"]
    assert dict(from_api(node) for node in present["images"]["nodes"]) == world.states[0].of(web)


def test_the_present_is_unchanged_without_as_of(world: World) -> None:
    now = dict(from_api(node) for node in all_images(world.client, None))
    assert now == world.states[-1].images


def test_a_cursor_is_bound_to_its_as_of(world: World) -> None:
    t0, t1, _ = world.times
    page = data(world.client, IMAGES, first=1, asOf=iso(t0))["images"]
    assert page["nextToken"]
    code, message = error(world.client, IMAGES, first=1, after=page["nextToken"], asOf=iso(t1))
    assert code == "InvalidParameterException"
    assert "another query" in message
    code, _ = error(world.client, IMAGES, first=1, after=page["nextToken"])
    assert code == "InvalidParameterException"
    present = data(world.client, IMAGES, first=1)["images"]["nextToken"]
    code, _ = error(world.client, IMAGES, first=1, after=present, asOf=iso(t0))
    assert code == "InvalidParameterException"
    # The same instant written with another offset is the same asOf.
    same = t0.astimezone(timezone(timedelta(hours=2)))
    assert data(world.client, IMAGES, first=1, after=page["nextToken"], asOf=same.isoformat())["images"]["nodes"]


def test_as_of_in_the_future_or_before_the_horizon_is_an_error(world: World) -> None:
    t0 = world.times[0]
    future = datetime.now(UTC) + timedelta(hours=1)
    for query, variables in (
        (IMAGES, {"first": 1}),
        (REPOSITORIES, {"first": 1}),
        (ONE_IMAGE, {"registryType": "ECR", "registryId": PROD, "region": US, "repositoryName": "app/web",
                     "imageDigest": "sha256:" + "f" * 64}),
        (ONE_REPOSITORY, {"registryType": "ECR", "registryId": PROD, "region": US, "repositoryName": "app/web"}),
    ):  # fmt: skip
        code, message = error(world.client, query, asOf=future.isoformat(), **variables)
        assert (code, "asOf" in message and "future" in message) == ("InvalidParameterException", True)
    code, message = error(world.client, IMAGES, first=1, asOf="2026-01-01T00:00:00")
    assert code == "InvalidParameterException" and "offset" in message

    with world.inventory.engine.begin() as connection:
        connection.execute(text("UPDATE history_horizon SET since = now()"))
    since = world.inventory.scalar("SELECT since FROM history_horizon")
    for query, variables in ((IMAGES, {"first": 1}), (REPOSITORIES, {"first": 1})):
        code, message = error(world.client, query, asOf=iso(t0), **variables)
        assert code == "HistoryNotRetained"
        assert since.isoformat() in message
    assert data(world.client, IMAGES, first=1)["images"]["nodes"]  # the present is still answered


def keyset_walks(plan: dict[str, Any]) -> set[str]:
    """The indexes a plan of ``past.images_at`` reads in its walks (under ``NOT`` the guard)."""
    found: set[str] = set()

    def visit(node: dict[str, Any], walking: bool) -> None:
        walking = walking or node.get("One-Time Filter", "").startswith("(NOT ")
        if walking and "Index Name" in node:
            found.add(node["Index Name"])
        for child in node.get("Plans", []):
            visit(child, walking)

    visit(plan, False)
    return found


PLANNED = """
INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, image_pushed_at,
                    image_size_in_bytes, last_recorded_pull_time, first_seen_at, last_seen_at, changed_at, removed_at)
SELECT 'ecr', :account, :region, 'app', 'sha256:' || md5(i::text), pushed, i * 7919 % 100003,
       pushed + i * 7 % 1009 * interval '1 hour', pushed, later, CASE WHEN removed THEN pushed ELSE later END,
       CASE WHEN removed THEN t + i * 31 % 1440 * interval '1 minute' END
FROM CAST(:at AS timestamptz) t, generate_series(1, 40000) i,
     LATERAL (SELECT i % 10 = 0 AS removed, t - interval '30 days' - i * 13 % 20011 * interval '1 minute' AS pushed,
                     t + interval '2 days' AS later) p
"""
"""One image in ten removed in the day after T, unchanged since its push; the others changed since T. Keys
and bounds in no order of the table's, as a history's rows are."""


@pytest.mark.parametrize("order", sorted(search.ORDERS))
def test_a_walk_of_removed_images_is_planned_down_their_keyset_index(engine: Engine, order: str) -> None:
    """Removed images last changed long before T and removed after it, present ones changed since T:
    counted as independent, the two bounds of the removed images said few were valid at T, and the walk
    was planned as a read of every image removed after T (and a sort), not as a walk down its index."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    values = {"account": PROD, "region": US, "at": at}
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO registries (name, type, account_id, regions) VALUES ('plan', 'ecr', :account, :regions)"),
            {**values, "regions": [US]},
        )
        connection.execute(
            text(
                "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name) "
                "VALUES ('ecr', :account, :region, 'app', 'plan')"
            ),
            values,
        )
        connection.execute(text(PLANNED), values)
        connection.execute(text("ANALYZE images"))
        page = search.image_page(search.ImageFilter(), search.ORDERS[order], None, 100, past.images_at(at))
        sql = str(page.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar_one()[0]["Plan"]
    walks = keyset_walks(plan)
    assert f"ix_images_removed_by_{order.lower()}" in walks, walks
    assert "ix_images_removed_at" not in walks
