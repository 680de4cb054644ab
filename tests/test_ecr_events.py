"""ECR's events read from SQS message bodies (pure): what is applied, ignored, malformed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from inventory.aws.events import EcrEvent, IgnoredEvent, MalformedEvent, parse
from inventory.config import RegistryConfig, parse_config
from inventory.worker.events import covering

DIGEST = "sha256:" + "a" * 64


def envelope(detail_type: str = "ECR Image Action", **detail: Any) -> dict[str, Any]:
    return {"version": "0", "id": "13cde686-328b-6117-af20-0e5566167482", "detail-type": detail_type,
            "source": "aws.ecr", "account": "111111111111", "time": "2019-11-16T01:54:34Z", "region": "us-west-2",
            "resources": [], "detail": {"repository-name": "app/web", "image-digest": DIGEST, **detail}}  # fmt: skip


def test_a_push_a_delete_an_archive_and_a_scan() -> None:
    push = parse(json.dumps(envelope(**{"action-type": "PUSH", "result": "SUCCESS", "image-tag": "latest"})))
    assert push == EcrEvent("13cde686-328b-6117-af20-0e5566167482", "111111111111", "us-west-2", "app/web", DIGEST,
                            ("latest",), datetime(2019, 11, 16, 1, 54, 34, tzinfo=UTC), "PUSH")  # fmt: skip
    assert parse(json.dumps(envelope(**{"action-type": "DELETE", "result": "SUCCESS"}))).image_tags == ()
    archive = envelope(
        **{"action-type": "UPDATE_STORAGE_CLASS", "result": "SUCCESS", "target-storage-class": "ARCHIVE"}
    )
    assert parse(json.dumps(archive)).kind == "UPDATE_STORAGE_CLASS"
    scan = parse(json.dumps(envelope("ECR Image Scan", **{"scan-status": "COMPLETE", "image-tags": ["a", "b"],
                                                          "finding-severity-counts": {"HIGH": 1}})))  # fmt: skip
    assert (scan.kind, scan.image_tags) == ("SCAN", ("a", "b"))


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**envelope(), "source": "aws.s3"}),
        json.dumps(envelope("ECR Pull Through Cache Action", **{"action-type": "PUSH"})),
        json.dumps(envelope(**{"action-type": "PUSH", "result": "FAILURE"})),
        json.dumps(envelope(**{"action-type": "REPLICATE", "result": "SUCCESS"})),
    ],
)
def test_what_is_ignored(body: str) -> None:
    with pytest.raises(IgnoredEvent):
        parse(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "the message is not JSON"),
        ("[1]", "the message is not a JSON object"),
        (json.dumps({**envelope(), "detail": "x"}), "detail: missing or not an object"),
        (json.dumps(envelope(**{"action-type": "PUSH", "image-digest": None})), "detail.image-digest: missing"),
        (json.dumps(envelope(**{"action-type": "PUSH", "image-tag": 3})), "detail.image-tag: not a string"),
        (json.dumps({**envelope(**{"action-type": "PUSH"}), "time": "yesterday"}), "time: not an ISO-8601 time"),
        (json.dumps({**envelope(**{"action-type": "PUSH"}), "account": 1}), "account: missing or not a string"),
        (json.dumps(envelope("ECR Image Scan", **{"image-tags": "x"})), "detail.image-tags: not a list of strings"),
    ],
)
def test_what_is_malformed(body: str, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        parse(body)


def test_only_a_declared_covered_private_repository_is_covered() -> None:
    config = parse_config({"registries": [
        {"name": "public", "type": "ecr-public", "account_id": "111111111111", "regions": ["us-east-1"]},
        {"name": "prod", "account_id": "111111111111", "regions": ["us-west-2"], "exclude": ["tmp/*"]},
    ]}, "inventory.toml")  # fmt: skip
    event = parse(json.dumps(envelope(**{"action-type": "PUSH"})))
    registry = covering(config, event)
    assert isinstance(registry, RegistryConfig) and registry.name == "prod"
    for other in ({"account": "222222222222"}, {"region": "us-east-1"}):
        assert covering(config, parse(json.dumps({**envelope(**{"action-type": "PUSH"}), **other}))) is None
    excluded = envelope(**{"action-type": "PUSH"})
    excluded["detail"]["repository-name"] = "tmp/x"
    assert covering(config, parse(json.dumps(excluded))) is None
