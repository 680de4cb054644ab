"""The registry type ('ecr' or 'ecr-public') joins the identity of repositories and images

A private repository and an ECR Public one of the same name in the same account are two
repositories: ``registry_type`` is added to ``repositories``, ``images`` and ``image_events``
and leads the primary keys of the first two (and the foreign key between them).

Existing rows are carried over: the column is added with the default 'ecr' (no table
rewrite), then only the rows of 'ecr-public' registries are updated (repositories by
their ``registry_name``, images and events through their repository on the old key), and
the default is dropped. A row whose registry is unknown stays 'ecr'.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ("registry_id", "region", "repository_name")
NEW_KEY = ("registry_type", *OLD_KEY)
OLD_FK = "fk_images_registry_id_region_repository_name_repositories"
# The naming convention's name, truncated by SQLAlchemy to PostgreSQL's 63 characters.
NEW_FK = "fk_images_registry_type_registry_id_region_repository_n_5a6b"
ORDERS = (
    ("pushed_at", "image_pushed_at", "'-infinity'::timestamp with time zone"),
    ("size", "image_size_in_bytes", "'-1'::bigint"),
    ("last_pull", "last_recorded_pull_time", "'-infinity'::timestamp with time zone"),
)


def upgrade() -> None:
    for table in ("repositories", "images", "image_events"):
        op.add_column(table, sa.Column("registry_type", sa.Text(), nullable=False, server_default="ecr"))
    op.execute(
        "UPDATE repositories r SET registry_type = g.type FROM registries g "
        "WHERE g.name = r.registry_name AND g.type <> 'ecr'"
    )
    for table in ("images", "image_events"):
        op.execute(
            f"UPDATE {table} t SET registry_type = r.registry_type FROM repositories r "
            "WHERE r.registry_type <> 'ecr' AND (t.registry_id, t.region, t.repository_name) "
            "= (r.registry_id, r.region, r.repository_name)"
        )
    for table in ("repositories", "images", "image_events"):
        op.alter_column(table, "registry_type", server_default=None)
    _rekey(NEW_KEY, OLD_FK, NEW_FK, tiebreak=("registry_type",))


def downgrade() -> None:
    # Fails (on the primary keys) while a private and a public repository share a name.
    _rekey(OLD_KEY, NEW_FK, OLD_FK, tiebreak=())
    for table in ("image_events", "images", "repositories"):
        op.drop_column(table, "registry_type")


def _rekey(key: tuple[str, ...], old_fk: str, new_fk: str, *, tiebreak: tuple[str, ...]) -> None:
    """Primary keys, the images → repositories foreign key and the keyset indexes over ``key``."""
    op.drop_constraint(op.f(old_fk), "images", type_="foreignkey")
    op.drop_constraint(op.f("pk_images"), "images", type_="primary")
    op.drop_constraint(op.f("pk_repositories"), "repositories", type_="primary")
    op.create_primary_key(op.f("pk_repositories"), "repositories", list(key))
    op.create_primary_key(op.f("pk_images"), "images", [*key, "image_digest"])
    op.create_foreign_key(op.f(new_fk), "images", "repositories", list(key), list(key), ondelete="CASCADE")
    for name, column, missing in ORDERS:
        op.execute(f"DROP INDEX ix_images_live_by_{name}")
        op.execute(
            f"CREATE INDEX ix_images_live_by_{name} ON images "
            f"(coalesce({column}, {missing}), registry_id, region, repository_name, image_digest"
            f"{''.join(', ' + column for column in tiebreak)}) WHERE removed_at IS NULL"
        )
