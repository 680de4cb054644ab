"""A private repository and an ECR Public one of the same name in one account: two repositories.

Synced from the emulator with the CLI, read over GraphQL: their own images, ids, events and sync runs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from graphql_client import data, error_code
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.cli import main
from inventory.db import create
from inventory.testing import AdminClient, Emulator

ACCOUNT, US = "111111111111", "us-east-1"
SHARED = "sha256:" + "5" * 64
"""A digest both repositories hold."""


def config_text(endpoint: str) -> str:
    return "\n".join(
        f'[[registries]]\nname = "{name}"\ntype = "{kind}"\naccount_id = "{ACCOUNT}"\nregions = ["{US}"]\n'
        f'role_arn = "arn:aws:iam::{ACCOUNT}:role/reader"\nendpoint_url = "{endpoint}"\n'
        for name, kind in (("private", "ecr"), ("public", "ecr-public"))
    )


@pytest.fixture
def apply(admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``apply()`` runs ``inventory apply --auto-approve`` on the two registries."""
    config = tmp_path / "inventory.toml"
    config.write_text(config_text(emulator.url))
    for key, value in {"INVENTORY_DATABASE_URL": db_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)

    def run() -> None:
        result = CliRunner().invoke(main, ["apply", "-c", str(config), "--auto-approve"], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    return run


@pytest.fixture
def synced(admin: AdminClient, apply: Callable[[], None]) -> None:
    """app/web: 3 private images, 2 public ones; the first of each has the digest SHARED."""
    admin.put_images(ACCOUNT, US, "app/web", [
        {"imageDigest": SHARED, "imageTags": ["private-0"], "imagePushedAt": "2026-01-01T00:00:00Z"},
        {"imageTags": ["private-1"], "imagePushedAt": "2026-01-02T00:00:00Z"},
        {"imageTags": ["private-2"], "imagePushedAt": "2026-01-03T00:00:00Z"},
    ])  # fmt: skip
    admin.put_images(ACCOUNT, US, "app/web", [
        {"imageDigest": SHARED, "imageTags": ["public-0"], "imagePushedAt": "2026-02-01T00:00:00Z"},
        {"imageDigest": "sha256:" + "6" * 64, "imageTags": ["public-1"], "imagePushedAt": "2026-02-02T00:00:00Z"},
    ], registry_type="ecr-public")  # fmt: skip
    apply()


@pytest.fixture
def client(synced: None, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(db_url), allow_anonymous=True)) as test_client:
        yield test_client


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create(db_url)
    yield engine
    engine.dispose()


def global_id(type_name: str, node_id: str) -> str:
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


def test_two_repositories_with_their_own_images(client: TestClient) -> None:
    found = data(
        client,
        """{ repositories(first: 10) { totalCount nodes {
        registryName registryType repositoryName imageCount
        images(first: 10) { nodes { registryType imageDigest imageTags repository { registryName } } } } } }""",
    )
    repositories = found["repositories"]
    assert repositories["totalCount"] == 2
    by_type = {node["registryType"]: node for node in repositories["nodes"]}
    assert set(by_type) == {"ECR", "ECR_PUBLIC"}
    private, public = by_type["ECR"], by_type["ECR_PUBLIC"]
    assert (private["registryName"], private["repositoryName"], private["imageCount"]) == ("private", "app/web", 3)
    assert (public["registryName"], public["repositoryName"], public["imageCount"]) == ("public", "app/web", 2)
    assert sorted(i["imageTags"][0] for i in private["images"]["nodes"]) == ["private-0", "private-1", "private-2"]
    assert sorted(i["imageTags"][0] for i in public["images"]["nodes"]) == ["public-0", "public-1"]
    for repository in (private, public):
        images = repository["images"]["nodes"]
        assert {i["registryType"] for i in images} == {repository["registryType"]}
        assert {i["repository"]["registryName"] for i in images} == {repository["registryName"]}


def test_the_image_search_tells_them_apart(client: TestClient) -> None:
    query = """query($filter: ImageFilter) { images(first: 10, filter: $filter) { totalCount
        nodes { registryType imageDigest imageTags repository { registryType registryName } } } }"""
    shared = data(client, query, filter={"digests": [SHARED]})["images"]
    assert sorted((n["registryType"], n["imageTags"], n["repository"]["registryName"]) for n in shared["nodes"]) == [
        ("ECR", ["private-0"], "private"), ("ECR_PUBLIC", ["public-0"], "public"),
    ]  # fmt: skip
    assert data(client, query)["images"]["totalCount"] == 5
    public = data(client, query, filter={"registryTypes": ["ECR_PUBLIC"]})["images"]
    assert public["totalCount"] == 2 and {n["registryType"] for n in public["nodes"]} == {"ECR_PUBLIC"}
    repositories = "query($t: [RegistryType!]) { repositories(filter: {registryTypes: $t}) { nodes { registryName } } }"
    assert [n["registryName"] for n in data(client, repositories, t=["ECR"])["repositories"]["nodes"]] == ["private"]


def test_pages_of_one_see_each_image_once(client: TestClient) -> None:
    """The registry type is the keyset's last tiebreak: equal up to it, both are listed."""
    for order in ("PUSHED_AT", "SIZE", "LAST_PULL"):
        seen, after = [], None
        while True:
            page = data(client, """query($after: String, $order: ImageOrder!) {
                images(first: 1, after: $after, orderBy: $order) { nextToken nodes { id } } }""",
                        after=after, order=order)["images"]  # fmt: skip
            seen += [n["id"] for n in page["nodes"]]
            if not (after := page["nextToken"]):
                break
        assert len(seen) == len(set(seen)) == 5, order
    seen, after = [], None
    while True:
        page = data(
            client,
            """query($after: String) {
            repositories(first: 1, after: $after) { nextToken nodes { id } } }""",
            after=after,
        )["repositories"]
        seen += [n["id"] for n in page["nodes"]]
        if not (after := page["nextToken"]):
            break
    assert len(seen) == len(set(seen)) == 2


def test_node_ids_resolve_to_the_right_one(client: TestClient) -> None:
    query = """query($d: String!, $t: RegistryType!) {
        repository(registryId: "111111111111", region: "us-east-1", repositoryName: "app/web", registryType: $t) {
            id registryName images(first: 10) { nodes { id imageDigest imageTags } } }
        image(registryId: "111111111111", region: "us-east-1", repositoryName: "app/web",
              imageDigest: $d, registryType: $t) { id imageTags registryType } }"""
    private, public = data(client, query, d=SHARED, t="ECR"), data(client, query, d=SHARED, t="ECR_PUBLIC")
    default = data(client, query.replace(", registryType: $t", "").replace(", $t: RegistryType!", ""), d=SHARED)
    assert default == private
    assert (private["repository"]["registryName"], public["repository"]["registryName"]) == ("private", "public")
    assert (private["image"]["imageTags"], public["image"]["imageTags"]) == (["private-0"], ["public-0"])
    assert public["image"]["registryType"] == "ECR_PUBLIC"

    # A private id is what it always was; a public one says so.
    assert private["repository"]["id"] == global_id("Repository", f"{ACCOUNT}/{US}/app/web")
    assert public["repository"]["id"] == global_id("Repository", f"ecr-public/{ACCOUNT}/{US}/app/web")
    assert private["image"]["id"] == global_id("Image", f"{ACCOUNT}/{US}/{SHARED}/app/web")
    assert public["image"]["id"] == global_id("Image", f"ecr-public/{ACCOUNT}/{US}/{SHARED}/app/web")

    node = """query($id: ID!) { node(id: $id) { id ... on Repository { registryName registryType }
        ... on Image { imageTags registryType repository { registryName } } } }"""
    for found, name in ((private, "private"), (public, "public")):
        assert data(client, node, id=found["repository"]["id"])["node"]["registryName"] == name
        for image in found["repository"]["images"]["nodes"]:
            resolved = data(client, node, id=image["id"])["node"]
            assert (resolved["id"], resolved["imageTags"]) == (image["id"], image["imageTags"])
            assert resolved["repository"]["registryName"] == name


@pytest.mark.parametrize(
    "node_id",
    [
        global_id("Image", "garbage"),
        global_id("Image", "ecr-public/"),
        global_id("Image", f"ecr-public/{ACCOUNT}/{US}/{SHARED}"),
        global_id("Repository", "ecr-public/x"),
        global_id("Repository", "ecr-public/"),
        global_id("Repository", f"ecr-public/{ACCOUNT}/{US}/no/such"),
        global_id("Repository", "nothing-here"),
    ],
)
def test_malformed_or_unknown_ids_are_null(client: TestClient, node_id: str) -> None:
    assert data(client, "query($id: ID!) { node(id: $id) { id } }", id=node_id) == {"node": None}


def test_an_id_of_no_type_is_still_a_clean_error(client: TestClient) -> None:
    query = "query($id: ID!) { node(id: $id) { id } }"
    assert error_code(client, query, id=global_id("Nope", f"ecr-public/{ACCOUNT}/{US}/app/web")) == (
        "InvalidParameterException"
    )


DESCRIBE = """query($type: RegistryType! = ECR, $ids: [ImageIdInput!], $filter: DescribeImagesFilter, $max: Int,
  $token: String) {
  describeImages(registryType: $type, region: "us-east-1", repositoryName: "app/web", imageIds: $ids,
                 filter: $filter, maxResults: $max, nextToken: $token) {
    nextToken imageDetails { registryType imageDigest imageTags } } }"""


def describe_all(client: TestClient, **variables: Any) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = data(client, DESCRIBE, token=token, **variables)["describeImages"]
        pages.append([d["imageDigest"] for d in page["imageDetails"]])
        if not (token := page["nextToken"]):
            return pages


def aws_pages(client: Any, **options: Any) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = client.describe_images(repositoryName="app/web", **options, **({"nextToken": token} if token else {}))
        pages.append([d["imageDigest"] for d in page["imageDetails"]])
        if not (token := page.get("nextToken")):
            return pages


def test_describe_images_answers_private_ecr_unless_asked_for_public(client: TestClient, aws: Any) -> None:
    without_type = DESCRIBE.replace("registryType: $type, ", "").replace("$type: RegistryType! = ECR, ", "")
    private = data(client, without_type)["describeImages"]["imageDetails"]
    assert [d["imageTags"] for d in private] == [["private-0"], ["private-1"], ["private-2"]]
    assert {d["registryType"] for d in private} == {"ECR"}
    public = data(client, DESCRIBE, type="ECR_PUBLIC")["describeImages"]["imageDetails"]
    assert [d["imageTags"] for d in public] == [["public-0"], ["public-1"]]
    assert {d["registryType"] for d in public} == {"ECR_PUBLIC"}

    # Page by page, each answers what the AWS API of its registry answers.
    ecr, ecr_public = aws("ecr", account=ACCOUNT), aws("ecr-public", account=ACCOUNT)
    for size in (1, 2):
        assert describe_all(client, max=size) == aws_pages(ecr, maxResults=size)
        assert describe_all(client, type="ECR_PUBLIC", max=size) == aws_pages(ecr_public, maxResults=size)

    by_tag = data(client, DESCRIBE, type="ECR_PUBLIC", ids=[{"imageTag": "public-1"}])["describeImages"]
    assert [d["imageTags"] for d in by_tag["imageDetails"]] == [["public-1"]]
    assert error_code(client, DESCRIBE, type="ECR_PUBLIC", ids=[{"imageTag": "private-1"}]) == (
        "ImageNotFoundException"
    )
    # ECR Public's DescribeImages takes no filter; a token of one registry is not the other's.
    assert error_code(client, DESCRIBE, type="ECR_PUBLIC", filter={"tagStatus": "TAGGED"}) == (
        "InvalidParameterException"
    )
    token = data(client, DESCRIBE, max=1)["describeImages"]["nextToken"]
    assert error_code(client, DESCRIBE, type="ECR_PUBLIC", token=token) == "InvalidParameterException"


def test_describe_images_of_a_public_only_repository(client: TestClient, admin: AdminClient, apply: Any) -> None:
    admin.put_images(ACCOUNT, US, "tools/cli", [{"imageTags": ["v1"]}], registry_type="ecr-public")
    apply()
    query = DESCRIBE.replace('"app/web"', '"tools/cli"')
    assert error_code(client, query) == "RepositoryNotFoundException"  # not in private ECR
    found = data(client, query, type="ECR_PUBLIC")["describeImages"]["imageDetails"]
    assert [d["imageTags"] for d in found] == [["v1"]]


def test_events_and_sync_runs_are_their_own(client: TestClient, engine: Engine, aws: Any, apply: Any) -> None:
    """Removing the shared digest from the public repository leaves the private image as it was."""
    aws("ecr-public", account=ACCOUNT).batch_delete_image(repositoryName="app/web", imageIds=[{"imageDigest": SHARED}])
    apply()
    query = """{ images(filter: {digests: ["%s"], includeRemoved: true}) { nodes { registryType removedAt } } }"""
    removed = {n["registryType"]: n["removedAt"] for n in data(client, query % SHARED)["images"]["nodes"]}
    assert removed["ECR"] is None and removed["ECR_PUBLIC"] is not None

    with engine.connect() as connection:
        events = connection.execute(
            text("SELECT registry_type, type FROM image_events WHERE image_digest = :d ORDER BY id"), {"d": SHARED}
        ).all()
        runs = connection.execute(
            text("SELECT DISTINCT registry_name FROM sync_runs WHERE repository_name = 'app/web' OR "
                 "repository_name IS NULL ORDER BY 1")
        ).all()  # fmt: skip
    assert sorted(tuple(e) for e in events) == [
        ("ecr", "image.added"),
        ("ecr-public", "image.added"),
        ("ecr-public", "image.removed"),
    ]
    assert [r[0] for r in runs] == ["private", "public"]
