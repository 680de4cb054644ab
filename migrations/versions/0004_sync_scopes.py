"""Worker leases and schedules (sync_scopes); the worker that ran each sync run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_scopes",
        sa.Column("registry_name", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("declared_as", sa.Text(), nullable=True),
        sa.Column("next_due_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("registry_name", "region", name=op.f("pk_sync_scopes")),
    )
    op.create_index(op.f("ix_sync_scopes_next_due_at"), "sync_scopes", ["next_due_at"])
    op.add_column("sync_runs", sa.Column("worker", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("sync_runs", "worker")
    op.drop_index(op.f("ix_sync_scopes_next_due_at"), table_name="sync_scopes")
    op.drop_table("sync_scopes")
