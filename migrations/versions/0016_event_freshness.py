"""What ECR's events did to each region: the last event applied, and the last full round

``region_status`` gains ``last_round_at`` (the last round that covered the whole region, failed
scopes or not), ``last_event_at`` (the time ECR gave the newest event applied),
``last_event_applied_at`` (when its sync committed) and ``events_applied`` (messages applied).
All are null (0) until a round or an event writes them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("last_round_at", "last_event_at", "last_event_applied_at")


def upgrade() -> None:
    for name in _TIMES:
        op.add_column("region_status", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "region_status", sa.Column("events_applied", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )
    # A region that last succeeded had a whole round then.
    op.execute("UPDATE region_status SET last_round_at = last_success_at")


def downgrade() -> None:
    for name in (*_TIMES, "events_applied"):
        op.drop_column("region_status", name)
