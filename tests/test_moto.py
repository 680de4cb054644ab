"""The same plan/apply flow against plain moto server, which answers in one page and ignores filters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto.server import ThreadedMotoServer
from sqlalchemy import create_engine, text

from inventory.cli import main

ACCOUNT = "111111111111"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_plan_apply_converges_against_moto(
    moto_url: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "INVENTORY_DATABASE_URL": db_url}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    sts = boto3.client("sts", endpoint_url=moto_url, region_name="us-east-1")
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/r", RoleSessionName="tests")["Credentials"]
    ecr = boto3.client(
        "ecr", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"],
    )  # fmt: skip
    for name in ("app/web", "app/api"):
        ecr.create_repository(repositoryName=name)
        for i in range(3):
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"size": i, "digest": f"sha256:{i:064}"},
                "layers": [{"size": 100 + i, "digest": f"sha256:{i + 10:064}"}],
                "name": name,
            }
            ecr.put_image(repositoryName=name, imageManifest=json.dumps(manifest), imageTag=f"v{i}")
    held = {
        name: {d["imageDigest"] for d in ecr.describe_images(repositoryName=name)["imageDetails"]}
        for name in ("app/web", "app/api")
    }
    config = tmp_path / "inventory.toml"
    config.write_text(
        f'[[registries]]\nname = "moto"\naccount_id = "{ACCOUNT}"\nregions = ["us-east-1"]\n'
        f'role_arn = "arn:aws:iam::{ACCOUNT}:role/reader"\nendpoint_url = "{moto_url}"\n'
    )
    runner = CliRunner()
    applied = runner.invoke(main, ["apply", "-c", str(config), "--auto-approve"], catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
    total = sum(len(digests) for digests in held.values())
    assert f"Apply complete: {total} added, 0 changed, 0 removed." in applied.stdout
    plan = runner.invoke(main, ["plan", "-c", str(config), "--detailed-exitcode"], catch_exceptions=False)
    assert plan.exit_code == 0
    assert plan.stdout.strip().splitlines()[-1] == "No changes."
    engine = create_engine(db_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT repository_name, image_digest FROM images")).all()
    engine.dispose()
    assert {(name, digest) for name, digests in held.items() for digest in digests} == set(stored)
