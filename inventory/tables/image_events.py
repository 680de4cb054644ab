"""SQL of the ``image_events`` table: one event per image changed, written in the apply's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from inventory.sync.plan import Entry, Scope

_KEY = "registry_type, registry_id, region, repository_name"
_COPY = f"COPY image_events (sync_run_id, {_KEY}, image_digest, kind, changes) FROM STDIN"

# Added and removed images' events are made by the server, once per scope, from the rows
# the transaction wrote (now() is the transaction's time): no per-row work in Python for
# the bulk of a first apply or of a mass removal.
_FROM_IMAGES = (
    f"INSERT INTO image_events (sync_run_id, {_KEY}, image_digest, kind, changes) "
    f"SELECT %s, {_KEY}, image_digest, '{{kind}}', "
    "jsonb_build_object('image_tags', jsonb_build_array({before}, {after})) FROM images "
    "WHERE registry_type = %s AND registry_id = %s AND region = %s AND repository_name = %s AND {written} = now()"
)
_ADDED = _FROM_IMAGES.format(kind="added", before="NULL", after="to_jsonb(image_tags)", written="first_seen_at")
_REMOVED = _FROM_IMAGES.format(kind="removed", before="to_jsonb(image_tags)", after="NULL", written="removed_at")


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def write_changes(scope: Scope, run_id: int, entries: Sequence[Entry], *, connection: psycopg.Connection[Any]) -> None:
    """The events of changed and restored images: each changed field as [before, after]."""
    updated = [e for e in entries if e.symbol == "~" or e.restored]
    if not updated:
        return
    with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for entry in updated:
            changes = {f: [_json(b), _json(a)] for f, (b, a) in entry.changes.items()}
            kind = "restored" if entry.restored else "changed"
            copy.write_row((run_id, *scope.key, entry.image_digest, kind, json.dumps(changes)))


def write_added_and_removed(
    scope: Scope, run_id: int, *, added: bool, removed: bool, connection: psycopg.Connection[Any]
) -> None:
    """The events of the images this transaction added and removed (their tags as they were)."""
    with connection.cursor() as cursor:
        if added:
            cursor.execute(_ADDED, (run_id, *scope.key))
        if removed:
            cursor.execute(_REMOVED, (run_id, *scope.key))
