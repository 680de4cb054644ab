"""Where a tag pointed over time, replayed from a repository's events (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TagSpan:
    """``tag`` pointed at ``image_digest`` from ``since`` until ``until`` (None: it still does)."""

    image_digest: str
    since: datetime
    until: datetime | None


def tag_assignments(events: Iterable[Any], tag: str) -> list[TagSpan]:
    """The assignments of ``tag`` in one repository, newest first, from its events oldest first
    (rows with ``type``, ``image_digest``, ``occurred_at`` and ``changes``, as ``tag_events`` reads them)."""
    open_since: dict[str, datetime] = {}
    found: list[TagSpan] = []
    for event in events:
        digest = event.image_digest
        change = event.changes.get("image_tags")
        if digest is None or change is None:
            continue
        after = change[1] or ()
        if tag in after and digest not in open_since:
            open_since[digest] = event.occurred_at
        elif tag not in after and digest in open_since:
            found.append(TagSpan(digest, open_since.pop(digest), event.occurred_at))
    found += [TagSpan(digest, since, None) for digest, since in open_since.items()]
    return sorted(found, key=lambda a: (a.since, a.image_digest), reverse=True)
