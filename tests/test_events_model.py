"""Model test of the targeted syncs: random bursts of pushes, retags, deletes, untags, archives, restores and
scans in the emulator, announced by its ECR events (some dropped, some duplicated, out of order), applied by
``sync_affected``, then a full round.

After each burst, every image the targeted syncs wrote is what a full sync of that moment writes: each
stored image is either as it was before the burst or as the registry holds it now; and while no event has
been lost, every image is as the registry holds it (a tag a push moved away included). After the full
round, the inventory is the registry's, and the change feed replayed (tags, presence) gives the inventory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import count
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from inventory.aws.clients import ClientFactory
from inventory.aws.events import parse
from inventory.config import InventoryConfig, RegistryConfig
from inventory.db import autocommit
from inventory.sync.engine import RegionSync
from inventory.sync.plan import Scope
from inventory.sync.runner import Target, sync_fleet
from inventory.sync.targeted import Affected, sync_affected
from inventory.sync.transform import changed_fields, image_values
from inventory.tables import images
from inventory.testing import AdminClient, Emulator

ACCOUNT, REGION = "111111111111", "us-east-1"
TAGS = ("latest", "prod", "v1")
COUNTS = ({"HIGH": 1}, {"CRITICAL": 2}, {})
EXAMPLES = count()

Operation = tuple[Any, ...]
OPERATIONS = st.one_of(
    st.tuples(st.just("push"), st.sampled_from((None, *TAGS))),
    st.tuples(st.just("retag"), st.integers(0, 9), st.sampled_from(TAGS)),
    st.tuples(st.just("delete"), st.integers(0, 9)),
    st.tuples(st.just("untag"), st.sampled_from(TAGS)),
    st.tuples(st.just("archive"), st.integers(0, 9)),
    st.tuples(st.just("restore"), st.integers(0, 9)),
    st.tuples(st.just("scan"), st.integers(0, 9), st.sampled_from(COUNTS)),
)
DELIVERY = st.lists(st.integers(0, 2), min_size=40, max_size=40)
"""Copies of each message delivered: 0 (dropped), 1, or 2 (duplicated)."""


class Registry:
    """One repository of the emulator, changed through its public API and its admin API (both emit events)."""

    def __init__(self, emulator: Emulator, repository: str) -> None:
        options = {"endpoint_url": emulator.url, "region_name": REGION}
        self.ecr: Any = boto3.client("ecr", **options)
        self.sqs: Any = boto3.client("sqs", **options)
        self.admin = AdminClient(emulator.url)
        self.repository = repository
        self.manifests: dict[str, str] = {}
        self.pushed = count()
        self.ecr.create_repository(repositoryName=repository, registryId=ACCOUNT)

    def digests(self) -> list[str]:
        return sorted(self.held())

    def held(self) -> dict[str, Any]:
        pages = self.ecr.get_paginator("describe_images").paginate(
            registryId=ACCOUNT, repositoryName=self.repository, filter={"tagStatus": "ANY", "imageStatus": "ANY"}
        )
        return dict(image_values(detail) for page in pages for detail in page["imageDetails"])

    def apply(self, operation: Operation) -> None:
        kind, *args = operation
        digests = self.digests()
        pick = (lambda i: digests[i % len(digests)]) if digests else None
        common = {"registryId": ACCOUNT, "repositoryName": self.repository}
        if kind == "push":
            manifest = json.dumps({"schemaVersion": 2, "n": next(self.pushed), "of": self.repository})
            answer = self.ecr.put_image(imageManifest=manifest, **common, **({"imageTag": args[0]} if args[0] else {}))
            self.manifests[answer["image"]["imageId"]["imageDigest"]] = manifest
        elif pick is None:
            return
        elif kind == "retag":
            digest, tag = pick(args[0]), args[1]
            if tag not in self.held()[digest][0]:
                self.ecr.put_image(imageManifest=self.manifests[digest], imageTag=tag, **common)
        elif kind == "delete":
            self.ecr.batch_delete_image(imageIds=[{"imageDigest": pick(args[0])}], **common)
        elif kind == "untag":
            self.ecr.batch_delete_image(imageIds=[{"imageTag": args[0]}], **common)
        elif kind in ("archive", "restore"):
            status = "ARCHIVED" if kind == "archive" else "ACTIVE"
            self.admin.set_image(ACCOUNT, REGION, self.repository, pick(args[0]), imageStatus=status)
        else:
            self.admin.set_image(ACCOUNT, REGION, self.repository, pick(args[0]),
                                 imageScanStatus={"status": "COMPLETE"},
                                 imageScanFindingsSummary={"findingSeverityCounts": args[1]})  # fmt: skip

    def messages(self, url: str) -> list[str]:
        """Every message in the queue, received and deleted."""
        bodies: list[str] = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            bodies.extend(m["Body"] for m in messages)
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return bodies


@pytest.fixture
def queue(emulator: Emulator, admin: AdminClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield admin.event_queue(REGION, "model")


def stored(engine: Engine, scope: Scope) -> dict[str, Any]:
    """digest → values of the scope's present images."""
    with autocommit(engine) as connection:
        index, _ = images.stored_index(scope, connection=connection)
        values = images.stored_values(scope, list(index), connection=connection)
    return {digest: v for digest, (v, removed) in values.items() if not removed}


def same(left: Any, right: Any) -> bool:
    return (left is None and right is None) or (
        left is not None and right is not None and not changed_fields(left, right)
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.lists(OPERATIONS, min_size=1, max_size=4), min_size=1, max_size=4),
    deliveries=st.lists(DELIVERY, min_size=4, max_size=4),
    orders=st.lists(st.randoms(use_true_random=False), min_size=4, max_size=4),
    splits=st.lists(st.integers(1, 3), min_size=4, max_size=4),
)
def test_targeted_syncs_write_only_what_a_full_sync_would(
    emulator: Emulator,
    engine: Engine,
    queue: str,
    steps: list[list[Operation]],
    deliveries: list[list[int]],
    orders: list[Any],
    splits: list[int],
) -> None:
    repository = f"model/r{next(EXAMPLES)}"  # one per example: examples share the database and the emulator
    registry = Registry(emulator, repository)
    config = RegistryConfig(name="prod", account_id=ACCOUNT, regions=(REGION,), endpoint_url=emulator.url)
    scope = Scope("prod", "ecr", ACCOUNT, REGION, repository)
    for tag in TAGS[:2]:
        registry.apply(("push", tag))
    full = InventoryConfig(registries=(config,))
    target = [Target.parse(f"prod/{REGION}/{repository}")]
    assert not sync_fleet(engine, full, targets=target).failures
    registry.messages(queue)  # the first sync saw those
    sync = RegionSync(engine, ClientFactory())
    lost = False

    for operations, delivery, order, split in zip(steps, deliveries, orders, splits, strict=False):
        before = stored(engine, scope)
        for operation in operations:
            registry.apply(operation)
        received = registry.messages(queue)
        messages = [body for body, copies in zip(received, delivery, strict=False) for _ in range(copies)]
        lost = lost or len(received) > len(delivery) or not all(delivery[: len(received)])
        order.shuffle(messages)
        events = [parse(body) for body in messages]
        for burst in (events[i::split] for i in range(split)):
            if burst:
                affected = Affected(scope, config, frozenset(e.image_digest for e in burst),
                                    frozenset(t for e in burst for t in e.image_tags), max(e.time for e in burst),
                                    len(burst))  # fmt: skip
                assert sync_affected(sync, affected).failure is None
        truth, after = registry.held(), stored(engine, scope)
        for digest in set(before) | set(after) | set(truth):
            now = after.get(digest)
            assert same(now, before.get(digest)) or same(now, truth.get(digest)), (digest, operations)
            if not lost:  # no event lost so far: nothing is stale either (a tag moved away included)
                assert same(now, truth.get(digest)), (digest, operations)

    assert not sync_fleet(engine, full, targets=target).failures
    truth, after = registry.held(), stored(engine, scope)
    assert set(after) == set(truth) and all(same(after[d], truth[d]) for d in truth)
    replayed: dict[str, list[str] | None] = {}
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT type, image_digest, changes FROM image_events WHERE repository_name = :r "
                 "AND image_digest IS NOT NULL ORDER BY xid::text::bigint, id"), {"r": repository}
        )  # fmt: skip
        for kind, digest, changes in rows:
            if kind == "image.removed":
                replayed[digest] = None
            elif "image_tags" in changes:
                replayed[digest] = sorted(changes["image_tags"][1] or [])
            else:
                replayed.setdefault(digest, [])
    assert {d: tags for d, tags in replayed.items() if tags is not None} == {d: v[0] for d, v in after.items()}
