"""registries, repositories, images and sync runs

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:33:49.462679
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registries",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("regions", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_registries")),
    )
    op.create_index(op.f("ix_registries_account_id"), "registries", ["account_id"], unique=False)
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("registry_name", sa.Text(), nullable=False),
        sa.Column("registry_id", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("repository_name", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("images_seen", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("images_added", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("images_changed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("images_removed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("api_calls", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("throttled_calls", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index("ix_sync_runs_scope", "sync_runs", ["registry_name", "region", "started_at"], unique=False)
    op.create_index(op.f("ix_sync_runs_status"), "sync_runs", ["status"], unique=False)
    op.create_table(
        "repositories",
        sa.Column("registry_id", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("repository_name", sa.Text(), nullable=False),
        sa.Column("registry_name", sa.Text(), nullable=False),
        sa.Column("repository_arn", sa.Text(), nullable=True),
        sa.Column("repository_uri", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["registry_name"],
            ["registries.name"],
            name=op.f("fk_repositories_registry_name_registries"),
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("registry_id", "region", "repository_name", name=op.f("pk_repositories")),
    )
    op.create_index(op.f("ix_repositories_registry_name"), "repositories", ["registry_name"], unique=False)
    op.create_table(
        "images",
        sa.Column("registry_id", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("repository_name", sa.Text(), nullable=False),
        sa.Column("image_digest", sa.Text(), nullable=False),
        sa.Column(
            "image_tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("image_size_in_bytes", sa.BigInteger(), nullable=True),
        sa.Column("image_pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("image_scan_status", sa.Text(), nullable=True),
        sa.Column("image_scan_status_description", sa.Text(), nullable=True),
        sa.Column("image_scan_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("vulnerability_source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finding_severity_counts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("image_manifest_media_type", sa.Text(), nullable=True),
        sa.Column("artifact_media_type", sa.Text(), nullable=True),
        sa.Column("last_recorded_pull_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subject_manifest_digest", sa.Text(), nullable=True),
        sa.Column("image_status", sa.Text(), nullable=True),
        sa.Column("last_archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["registry_id", "region", "repository_name"],
            ["repositories.registry_id", "repositories.region", "repositories.repository_name"],
            name=op.f("fk_images_registry_id_region_repository_name_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registry_id", "region", "repository_name", "image_digest", name=op.f("pk_images")),
    )
    op.create_index("ix_images_image_digest", "images", ["image_digest"], unique=False)
    op.create_index("ix_images_image_tags", "images", ["image_tags"], unique=False, postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_images_image_tags", table_name="images", postgresql_using="gin")
    op.drop_index("ix_images_image_digest", table_name="images")
    op.drop_table("images")
    op.drop_index(op.f("ix_repositories_registry_name"), table_name="repositories")
    op.drop_table("repositories")
    op.drop_index(op.f("ix_sync_runs_status"), table_name="sync_runs")
    op.drop_index("ix_sync_runs_scope", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_index(op.f("ix_registries_account_id"), table_name="registries")
    op.drop_table("registries")
