"""Repository events indexed apart: whether a repository was present at a past time

A repository removed and later listed again has ``removed_at`` null; that it was absent in
between is only in its ``repository.removed`` and ``repository.added`` events. Reading the
inventory as of T looks up each repository's last such event by then; this partial index
holds only those (``image_digest`` null), so the look-up never reads through the
repository's image events.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_image_events_repository_presence",
        "image_events",
        ["registry_type", "registry_id", "region", "repository_name", "id"],
        postgresql_where=sa.text("image_digest IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_image_events_repository_presence", table_name="image_events")
