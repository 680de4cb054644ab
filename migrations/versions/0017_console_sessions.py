"""Console sessions: a browser's session of the web console, bound to the API token it was opened with

Only the SHA-256 of the session id (the cookie's value) is stored. A session ends at its own expiry,
at logout (its row is deleted), and when its token is revoked or expires (every request joins the
token's row); deleting a token's row deletes its sessions.

And a BRIN index of ``image_events.occurred_at`` for the console's chart of the last days' events
(``inventory.read.history.activity``): events are appended in time order, so it is a few pages.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("session_hash", sa.LargeBinary(), nullable=False),
        sa.Column("token_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_console_sessions_token_id_api_tokens"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_token_id", "console_sessions", ["token_id"])
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_index("ix_image_events_occurred_at", "image_events", ["occurred_at"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_image_events_occurred_at", table_name="image_events", postgresql_using="brin")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_index("ix_console_sessions_token_id", table_name="console_sessions")
    op.drop_table("console_sessions")
