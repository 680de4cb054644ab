"""What a webhook is sent: Standard Webhooks payloads (``{"type", "timestamp", "data"}``), built from the feed.

Pure functions: the rows come from ``inventory.feed.query.feed_with_images`` (an event and its image's
current columns). An event's ``data`` has the fields of GraphQL's ``ImageEvent`` and ``image``,
the image's ``ImageDetail`` as ECR spells it (and what the inventory knows of it: first seen,
last seen, removed), null for repository events. A payload that would reach ``MAX_PAYLOAD``
bytes (a thousand long tags, say) is sent without its changes and image, with
``"truncated": true``: the event is then read with GraphQL's ``node(id: data.id)``.
The JSON Schema of every type is in ``schema/webhooks/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from inventory.config import EVENT_TYPES, SEVERITIES, WebhookConfig
from inventory.feed.event import Event, utc_text
from inventory.feed.query import IMAGE
from inventory.tables.webhook_deliveries import Message

MAX_PAYLOAD = 64 * 1024
"""Bytes: a payload stays under this."""
PING = "webhook.ping"
BACKFILLED = "scope.backfilled"
TYPES = (*EVENT_TYPES, BACKFILLED, PING)
"""Every type a webhook can be sent (each has its schema in ``schema/webhooks/``)."""
_TRUNCATED_DROPS = ("changes", "tagsAdded", "tagsRemoved", "image")


def body(type: str, timestamp: datetime | None, data: dict[str, Any]) -> str:
    """The payload as sent: compact JSON (ASCII, so its bytes are its characters)."""
    return json.dumps({"type": type, "timestamp": utc_text(timestamp), "data": data}, separators=(",", ":"))


def image_detail(row: Any) -> dict[str, Any] | None:
    """The image's current ``ImageDetail`` (ECR's field names) from the row's ``IMAGE`` columns; None without one."""

    def get(name: str) -> Any:
        return getattr(row, IMAGE + name)

    if get("image_digest") is None:
        return None
    status, description = get("image_scan_status"), get("image_scan_status_description")
    counts, completed, source = (
        get("finding_severity_counts"),
        get("image_scan_completed_at"),
        get("vulnerability_source_updated_at"),
    )
    findings = None
    if counts is not None or completed is not None or source is not None:
        findings = {
            "imageScanCompletedAt": utc_text(completed),
            "vulnerabilitySourceUpdatedAt": utc_text(source),
            "findingSeverityCounts": counts,
        }
    return {
        "registryId": get("registry_id"),
        "repositoryName": get("repository_name"),
        "imageDigest": get("image_digest"),
        "imageTags": list(get("image_tags") or ()),
        "imageSizeInBytes": get("image_size_in_bytes"),
        "imagePushedAt": utc_text(get("image_pushed_at")),
        "imageScanStatus": None if status is None else {"status": status, "description": description},
        "imageScanFindingsSummary": findings,
        "imageManifestMediaType": get("image_manifest_media_type"),
        "artifactMediaType": get("artifact_media_type"),
        "lastRecordedPullTime": utc_text(get("last_recorded_pull_time")),
        "subjectManifestDigest": get("subject_manifest_digest"),
        "imageStatus": get("image_status"),
        "lastArchivedAt": utc_text(get("last_archived_at")),
        "lastActivatedAt": utc_text(get("last_activated_at")),
        "firstSeenAt": utc_text(get("first_seen_at")),
        "lastSeenAt": utc_text(get("last_seen_at")),
        "removedAt": utc_text(get("removed_at")),
    }


def event_message(row: Any) -> Message:
    """The message of one event of the feed (its image's current values included)."""
    data = {**Event.from_row(row).json(), "image": image_detail(row) if row.image_digest is not None else None}
    data["truncated"] = False
    text = body(row.type, row.occurred_at, data)
    if len(text) >= MAX_PAYLOAD:
        data = {k: v for k, v in data.items() if k not in _TRUNCATED_DROPS} | {"truncated": True}
        text = body(row.type, row.occurred_at, data)
    return Message(data["id"], row.type, row.id, ordering_key(row), row.occurred_at, text)


def backfill_message(row: Any, images_added: int) -> Message:
    """The ``scope.backfilled`` summary of a repository's first sync, from its ``repository.added`` event."""
    data = {
        "registryType": "ECR_PUBLIC" if row.registry_type == "ecr-public" else "ECR",
        "registryId": row.registry_id,
        "region": row.region,
        "repositoryName": row.repository_name,
        "syncRunId": row.sync_run_id,
        "occurredAt": utc_text(row.occurred_at),
        "imagesAdded": images_added,
    }
    message_id = f"backfilled_{row.id}"
    return Message(
        message_id, BACKFILLED, row.id, ordering_key(row), row.occurred_at, body(BACKFILLED, row.occurred_at, data)
    )


def ping_message(webhook: str, message_id: str, at: datetime) -> Message:
    return Message(message_id, PING, None, PING, at, body(PING, at, {"webhook": webhook}))


def ordering_key(row: Any) -> str:
    """What a webhook receives in feed order: the events of one image (or of one repository's own)."""
    key = f"{row.registry_type}/{row.registry_id}/{row.region}/{row.repository_name}"
    return key if row.image_digest is None else f"{key}@{row.image_digest}"


def severe_enough(row: Any, minimum: str) -> bool:
    """Whether the row's image has a finding of ``minimum`` severity or worse."""
    counts = getattr(row, IMAGE + "finding_severity_counts") or {}
    return any((counts.get(s) or 0) > 0 for s in SEVERITIES[: SEVERITIES.index(minimum) + 1])


def messages(
    webhook: WebhookConfig, rows: Iterable[Any], registry_of: Callable[[Any], str],
    images_added: Callable[[Any], int],
) -> list[Message]:  # fmt: skip
    """The messages the webhook is sent for these events (in feed order): its filters applied, and a
    first sync summarised unless it asks for ``backfill``. ``registry_of`` names an event's registry;
    ``images_added`` counts what the sync of a ``repository.added`` backfill event added."""
    found: list[Message] = []
    for row in rows:
        if webhook.registries is not None and registry_of(row) not in webhook.registries:
            continue
        if not webhook.covers(row.repository_name):
            continue
        if row.backfill and not webhook.backfill:
            if row.type == "repository.added" and BACKFILLED in webhook.types:
                found.append(backfill_message(row, images_added(row)))
            continue
        if row.type not in webhook.types:
            continue
        severity = webhook.min_severity
        if severity is not None and row.image_digest is not None and not severe_enough(row, severity):
            continue
        found.append(event_message(row))
    return found
