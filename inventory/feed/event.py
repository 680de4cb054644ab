"""The one shape of an event of the change feed: what GraphQL's ``ImageEvent``, the CLI's
``inventory events`` and a webhook's payload each show of it (``Event.json`` is the JSON of both the
last two, with GraphQL's field names).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inventory.config import EVENT_TYPES

TYPES = EVENT_TYPES
"""``image.added``, ``image.changed``, ``image.restored``, ``image.removed``, ``repository.added``,
``repository.removed``."""

Position = tuple[int, int]
"""A place in the feed: (the writing transaction's xid, the event's id)."""


@dataclass(frozen=True)
class FieldChange:
    """One field an event changed: its value before and after (None: none)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Event:
    """One change a sync made to an image or a repository."""

    id: int
    position: Position
    type: str
    occurred_at: datetime
    registry_type: str
    """As the tables spell it: ``ecr`` or ``ecr-public``."""
    registry_id: str
    region: str
    repository_name: str
    image_digest: str | None
    """None for repository events."""
    backfill: bool
    changes: list[FieldChange]
    """By field name; tags included (an added image records its tags, a removed one the tags it had)."""
    tags_added: list[str]
    tags_removed: list[str]
    sync_run_id: int

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """The event of a row read by ``inventory.feed.query`` (its ``COLUMNS``)."""
        added, removed = tag_changes(row.changes)
        return cls(
            id=row.id,
            position=(row.xid, row.id),
            type=row.type,
            occurred_at=row.occurred_at,
            registry_type=row.registry_type,
            registry_id=row.registry_id,
            region=row.region,
            repository_name=row.repository_name,
            image_digest=row.image_digest,
            backfill=row.backfill,
            changes=[FieldChange(f, b, a) for f, (b, a) in sorted(row.changes.items())],
            tags_added=added,
            tags_removed=removed,
            sync_run_id=row.sync_run_id,
        )

    @property
    def node_id(self) -> str:
        return event_node_id(self.id)

    def json(self) -> dict[str, Any]:
        """The event with the fields of GraphQL's ``ImageEvent`` (``syncRun`` as ``syncRunId``), and its position."""
        return {
            "id": self.node_id,
            "position": list(self.position),
            "type": self.type,
            "occurredAt": utc_text(self.occurred_at),
            "registryId": self.registry_id,
            "region": self.region,
            "repositoryName": self.repository_name,
            "registryType": "ECR_PUBLIC" if self.registry_type == "ecr-public" else "ECR",
            "imageDigest": self.image_digest,
            "backfill": self.backfill,
            "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in self.changes],
            "tagsAdded": self.tags_added,
            "tagsRemoved": self.tags_removed,
            "syncRunId": self.sync_run_id,
        }


def event_node_id(event_id: int) -> str:
    """The event's GraphQL node id, as strawberry's relay spells a GlobalID: base64 of ``ImageEvent:<id>``."""
    return base64.b64encode(f"ImageEvent:{event_id}".encode()).decode()


def utc_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def tag_changes(changes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(tags added, tags removed) by an event, from its ``image_tags`` change."""
    before, after = changes.get("image_tags") or (None, None)
    before, after = set(before or ()), set(after or ())
    return sorted(after - before), sorted(before - after)
