"""A current-state row per registry region (region_status) and per repository (image_count)

``inventory status``, ``/metrics`` and ``Registry.syncStatus`` read ``region_status``
instead of aggregating every sync run, and ``inventory_images`` sums
``repositories.image_count`` instead of counting the images: both are kept by the
sync in the transactions that change them. Both are backfilled here from what the
tables hold, with the same aggregates the status and the metrics used to run.
``sync_runs(started_at)`` is indexed for retention, which prunes the oldest runs first.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "region_status",
        sa.Column("registry_name", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.Text(), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        _counter("syncs_succeeded"),
        _counter("syncs_failed"),
        _counter("api_calls"),
        _counter("throttled_calls"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("registry_name", "region", name=op.f("pk_region_status")),
    )
    # Failing since the first failure after the last success, as the status read it from the runs.
    op.execute(
        """
        INSERT INTO region_status (registry_name, region, last_success_at, last_error_at, last_error_code,
                                   last_error_message, failing_since, syncs_succeeded, syncs_failed,
                                   api_calls, throttled_calls)
        WITH success AS (
            SELECT registry_name, region,
                   max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success_at
            FROM sync_runs GROUP BY registry_name, region
        )
        SELECT r.registry_name, r.region, s.last_success_at,
               max(r.finished_at) FILTER (WHERE r.status = 'failed'),
               (array_agg(r.error_code ORDER BY r.finished_at DESC, r.id DESC)
                  FILTER (WHERE r.status = 'failed'))[1],
               (array_agg(r.error_message ORDER BY r.finished_at DESC, r.id DESC)
                  FILTER (WHERE r.status = 'failed'))[1],
               min(r.finished_at) FILTER (
                   WHERE r.status = 'failed' AND r.finished_at > coalesce(s.last_success_at, '-infinity')
               ),
               count(*) FILTER (WHERE r.status = 'succeeded'),
               count(*) FILTER (WHERE r.status = 'failed'),
               coalesce(sum(r.api_calls), 0),
               coalesce(sum(r.throttled_calls), 0)
        FROM sync_runs r JOIN success s USING (registry_name, region)
        WHERE r.finished_at IS NOT NULL AND r.status <> 'running'
        GROUP BY r.registry_name, r.region, s.last_success_at
        """
    )
    op.add_column("repositories", sa.Column("image_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.execute(
        """
        UPDATE repositories r SET image_count = c.images
        FROM (
            SELECT registry_type, registry_id, region, repository_name, count(*) AS images
            FROM images WHERE removed_at IS NULL
            GROUP BY registry_type, registry_id, region, repository_name
        ) c
        WHERE (r.registry_type, r.registry_id, r.region, r.repository_name)
            = (c.registry_type, c.registry_id, c.region, c.repository_name)
        """
    )
    op.create_index(op.f("ix_sync_runs_started_at"), "sync_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sync_runs_started_at"), table_name="sync_runs")
    op.drop_column("repositories", "image_count")
    op.drop_table("region_status")
