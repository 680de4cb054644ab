"""The keyset indexes of present images end with ``changed_at``

The inventory as of T walks an order's ``ix_images_live_by_*`` index over the present images
and keeps those unchanged since T (``changed_at <= T``). Without ``changed_at`` in the index,
every row walked was read from the table to be dropped; with it as the index's last column
(after the key and the image's identity, so the order and the keyset are unchanged), the walk
drops them in the index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDERS = (
    ("pushed_at", "image_pushed_at", "'-infinity'::timestamp with time zone"),
    ("size", "image_size_in_bytes", "'-1'::bigint"),
    ("last_pull", "last_recorded_pull_time", "'-infinity'::timestamp with time zone"),
)
_KEYSET = "registry_id, region, repository_name, image_digest, registry_type"


def upgrade() -> None:
    _live_indexes(", changed_at")


def downgrade() -> None:
    _live_indexes("")


def _live_indexes(last: str) -> None:
    """The ``ix_images_live_by_*`` indexes over an order's key, the image's identity, then ``last``."""
    for name, column, missing in ORDERS:
        op.execute(f"DROP INDEX ix_images_live_by_{name}")
        op.execute(
            f"CREATE INDEX ix_images_live_by_{name} ON images "
            f"(coalesce({column}, {missing}), {_KEYSET}{last}) WHERE removed_at IS NULL"
        )
