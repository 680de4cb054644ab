"""Who is looking: the console's sessions, opened with an API token, and its defence against forgery.

``POST /console/login`` checks the token as the API does (``inventory.api.auth.Authenticator``: the
``read`` or ``admin`` scope) and opens a session (``inventory.tables.console_sessions``). The cookie
holds a random session id (32 bytes), never the token; the database holds the id's SHA-256 only. The
cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/console``, and ``Secure`` when the request came over
HTTPS (directly, or through a proxy that says so in ``X-Forwarded-Proto`` or ``Forwarded``). A session
ends at its expiry (``SESSION_SECONDS`` by default, never past the token's), at logout, and when its
token is revoked or expires. Like the API's tokens (``inventory.api.auth``), each process trusts what it
learnt of a session for ``CACHE_SECONDS`` (2 s) at most: a revoked token's sessions end in every process
within that time, a logout at once in the process that answers it, an expiry at once everywhere.

Forgery: every state-changing request is a POST that must carry, in its form field ``csrf``, the secret
of its session (login: of the login cookie set with the form, a double submit), and must not come from
another origin (``Origin``, when the browser sends it, names this server). ``SameSite=Strict`` already
keeps the cookie off cross-site requests; these checks do not rely on it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from inventory.api.auth import ANONYMOUS, CACHE_SECONDS, READS_INVENTORY, Authenticator, Principal, token_hash
from inventory.read import database
from inventory.tables import console_sessions

COOKIE = "inventory_session"
"""The session cookie: a random id."""
LOGIN_COOKIE = "inventory_login"
"""The login form's double-submit secret, set with the form."""
PATH = "/console"
SESSION_SECONDS = 12 * 3600
"""How long a session lasts by default (``inventory serve --console-session``)."""
_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class Viewer:
    """The reader of a console page: a token's principal, and the secret its forms carry."""

    principal: Principal
    csrf: str
    anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        return self.principal.may("admin")


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def over_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS, directly or through a proxy that says so."""
    if request.url.scheme == "https":
        return True
    forwarded_proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded_proto == "https":
        return True
    forwarded = request.headers.get("forwarded", "").split(",")[0].lower()
    return any(part.strip() == "proto=https" for part in forwarded.split(";"))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    """Set a console cookie: HttpOnly, SameSite=Strict, Path=/console, Secure over HTTPS."""
    response.set_cookie(
        name, value, max_age=max_age, path=PATH, secure=over_https(request), httponly=True, samesite="strict"
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=PATH, secure=over_https(request), httponly=True, samesite="strict")


def same_secret(given: str | None, expected: str | None) -> bool:
    """Whether a form's secret is the expected one (compared in constant time)."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (``Origin``, else ``Referer``)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return True  # a browser sends Origin with every cross-site POST: none is no cross-site form
    _, separator, rest = origin.partition("://")
    return bool(separator) and rest.split("/", 1)[0] == request.headers.get("host", "")


class Sessions:
    """The console's sessions; one per API process."""

    def __init__(
        self,
        engine: AsyncEngine,
        authenticator: Authenticator,
        *,
        seconds: int = SESSION_SECONDS,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.authenticator = authenticator
        self.seconds = seconds
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._known: dict[bytes, tuple[float, tuple[Viewer, datetime] | None]] = {}
        """session hash → (when looked up, its reader and end, or None)."""

    @property
    def anonymous(self) -> bool:
        return self.authenticator.allow_anonymous

    async def open(self, token: str) -> tuple[str, int] | None:
        """A new session of ``token`` (raises ``AuthError`` when the API would refuse it): (its id, the
        seconds it lasts); None when the token stopped being live meanwhile."""
        await self.authenticator.principal(Headers({"authorization": f"Bearer {token}"}), READS_INVENTORY)
        session_id = secrets.token_urlsafe(32)
        await database.rows(self.engine, console_sessions.PURGE)
        rows = await database.rows(
            self.engine,
            console_sessions.OPEN,
            {
                "session_hash": _hash(session_id),
                "csrf": secrets.token_urlsafe(32),
                "seconds": self.seconds,
                "token_hash": token_hash(token),
            },
        )
        if not rows:
            return None
        return session_id, self.seconds

    async def viewer(self, request: Request) -> Viewer | None:
        """The reader of ``request``: anonymous under ``--allow-anonymous``; else its live session's, or None."""
        if self.anonymous:
            return Viewer(ANONYMOUS, "", anonymous=True)  # no session: nothing to log out of
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        key = _hash(session_id)
        now = self.clock()
        cached = self._known.get(key)
        if cached is None or now - cached[0] >= self.cache_seconds:
            cached = (now, await self._lookup(key))
            if len(self._known) >= _CACHE_ENTRIES:  # a flood of made-up cookies cannot grow it without bound
                self._known.clear()
            self._known[key] = cached
        found = cached[1]
        if found is None or found[1] <= datetime.now(UTC):  # an expiry is exact, whatever the cache
            return None
        return found[0]

    async def _lookup(self, key: bytes) -> tuple[Viewer, datetime] | None:
        """The live session of hash ``key``: its reader, and when it ends (its own or its token's expiry)."""
        rows = await database.rows(self.engine, console_sessions.CURRENT, {"session_hash": key})
        if not rows:
            return None
        row = rows[0]
        registries = None if row.registries is None else tuple(row.registries)
        principal = Principal(row.name, frozenset(row.scopes), registries, row.expires_at)
        if not principal.may("read"):
            return None
        ends = row.session_expires_at if row.expires_at is None else min(row.session_expires_at, row.expires_at)
        return Viewer(principal, row.csrf), ends

    async def close(self, request: Request) -> None:
        """End the request's session (logout)."""
        session_id = request.cookies.get(COOKIE)
        if session_id:
            self._known.pop(_hash(session_id), None)
            await database.rows(self.engine, console_sessions.CLOSE, {"session_hash": _hash(session_id)})
