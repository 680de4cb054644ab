"""The change feed: event types, backfill, a position safe under concurrent commits, repository events

``kind`` becomes ``type`` (``added`` → ``image.added``…); repository events have no
digest; ``backfill`` marks the events of a repository's first sync (for the rows
already kept: the ``image.added`` events of each repository's first sync run); ``xid``
(the writing transaction) with ``id`` is the feed's position, indexed, and events are
indexed by repository (then id) for the history of a repository, a tag or an image.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inventory.models import Xid8

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPOSITORY = ["registry_type", "registry_id", "region", "repository_name", "id"]


def upgrade() -> None:
    op.alter_column("image_events", "kind", new_column_name="type")
    op.execute("UPDATE image_events SET type = 'image.' || type")
    op.alter_column("image_events", "image_digest", nullable=True)
    op.add_column("image_events", sa.Column("backfill", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.execute(
        "UPDATE image_events e SET backfill = true FROM ("
        "  SELECT registry_type, registry_id, region, repository_name, min(sync_run_id) AS first_run"
        "  FROM image_events GROUP BY 1, 2, 3, 4) f "
        "WHERE (e.registry_type, e.registry_id, e.region, e.repository_name, e.sync_run_id) "
        "= (f.registry_type, f.registry_id, f.region, f.repository_name, f.first_run) AND e.type = 'image.added'"
    )
    op.add_column(
        "image_events", sa.Column("xid", Xid8(), server_default=sa.text("pg_current_xact_id()"), nullable=False)
    )
    op.create_index("ix_image_events_position", "image_events", ["xid", "id"])
    op.create_index("ix_image_events_repository", "image_events", _REPOSITORY)


def downgrade() -> None:
    op.drop_index("ix_image_events_repository", table_name="image_events")
    op.drop_index("ix_image_events_position", table_name="image_events")
    op.drop_column("image_events", "xid")
    op.drop_column("image_events", "backfill")
    op.execute("DELETE FROM image_events WHERE image_digest IS NULL")
    op.alter_column("image_events", "image_digest", nullable=False)
    op.execute("UPDATE image_events SET type = substr(type, length('image.') + 1)")
    op.alter_column("image_events", "type", new_column_name="kind")
