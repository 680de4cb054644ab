"""Keyset indexes of the image search: one per order, present images only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDERS = (
    ("pushed_at", "image_pushed_at", "'-infinity'::timestamp with time zone"),
    ("size", "image_size_in_bytes", "'-1'::bigint"),
    ("last_pull", "last_recorded_pull_time", "'-infinity'::timestamp with time zone"),
)


def upgrade() -> None:
    for name, column, missing in ORDERS:
        op.execute(
            f"CREATE INDEX ix_images_live_by_{name} ON images "
            f"(coalesce({column}, {missing}), registry_id, region, repository_name, image_digest) "
            "WHERE removed_at IS NULL"
        )


def downgrade() -> None:
    for name, _, _ in ORDERS:
        op.execute(f"DROP INDEX ix_images_live_by_{name}")
