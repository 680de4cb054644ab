"""History read through indexes: a past time's few rows, a tag's events; restorations record their tags

The inventory as of T reads, besides the keyset walks of 0008, present images unchanged
since T and images removed after T; when few rows qualify those are found through
``changed_at`` and ``removed_at`` (partial indexes) instead of by walking every present
image. A tag's history reads the events whose ``changes.image_tags`` held it, through a
GIN index on that pair, instead of every event of its repository.

So that every event that moved a tag says so, an ``image.restored`` event now records
``image_tags`` as ``[null, its tags]`` (as ``image.added`` does); the restorations already
written get it from the version the restoration started.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SAME_IMAGE = " AND ".join(
    f"s.{c} = e.{c}" for c in ("registry_type", "registry_id", "region", "repository_name", "image_digest")
)


def upgrade() -> None:
    # The tags a restoration brought back: those of the version it started (the image's current
    # one if nothing changed it since, else the kept one that began then).
    op.execute(
        "UPDATE image_events e SET changes = e.changes || jsonb_build_object('image_tags', jsonb_build_array(NULL, "
        f"to_jsonb(coalesce((SELECT s.image_tags FROM images s WHERE {_SAME_IMAGE} AND s.changed_at = e.occurred_at), "
        f"(SELECT s.image_tags FROM image_versions s WHERE {_SAME_IMAGE} AND s.valid_from = e.occurred_at LIMIT 1), "
        "CASE WHEN e.changes ? 'image_tags' "
        "THEN ARRAY(SELECT jsonb_array_elements_text(e.changes -> 'image_tags' -> 1)) END, "
        "'{}'::text[])))) WHERE e.type = 'image.restored'"
    )
    op.create_index(
        "ix_images_live_changed_at", "images", ["changed_at"], postgresql_where=sa.text("removed_at IS NULL")
    )
    op.create_index(
        "ix_images_removed_at", "images", ["removed_at"], postgresql_where=sa.text("removed_at IS NOT NULL")
    )
    op.create_index(
        "ix_image_events_tags",
        "image_events",
        [sa.text("(changes -> 'image_tags') jsonb_path_ops")],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_image_events_tags", table_name="image_events")
    op.drop_index("ix_images_removed_at", table_name="images")
    op.drop_index("ix_images_live_changed_at", table_name="images")
