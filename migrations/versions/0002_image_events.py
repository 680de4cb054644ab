"""image events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:51:52.109260
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("sync_run_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("registry_id", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("repository_name", sa.Text(), nullable=False),
        sa.Column("image_digest", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["sync_run_id"], ["sync_runs.id"], name=op.f("fk_image_events_sync_run_id_sync_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_events")),
    )
    op.create_index(
        "ix_image_events_image",
        "image_events",
        ["registry_id", "region", "repository_name", "image_digest"],
        unique=False,
    )
    op.create_index("ix_image_events_occurred_at", "image_events", ["occurred_at"], unique=False)
    op.create_index(op.f("ix_image_events_sync_run_id"), "image_events", ["sync_run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_image_events_sync_run_id"), table_name="image_events")
    op.drop_index("ix_image_events_occurred_at", table_name="image_events")
    op.drop_index("ix_image_events_image", table_name="image_events")
    op.drop_table("image_events")
