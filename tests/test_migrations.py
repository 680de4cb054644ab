"""Migrations carry existing rows over: a database populated at an earlier revision, upgraded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, text

from inventory import models
from inventory.db import alembic_config

PRIVATE, PUBLIC = "111111111111", "222222222222"
DIGEST = "sha256:" + "a" * 64


def upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_engine(empty_database_url)
    yield engine
    engine.dispose()


def populate_at_0004(connection: Connection) -> None:
    """Two accounts' private ECR and one ECR Public registry, as revision 0004 stored them."""
    connection.execute(
        text(
            "INSERT INTO registries (name, type, account_id, regions) VALUES "
            "('prod', 'ecr', :private, '{us-east-1,eu-west-1}'), ('public', 'ecr-public', :public, '{us-east-1}')"
        ),
        {"private": PRIVATE, "public": PUBLIC},
    )
    repositories = [
        ("prod", PRIVATE, "us-east-1", "app/web"),
        ("prod", PRIVATE, "eu-west-1", "app/web"),
        ("public", PUBLIC, "us-east-1", "app/web"),
        ("public", PUBLIC, "us-east-1", "tools/cli"),
    ]
    for registry_name, registry_id, region, name in repositories:
        key = {"registry_id": registry_id, "region": region, "repository_name": name}
        connection.execute(
            text(
                "INSERT INTO repositories (registry_id, region, repository_name, registry_name) "
                "VALUES (:registry_id, :region, :repository_name, :registry_name)"
            ),
            {**key, "registry_name": registry_name},
        )
        for digest, removed in ((DIGEST, False), ("sha256:" + "b" * 64, True)):
            connection.execute(
                text(
                    "INSERT INTO images (registry_id, region, repository_name, image_digest, image_tags, "
                    "image_size_in_bytes, image_pushed_at, removed_at) VALUES (:registry_id, :region, "
                    ":repository_name, :digest, '{latest}', 42, now(), CASE WHEN :removed THEN now() END)"
                ),
                {**key, "digest": digest, "removed": removed},
            )
            connection.execute(
                text(
                    "INSERT INTO image_events (sync_run_id, registry_id, region, repository_name, image_digest, "
                    "kind, changes) VALUES (1, :registry_id, :region, :repository_name, :digest, 'added', '{}')"
                ),
                {**key, "digest": digest},
            )
    # An event of a repository the inventory no longer holds: its registry is unknown.
    connection.execute(
        text(
            "INSERT INTO image_events (sync_run_id, registry_id, region, repository_name, image_digest, kind, "
            "changes) VALUES (1, :private, 'ap-south-1', 'gone', :digest, 'removed', '{}')"
        ),
        {"private": PRIVATE, "digest": DIGEST},
    )
    connection.execute(
        text(
            "INSERT INTO sync_runs (registry_name, registry_id, region, status, worker) VALUES "
            "('prod', :private, 'us-east-1', 'SUCCEEDED', 'host:1'), "
            "('public', :public, 'us-east-1', 'SUCCEEDED', NULL)"
        ),
        {"private": PRIVATE, "public": PUBLIC},
    )


def snapshot(connection: Connection, table: str, columns: str) -> set[tuple[object, ...]]:
    rows = connection.execute(text(f"SELECT {columns} FROM {table}"))
    return {tuple(tuple(value) if isinstance(value, list) else value for value in row) for row in rows}


IMAGE_COLUMNS = "registry_id, region, repository_name, image_digest, image_tags, image_size_in_bytes, removed_at"
EVENT_COLUMNS = "id, sync_run_id, registry_id, region, repository_name, image_digest, kind"
RUN_COLUMNS = "id, registry_name, registry_id, region, repository_name, status, started_at, worker"


def test_0005_carries_rows_over_with_their_registry_type(engine: Engine) -> None:
    with engine.begin() as connection:
        upgrade(connection, "0004")
        populate_at_0004(connection)
        before = {
            "repositories": snapshot(connection, "repositories", "registry_id, region, repository_name, registry_name"),
            "images": snapshot(connection, "images", IMAGE_COLUMNS),
            "image_events": snapshot(connection, "image_events", EVENT_COLUMNS),
            "sync_runs": snapshot(connection, "sync_runs", RUN_COLUMNS),
        }
    with engine.begin() as connection:
        upgrade(connection, "0005")

    with engine.connect() as connection:
        repositories = snapshot(
            connection, "repositories", "registry_type, registry_id, region, repository_name, registry_name"
        )
        assert {row[1:] for row in repositories} == before["repositories"]
        assert {(row[0], row[4]) for row in repositories} == {("ecr", "prod"), ("ecr-public", "public")}

        images = snapshot(connection, "images", f"registry_type, {IMAGE_COLUMNS}")
        assert {row[1:] for row in images} == before["images"]
        assert len(images) == 8
        assert {row[0] for row in images if row[1] == PRIVATE} == {"ecr"}
        assert {row[0] for row in images if row[1] == PUBLIC} == {"ecr-public"}

        events = snapshot(connection, "image_events", f"registry_type, {EVENT_COLUMNS}")
        assert {row[1:] for row in events} == before["image_events"]
        assert {row[0] for row in events if row[3] == PRIVATE} == {"ecr"}  # the unknown one too
        assert {row[0] for row in events if row[3] == PUBLIC} == {"ecr-public"}

        assert snapshot(connection, "sync_runs", RUN_COLUMNS) == before["sync_runs"]
        nullable = connection.execute(
            text(
                "SELECT table_name, is_nullable, column_default FROM information_schema.columns "
                "WHERE column_name = 'registry_type' "
                "AND table_name IN ('repositories', 'images', 'image_events') ORDER BY table_name"
            )
        ).all()
        assert [tuple(row) for row in nullable] == [
            ("image_events", "NO", None),
            ("images", "NO", None),
            ("repositories", "NO", None),
        ]


def test_after_0005_a_private_and_a_public_repository_share_a_name(engine: Engine) -> None:
    with engine.begin() as connection:
        upgrade(connection, "head")
        connection.execute(
            text(
                "INSERT INTO registries (name, type, account_id, regions) VALUES "
                "('private', 'ecr', :account, '{us-east-1}'), ('public', 'ecr-public', :account, '{us-east-1}')"
            ),
            {"account": PRIVATE},
        )
        for registry_type, registry_name in (("ecr", "private"), ("ecr-public", "public")):
            key = {"registry_type": registry_type, "registry_id": PRIVATE, "region": "us-east-1"}
            connection.execute(
                text(
                    "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name) "
                    "VALUES (:registry_type, :registry_id, :region, 'app/web', :registry_name)"
                ),
                {**key, "registry_name": registry_name},
            )
            connection.execute(
                text(
                    "INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest) "
                    "VALUES (:registry_type, :registry_id, :region, 'app/web', :digest)"
                ),
                {**key, "digest": DIGEST},
            )
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT r.registry_type, r.registry_name, i.image_digest FROM repositories r "
                "JOIN images i USING (registry_type, registry_id, region, repository_name) ORDER BY 1"
            )
        ).all()
    assert [tuple(row) for row in rows] == [("ecr", "private", DIGEST), ("ecr-public", "public", DIGEST)]


def test_0005_downgrades_to_the_old_keys(engine: Engine) -> None:
    with engine.begin() as connection:
        upgrade(connection, "0004")
        populate_at_0004(connection)
        upgrade(connection, "head")
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        keys = connection.execute(
            text(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid IN ('images'::regclass, 'repositories'::regclass) AND contype IN ('p', 'f') "
                "ORDER BY 1, 2"
            )
        ).all()
        assert connection.execute(text("SELECT count(*) FROM images")).scalar_one() == 8
    assert [tuple(row) for row in keys] == [
        ("images", "FOREIGN KEY (registry_id, region, repository_name) REFERENCES "
                   "repositories(registry_id, region, repository_name) ON DELETE CASCADE"),
        ("images", "PRIMARY KEY (registry_id, region, repository_name, image_digest)"),
        ("repositories", "FOREIGN KEY (registry_name) REFERENCES registries(name) "
                         "ON UPDATE CASCADE ON DELETE RESTRICT"),
        ("repositories", "PRIMARY KEY (registry_id, region, repository_name)"),
    ]  # fmt: skip


def test_0007_makes_the_events_a_feed_without_losing_one(engine: Engine) -> None:
    with engine.begin() as connection:
        upgrade(connection, "0004")
        populate_at_0004(connection)
        connection.execute(
            text(
                "INSERT INTO image_events (sync_run_id, registry_id, region, repository_name, image_digest, kind, "
                "changes) SELECT 99, registry_id, region, repository_name, image_digest, 'changed', '{}' "
                "FROM image_events WHERE kind = 'added'"
            )
        )
        before = snapshot(connection, "image_events", EVENT_COLUMNS)
    with engine.begin() as connection:
        upgrade(connection, "head")
    with engine.connect() as connection:
        after = snapshot(connection, "image_events", EVENT_COLUMNS.replace("kind", "type") + ", backfill")
        positions = connection.execute(text("SELECT count(DISTINCT xid::text) FROM image_events")).scalar_one()
    assert {(*row[:-2], row[-2].removeprefix("image.")) for row in after} == before
    assert all(row[-1] == (row[-2] == "image.added") for row in after)  # each first sync's additions: a backfill
    assert positions == 1  # the rows kept are ordered by id within the migration's transaction


def test_0010_gives_restorations_the_tags_they_brought_back(engine: Engine) -> None:
    """Restored at T1 with [v1] (changed to [v2] at T2 since), at T3 with [v3] (current), and at T4 by an
    event whose version retention pruned: from its own tag change, else none."""
    image = "'ecr', :account, 'us-east-1', 'app/web'"
    key = {"account": PRIVATE}
    with engine.begin() as connection:
        upgrade(connection, "0009")
        connection.execute(text("INSERT INTO registries (name, type, account_id, regions) "
                                "VALUES ('prod', 'ecr', :account, '{us-east-1}')"), key)  # fmt: skip
        connection.execute(text(f"INSERT INTO repositories (registry_type, registry_id, region, repository_name, "
                                f"registry_name) VALUES ({image}, 'prod')"), key)  # fmt: skip
        for digest, tags, changed in (("a", "{v2}", "T2"), ("b", "{v3}", "T3")):
            connection.execute(
                text(f"INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, "
                     f"image_tags, changed_at) VALUES ({image}, :digest, :tags, timestamptz '2026-01-01' + :at)"),
                {**key, "digest": digest, "tags": tags, "at": f"{changed[1]} days"},
            )  # fmt: skip
        connection.execute(
            text(f"INSERT INTO image_versions (registry_type, registry_id, region, repository_name, image_digest, "
                 f"valid_from, valid_to, image_tags, first_seen_at) VALUES ({image}, 'a', timestamptz "
                 f"'2026-01-01' + interval '1 day', timestamptz '2026-01-01' + interval '2 days', '{{v1}}', now())"),
            key,
        )  # fmt: skip
        for digest, day, changes in (
            ("a", 1, "{}"),
            ("b", 3, '{"image_size_in_bytes": [1, 2]}'),
            ("c", 4, '{"image_tags": [["old"], ["new"]]}'),
            ("d", 4, "{}"),
        ):
            connection.execute(
                text(f"INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, repository_name, "
                     f"image_digest, type, changes, occurred_at) VALUES (1, {image}, :digest, 'image.restored', "
                     f"CAST(:changes AS jsonb), timestamptz '2026-01-01' + :at)"),
                {**key, "digest": digest, "changes": changes, "at": f"{day} days"},
            )  # fmt: skip
        connection.execute(text(f"INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, "
                                f"repository_name, image_digest, type, changes) VALUES (1, {image}, 'a', "
                                f"'image.changed', '{{\"image_size_in_bytes\": [1, 2]}}')"), key)  # fmt: skip
        upgrade(connection, "head")
        rows = connection.execute(text("SELECT image_digest, type, changes FROM image_events ORDER BY id")).all()
    assert [(digest, type, changes) for digest, type, changes in rows] == [
        ("a", "image.restored", {"image_tags": [None, ["v1"]]}),
        ("b", "image.restored", {"image_size_in_bytes": [1, 2], "image_tags": [None, ["v3"]]}),
        ("c", "image.restored", {"image_tags": [None, ["new"]]}),
        ("d", "image.restored", {"image_tags": [None, []]}),
        ("a", "image.changed", {"image_size_in_bytes": [1, 2]}),  # other events are left as they were
    ]


def live_index_columns(connection: Connection) -> dict[str, str]:
    rows = connection.execute(
        text(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'images'::regclass AND indexrelid::regclass::text LIKE 'ix_images_live_by_%'"
        )
    ).all()
    return {name: definition.partition(" USING btree ")[2] for name, definition in rows}


def test_0013_ends_the_live_keyset_indexes_with_changed_at_and_downgrades(engine: Engine) -> None:
    with engine.begin() as connection:
        upgrade(connection, "0012")
        before = live_index_columns(connection)
        upgrade(connection, "0013")
        after = live_index_columns(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0012")
        downgraded = live_index_columns(connection)
    assert set(after) == set(before) == {f"ix_images_live_by_{n}" for n in ("pushed_at", "size", "last_pull")}
    for name, definition in before.items():
        assert ", registry_type) WHERE (removed_at IS NULL)" in definition
        assert after[name] == definition.replace(", registry_type)", ", registry_type, changed_at)")
    assert downgraded == before


def test_the_migrations_make_the_models_schema(engine: Engine) -> None:
    """What ``alembic check`` checks: autogenerate finds nothing between head and the models."""
    with engine.begin() as connection:
        upgrade(connection, "head")
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, models.metadata) == []
