"""An index of DescribeImages' order: one repository's present images in push order

DescribeImages (GraphQL's ``describeImages`` and the ECR-compatible endpoint's) pages a repository's
images oldest pushed first, by (push time, digest). Without an index of that order, every page sorted
the whole repository: a page of a 100,000-image repository read all of them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_images_live_by_repository_push",
        "images",
        [
            "registry_type",
            "registry_id",
            "region",
            "repository_name",
            sa.text("coalesce(image_pushed_at, '-infinity'::timestamp with time zone)"),
            "image_digest",
        ],
        postgresql_where=sa.text("removed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_images_live_by_repository_push", table_name="images")
