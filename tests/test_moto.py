"""The same plan/apply flow against plain moto server, which answers in one page and ignores filters; and a
worker reading ECR's events from moto's SQS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto.server import ThreadedMotoServer
from sqlalchemy import create_engine, text

from inventory.cli import main
from inventory.db import create
from inventory.worker.loop import Worker, WorkerOptions

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


def test_a_worker_applies_ecr_events_from_a_moto_sqs_queue(
    moto_url: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's SQS is a peer's implementation of the queue: long polls, batches, deletes; moto's ECR emits no
    events, so the test sends what EventBridge would, for moto's own images, with junk in between."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    sts = boto3.client("sts", endpoint_url=moto_url, region_name="us-east-1")
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/r", RoleSessionName="tests")["Credentials"]
    ecr = boto3.client(
        "ecr", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"],
    )  # fmt: skip
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    url = sqs.create_queue(QueueName="ecr-events", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    ecr.create_repository(repositoryName="events/web")

    def push(i: int, tag: str) -> str:
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"size": i, "digest": f"sha256:{i:064}"}, "layers": [], "name": "events/web"}  # fmt: skip
        digest: str = ecr.put_image(repositoryName="events/web", imageManifest=json.dumps(manifest), imageTag=tag)[
            "image"
        ]["imageId"]["imageDigest"]
        detail = {"result": "SUCCESS", "repository-name": "events/web", "image-digest": digest,
                  "action-type": "PUSH", "image-tag": tag}  # fmt: skip
        event = {"version": "0", "id": f"e{i}", "detail-type": "ECR Image Action", "source": "aws.ecr",
                 "account": ACCOUNT, "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
                 "detail": detail}  # fmt: skip
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
        return digest

    first = push(1, "latest")
    config = tmp_path / "inventory.toml"
    config.write_text(
        f'[[registries]]\nname = "moto"\naccount_id = "{ACCOUNT}"\nregions = ["us-east-1"]\n'
        f'role_arn = "arn:aws:iam::{ACCOUNT}:role/reader"\nendpoint_url = "{moto_url}"\nrepositories = ["events/*"]\n\n'
        f'[[event_queues]]\nname = "moto"\nurl = "{url}"\nregion = "us-east-1"\nendpoint_url = "{moto_url}"\n'
    )
    engine = create(db_url)
    worker = Worker(engine, config, WorkerOptions(interval=3600, lease=10, event_wait=1, event_coalesce=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:

        def tags() -> dict[str, list[str]]:
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT image_digest, image_tags FROM images WHERE removed_at IS NULL"))
                return {digest: sorted(image_tags) for digest, image_tags in rows}

        def empty() -> bool:
            counts = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            return set(counts.values()) == {"0"}

        until(lambda: tags() == {first: ["latest"]} and empty(), "the first round and event")
        sqs.send_message(QueueUrl=url, MessageBody="junk")
        second = push(2, "latest")  # behind the junk; moves latest away from the first image
        until(lambda: tags() == {first: [], second: ["latest"]}, "the second push")
        until(empty, "every message deleted")
        outcome = {o: worker.metrics.registry.get_sample_value("inventory_events_received_total",
                                                               {"queue": "moto", "outcome": o}) or 0
                   for o in ("applied", "malformed")}  # fmt: skip
        assert outcome["applied"] >= 2 and outcome["malformed"] == 1
    finally:
        stop.set()
        thread.join(timeout=30)
        engine.dispose()


def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
