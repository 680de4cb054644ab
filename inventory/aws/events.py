"""ECR's EventBridge events, read from the body of an SQS message: pure, no I/O.

``parse`` returns the ``EcrEvent`` a message announces, or raises ``MalformedEvent``
(not an EventBridge event of ECR's documented shape: not JSON, a key missing or of the
wrong type) or ``IgnoredEvent`` (a well-formed event the inventory has no use for:
another source or detail-type, a failed action). Whether the event's repository is
declared and covered is the config's to say (``inventory.worker.events``).

What ECR sends (its user guide, "Amazon ECR events and EventBridge"), ``source: aws.ecr``:

- ``ECR Image Action``: ``detail.action-type`` ``PUSH`` (``image-tag`` when tagged),
  ``DELETE``, ``UPDATE_STORAGE_CLASS`` (``target-storage-class`` ``ARCHIVE`` or
  ``STANDARD``); ``detail.result`` ``SUCCESS`` or ``FAILURE``.
- ``ECR Image Scan``: ``scan-status``, ``finding-severity-counts``, ``image-tags``.

Both carry ``detail.repository-name`` and ``detail.image-digest``, and the envelope its
``id``, ``account``, ``region`` and ``time``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SOURCE = "aws.ecr"
IMAGE_ACTION = "ECR Image Action"
IMAGE_SCAN = "ECR Image Scan"
ACTIONS = frozenset({"PUSH", "DELETE", "UPDATE_STORAGE_CLASS"})


class MalformedEvent(ValueError):
    """The message is not an EventBridge event of the shape ECR documents."""


class IgnoredEvent(ValueError):
    """The event is well formed but tells the inventory nothing (another source or kind, a failed action)."""


@dataclass(frozen=True)
class EcrEvent:
    """What one event says changed: an image of a repository (and the tags it names)."""

    event_id: str
    account: str
    region: str
    repository_name: str
    image_digest: str
    image_tags: tuple[str, ...]
    time: datetime
    kind: str
    """``PUSH``, ``DELETE``, ``UPDATE_STORAGE_CLASS`` or ``SCAN``."""


def parse(body: str) -> EcrEvent:
    """The event in an SQS message's body; ``MalformedEvent`` or ``IgnoredEvent`` otherwise."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise MalformedEvent("the message is not JSON") from None
    if not isinstance(envelope, dict):
        raise MalformedEvent("the message is not a JSON object")
    source, detail_type = _text(envelope, "source"), _text(envelope, "detail-type")
    if source != SOURCE or detail_type not in (IMAGE_ACTION, IMAGE_SCAN):
        raise IgnoredEvent(f"not an ECR image event: {source} / {detail_type}")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("detail: missing or not an object")
    if detail_type == IMAGE_ACTION:
        kind = _text(detail, "action-type", "detail.")
        if kind not in ACTIONS:
            raise IgnoredEvent(f"an image action the inventory does not follow: {kind}")
        if detail.get("result", "SUCCESS") != "SUCCESS":
            raise IgnoredEvent(f"a {kind} that did not succeed")
        tag = detail.get("image-tag")
        if tag is not None and not isinstance(tag, str):
            raise MalformedEvent("detail.image-tag: not a string")
        tags: tuple[str, ...] = (tag,) if tag else ()
    else:
        kind = "SCAN"
        listed = detail.get("image-tags", [])
        if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
            raise MalformedEvent("detail.image-tags: not a list of strings")
        tags = tuple(listed)
    return EcrEvent(
        event_id=_text(envelope, "id"),
        account=_text(envelope, "account"),
        region=_text(envelope, "region"),
        repository_name=_text(detail, "repository-name", "detail."),
        image_digest=_text(detail, "image-digest", "detail."),
        image_tags=tags,
        time=_time(envelope),
        kind=kind,
    )


def _text(mapping: dict[str, Any], key: str, prefix: str = "") -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"{prefix}{key}: missing or not a string")
    return value


def _time(envelope: dict[str, Any]) -> datetime:
    text = _text(envelope, "time")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent(f"time: not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
