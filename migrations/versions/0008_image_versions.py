"""The inventory at any past time: past versions of images, their start, and since when history is kept

``images.changed_at`` is when an image's current values were first observed;
``image_versions`` keeps each earlier version with its interval, written by the sync
that replaces it. An image was present at T with the values of the version whose
interval holds T: ``images`` (``changed_at`` .. ``removed_at``) or ``image_versions``
(``valid_from`` .. ``valid_to``). Both are indexed in every order of the image search
(``images`` over its removed rows too) so a page at a past time is a merge of index scans.

Versions did not exist before this revision: ``history_horizon`` starts now when the
inventory already held images (their earlier values are not known), at -infinity otherwise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDERS = (
    ("pushed_at", "image_pushed_at", "'-infinity'::timestamp with time zone"),
    ("size", "image_size_in_bytes", "'-1'::bigint"),
    ("last_pull", "last_recorded_pull_time", "'-infinity'::timestamp with time zone"),
)
_KEYSET = "registry_id, region, repository_name, image_digest, registry_type"


def _timestamp(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.add_column(
        "images",
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.execute("UPDATE images SET changed_at = first_seen_at")
    op.create_table(
        "image_versions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("registry_type", sa.Text(), nullable=False),
        sa.Column("registry_id", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("repository_name", sa.Text(), nullable=False),
        sa.Column("image_digest", sa.Text(), nullable=False),
        _timestamp("valid_from", nullable=False),
        _timestamp("valid_to", nullable=False),
        sa.Column("image_tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("image_size_in_bytes", sa.BigInteger(), nullable=True),
        _timestamp("image_pushed_at"),
        sa.Column("image_scan_status", sa.Text(), nullable=True),
        sa.Column("image_scan_status_description", sa.Text(), nullable=True),
        _timestamp("image_scan_completed_at"),
        _timestamp("vulnerability_source_updated_at"),
        sa.Column("finding_severity_counts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("image_manifest_media_type", sa.Text(), nullable=True),
        sa.Column("artifact_media_type", sa.Text(), nullable=True),
        _timestamp("last_recorded_pull_time"),
        sa.Column("subject_manifest_digest", sa.Text(), nullable=True),
        sa.Column("image_status", sa.Text(), nullable=True),
        _timestamp("last_archived_at"),
        _timestamp("last_activated_at"),
        _timestamp("first_seen_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_versions")),
    )
    op.create_index(
        "ix_image_versions_image",
        "image_versions",
        ["registry_type", "registry_id", "region", "repository_name", "image_digest"],
    )
    op.create_index("ix_image_versions_valid_to", "image_versions", ["valid_to"])
    for name, column, missing in ORDERS:
        op.execute(
            f"CREATE INDEX ix_image_versions_by_{name} ON image_versions "
            f"(coalesce({column}, {missing}), {_KEYSET}, valid_from)"
        )
        op.execute(
            f"CREATE INDEX ix_images_removed_by_{name} ON images (coalesce({column}, {missing}), {_KEYSET}) "
            "WHERE removed_at IS NOT NULL"
        )
    op.create_table(
        "history_horizon",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("since", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_horizon")),
    )
    op.execute(
        "INSERT INTO history_horizon (id, since) "
        "SELECT 1, CASE WHEN EXISTS (SELECT FROM images) THEN now() ELSE '-infinity' END"
    )


def downgrade() -> None:
    op.drop_table("history_horizon")
    for name, _, _ in ORDERS:
        op.execute(f"DROP INDEX ix_images_removed_by_{name}")
    op.drop_table("image_versions")
    op.drop_column("images", "changed_at")
