"""Who is asking: bearer tokens, their scopes and registries, checked on every request.

A token is ``inv_`` and 32 random bytes (URL-safe base64); only its SHA-256 is stored
(``inventory.tables.api_tokens``). Every request to ``/graphql`` and ``/metrics`` needs
``Authorization: Bearer <token>`` unless the server runs with ``--allow-anonymous``;
``/healthz`` is open. Without a valid token the answer is HTTP 401 with a GraphQL-shaped
error whose code is ``UNAUTHENTICATED``; with a token that lacks the scope, 403 ``FORBIDDEN``.

Scopes:

- ``read``: the inventory over ``/graphql`` (limited to the token's registries, if any);
- ``admin``: what ``read`` reads, and the webhooks and their deliveries;
- ``metrics``: ``/metrics``.

Registry limits are applied in SQL by the queries themselves (``Context.scope``), never by
filtering results afterwards.

**Fields that need a scope** call ``require_scope(info, "admin")`` first; it raises a
GraphQL error with code ``FORBIDDEN`` unless the request's token has that scope (an
anonymous server, ``--allow-anonymous``, has every scope)::

    @resolver()
    async def webhooks(self, info: Info[Context, None]) -> list[Webhook]:
        require_scope(info, "admin")
        ...

**Revocation.** Each API process keeps what it learnt of a token for ``CACHE_SECONDS``
(2 s) at most, so a revoked token is refused by every process within that time (and an
expired one at once: its expiry is kept with it). The lookup that refreshes it also stamps
``last_used_at``: one write per token and process every ``CACHE_SECONDS`` at most.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from inventory.api.errors import ApiError
from inventory.read import database
from inventory.tables import api_tokens

SCOPES = ("read", "metrics", "admin")
"""What a token may be given: ``read`` the inventory, ``metrics`` read /metrics, ``admin`` also webhooks."""
READS_INVENTORY = frozenset({"read", "admin"})
TOKEN_PREFIX = "inv_"
CACHE_SECONDS = 2.0
"""How long a process trusts what it learnt of a token (revocation takes effect within this)."""
_CACHE_ENTRIES = 10_000

log = logging.getLogger("inventory.api.auth")


def new_token() -> str:
    """A new secret: ``inv_`` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    """What is stored of a token: its SHA-256 (a token is 256 random bits: no salt or stretching needed)."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Principal:
    """The bearer of a request: a token's name, scopes and registries (None: every registry)."""

    name: str
    scopes: frozenset[str]
    registries: tuple[str, ...] | None = None
    expires_at: datetime | None = None

    def may(self, scope: str) -> bool:
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)


ANONYMOUS = Principal("anonymous", frozenset(SCOPES))
"""Everyone, on a server run with ``--allow-anonymous``."""


class AuthError(Exception):
    """A request refused before it reached the API: its HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="inventory"'} if self.status == 401 else None
        body = {"data": None, "errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        return JSONResponse(body, self.status, headers=headers)


def unauthenticated(message: str) -> AuthError:
    return AuthError(401, "UNAUTHENTICATED", message)


def forbidden(name: str, scopes: Iterable[str]) -> AuthError:
    wanted = " or ".join(sorted(scopes))
    return AuthError(403, "FORBIDDEN", f"token {name!r} lacks the scope this needs ({wanted})")


class Authenticator:
    """Turns a request's ``Authorization`` header into a ``Principal``; one per API process."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        allow_anonymous: bool = False,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.allow_anonymous = allow_anonymous
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._known: dict[bytes, tuple[float, Principal | None]] = {}
        """hash (or ``aws:`` and an access key id) → (when looked up, the live token's principal or None)."""

    async def principal(self, headers: Headers, needs: frozenset[str]) -> Principal:
        """The bearer of the request, if it may do what needs one of ``needs``; AuthError otherwise."""
        if self.allow_anonymous:
            return ANONYMOUS
        header = headers.get("authorization")
        if header is None:
            raise unauthenticated("authentication required: send Authorization: Bearer <token>")
        kind, _, token = header.partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        found = await self._lookup(token) if token.startswith(TOKEN_PREFIX) else None
        if found is None or (found.expires_at is not None and found.expires_at <= datetime.now(UTC)):
            raise unauthenticated("the token is not valid: unknown, revoked or expired")
        if not any(found.may(scope) for scope in needs):
            raise forbidden(found.name, needs)
        return found

    async def access_key(self, access_key_id: str) -> Principal | None:
        """The live AWS access key ``access_key_id``'s bearer (None: unknown, revoked or expired), known for
        ``CACHE_SECONDS`` as a token is (``inventory.ecr``)."""
        return await self._cached(
            b"aws:" + access_key_id.encode(), api_tokens.AWS_LOOKUP, {"access_key_id": access_key_id}
        )

    async def _lookup(self, token: str) -> Principal | None:
        key = token_hash(token)
        return await self._cached(key, api_tokens.LOOKUP, {"hash": key})

    async def _cached(self, key: bytes, lookup: Any, parameters: dict[str, Any]) -> Principal | None:
        now = self.clock()
        cached = self._known.get(key)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        found_rows = await database.rows(self.engine, lookup, parameters)
        found = _principal(found_rows[0]) if found_rows else None
        if len(self._known) >= _CACHE_ENTRIES:  # a flood of made-up tokens cannot grow it without bound
            self._known.clear()
        self._known[key] = (now, found)
        return found


def _principal(row: Any) -> Principal:
    registries = None if row.registries is None else tuple(row.registries)
    return Principal(row.name, frozenset(row.scopes), registries, row.expires_at)


def require_scope(info: Any, scope: str) -> None:
    """Refuse the field (GraphQL error, code ``FORBIDDEN``) unless the request's token has ``scope``."""
    principal: Principal = info.context.principal
    if not principal.may(scope):
        raise ApiError("FORBIDDEN", f"token {principal.name!r} lacks the {scope!r} scope this field needs")
