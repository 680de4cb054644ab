"""The ECR emulator, pinned with real boto3 calls over HTTP against the AWS documentation."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from inventory.testing import AdminClient

ACCOUNT, OTHER = "111111111111", "222222222222"
REGION = "us-east-1"
NO_VALIDATION = Config(parameter_validation=False, retries={"mode": "standard", "total_max_attempts": 1})
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def images(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"imageTags": [f"t{i}"], **fields} for i in range(n)]


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def all_digests(client: Any, **options: Any) -> list[str]:
    pages = client.get_paginator("describe_images").paginate(**options)
    return [d["imageDigest"] for page in pages for d in page["imageDetails"]]


@pytest.fixture
def ecr(aws: Any, admin: AdminClient) -> Any:
    return aws("ecr", account=ACCOUNT)


@pytest.fixture
def unchecked(aws: Any, admin: AdminClient) -> Any:
    """A client that lets bad parameters through to the server (and does not retry)."""
    return aws("ecr", account=ACCOUNT, config=NO_VALIDATION)


# DescribeImages paging ------------------------------------------------------------


def test_describe_images_defaults_to_pages_of_100(ecr: Any, admin: AdminClient) -> None:
    pushed = admin.put_images(ACCOUNT, REGION, "app/web", images(250))
    first = ecr.describe_images(repositoryName="app/web")
    assert len(first["imageDetails"]) == 100
    assert first["nextToken"]
    second = ecr.describe_images(repositoryName="app/web", nextToken=first["nextToken"])
    third = ecr.describe_images(repositoryName="app/web", nextToken=second["nextToken"])
    assert [len(p["imageDetails"]) for p in (second, third)] == [100, 50]
    assert "nextToken" not in third
    seen = [d["imageDigest"] for p in (first, second, third) for d in p["imageDetails"]]
    assert seen == pushed


def test_paginator_pages_a_large_repository_at_1000(ecr: Any, admin: AdminClient) -> None:
    pushed = admin.put_images(ACCOUNT, REGION, "big", images(2500))
    pages = list(
        ecr.get_paginator("describe_images").paginate(repositoryName="big", PaginationConfig={"PageSize": 1000})
    )
    assert [len(p["imageDetails"]) for p in pages] == [1000, 1000, 500]
    assert [d["imageDigest"] for p in pages for d in p["imageDetails"]] == pushed


@pytest.mark.parametrize("max_results", [0, 1001, -1])
def test_max_results_outside_1_to_1000_is_invalid(unchecked: Any, admin: AdminClient, max_results: int) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(3))
    with pytest.raises(ClientError) as exc:
        unchecked.describe_images(repositoryName="app/web", maxResults=max_results)
    assert error_code(exc) == "InvalidParameterException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_max_results_bounds_are_accepted(ecr: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(3))
    assert len(ecr.describe_images(repositoryName="app/web", maxResults=1)["imageDetails"]) == 1
    assert len(ecr.describe_images(repositoryName="app/web", maxResults=1000)["imageDetails"]) == 3


def test_next_token_is_bound_to_its_request(unchecked: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(5))
    admin.put_images(ACCOUNT, REGION, "app/api", images(5))
    token = unchecked.describe_images(repositoryName="app/web", maxResults=2)["nextToken"]
    for other in (
        {"repositoryName": "app/api"},
        {"repositoryName": "app/web", "filter": {"tagStatus": "TAGGED"}},
    ):
        with pytest.raises(ClientError) as exc:
            unchecked.describe_images(nextToken=token, **other)
        assert error_code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        unchecked.describe_images(repositoryName="app/web", nextToken="not-a-token")
    assert error_code(exc) == "InvalidParameterException"


def test_paging_is_stable_when_images_come_and_go(ecr: Any, admin: AdminClient) -> None:
    pushed = admin.put_images(ACCOUNT, REGION, "app/web", images(6))
    first = ecr.describe_images(repositoryName="app/web", maxResults=3)
    ecr.batch_delete_image(repositoryName="app/web", imageIds=[{"imageDigest": pushed[0]}])
    ecr.batch_delete_image(repositoryName="app/web", imageIds=[{"imageDigest": pushed[4]}])
    ecr.put_image(repositoryName="app/web", imageManifest='{"schemaVersion": 2}', imageTag="new")
    rest = all_digests(ecr, repositoryName="app/web", PaginationConfig={"StartingToken": first["nextToken"]})
    assert [d["imageDigest"] for d in first["imageDetails"]] == pushed[:3]
    assert rest[:2] == [pushed[3], pushed[5]]  # the survivors, once each; then the new image
    assert len(rest) == 3


# imageIds -----------------------------------------------------------------------


def test_image_ids_find_by_digest_and_tag(ecr: Any, admin: AdminClient) -> None:
    pushed = admin.put_images(ACCOUNT, REGION, "app/web", images(3))
    found = ecr.describe_images(repositoryName="app/web", imageIds=[{"imageDigest": pushed[2]}, {"imageTag": "t0"}])
    assert [d["imageDigest"] for d in found["imageDetails"]] == [pushed[2], pushed[0]]
    assert "nextToken" not in found


@pytest.mark.parametrize("paging", [{"maxResults": 5}, {"nextToken": "abc"}])
def test_image_ids_do_not_combine_with_paging(unchecked: Any, admin: AdminClient, paging: dict[str, Any]) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(3))
    with pytest.raises(ClientError) as exc:
        unchecked.describe_images(repositoryName="app/web", imageIds=[{"imageTag": "t0"}], **paging)
    assert error_code(exc) == "InvalidParameterException"


@pytest.mark.parametrize("count", [0, 101])
def test_image_ids_take_1_to_100_ids(unchecked: Any, admin: AdminClient, count: int) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(3))
    ids = [{"imageTag": "t0"}] * count
    with pytest.raises(ClientError) as exc:
        unchecked.describe_images(repositoryName="app/web", imageIds=ids)
    assert error_code(exc) == "InvalidParameterException"


def test_unknown_image_id_is_image_not_found(ecr: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName="app/web", imageIds=[{"imageTag": "missing"}])
    assert error_code(exc) == "ImageNotFoundException"


# names, ids, repositories ---------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"repositoryName": "Upper/Case"},
        {"repositoryName": "a"},
        {"repositoryName": "trailing-/x"},
        {"repositoryName": "app/web", "registryId": "12345"},
        {"repositoryName": "app/web", "registryId": "abcdefghijkl"},
    ],
)
def test_name_and_registry_id_patterns(unchecked: Any, admin: AdminClient, options: dict[str, Any]) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    with pytest.raises(ClientError) as exc:
        unchecked.describe_images(**options)
    assert error_code(exc) == "InvalidParameterException"


def test_missing_repository_is_repository_not_found(ecr: Any, admin: AdminClient) -> None:
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName="no/such-repo")
    assert error_code(exc) == "RepositoryNotFoundException"
    assert "no/such-repo" in exc.value.response["Error"]["Message"]


def test_describe_repositories_pages_and_validates(aws: Any, admin: AdminClient) -> None:
    ecr = aws("ecr", account=ACCOUNT, config=NO_VALIDATION)
    for i in range(250):
        ecr.create_repository(repositoryName=f"team/repo-{i:03}")
    first = ecr.describe_repositories()
    assert len(first["repositories"]) == 100
    pages = list(ecr.get_paginator("describe_repositories").paginate())
    names = [r["repositoryName"] for p in pages for r in p["repositories"]]
    assert [len(p["repositories"]) for p in pages] == [100, 100, 50]
    assert names == [f"team/repo-{i:03}" for i in range(250)]
    repository = pages[0]["repositories"][0]
    assert repository["repositoryUri"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team/repo-000"
    assert repository["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/repo-000"
    for bad in ({"maxResults": 1001}, {"repositoryNames": ["team/repo-001"], "maxResults": 5}):
        with pytest.raises(ClientError) as exc:
            ecr.describe_repositories(**bad)
        assert error_code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(repositoryNames=["team/absent"])
    assert error_code(exc) == "RepositoryNotFoundException"


# filters ----------------------------------------------------------------------------


@pytest.fixture
def mixed(admin: AdminClient) -> dict[str, list[str]]:
    """Two tagged active, one untagged active, one tagged archived, one untagged archived."""
    tagged = admin.put_images(ACCOUNT, REGION, "app/web", images(2))
    untagged = admin.put_images(ACCOUNT, REGION, "app/web", [{"imageDigest": "sha256:" + "1" * 64}])
    archived = admin.put_images(
        ACCOUNT, REGION, "app/web",
        [{"imageDigest": "sha256:" + "2" * 64, "imageTags": ["old"], "imageStatus": "ARCHIVED"},
         {"imageDigest": "sha256:" + "3" * 64, "imageStatus": "ARCHIVED"}],
    )  # fmt: skip
    return {"tagged": tagged, "untagged": untagged, "archived": archived}


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        (None, ["tagged", "untagged"]),
        ({"tagStatus": "TAGGED"}, ["tagged"]),
        ({"tagStatus": "UNTAGGED"}, ["untagged"]),
        ({"imageStatus": "ARCHIVED"}, ["archived"]),
        ({"tagStatus": "TAGGED", "imageStatus": "ARCHIVED"}, ["archived:tagged"]),
        ({"tagStatus": "ANY", "imageStatus": "ANY"}, ["tagged", "untagged", "archived"]),
    ],
)
def test_filters(ecr: Any, mixed: dict[str, list[str]], filter_: Any, expected: list[str]) -> None:
    options = {"filter": filter_} if filter_ else {}
    want = []
    for group in expected:
        want += mixed["archived"][:1] if group == "archived:tagged" else mixed[group]
    assert sorted(all_digests(ecr, repositoryName="app/web", **options)) == sorted(want)


def test_invalid_filter_values(unchecked: Any, mixed: dict[str, list[str]]) -> None:
    for bad in ({"tagStatus": "SOME"}, {"imageStatus": "GONE"}):
        with pytest.raises(ClientError) as exc:
            unchecked.describe_images(repositoryName="app/web", filter=bad)
        assert error_code(exc) == "InvalidParameterException"


# fields set through the admin API -----------------------------------------------------


def test_admin_sets_what_the_public_api_cannot(ecr: Any, admin: AdminClient) -> None:
    (digest,) = admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    admin.set_image(
        ACCOUNT, REGION, "app/web", digest,
        imageScanStatus={"status": "COMPLETE", "description": "done"},
        imageScanFindingsSummary={
            "imageScanCompletedAt": "2026-03-01T10:00:00Z",
            "vulnerabilitySourceUpdatedAt": "2026-02-28T00:00:00Z",
            "findingSeverityCounts": {"CRITICAL": 2, "LOW": 7},
        },
        imageStatus="ARCHIVED", lastArchivedAt="2026-04-01T00:00:00Z",
        lastActivatedAt="2026-03-15T00:00:00Z", lastRecordedPullTime="2026-03-20T12:30:00Z",
        imagePushedAt="2025-12-24T08:00:00Z", imageSizeInBytes=3_500_000_000,
    )  # fmt: skip
    (detail,) = ecr.describe_images(repositoryName="app/web", imageIds=[{"imageDigest": digest}])["imageDetails"]
    assert detail["imageScanStatus"] == {"status": "COMPLETE", "description": "done"}
    summary = detail["imageScanFindingsSummary"]
    assert summary["findingSeverityCounts"] == {"CRITICAL": 2, "LOW": 7}
    assert summary["imageScanCompletedAt"] == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert detail["imageStatus"] == "ARCHIVED"
    assert detail["lastArchivedAt"] == datetime(2026, 4, 1, tzinfo=UTC)
    assert detail["lastActivatedAt"] == datetime(2026, 3, 15, tzinfo=UTC)
    assert detail["lastRecordedPullTime"] == datetime(2026, 3, 20, 12, 30, tzinfo=UTC)
    assert detail["imagePushedAt"] == datetime(2025, 12, 24, 8, tzinfo=UTC)
    assert detail["imageSizeInBytes"] == 3_500_000_000
    assert all_digests(ecr, repositoryName="app/web") == []  # archived: not listed by default


def test_admin_refuses_unknown_fields(admin: AdminClient) -> None:
    (digest,) = admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    with pytest.raises(RuntimeError, match="unknown image fields: colour"):
        admin.set_image(ACCOUNT, REGION, "app/web", digest, colour="red")


# ECR Public -----------------------------------------------------------------------------


def test_ecr_public_has_its_own_field_set(aws: Any, admin: AdminClient) -> None:
    public = aws("ecr-public", account=ACCOUNT)
    public.create_repository(repositoryName="tools/cli")
    digests = admin.put_images(
        ACCOUNT, REGION, "tools/cli", images(3, imageScanStatus={"status": "COMPLETE"}),
        registry_type="ecr-public",
    )  # fmt: skip
    first = public.describe_images(repositoryName="tools/cli", maxResults=2)
    rest = public.describe_images(repositoryName="tools/cli", nextToken=first["nextToken"])
    details = first["imageDetails"] + rest["imageDetails"]
    assert [d["imageDigest"] for d in details] == digests
    assert "nextToken" not in rest
    assert set(details[0]) == {
        "registryId", "repositoryName", "imageDigest", "imageTags", "imageSizeInBytes",
        "imagePushedAt", "imageManifestMediaType", "artifactMediaType",
    } - {"artifactMediaType"}  # fmt: skip
    (repository,) = public.describe_repositories()["repositories"]
    assert repository["repositoryUri"].startswith("public.ecr.aws/")
    assert repository["repositoryArn"] == f"arn:aws:ecr-public::{ACCOUNT}:repository/tools/cli"
    # private ECR in the same account and region does not see it
    with pytest.raises(ClientError) as exc:
        aws("ecr", account=ACCOUNT).describe_images(repositoryName="tools/cli")
    assert error_code(exc) == "RepositoryNotFoundException"


# accounts --------------------------------------------------------------------------------


def test_assumed_roles_act_as_their_account(aws: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "only/in-first", images(1))
    admin.put_images(OTHER, REGION, "only/in-second", images(2))
    for account, name in ((ACCOUNT, "only/in-first"), (OTHER, "only/in-second")):
        assert aws("sts", account=account).get_caller_identity()["Account"] == account
        repositories = aws("ecr", account=account).describe_repositories()["repositories"]
        assert [r["repositoryName"] for r in repositories] == [name]
        assert repositories[0]["registryId"] == account
    assert aws("sts").get_caller_identity()["Account"] == "123456789012"
    second_from_first = aws("ecr", account=ACCOUNT).describe_images(registryId=OTHER, repositoryName="only/in-second")
    assert len(second_from_first["imageDetails"]) == 2


def test_regions_are_separate_registries(aws: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, "eu-west-1", "eu/only", images(1))
    assert aws("ecr", account=ACCOUNT, region="us-east-1").describe_repositories()["repositories"] == []
    eu = aws("ecr", account=ACCOUNT, region="eu-west-1").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in eu] == ["eu/only"]


# faults ----------------------------------------------------------------------------------


def test_throttle_next_n_calls(aws: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    ecr = aws("ecr", account=ACCOUNT, config=NO_RETRIES)
    admin.fault("throttle", operation="DescribeImages", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            ecr.describe_images(repositoryName="app/web")
        assert error_code(exc) == "ThrottlingException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(ecr.describe_images(repositoryName="app/web")["imageDetails"]) == 1


def test_throttling_is_retried_by_standard_mode(aws: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    ecr = aws("ecr", account=ACCOUNT, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    before = admin.calls().get("DescribeImages", 0)
    admin.fault("throttle", operation="DescribeImages", count=2)
    response = ecr.describe_images(repositoryName="app/web")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert admin.calls()["DescribeImages"] - before == 3


def test_server_exception(aws: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    ecr = aws("ecr", account=ACCOUNT, config=NO_RETRIES)
    admin.fault("server_error", operation="DescribeImages", count=1)
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName="app/web")
    assert error_code(exc) == "ServerException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_denied_account(aws: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(1))
    admin.put_images(OTHER, REGION, "app/web", images(1))
    admin.fault("deny", registryId=OTHER)
    with pytest.raises(ClientError) as exc:
        aws("ecr", account=OTHER).describe_repositories()
    assert error_code(exc) == "AccessDeniedException"
    assert len(aws("ecr", account=ACCOUNT).describe_repositories()["repositories"]) == 1
    admin.clear_faults()
    assert len(aws("ecr", account=OTHER).describe_repositories()["repositories"]) == 1


def test_expired_next_token(ecr: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(5))
    token = ecr.describe_images(repositoryName="app/web", maxResults=2)["nextToken"]
    assert admin.fault("expire_tokens")["expired"] >= 1
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName="app/web", nextToken=token, maxResults=2)
    assert error_code(exc) == "InvalidParameterException"
    assert "expired" in exc.value.response["Error"]["Message"]


def test_repository_deleted_between_pages(ecr: Any, admin: AdminClient) -> None:
    admin.put_images(ACCOUNT, REGION, "app/web", images(5))
    admin.fault("delete_repository_after_page", registryId=ACCOUNT, region=REGION, repositoryName="app/web")
    first = ecr.describe_images(repositoryName="app/web", maxResults=2)
    assert len(first["imageDetails"]) == 2
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName="app/web", nextToken=first["nextToken"], maxResults=2)
    assert error_code(exc) == "RepositoryNotFoundException"


# the write API -----------------------------------------------------------------------------


def test_put_image_digests_the_manifest_and_moves_tags(ecr: Any, admin: AdminClient) -> None:
    ecr.create_repository(repositoryName="app/web")
    manifests = [json.dumps({"schemaVersion": 2, "layers": [{"size": 10 + i}]}) for i in range(2)]
    for manifest in manifests:
        ecr.put_image(repositoryName="app/web", imageManifest=manifest, imageTag="latest")
    digests = ["sha256:" + hashlib.sha256(m.encode()).hexdigest() for m in manifests]
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName="app/web")["imageDetails"]}
    assert set(details) == set(digests)
    assert "imageTags" not in details[digests[0]]  # the tag moved to the newer image
    assert details[digests[1]]["imageTags"] == ["latest"]
    assert details[digests[1]]["imageSizeInBytes"] == 11
    deleted = ecr.batch_delete_image(repositoryName="app/web", imageIds=[{"imageTag": "latest"}])
    assert deleted["imageIds"] == [{"imageDigest": digests[1], "imageTag": "latest"}]
    assert [d["imageDigest"] for d in ecr.describe_images(repositoryName="app/web")["imageDetails"]] == [digests[0]]


def test_rate_limit_fault_throttles_one_account_beyond_its_rate(aws: Any, admin: AdminClient) -> None:
    for account in (ACCOUNT, OTHER):
        admin.put_images(account, REGION, "app/web", images(1))
    admin.fault("rate_limit", registryId=ACCOUNT, perSecond=3)
    ecr = aws("ecr", config=NO_RETRIES)
    codes = []
    for _ in range(5):
        try:
            ecr.describe_images(registryId=ACCOUNT, repositoryName="app/web")
            codes.append("ok")
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    assert codes[:3] == ["ok"] * 3 and codes[3:] == ["ThrottlingException"] * 2
    for _ in range(5):  # another account is not limited
        assert ecr.describe_images(registryId=OTHER, repositoryName="app/web")["imageDetails"]
