"""ECR's EventBridge events, as the emulator emits them for its own pushes, deletes, archives and scans.

Every event goes to each queue subscribed with ``subscribe`` (as a central event bus
whose rule matches ``source: aws.ecr`` forwards everything to its queue), wrapped in
EventBridge's envelope: ``version``, ``id``, ``detail-type``, ``source``, ``account``,
``time``, ``region``, ``resources``, ``detail``. Delivery is best effort, as in AWS: the
``drop_events`` fault loses a fraction of them. ECR Public emits no events.

Shapes, from the ECR user guide ("Amazon ECR events and EventBridge"):

- ``ECR Image Action``: ``action-type`` ``PUSH`` (``image-tag`` when tagged), ``DELETE``
  (``image-tag`` when a tag was deleted), ``UPDATE_STORAGE_CLASS`` with
  ``target-storage-class`` ``ARCHIVE`` or ``STANDARD``; ``result`` ``SUCCESS``.
- ``ECR Image Scan``: ``scan-status``, ``finding-severity-counts``, ``image-tags``.

Both carry ``repository-name`` and ``image-digest``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from inventory.testing.store import Image, Repository, Store


def subscribe(store: Store, account: str, region: str, name: str) -> None:
    """Create the queue if needed and send it every ECR event from now on."""
    store.create_queue(account, region, name)
    if (account, region, name) not in store.event_queues:
        store.event_queues.append((account, region, name))


def emit(store: Store, repository: Repository, detail_type: str, detail: dict[str, Any]) -> None:
    """Send one event of ``repository`` to every subscribed queue (unless the ``drop_events`` fault loses it)."""
    if repository.registry_type != "ecr" or not store.event_queues:
        return
    store.events_emitted += 1
    if store.faults.drop_events and store.random.random() < store.faults.drop_events:
        store.events_dropped += 1
        return
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.ecr",
        "account": repository.registry_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": repository.region,
        "resources": [repository.arn] if detail_type == "ECR Image Scan" else [],
        "detail": {"repository-name": repository.name, **detail},
    }
    body = json.dumps(envelope)
    for key in store.event_queues:
        queue = store.queues.get(key)
        if queue is not None:
            queue.send(body)


def pushed(store: Store, repository: Repository, image: Image, tag: str | None) -> None:
    detail: dict[str, Any] = {"result": "SUCCESS", "image-digest": image.image_digest, "action-type": "PUSH"}
    if tag:
        detail["image-tag"] = tag
    emit(store, repository, "ECR Image Action", detail)


def deleted(store: Store, repository: Repository, image_digest: str, tag: str | None) -> None:
    detail: dict[str, Any] = {"result": "SUCCESS", "image-digest": image_digest, "action-type": "DELETE"}
    if tag:
        detail["image-tag"] = tag
    emit(store, repository, "ECR Image Action", detail)


def storage_class_changed(store: Store, repository: Repository, image: Image) -> None:
    target = "ARCHIVE" if image.status == "ARCHIVED" else "STANDARD"
    detail = {
        "result": "SUCCESS",
        "image-digest": image.image_digest,
        "action-type": "UPDATE_STORAGE_CLASS",
        "target-storage-class": target,
    }
    emit(store, repository, "ECR Image Action", detail)


def scanned(store: Store, repository: Repository, image: Image) -> None:
    status = (image.detail.get("imageScanStatus") or {}).get("status", "COMPLETE")
    summary = image.detail.get("imageScanFindingsSummary") or {}
    detail = {
        "scan-status": status,
        "finding-severity-counts": dict(summary.get("findingSeverityCounts") or {}),
        "image-digest": image.image_digest,
        "image-tags": list(image.tags),
    }
    emit(store, repository, "ECR Image Scan", detail)
