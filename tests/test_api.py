"""The GraphQL API, on an inventory synced from the emulator (real sync, real PostgreSQL, ASGI app)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from graphql_client import data, error_code, gql
from sqlalchemy import create_engine, event, text
from starlette.testclient import TestClient

from inventory.api.app import async_engine, create_app
from inventory.api.schema import MAX_ALIASES, schema
from inventory.cli import main
from inventory.testing import AdminClient, Emulator

PROD, STAGING = "111111111111", "222222222222"
US, EU = "us-east-1", "eu-west-1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def config_text(endpoint: str) -> str:
    blocks = []
    for name, account, regions, kind in (("prod", PROD, [US, EU], "ecr"), ("staging", STAGING, [US], "ecr"),
                                         ("public", PROD, [US], "ecr-public")):  # fmt: skip
        blocks.append(
            f'[[registries]]\nname = "{name}"\ntype = "{kind}"\naccount_id = "{account}"\n'
            f"regions = {regions!r}\n".replace("'", '"')
            + f'role_arn = "arn:aws:iam::{account}:role/reader"\nendpoint_url = "{endpoint}"\n'
        )
    return "\n".join(blocks)


def images(prefix: str, n: int, start: int = 0, **fields: Any) -> list[dict[str, Any]]:
    return [
        {"imageTags": [f"{prefix}-{i}"] if i % 3 else [],
         "imagePushedAt": (T0 + timedelta(hours=start + i)).isoformat(), "imageSizeInBytes": 1000 * (i + 1), **fields}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def synced(admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """prod: app/web (7), app/api (3) in us-east-1, app/web (2) in eu-west-1; staging: app/web (2); public: 2."""
    admin.put_images(PROD, US, "app/web", images("web", 7))
    admin.put_images(PROD, US, "app/api", images("api", 3, start=100))
    admin.put_images(PROD, EU, "app/web", images("eu", 2, start=200))
    admin.put_images(STAGING, US, "app/web", images("stg", 2, start=300))
    admin.put_images(PROD, US, "tools/cli", images("cli", 2, start=400), registry_type="ecr-public")
    digest = admin.put_images(PROD, US, "app/web", images("web", 7))[3]
    admin.set_image(
        PROD, US, "app/web", digest,
        imageTags=["prod", "v3"], imageSizeInBytes=5_000_000_000, imageStatus="ARCHIVED",
        lastArchivedAt="2026-05-01T00:00:00Z", lastActivatedAt="2026-04-01T00:00:00Z",
        imageScanStatus={"status": "COMPLETE", "description": "done"},
        imageScanFindingsSummary={"imageScanCompletedAt": "2026-02-01T00:00:00Z",
                                  "vulnerabilitySourceUpdatedAt": "2026-01-31T00:00:00Z",
                                  "findingSeverityCounts": {"CRITICAL": 2, "LOW": 5}},
        lastRecordedPullTime="2026-06-01T12:00:00Z", subjectManifestDigest="sha256:" + "e" * 64,
        artifactMediaType="application/vnd.oci.image.config.v1+json",
    )  # fmt: skip
    config = tmp_path / "inventory.toml"
    config.write_text(config_text(emulator.url))
    for key, value in {"INVENTORY_DATABASE_URL": db_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["apply", "-c", str(config), "--auto-approve"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db_url


@pytest.fixture
def client(synced: str) -> Iterator[TestClient]:
    with TestClient(create_app(async_engine(synced), allow_anonymous=True)) as test_client:
        yield test_client


IMAGES = """
query($first: Int, $after: String, $filter: ImageFilter, $orderBy: ImageOrder! = PUSHED_AT) {
  images(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    pageInfo { hasNextPage endCursor }
    nextToken
    edges { cursor node { imageDigest } }
    nodes { registryId region repositoryName imageDigest imageTags imagePushedAt imageSizeInBytes }
  }
}
"""


def walk(client: TestClient, first: int, **variables: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = data(client, IMAGES, first=first, after=after, **variables)["images"]
        seen += page["nodes"]
        assert [e["node"]["imageDigest"] for e in page["edges"]] == [n["imageDigest"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            assert page["nextToken"] is None
            return seen
        assert page["nextToken"] == page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["nextToken"]


def test_images_are_paged_newest_first_each_once(client: TestClient) -> None:
    everything = walk(client, 1000)
    assert len(everything) == 16  # the archived image too: the search's imageStatus is ANY by default
    pushed = [n["imagePushedAt"] for n in everything]
    assert pushed == sorted(pushed, reverse=True)
    for first in (1, 2, 4):
        assert walk(client, first) == everything
    by_size = walk(client, 3, orderBy="SIZE")
    assert [n["imageSizeInBytes"] for n in by_size] == sorted((n["imageSizeInBytes"] for n in everything), reverse=True)
    assert by_size[0]["imageSizeInBytes"] == 5_000_000_000  # a 64-bit Long


def test_filters(client: TestClient) -> None:
    def digests(**filter_: Any) -> set[tuple[str, ...]]:
        return {(n["registryId"], n["region"], n["repositoryName"], n["imageDigest"])
                for n in walk(client, 100, filter=filter_)}  # fmt: skip

    everything = digests()
    assert len(digests(registryIds=[STAGING])) == 2
    assert len(digests(regions=[EU])) == 2
    assert len(digests(repositoryNames=["app/*"])) == 14  # prod us-east-1 10, eu-west-1 2, staging 2
    assert len(digests(repositoryNames=["tools/cl?"])) == 2
    assert len(digests(tags=["prod", "nothing"])) == 1
    assert digests(tagStatus="UNTAGGED") | digests(tagStatus="TAGGED") == everything
    assert not digests(tagStatus="UNTAGGED") & digests(tagStatus="TAGGED")
    assert len(digests(imageStatus="ARCHIVED")) == 1
    assert len(digests(minSeverity="CRITICAL")) == 1
    assert len(digests(minSeverity="LOW")) == 1
    assert digests(minSeverity="UNDEFINED") == digests(minSeverity="LOW")
    after = (T0 + timedelta(hours=99)).isoformat()
    assert len(digests(pushedAfter=after)) == 9  # api 3, eu 2, staging 2, public 2
    assert digests(pushedAfter=after, pushedBefore=(T0 + timedelta(hours=250)).isoformat()) == digests(
        repositoryNames=["app/api"]
    ) | digests(regions=[EU])
    (one,) = digests(tags=["prod"])
    assert digests(digests=[one[3]], regions=[US]) == {one}


def prod_ecr(emulator: Emulator) -> Any:
    """An ECR client of the emulator acting as the prod account."""
    sts = boto3.client("sts", endpoint_url=emulator.url, region_name=US)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{PROD}:role/r", RoleSessionName="tests")["Credentials"]
    return boto3.client(
        "ecr", endpoint_url=emulator.url, region_name=US, aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"],
    )  # fmt: skip


def test_every_field_round_trips_from_the_emulator(client: TestClient, emulator: Emulator) -> None:
    ecr = prod_ecr(emulator)
    details = ecr.describe_images(repositoryName="app/web", filter={"tagStatus": "ANY", "imageStatus": "ANY"})
    query = """query($id: String!, $d: String!) { image(registryId: $id, region: "us-east-1",
      repositoryName: "app/web", imageDigest: $d) { registryId repositoryName imageDigest imageTags imageSizeInBytes
      imagePushedAt imageManifestMediaType artifactMediaType imageScanStatus { status description }
      imageScanFindingsSummary { imageScanCompletedAt vulnerabilitySourceUpdatedAt findingSeverityCounts
      { severity count } } lastRecordedPullTime subjectManifestDigest imageStatus lastArchivedAt lastActivatedAt
      repository { repositoryName registryName registryType imageCount } } }"""

    def iso(value: Any) -> Any:
        return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value

    for detail in details["imageDetails"]:
        image = data(client, query, id=PROD, d=detail["imageDigest"])["image"]
        summary = detail.get("imageScanFindingsSummary")
        expected = {
            "registryId": detail["registryId"], "repositoryName": detail["repositoryName"],
            "imageDigest": detail["imageDigest"], "imageTags": sorted(detail.get("imageTags", [])),
            "imageSizeInBytes": detail["imageSizeInBytes"], "imagePushedAt": iso(detail["imagePushedAt"]),
            "imageManifestMediaType": detail["imageManifestMediaType"],
            "artifactMediaType": detail.get("artifactMediaType"),
            "imageScanStatus": detail.get("imageScanStatus"),
            "imageScanFindingsSummary": None if summary is None else {
                "imageScanCompletedAt": iso(summary["imageScanCompletedAt"]),
                "vulnerabilitySourceUpdatedAt": iso(summary["vulnerabilitySourceUpdatedAt"]),
                "findingSeverityCounts": [{"severity": k, "count": v}
                                          for k, v in sorted(summary["findingSeverityCounts"].items())],
            },
            "lastRecordedPullTime": iso(detail.get("lastRecordedPullTime")),
            "subjectManifestDigest": detail.get("subjectManifestDigest"), "imageStatus": detail.get("imageStatus"),
            "lastArchivedAt": iso(detail.get("lastArchivedAt")), "lastActivatedAt": iso(detail.get("lastActivatedAt")),
            "repository": {"repositoryName": "app/web", "registryName": "prod", "registryType": "ECR",
                           "imageCount": 7},
        }  # fmt: skip
        assert image == expected


@pytest.mark.parametrize("first", [0, -1, 1001])
def test_first_outside_1_to_1000_is_an_error(client: TestClient, first: int) -> None:
    assert error_code(client, IMAGES, first=first) == "InvalidParameterException"


def test_cursors_are_bound_to_their_query(client: TestClient) -> None:
    page = data(client, IMAGES, first=2)["images"]
    cursor = page["nextToken"]
    assert error_code(client, IMAGES, first=2, after=cursor, filter={"regions": [US]}) == "InvalidParameterException"
    assert error_code(client, IMAGES, first=2, after=cursor, orderBy="SIZE") == "InvalidParameterException"
    assert error_code(client, IMAGES, first=2, after="garbage!") == "InvalidParameterException"
    assert data(client, IMAGES, first=2, after=cursor)["images"]["nodes"]  # the same query goes on


def test_total_count_and_repositories(client: TestClient) -> None:
    counted = data(client, "{ images(first: 1) { totalCount } repositories(first: 2) { totalCount nextToken "
                           "nodes { repositoryName registryType imageCount } } }")  # fmt: skip
    assert counted["images"]["totalCount"] == 16
    assert counted["repositories"]["totalCount"] == 5
    assert counted["repositories"]["nextToken"] is not None
    registries = data(client, "{ registries { name type accountId regions repositories(first: 10) { nodes "
                              "{ repositoryName } } } }")["registries"]  # fmt: skip
    assert [(r["name"], r["type"]) for r in registries] == [("prod", "ECR"), ("public", "ECR_PUBLIC"),
                                                             ("staging", "ECR")]  # fmt: skip
    assert sorted(n["repositoryName"] for n in registries[0]["repositories"]["nodes"]) == ["app/api", "app/web",
                                                                                           "app/web"]  # fmt: skip


def test_node_round_trips_global_ids(client: TestClient) -> None:
    found = data(client, '{ repository(registryId: "111111111111", region: "us-east-1", repositoryName: "app/web")'
                         " { id images(first: 1) { nodes { id imageDigest } } } registries { id name } }")  # fmt: skip
    repository, image = found["repository"], found["repository"]["images"]["nodes"][0]
    node = "query($id: ID!) { node(id: $id) { id ... on Image { imageDigest } ... on Repository { repositoryName }" \
           " ... on Registry { name } } }"  # fmt: skip
    assert data(client, node, id=image["id"])["node"]["imageDigest"] == image["imageDigest"]
    assert data(client, node, id=repository["id"])["node"]["repositoryName"] == "app/web"
    assert data(client, node, id=found["registries"][0]["id"])["node"]["name"] == "prod"


DESCRIBE = """query($registryId: String, $region: String!, $name: String!, $ids: [ImageIdInput!],
  $filter: DescribeImagesFilter, $max: Int, $token: String) {
  describeImages(registryId: $registryId, region: $region, repositoryName: $name, imageIds: $ids, filter: $filter,
                 maxResults: $max, nextToken: $token) { nextToken imageDetails { imageDigest imageTags } } }"""


def test_describe_images_pages_like_the_emulator(client: TestClient, emulator: Emulator) -> None:
    ecr = prod_ecr(emulator)
    for page_size in (1, 2, 4):
        for filter_ in (None, {"tagStatus": "TAGGED"}, {"imageStatus": "ANY"}):
            theirs, token = [], None
            while True:
                options = {"repositoryName": "app/web", "maxResults": page_size} | ({"filter": filter_} if filter_
                                                                                    else {})  # fmt: skip
                page = ecr.describe_images(**options, **({"nextToken": token} if token else {}))
                theirs.append([d["imageDigest"] for d in page["imageDetails"]])
                token = page.get("nextToken")
                if not token:
                    break
            ours, token = [], None
            while True:
                page = data(client, DESCRIBE, registryId=PROD, region=US, name="app/web", max=page_size,
                            filter=filter_, token=token)["describeImages"]  # fmt: skip
                ours.append([d["imageDigest"] for d in page["imageDetails"]])
                token = page["nextToken"]
                if not token:
                    break
            assert ours == theirs, (page_size, filter_)


def test_describe_images_errors(client: TestClient) -> None:
    def code(**variables: Any) -> str:
        return error_code(client, DESCRIBE, **{"region": US, "name": "app/api", **variables})

    assert code(max=0) == "InvalidParameterException"
    assert code(max=1001) == "InvalidParameterException"
    assert code(ids=[{"imageTag": "api-1"}], max=5) == "InvalidParameterException"
    assert code(ids=[{"imageTag": "api-1"}], token="x") == "InvalidParameterException"
    assert code(ids=[]) == "InvalidParameterException"
    assert code(ids=[{"imageTag": "api-1"}] * 101) == "InvalidParameterException"
    assert code(name="Bad_Name") == "InvalidParameterException"
    assert code(registryId="123") == "InvalidParameterException"
    assert code(name="no/such-repo") == "RepositoryNotFoundException"
    assert code(ids=[{"imageTag": "missing"}]) == "ImageNotFoundException"
    assert code(name="app/web") == "InvalidParameterException"  # in prod and staging: say which
    assert code(token="not-a-token") == "InvalidParameterException"
    found = data(client, DESCRIBE, region=US, name="app/api", ids=[{"imageTag": "api-1"}])["describeImages"]
    assert [d["imageTags"] for d in found["imageDetails"]] == [["api-1"]]
    assert found["nextToken"] is None


def test_no_n_plus_one(client: TestClient, synced: str) -> None:
    statements: list[str] = []
    counting = async_engine(synced)
    event.listen(counting.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with TestClient(create_app(counting, allow_anonymous=True)) as counted:
        nodes = data(counted, "{ images(first: 100) { nodes { repository { repositoryName imageCount } } } }")
    assert len(nodes["images"]["nodes"]) == 16
    assert len(statements) <= 3, statements  # the page, the repositories, the counts


def test_hardening(client: TestClient, synced: str) -> None:
    nested = "repository { images(first: 1) { nodes { %s } } }"
    deep = "{ images(first: 1) { nodes { " + nested % (nested % (nested % "repositoryName")) + " } } }"
    assert gql(client, deep)["errors"][0]["message"].startswith("'anonymous' exceeds maximum operation depth")
    aliases = "{ " + " ".join(f"a{i}: registries {{ name }}" for i in range(MAX_ALIASES + 1)) + " }"
    assert "aliases" in gql(client, aliases)["errors"][0]["message"]
    assert error_code(client, "{ images { nodes { nope } } }") == "GRAPHQL_VALIDATION_FAILED"
    assert client.post("/graphql", content=b"x" * (70 * 1024), headers={"content-type": "application/json"}
                       ).status_code == 413  # fmt: skip
    with TestClient(create_app(async_engine(synced), introspection=False, allow_anonymous=True)) as closed:
        assert "introspection" in gql(closed, "{ __schema { types { name } } }")["errors"][0]["message"].lower()
    assert data(client, "{ __schema { queryType { name } } }")["__schema"]["queryType"]["name"] == "Query"
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/graphql").status_code != 200  # GraphiQL only with --dev


SYNC = """
query($after: String, $filter: SyncRunFilter) {
  syncRuns(first: 3, after: $after, filter: $filter) {
    nextToken totalCount
    nodes { registryName region repositoryName status errorCode imagesSeen imagesAdded apiCalls startedAt finishedAt
            worker }
  }
  registries { name syncStatus { lastSuccessAt lastErrorCode staleSince regions { region lastSuccessAt staleSince } } }
}
"""


def test_sync_runs_and_status(client: TestClient, admin: AdminClient, synced: str, tmp_path: Path) -> None:
    first = data(client, SYNC)
    runs, after = [], None
    while True:  # pages of 3, newest first
        page = data(client, SYNC, after=after)["syncRuns"]
        runs += page["nodes"]
        if (after := page["nextToken"]) is None:
            break
    assert len(runs) == first["syncRuns"]["totalCount"] >= 4 and len(first["syncRuns"]["nodes"]) == 3
    assert [r["startedAt"] for r in runs] == sorted((r["startedAt"] for r in runs), reverse=True)
    assert all(run["status"] == "SUCCEEDED" and run["apiCalls"] > 0 and run["worker"] is None for run in runs)
    stored = data(client, "{ images(filter: {includeRemoved: true}) { totalCount } }")["images"]["totalCount"]
    assert sum(run["imagesAdded"] for run in runs) == stored
    assert all(r["syncStatus"]["staleSince"] is None and r["syncStatus"]["lastSuccessAt"] for r in first["registries"])
    synced_at = {r["name"]: r["syncStatus"]["lastSuccessAt"] for r in first["registries"]}

    admin.fault("deny", registryId=STAGING)
    result = CliRunner().invoke(main, ["apply", "-c", str(tmp_path / "inventory.toml"), "--auto-approve"])
    assert result.exit_code == 1
    after = data(client, SYNC, filter={"status": "FAILED"})
    assert [(r["registryName"], r["errorCode"]) for r in after["syncRuns"]["nodes"]] == [
        ("staging", "AccessDeniedException")
    ]
    status = {r["name"]: r["syncStatus"] for r in after["registries"]}
    assert status["staging"]["staleSince"] == synced_at["staging"]  # its rows are as of the last success
    assert status["staging"]["lastErrorCode"] == "AccessDeniedException"
    assert status["staging"]["regions"] == [{"region": US, "lastSuccessAt": synced_at["staging"],
                                             "staleSince": synced_at["staging"]}]  # fmt: skip
    assert status["prod"]["staleSince"] is None and status["prod"]["lastSuccessAt"] > synced_at["prod"]
    assert error_code(client, SYNC, after=first["syncRuns"]["nextToken"], filter={"registryName": "prod"}) == (
        "InvalidParameterException"
    )  # a cursor of another filter

    table = CliRunner().invoke(main, ["status", "-c", str(tmp_path / "inventory.toml")], env={"COLUMNS": "200"}).output
    lines = [line for line in table.splitlines() if line.startswith("│")]
    assert "staging" in lines[0] and "stale" in lines[0] and "AccessDeniedException" in lines[0], table
    assert all("fresh" in line for line in lines[1:]) and len(lines) == 4, table


def test_reads_survive_connections_the_server_dropped(client: TestClient, synced: str) -> None:
    query = "{ images(first: 1) { nodes { imageDigest } } }"
    assert data(client, query)["images"]["nodes"]  # the pool now holds a connection
    with create_engine(synced, isolation_level="AUTOCOMMIT").connect() as admin:
        dropped = admin.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).scalar_one()  # fmt: skip
    assert dropped >= 1
    assert data(client, query)["images"]["nodes"]


def test_unexpected_errors_are_masked(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from inventory.api.context import Context

    async def broken(self: Context, statement: Any) -> list[Any]:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(Context, "rows", broken)
    body = gql(client, "{ registries { name } }")
    assert body["errors"][0]["message"] == "Unexpected error."
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in str(body)


def test_schema_contract_matches_the_code() -> None:
    checked_in = (ROOT / "schema" / "schema.graphql").read_text()
    assert checked_in == str(schema) + "\n", "schema/schema.graphql is stale: run `make schema`"


def test_metrics_report_the_fleet_in_prometheus_text_format(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['inventory_images{region="us-east-1",registry="prod"}'] == 10  # app/web 7 + app/api 3
    assert samples['inventory_images{region="eu-west-1",registry="prod"}'] == 2
    assert samples['inventory_scope_syncs_total{region="us-east-1",registry="prod",status="succeeded"}'] == 2
    assert samples['inventory_region_stale{region="us-east-1",registry="staging"}'] == 0
    assert 0 <= samples['inventory_seconds_since_last_success{region="us-east-1",registry="staging"}'] < 600
    assert samples['inventory_api_calls_total{region="us-east-1",registry="prod"}'] >= 2
