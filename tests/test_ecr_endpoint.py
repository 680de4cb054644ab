"""The ECR-compatible endpoint (``/ecr``) with the real clients: boto3 and the AWS CLI, signing with inventory
access keys, against ``inventory serve``'s app over HTTP; answers compared field by field with the emulator's
own for the same repositories, and every answer held to botocore's service model.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from click.testing import CliRunner

from inventory.api.app import async_engine, create_app
from inventory.cli import main
from inventory.ecr import keys
from inventory.testing import AdminClient, Emulator

ROOT = Path(__file__).resolve().parent.parent
AWS_CLI = Path(os.environ.get("INVENTORY_TEST_AWS_CLI", ROOT / ".venv-awscli" / "bin" / "aws"))
ONE, TWO, US, EU = "111111111111", "222222222222", "us-east-1", "eu-west-1"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def config_text(endpoint: str) -> str:
    registries = (("one", "ecr", ONE, [US, EU]), ("one-public", "ecr-public", ONE, [US]), ("two", "ecr", TWO, [US]))
    return "\n".join(
        f'[[registries]]\nname = "{name}"\ntype = "{kind}"\naccount_id = "{account}"\nregions = {json.dumps(regions)}\n'
        f'role_arn = "arn:aws:iam::{account}:role/reader"\nendpoint_url = "{endpoint}"\n'
        for name, kind, account, regions in registries
    )


def images(prefix: str, n: int, **fields: Any) -> list[dict[str, Any]]:
    return [
        {"imageTags": [f"{prefix}-{i}", *(["latest"] if i == n - 1 else [])] if i % 4 != 1 else [],
         "imagePushedAt": f"2026-01-01T00:{i:02d}:00Z", "imageSizeInBytes": 1000 + i, **fields}
        for i in range(n)
    ]  # fmt: skip


class Served:
    """``inventory serve``'s app, over HTTP on a free port, on a thread of its own."""

    def __init__(self, db_url: str) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(create_app(async_engine(db_url)), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        while not self._server.started:
            assert self._thread.is_alive()
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture
def inventory(
    admin: AdminClient, emulator: Emulator, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    """Three registries synced from the emulator (private ``app/web`` in two accounts and two regions, and
    ECR Public ``app/web`` of account one), and the API serving them."""
    monkeypatch.setenv(keys.SECRET_KEY_VARIABLE, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    for key, value in {"INVENTORY_DATABASE_URL": db_url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    admin.put_images(ONE, US, "app/web", images("web", 9))
    scanned = {
        "imageScanStatus": {"status": "COMPLETE"},
        "imageScanFindingsSummary": {"findingSeverityCounts": {"HIGH": 2}},
    }
    admin.put_images(ONE, US, "app/api", images("api", 3, **scanned))
    admin.put_images(ONE, EU, "app/web", images("eu", 2))
    admin.put_images(TWO, US, "app/web", images("two", 2))
    admin.put_images(ONE, US, "app/web", images("pub", 3), registry_type="ecr-public")
    config = tmp_path / "inventory.toml"
    config.write_text(config_text(emulator.url))
    applied = CliRunner().invoke(main, ["apply", "-c", str(config), "--auto-approve"], catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
    served = Served(db_url)
    yield served
    served.stop()


def new_key(name: str, *options: str) -> dict[str, str]:
    """``inventory tokens create NAME --aws``: its two lines, as the environment they are meant for."""
    result = CliRunner().invoke(main, ["tokens", "create", name, "--aws", *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    return dict(line.split("=", 1) for line in lines)


def endpoint(served: Served, credentials: dict[str, str], service: str = "ecr", region: str = US) -> Any:
    return boto3.client(service, endpoint_url=f"{served.url}/ecr", region_name=region, config=NO_RETRIES,
                        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"])  # fmt: skip


def emulated(aws: Any, service: str = "ecr", account: str = ONE, region: str = US) -> Any:
    return aws(service, account=account, region=region)


def all_pages(client: Any, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**params):
        found += page[key]
    return tags_sorted(found)


def tags_sorted(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ECR answers an image's tags in an order of its own; the inventory keeps them as a set (sorted)."""
    return [d | {"imageTags": sorted(d["imageTags"])} if "imageTags" in d else d for d in details]


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return str(raised.value.response["Error"]["Code"])


# answers, field by field ---------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 4, 1000])
def test_describe_images_pages_are_the_emulators_answer(inventory: Served, aws: Any, page_size: int) -> None:
    ours = endpoint(inventory, new_key("reader"))
    for name in ("app/web", "app/api"):
        params = {"registryId": ONE, "repositoryName": name, "PaginationConfig": {"PageSize": page_size}}
        assert all_pages(ours, "describe_images", "imageDetails", **params) == all_pages(
            emulated(aws), "describe_images", "imageDetails", **params
        )
    one = ours.describe_images(registryId=ONE, repositoryName="app/web", maxResults=4)
    assert len(one["imageDetails"]) == 4 and one["nextToken"]
    last = ours.describe_images(registryId=ONE, repositoryName="app/web", maxResults=5, nextToken=one["nextToken"])
    assert len(last["imageDetails"]) == 5 and "nextToken" not in last  # null at the end: botocore drops it


def test_filters_image_ids_and_the_region_signed_for(inventory: Served, aws: Any) -> None:
    ours, theirs = endpoint(inventory, new_key("reader")), emulated(aws)
    for status in ("TAGGED", "UNTAGGED", "ANY"):
        params = {"registryId": ONE, "repositoryName": "app/web", "filter": {"tagStatus": status}}
        assert same_details(ours.describe_images(**params), theirs.describe_images(**params))
    ids = [{"imageTag": "latest"}, {"imageTag": "web-2"}]
    params = {"registryId": ONE, "repositoryName": "app/web", "imageIds": ids}
    assert same_details(ours.describe_images(**params), theirs.describe_images(**params))
    eu = endpoint(inventory, new_key("eu-reader"), region=EU).describe_images(registryId=ONE, repositoryName="app/web")
    assert same_details(eu, emulated(aws, region=EU).describe_images(repositoryName="app/web"))


def same_details(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    assert ours["imageDetails"], "an empty answer proves nothing"
    return tags_sorted(ours["imageDetails"]) == tags_sorted(theirs["imageDetails"])


def test_ecr_public(inventory: Served, aws: Any) -> None:
    ours, theirs = endpoint(inventory, new_key("reader"), "ecr-public"), emulated(aws, "ecr-public")
    params = {"registryId": ONE, "repositoryName": "app/web"}
    assert same_details(ours.describe_images(**params), theirs.describe_images(**params))
    assert [r["repositoryName"] for r in ours.describe_repositories(registryId=ONE)["repositories"]] == ["app/web"]


def test_describe_repositories_is_what_the_inventory_records_of_them(inventory: Served, aws: Any) -> None:
    ours = all_pages(endpoint(inventory, new_key("reader")), "describe_repositories", "repositories",
                     registryId=ONE, PaginationConfig={"PageSize": 1})  # fmt: skip
    theirs = emulated(aws).describe_repositories()["repositories"]
    recorded = ("repositoryArn", "registryId", "repositoryName", "repositoryUri", "createdAt")
    assert ours == [{k: r[k] for k in recorded} for r in sorted(theirs, key=lambda r: r["repositoryName"])]


def test_list_images_lists_each_tag_and_each_untagged_image(inventory: Served, aws: Any) -> None:
    details = emulated(aws).describe_images(repositoryName="app/web")["imageDetails"]
    expected = sorted(
        ({"imageDigest": d["imageDigest"], "imageTag": t} for d in details for t in d.get("imageTags", [])),
        key=lambda i: (i["imageDigest"], i["imageTag"]),
    ) + [{"imageDigest": d["imageDigest"]} for d in details if not d.get("imageTags")]
    ours = all_pages(endpoint(inventory, new_key("reader")), "list_images", "imageIds", registryId=ONE,
                     repositoryName="app/web", PaginationConfig={"PageSize": 2})  # fmt: skip
    assert sorted(ours, key=lambda i: (i["imageDigest"], i.get("imageTag", ""))) == sorted(
        expected, key=lambda i: (i["imageDigest"], i.get("imageTag", ""))
    )
    untagged = endpoint(inventory, new_key("other")).list_images(
        registryId=ONE, repositoryName="app/web", filter={"tagStatus": "UNTAGGED"}
    )["imageIds"]
    assert untagged == sorted(({"imageDigest": d["imageDigest"]} for d in details if not d.get("imageTags")),
                              key=lambda i: i["imageDigest"])  # fmt: skip


# what botocore's model allows ------------------------------------------------------


def _conforms(value: Any, shape: Any, where: str) -> None:
    """``value`` (wire JSON) is of ``shape``: only its members, of their types, its enums' values."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), where
        for key, item in value.items():
            assert key in shape.members, f"{where}.{key} is not a member of {shape.name}"
            _conforms(item, shape.members[key], f"{where}.{key}")
    elif kind == "list":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _conforms(item, shape.member, f"{where}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), where
        for key, item in value.items():
            _conforms(key, shape.key, where)
            _conforms(item, shape.value, f"{where}.{key}")
    elif kind == "string":
        assert isinstance(value, str), where
        assert not shape.enum or value in shape.enum, f"{where}: {value!r} not in {shape.enum}"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "timestamp":
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), where


def raw_call(
    served: Served,
    credentials: dict[str, str],
    target: str,
    params: Any,
    *,
    service: str = "ecr",
    region: str = US,
    signed_at: datetime | None = None,
    body: bytes | None = None,
) -> tuple[int, Any]:
    """One request as botocore signs it (at ``signed_at``, if given), with ``body`` as is if given."""
    request = AWSRequest(method="POST", url=f"{served.url}/ecr", data=body if body is not None else json.dumps(params),
                         headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
    signer = SigV4Auth(Credentials(credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"]), service,
                       region)  # fmt: skip
    if signed_at is None:
        signer.add_auth(request)
    else:
        import botocore.auth

        real = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: signed_at.replace(tzinfo=None)  # type: ignore[assignment]
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.get_current_datetime = real
    prepared = request.prepare()
    import urllib.request

    data = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    http = urllib.request.Request(prepared.url, data=data, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=30) as answer:
            assert answer.headers["Content-Type"] == "application/x-amz-json-1.1" and answer.headers["x-amzn-RequestId"]
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as failed:
        assert failed.headers["Content-Type"] == "application/x-amz-json-1.1" and failed.headers["x-amzn-RequestId"]
        return failed.code, json.loads(failed.read())


PRIVATE, PUBLIC = "AmazonEC2ContainerRegistry_V20150921", "SpencerFrontendService"
API, WEB = {"registryId": ONE, "repositoryName": "app/api"}, {"registryId": ONE, "repositoryName": "app/web"}


@pytest.mark.parametrize(
    ("service", "target", "operation", "params"),
    [
        ("ecr", PRIVATE, "DescribeImages", API),
        ("ecr", PRIVATE, "DescribeRepositories", {"registryId": ONE}),
        ("ecr", PRIVATE, "ListImages", WEB),
        ("ecr-public", PUBLIC, "DescribeImages", WEB),
        ("ecr-public", PUBLIC, "DescribeRepositories", {"registryId": ONE}),
    ],
)
def test_every_answer_is_of_its_operations_output_shape(
    inventory: Served, service: str, target: str, operation: str, params: dict[str, Any]
) -> None:
    status, answer = raw_call(inventory, new_key("reader"), f"{target}.{operation}", params, service=service)
    assert status == 200, answer
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    _conforms(answer, model.output_shape, operation)
    assert any(answer.values()), answer


# refusals ------------------------------------------------------------------------


def test_errors_are_ecrs(inventory: Served) -> None:
    ours = endpoint(inventory, new_key("reader"))
    assert code_of(lambda: ours.describe_images(registryId=ONE, repositoryName="app/none")) == (
        "RepositoryNotFoundException"
    )
    assert code_of(lambda: ours.describe_images(registryId=ONE, repositoryName="app/web",
                                                imageIds=[{"imageTag": "web-1"}], maxResults=5)) == (
        "InvalidParameterException"
    )  # fmt: skip
    missing = [{"imageTag": "nope"}]
    assert code_of(lambda: ours.describe_images(**WEB, imageIds=missing)) == "ImageNotFoundException"
    assert code_of(lambda: ours.describe_images(registryId=ONE, repositoryName="app/web", nextToken="junk")) == (
        "InvalidParameterException"
    )
    assert code_of(lambda: ours.describe_images(repositoryName="app/web")) == "InvalidParameterException"  # 2 accounts
    assert code_of(lambda: ours.put_image(registryId=ONE, repositoryName="app/web", imageManifest="{}")) == (
        "AccessDeniedException"
    )
    assert code_of(lambda: ours.delete_repository(registryId=ONE, repositoryName="app/web")) == "AccessDeniedException"
    assert code_of(lambda: ours.get_authorization_token()) == "UnknownOperationException"
    status, answer = raw_call(inventory, new_key("junk"), "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
                              None, body=b"[1, 2]")  # fmt: skip
    assert (status, answer["__type"]) == (400, "SerializationException")
    with_nul = WEB | {"imageIds": [{"imageTag": "a\x00b"}]}
    status, answer = raw_call(inventory, new_key("nul"), f"{PRIVATE}.DescribeImages", with_nul)
    assert (status, answer["__type"]) == (400, "InvalidParameterException") and "imageIds" in answer["message"]
    mistyped = WEB | {"filter": [], "nextToken": 5}
    status, answer = raw_call(inventory, new_key("types"), f"{PRIVATE}.DescribeImages", mistyped)
    assert (status, answer["__type"]) == (400, "InvalidParameterException")


def test_signatures_are_verified_and_keys_live_as_tokens_do(inventory: Served) -> None:
    credentials = new_key("signer")
    target = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
    assert raw_call(inventory, credentials, target, {"registryId": ONE})[0] == 200
    wrong = credentials | {"AWS_SECRET_ACCESS_KEY": "x" * 40}
    assert raw_call(inventory, wrong, target, {"registryId": ONE})[1]["__type"] == "InvalidSignatureException"
    unknown = {"AWS_ACCESS_KEY_ID": keys.new_access_key_id(), "AWS_SECRET_ACCESS_KEY": "x" * 40}
    assert raw_call(inventory, unknown, target, {"registryId": ONE})[1]["__type"] == "UnrecognizedClientException"
    skewed = datetime.now(UTC) - timedelta(minutes=6)
    _, answer = raw_call(inventory, credentials, target, {"registryId": ONE}, signed_at=skewed)
    assert answer["__type"] == "InvalidSignatureException" and "expired" in answer["message"]
    assert raw_call(inventory, credentials, target, {"registryId": ONE},
                    signed_at=datetime.now(UTC) - timedelta(minutes=4))[0] == 200  # fmt: skip
    other_service = raw_call(inventory, credentials, target, {"registryId": ONE}, service="s3")[1]
    assert other_service["__type"] == "InvalidSignatureException"
    revoked = CliRunner().invoke(main, ["tokens", "revoke", "signer"], catch_exceptions=False)
    assert revoked.exit_code == 0, revoked.output
    deadline = time.monotonic() + 5
    while raw_call(inventory, credentials, target, {"registryId": ONE})[0] == 200:
        assert time.monotonic() < deadline, "a revoked key was still served after 5 s"
        time.sleep(0.2)
    assert raw_call(inventory, credentials, target, {"registryId": ONE})[1]["__type"] == "UnrecognizedClientException"


def test_a_keys_registries_limit_every_answer(inventory: Served, caplog: pytest.LogCaptureFixture) -> None:
    two = endpoint(inventory, new_key("two-only", "--registries", "two"))
    assert [i["imageDigest"] for i in two.describe_images(repositoryName="app/web")["imageDetails"]]  # one account
    assert code_of(lambda: two.describe_images(registryId=ONE, repositoryName="app/web")) == (
        "RepositoryNotFoundException"
    )
    assert two.describe_repositories(registryId=ONE)["repositories"] == []
    assert code_of(lambda: two.list_images(registryId=ONE, repositoryName="app/web")) == "RepositoryNotFoundException"
    public = endpoint(inventory, new_key("two-public", "--registries", "two"), "ecr-public")
    assert code_of(lambda: public.describe_images(registryId=ONE, repositoryName="app/web")) == (
        "RepositoryNotFoundException"
    )
    with caplog.at_level(logging.INFO, logger="inventory.api.audit"):
        two.describe_images(repositoryName="app/web", maxResults=7)
    assert any("token=two-only operation=DescribeImages cost=7" in r.getMessage() for r in caplog.records)


def test_a_server_without_its_secret_key_says_so_without_a_traceback(
    inventory: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = new_key("keyless")
    monkeypatch.delenv(keys.SECRET_KEY_VARIABLE)
    with caplog.at_level(logging.INFO):
        status, answer = raw_call(inventory, credentials, f"{PRIVATE}.DescribeRepositories", {"registryId": ONE})
    assert (status, answer["__type"]) == (500, "ServerException") and keys.SECRET_KEY_VARIABLE in answer["message"]
    assert not [r for r in caplog.records if r.exc_info]


def test_the_secret_key_is_needed_and_said_how_to_make(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keys.SECRET_KEY_VARIABLE, raising=False)
    with pytest.raises(keys.SecretKeyMissing, match=r"secrets\.token_urlsafe"):
        keys.server_key()
    monkeypatch.setenv(keys.SECRET_KEY_VARIABLE, "too-short")
    with pytest.raises(keys.InventoryError, match="32 random bytes"):
        keys.server_key()


# the AWS CLI ---------------------------------------------------------------------


def aws_cli(served: Served, credentials: dict[str, str], *args: str) -> Any:
    assert AWS_CLI.exists(), f"the AWS CLI is missing at {AWS_CLI}: `make test` installs it"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "AWS_DEFAULT_REGION": US,
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", **credentials}  # fmt: skip
    result = subprocess.run([str(AWS_CLI), *args, "--endpoint-url", f"{served.url}/ecr", "--output", "json"],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_aws_cli_pages_with_its_own_options(inventory: Served, aws: Any) -> None:
    credentials = new_key("cli")
    base = ("ecr", "describe-images", "--registry-id", ONE, "--repository-name", "app/web")
    first = aws_cli(inventory, credentials, *base, "--page-size", "2", "--max-items", "3")
    rest = aws_cli(inventory, credentials, *base, "--page-size", "2", "--starting-token", first["NextToken"])
    digests = [d["imageDigest"] for d in first["imageDetails"] + rest["imageDetails"]]
    theirs = emulated(aws).describe_images(repositoryName="app/web")["imageDetails"]
    assert digests == [d["imageDigest"] for d in theirs] and len(first["imageDetails"]) == 3
    listed = aws_cli(inventory, credentials, "ecr", "list-images", "--registry-id", ONE, "--repository-name", "app/web")
    assert len(listed["imageIds"]) == sum(max(1, len(d.get("imageTags", []))) for d in theirs)
