"""Writing the change feed: every change a sync makes is one event of ``image_events``, written in the
sync's own transaction (``inventory.sync.engine``); ``notify`` wakes the listeners when it commits.

Event types: ``image.added``, ``image.changed``, ``image.restored``, ``image.removed``,
``repository.added``, ``repository.removed`` (``inventory.feed.event.TYPES``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from inventory.sync.plan import Entry, Scope
from inventory.sync.transform import TAGS

_KEY = "registry_type, registry_id, region, repository_name"
_COPY = f"COPY image_events (sync_run_id, {_KEY}, image_digest, type, backfill, changes) FROM STDIN"

# Added and removed images' events are made by the server, once per scope, from the rows
# the transaction wrote (now() is the transaction's time): no per-row work in Python for
# the bulk of a first apply or of a mass removal.
_FROM_IMAGES = (
    f"INSERT INTO image_events (sync_run_id, {_KEY}, image_digest, type, backfill, changes) "
    f"SELECT %s, {_KEY}, image_digest, '{{type}}', %s, "
    "jsonb_build_object('image_tags', jsonb_build_array({before}, {after})) FROM images "
    "WHERE registry_type = %s AND registry_id = %s AND region = %s AND repository_name = %s AND {written} = now()"
)
_ADDED = _FROM_IMAGES.format(type="image.added", before="NULL", after="to_jsonb(image_tags)", written="first_seen_at")
_REMOVED = _FROM_IMAGES.format(type="image.removed", before="to_jsonb(image_tags)", after="NULL", written="removed_at")


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def write_changes(scope: Scope, run_id: int, entries: Sequence[Entry], *, connection: psycopg.Connection[Any]) -> None:
    """The events of changed and restored images: each changed field as [before, after]. A restored
    image brings its tags back as an added one does (``image_tags``: [null, its tags]), whether or
    not they are the ones it had when it was removed."""
    updated = [e for e in entries if e.symbol == "~" or e.restored]
    if not updated:
        return
    with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for entry in updated:
            changes = {f: [_json(b), _json(a)] for f, (b, a) in entry.changes.items()}
            if entry.restored:
                assert entry.after is not None
                changes["image_tags"] = [None, list(entry.after[TAGS])]
            kind = "image.restored" if entry.restored else "image.changed"
            copy.write_row((run_id, *scope.key, entry.image_digest, kind, False, json.dumps(changes)))


def write_added_and_removed(
    scope: Scope, run_id: int, *, added: bool, removed: bool, backfill: bool, connection: psycopg.Connection[Any]
) -> None:
    """The events of the images this transaction added and removed (their tags as they were)."""
    with connection.cursor() as cursor:
        if added:
            cursor.execute(_ADDED, (run_id, backfill, *scope.key))
        if removed:
            cursor.execute(_REMOVED, (run_id, False, *scope.key))


def write_repository(
    scope: Scope, run_id: int, type: str, *, backfill: bool, connection: psycopg.Connection[Any]
) -> None:
    """A ``repository.added`` or ``repository.removed`` event."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO image_events (sync_run_id, {_KEY}, type, backfill, changes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, '{}')",
            (run_id, *scope.key, type, backfill),
        )


CHANNEL = "inventory_events"
"""Notified by every transaction that writes events, when it commits: webhook senders wake at once."""


def notify(*, connection: psycopg.Connection[Any]) -> None:
    """Tell the listeners of ``CHANNEL`` there are new events (delivered when the transaction commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


def prune(older_than: float, *, connection: psycopg.Connection[Any], batch: int = 1000) -> int:
    """Delete at most ``batch`` of the oldest events that occurred over ``older_than`` seconds ago."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM image_events WHERE id IN (SELECT id FROM image_events "
            "WHERE occurred_at < now() - make_interval(secs => %s) ORDER BY xid, id LIMIT %s FOR UPDATE SKIP LOCKED)",
            (older_than, batch),
        )
        return cursor.rowcount
