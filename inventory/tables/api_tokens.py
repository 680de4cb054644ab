"""SQL of the ``api_tokens`` table: the API's bearer tokens, stored as their SHA-256 only.

The command line creates, lists and revokes tokens through a psycopg connection; the API
looks a token up by its hash with ``LOOKUP`` (an AWS access key by its id: ``AWS_LOOKUP``), on its
async engine, which also stamps ``last_used_at``: the API runs it at most once per token every few seconds
(``inventory.api.auth``), so a busy token costs one write per interval, not one per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from sqlalchemy import bindparam, func, or_, update

from inventory.models import ApiTokenRow

tokens = ApiTokenRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TokenRow:
    """A token as ``inventory tokens list`` shows it (never its hash)."""

    name: str
    scopes: list[str]
    registries: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    aws_access_key_id: str | None = None
    """Set for an AWS access key (its id is no secret)."""


def create(
    name: str,
    token_hash: bytes,
    *,
    scopes: Sequence[str],
    registries: Sequence[str] | None,
    expires_at: datetime | None,
    connection: psycopg.Connection[Any],
    aws_access_key_id: str | None = None,
) -> bool:
    """Store a new token (an AWS access key when ``aws_access_key_id`` is given); False when a live token
    already bears ``name`` (nothing is written)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_tokens (name, token_hash, scopes, registries, expires_at, aws_access_key_id) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING",
            (name, token_hash, list(scopes), None if registries is None else list(registries), expires_at,
             aws_access_key_id),
        )  # fmt: skip
        return cursor.rowcount == 1


def listed(*, connection: psycopg.Connection[Any]) -> list[TokenRow]:
    """Every token, live ones first, then by name and age."""
    with connection.cursor(row_factory=class_row(TokenRow)) as cursor:
        cursor.execute(
            "SELECT name, scopes, registries, created_at, expires_at, last_used_at, revoked_at, aws_access_key_id "
            "FROM api_tokens "
            "ORDER BY revoked_at IS NOT NULL, name, created_at"
        )
        return cursor.fetchall()


def revoke(name: str, *, connection: psycopg.Connection[Any]) -> bool:
    """Revoke the live token ``name``; whether there was one."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,))
        return cursor.rowcount == 1


LOOKUP = (
    update(tokens)
    .where(
        tokens.c.token_hash == bindparam("hash"),
        tokens.c.revoked_at.is_(None),
        or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > func.now()),
    )
    .values(last_used_at=func.now())
    .returning(tokens.c.name, tokens.c.scopes, tokens.c.registries, tokens.c.expires_at)
)
"""The live token whose hash is ``:hash`` (no row: unknown, revoked or expired), stamped as used now."""

AWS_LOOKUP = (
    update(tokens)
    .where(
        tokens.c.aws_access_key_id == bindparam("access_key_id"),
        tokens.c.revoked_at.is_(None),
        or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > func.now()),
    )
    .values(last_used_at=func.now())
    .returning(tokens.c.name, tokens.c.scopes, tokens.c.registries, tokens.c.expires_at)
)
"""``LOOKUP`` of the live AWS access key ``:access_key_id``."""


def live_aws_keys(*, connection: psycopg.Connection[Any]) -> int:
    """How many live (unrevoked, unexpired) AWS access keys there are."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM api_tokens WHERE aws_access_key_id IS NOT NULL AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > now())"
        )
        row = cursor.fetchone()
        return int(row[0]) if row else 0
