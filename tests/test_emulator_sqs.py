"""The emulator's SQS queue and ECR's events, pinned with real boto3 calls over HTTP (AWS JSON 1.0)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from inventory.testing import AdminClient

ACCOUNT = "111111111111"
REGION = "us-east-1"
NO_VALIDATION = Config(parameter_validation=False, retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def queue(admin: AdminClient) -> str:
    return admin.event_queue(REGION, "ecr-events")


@pytest.fixture
def sqs(aws: Any, admin: AdminClient) -> Any:
    return aws("sqs")


def receive(sqs: Any, url: str, wait: int = 0, **options: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, **options
    ).get("Messages", [])
    return messages


def bodies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in messages]


def test_send_receive_delete(sqs: Any, queue: str) -> None:
    sent = [sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}") for i in range(12)]
    first, second = receive(sqs, queue), receive(sqs, queue)
    assert [m["Body"] for m in first] == [f"m{i}" for i in range(10)]  # at most 10, oldest first
    assert [m["Body"] for m in second] == ["m10", "m11"]
    assert [m["MessageId"] for m in first + second] == [s["MessageId"] for s in sent]
    assert receive(sqs, queue) == []  # all in flight
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "12",
    )
    assert attributes["QueueArn"] == f"arn:aws:sqs:{REGION}:123456789012:ecr-events"
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first[0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first[0]["ReceiptHandle"])  # again: as in SQS, no error
    answer = sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first[1:])]
        + [{"Id": "junk", "ReceiptHandle": "not-a-handle"}],
    )
    assert [s["Id"] for s in answer["Successful"]] == [str(i) for i in range(9)]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]] == [
        ("junk", "ReceiptHandleIsInvalid", True)
    ]
    counts = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "2"}


def test_an_undeleted_message_comes_back_after_its_visibility_timeout(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="again")
    (first,) = receive(sqs, queue, VisibilityTimeout=1)
    assert receive(sqs, queue) == []
    (second,) = receive(sqs, queue, wait=3, MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert second["MessageId"] == first["MessageId"] and second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"] == {"ApproximateReceiveCount": "2"}
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])  # an older handle deletes it too
    assert receive(sqs, queue, VisibilityTimeout=0) == []


def test_a_long_poll_waits_for_a_message_and_no_longer(sqs: Any, queue: str, aws: Any) -> None:
    started = time.monotonic()
    assert receive(sqs, queue, wait=1) == []
    assert time.monotonic() - started >= 0.9
    ecr = aws("ecr", account=ACCOUNT)
    ecr.create_repository(repositoryName="app/web")
    ecr.put_image(repositoryName="app/web", imageManifest='{"schemaVersion": 2}', imageTag="v1")
    started = time.monotonic()
    assert len(receive(sqs, queue, wait=20)) == 1
    assert time.monotonic() - started < 5


def test_errors_are_sqs_errors(sqs: Any, queue: str, aws: Any) -> None:
    unchecked = aws("sqs", config=NO_VALIDATION)
    cases = [
        (lambda: sqs.receive_message(QueueUrl=queue + "-missing"), "AWS.SimpleQueueService.NonExistentQueue"),
        (lambda: unchecked.receive_message(QueueUrl=queue, MaxNumberOfMessages=11), "InvalidParameterValue"),
        (lambda: unchecked.receive_message(QueueUrl=queue, WaitTimeSeconds=21), "InvalidParameterValue"),
        (lambda: sqs.delete_message(QueueUrl=queue, ReceiptHandle="nope"), "ReceiptHandleIsInvalid"),
        (lambda: unchecked.delete_message_batch(QueueUrl=queue, Entries=[]),
         "AWS.SimpleQueueService.EmptyBatchRequest"),
        (lambda: sqs.delete_message_batch(QueueUrl=queue, Entries=[{"Id": "a", "ReceiptHandle": "x"}] * 2),
         "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
        (lambda: sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Colour"]), "InvalidAttributeName"),
    ]  # fmt: skip
    for call, code in cases:
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["Error"]["Code"] == code
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=queue + "-missing", AttributeNames=["All"])


def test_create_queue_and_get_queue_url(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="mine", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    assert url.endswith("/123456789012/mine")
    assert sqs.get_queue_url(QueueName="mine")["QueueUrl"] == url
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "5"
    }


def test_ecr_emits_its_events_for_pushes_deletes_archives_and_scans(
    sqs: Any, queue: str, aws: Any, admin: AdminClient
) -> None:
    ecr = aws("ecr", account=ACCOUNT)
    ecr.create_repository(repositoryName="app/web")
    pushed = ecr.put_image(repositoryName="app/web", imageManifest='{"schemaVersion": 2}', imageTag="v1")
    digest = pushed["image"]["imageId"]["imageDigest"]
    ecr.put_image(repositoryName="app/web", imageManifest='{"schemaVersion": 2}', imageTag="prod")
    ecr.batch_delete_image(repositoryName="app/web", imageIds=[{"imageTag": "v1"}])
    admin.set_image(ACCOUNT, REGION, "app/web", digest, imageStatus="ARCHIVED")
    admin.set_image(ACCOUNT, REGION, "app/web", digest, imageStatus="ACTIVE")
    admin.set_image(ACCOUNT, REGION, "app/web", digest, imageScanStatus={"status": "COMPLETE"},
                    imageScanFindingsSummary={"findingSeverityCounts": {"HIGH": 2}})  # fmt: skip
    ecr.batch_delete_image(repositoryName="app/web", imageIds=[{"imageDigest": digest}])
    events = bodies(receive(sqs, queue)) + bodies(receive(sqs, queue))
    for event in events:
        assert (event["version"], event["source"], event["account"], event["region"]) == ("0", "aws.ecr", ACCOUNT,
                                                                                          REGION)  # fmt: skip
        assert event["time"].endswith("Z") and event["id"]
        assert event["detail"]["repository-name"] == "app/web" and event["detail"]["image-digest"] == digest
    actions = [(e["detail-type"], e["detail"].get("action-type"), e["detail"].get("image-tag"),
                e["detail"].get("target-storage-class")) for e in events]  # fmt: skip
    assert actions == [
        ("ECR Image Action", "PUSH", "v1", None),
        ("ECR Image Action", "PUSH", "prod", None),
        ("ECR Image Action", "DELETE", "v1", None),
        ("ECR Image Action", "UPDATE_STORAGE_CLASS", None, "ARCHIVE"),
        ("ECR Image Action", "UPDATE_STORAGE_CLASS", None, "STANDARD"),
        ("ECR Image Scan", None, None, None),
        ("ECR Image Action", "DELETE", None, None),
    ]
    scan = events[5]
    assert scan["detail"] | {"repository-name": "app/web"} == {
        "scan-status": "COMPLETE", "finding-severity-counts": {"HIGH": 2}, "image-digest": digest,
        "image-tags": ["prod"], "repository-name": "app/web",
    }  # fmt: skip
    assert scan["resources"] == [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/app/web"]


def test_a_fraction_of_the_events_can_be_dropped(sqs: Any, queue: str, admin: AdminClient) -> None:
    admin.fault("drop_events", fraction=0.5, seed=7)
    admin.put_images(ACCOUNT, REGION, "app/web", [{"imageTags": [f"t{i}"]} for i in range(100)])
    stats = admin.event_queues()
    assert stats["emitted"] == 100 and 25 < stats["dropped"] < 75
    assert stats["queues"][f"123456789012/{REGION}/ecr-events"]["sent"] == 100 - stats["dropped"]
