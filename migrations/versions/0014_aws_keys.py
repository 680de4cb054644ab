"""API tokens may be AWS access keys, for the ECR-compatible endpoint

A token created with ``--aws`` is an access key id and a secret access key; the id is stored
(unique among the tokens that have one), the secret never: it is derived from the server's
``INVENTORY_SECRET_KEY`` and the id (``inventory.ecr.keys``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("aws_access_key_id", sa.Text(), nullable=True))
    op.create_index(
        "ix_api_tokens_aws_access_key_id",
        "api_tokens",
        ["aws_access_key_id"],
        unique=True,
        postgresql_where=sa.text("aws_access_key_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_api_tokens_aws_access_key_id", table_name="api_tokens")
    op.drop_column("api_tokens", "aws_access_key_id")
