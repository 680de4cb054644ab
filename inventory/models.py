"""The inventory's tables.

An image is identified by (registry type, registry id, region, repository name,
image digest): ECR identifies it by the last four, and the registry type ("ecr" or
"ecr-public", as in the config) tells a private repository from an ECR Public one
of the same name in the same account. Every field of ECR's ``ImageDetail`` has a
column, named in snake_case; the two nested structures (``imageScanStatus`` and
``imageScanFindingsSummary``) are flattened into columns of their own.
Removed images keep their row with ``removed_at`` set: that is history.

Each table's class is named ``<Thing>Row`` (``ImageRow``, ``SyncRunRow``): the GraphQL types
(``inventory.api``) and plain dataclasses take the bare names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType
from sqlmodel import Field, SQLModel

# Stable constraint names, so that migrations name what autogenerate would.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def _timestamp(*, nullable: bool = True, now: bool = False) -> Any:
    return Field(
        default=None,
        sa_type=DateTime(timezone=True),
        nullable=nullable,
        sa_column_kwargs={"server_default": func.now()} if now else {},
    )


def _counter() -> Any:
    return Field(default=0, sa_type=Integer, sa_column_kwargs={"server_default": text("0")})


def _big_counter() -> Any:
    return Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})


class RegistryRow(SQLModel, table=True):
    """A registry declared in the config: one account's private ECR or ECR Public."""

    __tablename__ = "registries"

    name: str = Field(primary_key=True, sa_type=Text)
    type: str = Field(sa_type=Text)
    account_id: str = Field(sa_type=Text, index=True)
    regions: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    created_at: datetime | None = _timestamp(nullable=False, now=True)
    updated_at: datetime | None = _timestamp(nullable=False, now=True)


class RepositoryRow(SQLModel, table=True):
    """A repository as ``DescribeRepositories`` returned it.

    ``registry_type`` ("ecr" or "ecr-public") is part of its identity: a private and an
    ECR Public repository may share a name in one account.
    """

    __tablename__ = "repositories"
    __table_args__ = (
        ForeignKeyConstraint(["registry_name"], ["registries.name"], onupdate="CASCADE", ondelete="RESTRICT"),
    )

    registry_type: str = Field(primary_key=True, sa_type=Text)
    registry_id: str = Field(primary_key=True, sa_type=Text)
    region: str = Field(primary_key=True, sa_type=Text)
    repository_name: str = Field(primary_key=True, sa_type=Text)
    registry_name: str = Field(sa_type=Text, index=True)
    repository_arn: str | None = Field(default=None, sa_type=Text)
    repository_uri: str | None = Field(default=None, sa_type=Text)
    created_at: datetime | None = _timestamp()
    first_seen_at: datetime | None = _timestamp(nullable=False, now=True)
    last_seen_at: datetime | None = _timestamp(nullable=False, now=True)
    last_synced_at: datetime | None = _timestamp()
    removed_at: datetime | None = _timestamp()
    image_count: int = _counter()
    """Its present images (``removed_at`` null), kept by the sync in the repository's own transaction."""


KEYSET_ORDERS = (
    ("pushed_at", "image_pushed_at", "'-infinity'::timestamp with time zone"),
    ("size", "image_size_in_bytes", "'-1'::bigint"),
    ("last_pull", "last_recorded_pull_time", "'-infinity'::timestamp with time zone"),
)
"""(name, column, the value a missing one sorts as) of the image search's orders."""


REPOSITORY_KEY = ("registry_type", "registry_id", "region", "repository_name")
"""A repository's primary key, the columns an image's row begins its own with."""


def _keyset(column: str, missing: str) -> tuple[Any, ...]:
    """An order's index columns: its key, then the image's identity in the search's tiebreak order."""
    return (
        text(f"coalesce({column}, {missing})"),
        "registry_id",
        "region",
        "repository_name",
        "image_digest",
        "registry_type",
    )


class ImageDetailColumns(SQLModel):
    """The columns of ECR's ``ImageDetail`` (``inventory.sync.transform.FIELDS``): an image's values,
    now (``images``) or as they were (``image_versions``)."""

    image_tags: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(Text),
        nullable=False,
        sa_column_kwargs={"server_default": text("'{}'")},
    )
    image_size_in_bytes: int | None = Field(default=None, sa_type=BigInteger)
    image_pushed_at: datetime | None = _timestamp()
    image_scan_status: str | None = Field(default=None, sa_type=Text)
    image_scan_status_description: str | None = Field(default=None, sa_type=Text)
    image_scan_completed_at: datetime | None = _timestamp()
    vulnerability_source_updated_at: datetime | None = _timestamp()
    finding_severity_counts: dict[str, int] | None = Field(default=None, sa_type=JSONB)
    image_manifest_media_type: str | None = Field(default=None, sa_type=Text)
    artifact_media_type: str | None = Field(default=None, sa_type=Text)
    last_recorded_pull_time: datetime | None = _timestamp()
    subject_manifest_digest: str | None = Field(default=None, sa_type=Text)
    image_status: str | None = Field(default=None, sa_type=Text)
    last_archived_at: datetime | None = _timestamp()
    last_activated_at: datetime | None = _timestamp()


class ImageRow(ImageDetailColumns, table=True):
    """An image as ``DescribeImages`` returned it, plus what the inventory knows of it."""

    __tablename__ = "images"
    __table_args__ = (
        ForeignKeyConstraint(
            ["registry_type", "registry_id", "region", "repository_name"],
            [
                "repositories.registry_type",
                "repositories.registry_id",
                "repositories.region",
                "repositories.repository_name",
            ],
            ondelete="CASCADE",
        ),
        Index("ix_images_image_tags", "image_tags", postgresql_using="gin"),
        Index("ix_images_image_digest", "image_digest"),
        # Keyset orders of the image search (inventory.read.search.ORDERS), present images only;
        # registry_type last, as the search's final tiebreak. Then changed_at, not part of the order:
        # the walk of the inventory at a past time T (inventory.read.past) filters changed_at <= T
        # in the index, without reading the rows it drops.
        *(
            Index(
                f"ix_images_live_by_{name}",
                *_keyset(column, missing),
                "changed_at",
                postgresql_where=text("removed_at IS NULL"),
            )
            for name, column, missing in KEYSET_ORDERS
        ),
        # The same over removed images: the inventory at a past time holds some of them.
        *(
            Index(
                f"ix_images_removed_by_{name}",
                *_keyset(column, missing),
                postgresql_where=text("removed_at IS NOT NULL"),
            )
            for name, column, missing in KEYSET_ORDERS
        ),
        # The inventory at a past time T, when few rows qualify: present images unchanged since T,
        # removed images removed after T (inventory.read.past).
        Index("ix_images_live_changed_at", "changed_at", postgresql_where=text("removed_at IS NULL")),
        Index("ix_images_removed_at", "removed_at", postgresql_where=text("removed_at IS NOT NULL")),
        # DescribeImages' order: one repository's present images in push order (inventory.read.describe).
        Index(
            "ix_images_live_by_repository_push",
            *REPOSITORY_KEY,
            text(f"coalesce(image_pushed_at, {KEYSET_ORDERS[0][2]})"),
            "image_digest",
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    registry_type: str = Field(primary_key=True, sa_type=Text)
    registry_id: str = Field(primary_key=True, sa_type=Text)
    region: str = Field(primary_key=True, sa_type=Text)
    repository_name: str = Field(primary_key=True, sa_type=Text)
    image_digest: str = Field(primary_key=True, sa_type=Text)
    first_seen_at: datetime | None = _timestamp(nullable=False, now=True)
    last_seen_at: datetime | None = _timestamp(nullable=False, now=True)
    removed_at: datetime | None = _timestamp()
    updated_at: datetime | None = _timestamp(nullable=False, now=True)
    changed_at: datetime | None = _timestamp(nullable=False, now=True)
    """Since when the image has had these values (its sync's transaction time): the start of the current
    version; earlier ones are in ``image_versions``."""
    fingerprint: bytes | None = Field(default=None, sa_type=LargeBinary)
    """Of the values last written (``inventory.sync.transform.fingerprint``)."""


class SyncRunRow(SQLModel, table=True):
    """One sync of one scope (a registry region, or one repository of it)."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_scope", "registry_name", "region", "started_at"),
        Index("ix_sync_runs_started_at", "started_at"),  # retention prunes the oldest first
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    registry_name: str = Field(sa_type=Text)
    registry_id: str = Field(sa_type=Text)
    region: str = Field(sa_type=Text)
    repository_name: str | None = Field(default=None, sa_type=Text)
    status: str = Field(sa_type=Text, index=True)
    started_at: datetime | None = _timestamp(nullable=False, now=True)
    finished_at: datetime | None = _timestamp()
    images_seen: int = _counter()
    images_added: int = _counter()
    images_changed: int = _counter()
    images_removed: int = _counter()
    api_calls: int = _counter()
    throttled_calls: int = _counter()
    error_code: str | None = Field(default=None, sa_type=Text)
    error_message: str | None = Field(default=None, sa_type=Text)
    worker: str | None = Field(default=None, sa_type=Text)
    """The worker that ran it (``host:pid``); null for ``inventory apply``."""


class SyncScopeRow(SQLModel, table=True):
    """A registry region the workers keep converged: its schedule and its lease.

    ``declared_as`` is a hash of the registry's config, null once the config no longer
    declares the region (one more sync then removes what it held, and the row goes).
    A worker owns the scope while ``lease_expires_at`` is in the future.
    """

    __tablename__ = "sync_scopes"
    __table_args__ = (Index("ix_sync_scopes_next_due_at", "next_due_at"),)

    registry_name: str = Field(primary_key=True, sa_type=Text)
    region: str = Field(primary_key=True, sa_type=Text)
    declared_as: str | None = Field(default=None, sa_type=Text)
    next_due_at: datetime | None = _timestamp(nullable=False, now=True)
    owner: str | None = Field(default=None, sa_type=Text)
    lease_expires_at: datetime | None = _timestamp()
    last_claimed_at: datetime | None = _timestamp()
    last_finished_at: datetime | None = _timestamp()


class Xid8(UserDefinedType[int]):
    """PostgreSQL's ``xid8``: the 64-bit id of the transaction that wrote a row."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


ischema_names["xid8"] = Xid8  # reflected as itself: `alembic check` compares it like any type


class ImageEventRow(SQLModel, table=True):
    """One change the sync made, written by it in the same transaction: the change feed.

    ``type`` is ``image.added``, ``image.changed``, ``image.restored``, ``image.removed``,
    ``repository.added`` or ``repository.removed`` (``image_digest`` null for the last two);
    ``changes`` maps each field that changed to ``[before, after]`` (an added image records
    its tags, a removed one the tags it had), so tag movements can be replayed. ``backfill``
    marks the events of a repository's first sync.

    The feed's position is ``(xid, id)``: ``id`` is drawn at insert, so ids commit out of
    order; ``xid`` is the writing transaction's, and readers only go as far as the oldest
    transaction still in progress (``pg_snapshot_xmin``), below which nothing can appear.
    """

    __tablename__ = "image_events"
    __table_args__ = (
        Index("ix_image_events_position", "xid", "id"),
        # By repository, then position: a sync appends its events at the end of its repository's range
        # (cheap to keep up, unlike an index by digest), and a repository's or an image's history reads one range.
        Index("ix_image_events_repository", "registry_type", "registry_id", "region", "repository_name", "id"),
        # By time, for the console's activity of the last days (``inventory.read.history.activity``): BRIN,
        # a few pages however long the feed, as events are appended in time order.
        Index("ix_image_events_occurred_at", "occurred_at", postgresql_using="brin"),
        # A repository's own events (added, removed) apart from its images': whether it was present
        # at a past time is its last one by then, found without reading through its images' events.
        Index(
            "ix_image_events_repository_presence",
            "registry_type",
            "registry_id",
            "region",
            "repository_name",
            "id",
            postgresql_where=text("image_digest IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    xid: int | None = Field(
        default=None, sa_type=Xid8, nullable=False, sa_column_kwargs={"server_default": text("pg_current_xact_id()")}
    )
    sync_run_id: int = Field(sa_type=BigInteger)
    occurred_at: datetime | None = _timestamp(nullable=False, now=True)
    registry_type: str = Field(sa_type=Text)
    registry_id: str = Field(sa_type=Text)
    region: str = Field(sa_type=Text)
    repository_name: str = Field(sa_type=Text)
    image_digest: str | None = Field(default=None, sa_type=Text)
    type: str = Field(sa_type=Text)
    backfill: bool = Field(default=False, sa_type=Boolean, sa_column_kwargs={"server_default": false()})
    changes: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class RegionStatusRow(SQLModel, table=True):
    """The current state of one registry region, kept by the sync in the transaction that records it.

    What ``inventory status``, ``/metrics`` and ``Registry.syncStatus`` read, so they cost the
    same however many ``sync_runs`` are kept: the last success and error, since when the region
    has been failing (null once a whole round succeeded), counters of the scope syncs, the last
    full round, and the last of ECR's events applied.
    """

    __tablename__ = "region_status"

    registry_name: str = Field(primary_key=True, sa_type=Text)
    region: str = Field(primary_key=True, sa_type=Text)
    last_success_at: datetime | None = _timestamp()
    last_error_at: datetime | None = _timestamp()
    last_error_code: str | None = Field(default=None, sa_type=Text)
    last_error_message: str | None = Field(default=None, sa_type=Text)
    failing_since: datetime | None = _timestamp()
    syncs_succeeded: int = _big_counter()
    syncs_failed: int = _big_counter()
    api_calls: int = _big_counter()
    throttled_calls: int = _big_counter()
    updated_at: datetime | None = _timestamp(nullable=False, now=True)
    last_round_at: datetime | None = _timestamp()
    """The last round that covered the whole region (a full round), whether or not a scope failed."""
    last_event_at: datetime | None = _timestamp()
    """The time ECR gave the newest of its events applied to the region (``inventory.worker.events``)."""
    last_event_applied_at: datetime | None = _timestamp()
    """When the sync of that event committed."""
    events_applied: int = _big_counter()
    """Event messages applied to the region."""


# The events that touched a tag: their ``changes.image_tags`` ([before, after]) contains an
# array holding it (``inventory.feed.query.touched``); a tag's history reads only those.
Index(
    "ix_image_events_tags",
    ImageEventRow.__table__.c.changes.op("->")(text("'image_tags'")).label("tags"),  # type: ignore[attr-defined]
    postgresql_using="gin",
    postgresql_ops={"tags": "jsonb_path_ops"},
)


class ImageVersionRow(ImageDetailColumns, table=True):
    """A past version of an image: its values from ``valid_from`` until ``valid_to``, when a sync
    changed them (or removed the image, then saw it again).

    With ``images`` (whose row is the current version, valid from ``changed_at`` until
    ``removed_at``), this is what the inventory looked like at any time: an image was
    present at T with the values of the version whose interval holds T. Written by the sync,
    in its transaction, only for images it changes: a first sync writes none.
    """

    __tablename__ = "image_versions"
    __table_args__ = (
        Index("ix_image_versions_image", "registry_type", "registry_id", "region", "repository_name", "image_digest"),
        Index("ix_image_versions_valid_to", "valid_to"),
        *(
            Index(f"ix_image_versions_by_{name}", *_keyset(column, missing), "valid_from")
            for name, column, missing in KEYSET_ORDERS
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    registry_type: str = Field(sa_type=Text)
    registry_id: str = Field(sa_type=Text)
    region: str = Field(sa_type=Text)
    repository_name: str = Field(sa_type=Text)
    image_digest: str = Field(sa_type=Text)
    valid_from: datetime | None = _timestamp(nullable=False)
    valid_to: datetime | None = _timestamp(nullable=False)
    first_seen_at: datetime | None = _timestamp(nullable=False)


class HistoryHorizonRow(SQLModel, table=True):
    """Since when the inventory can say what it held (one row): the time history began to be kept
    (versions of images exist from migration 0008 on), moved forward by retention."""

    __tablename__ = "history_horizon"

    id: int = Field(default=1, primary_key=True, sa_type=Integer)
    since: datetime | None = _timestamp(nullable=False)


class WebhookEndpointRow(SQLModel, table=True):
    """A webhook declared in the config: its place in the change feed, its lease, and its health.

    The worker that holds the lease (``owner`` while ``lease_expires_at`` is in the future) is
    the only one reading the feed for it and delivering to it. ``cursor_xid``/``cursor_id`` is
    the feed position examined so far: every event up to it has its delivery (or was filtered
    out). ``status`` is ``enabled`` or ``disabled`` (``disabled_reason``: ``gone`` after a 410,
    ``failing`` after five days without a success); a row whose webhook the config no longer
    declares is kept (``declared`` false) with its deliveries.
    """

    __tablename__ = "webhook_endpoints"

    name: str = Field(primary_key=True, sa_type=Text)
    url: str = Field(sa_type=Text)
    declared: bool = Field(default=True, sa_type=Boolean, sa_column_kwargs={"server_default": text("true")})
    status: str = Field(default="enabled", sa_type=Text, sa_column_kwargs={"server_default": text("'enabled'")})
    disabled_reason: str | None = Field(default=None, sa_type=Text)
    disabled_at: datetime | None = _timestamp()
    cursor_xid: int = Field(sa_type=BigInteger)
    cursor_id: int = Field(sa_type=BigInteger)
    owner: str | None = Field(default=None, sa_type=Text)
    lease_expires_at: datetime | None = _timestamp()
    last_success_at: datetime | None = _timestamp()
    last_failure_at: datetime | None = _timestamp()
    failing_since: datetime | None = _timestamp()
    """The first failure since the last success; null while the endpoint succeeds."""
    recovered_at: datetime | None = _timestamp()
    """When ``inventory webhooks recover`` last made failed deliveries pending again (the holder reloads them)."""
    delivered_total: int = _big_counter()
    failed_total: int = _big_counter()
    """Deliveries given up on (the retry schedule ran out, or the endpoint was disabled)."""
    retried_total: int = _big_counter()
    """Failed attempts that were retried."""
    created_at: datetime | None = _timestamp(nullable=False, now=True)


class WebhookDeliveryRow(SQLModel, table=True):
    """One message to one webhook: an event of the feed (or a ``scope.backfilled`` summary, or a
    ``webhook.ping``), its payload as sent, and where its delivery stands.

    ``message_id`` is the ``webhook-id`` header, the same on every attempt. ``ordering_key`` is the
    image (or repository) it is about: a webhook's deliveries of one key go out in ``id`` order.
    ``state`` is ``pending``, ``delivered`` or ``failed``.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(["webhook"], ["webhook_endpoints.name"], ondelete="CASCADE"),
        UniqueConstraint("webhook", "message_id"),
        Index("ix_webhook_deliveries_webhook_state_id", "webhook", "state", "id"),
        Index("ix_webhook_deliveries_webhook_id", "webhook", "id"),
        Index("ix_webhook_deliveries_finished_at", "finished_at", postgresql_where=text("finished_at IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    webhook: str = Field(sa_type=Text)
    message_id: str = Field(sa_type=Text)
    type: str = Field(sa_type=Text)
    event_id: int | None = Field(default=None, sa_type=BigInteger)
    """The ``image_events`` row it tells of (no foreign key: retention prunes events)."""
    ordering_key: str = Field(sa_type=Text)
    occurred_at: datetime | None = _timestamp(nullable=False)
    payload: str = Field(sa_type=Text)
    state: str = Field(default="pending", sa_type=Text, sa_column_kwargs={"server_default": text("'pending'")})
    attempts: int = _counter()
    next_attempt_at: datetime | None = _timestamp(nullable=False, now=True)
    created_at: datetime | None = _timestamp(nullable=False, now=True)
    finished_at: datetime | None = _timestamp()


class WebhookAttemptRow(SQLModel, table=True):
    """One HTTP attempt at a delivery: its status code (null when none came back), time and error."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], ondelete="CASCADE"),
        Index("ix_webhook_attempts_delivery_id", "delivery_id", "id"),
        Index("ix_webhook_attempts_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    delivery_id: int = Field(sa_type=BigInteger)
    at: datetime | None = _timestamp(nullable=False, now=True)
    status_code: int | None = Field(default=None, sa_type=Integer)
    duration_ms: int = Field(sa_type=Integer)
    error: str | None = Field(default=None, sa_type=Text)


class ApiTokenRow(SQLModel, table=True):
    """A bearer token of the API: only its SHA-256 is stored (the token is shown once, when created).

    ``scopes`` are ``read``, ``metrics`` and ``admin``; ``registries`` the names of the registries it
    may read (null: all of them). A revoked token keeps its row (``revoked_at``), so that ``tokens
    list`` still shows it; its name may then be given to a new token. A token created with ``--aws``
    is an AWS access key for the ECR-compatible endpoint (``inventory.ecr``); its ``token_hash`` is
    then its secret's.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_token_hash", "token_hash", unique=True),
        Index("ix_api_tokens_live_name", "name", unique=True, postgresql_where=text("revoked_at IS NULL")),
        Index(
            "ix_api_tokens_aws_access_key_id",
            "aws_access_key_id",
            unique=True,
            postgresql_where=text("aws_access_key_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    name: str = Field(sa_type=Text)
    token_hash: bytes = Field(sa_type=LargeBinary)
    scopes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    registries: list[str] | None = Field(default=None, sa_column=Column(ARRAY(Text), nullable=True))
    created_at: datetime | None = _timestamp(nullable=False, now=True)
    expires_at: datetime | None = _timestamp()
    last_used_at: datetime | None = _timestamp()
    revoked_at: datetime | None = _timestamp()
    aws_access_key_id: str | None = Field(default=None, sa_type=Text)
    """Set for an AWS access key (``--aws``): what a SigV4 request names it by; its secret is never stored."""


class ConsoleSessionRow(SQLModel, table=True):
    """A browser's session of the web console (``inventory.console.sessions``), opened with an API token.

    The cookie holds a random session id; only its SHA-256 is stored, with the token it was opened with
    (its row: revoking or expiring the token ends the session) and the session's own expiry. ``csrf`` is
    the secret every state-changing form of the session carries.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (
        ForeignKeyConstraint(["token_id"], ["api_tokens.id"], ondelete="CASCADE"),
        Index("ix_console_sessions_token_id", "token_id"),
        Index("ix_console_sessions_expires_at", "expires_at"),
    )

    session_hash: bytes = Field(primary_key=True, sa_type=LargeBinary)
    token_id: int = Field(sa_type=BigInteger)
    csrf: str = Field(sa_type=Text)
    created_at: datetime | None = _timestamp(nullable=False, now=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
