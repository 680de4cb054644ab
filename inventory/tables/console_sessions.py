"""SQL of the ``console_sessions`` table: the web console's sessions (``inventory.console.sessions``).

A session is stored as the SHA-256 of its id (the cookie's value), the token it was opened with and its
expiry. It is live while it has not expired and its token is live (not revoked, not expired): ``CURRENT``
joins the token's row on every request, so revoking a token ends its sessions at once. The statements
run on the API's async engine (autocommit, one statement each).
"""

from __future__ import annotations

from sqlalchemy import text

OPEN = text(
    "INSERT INTO console_sessions (session_hash, token_id, csrf, expires_at) "
    "SELECT :session_hash, t.id, :csrf, least(now() + make_interval(secs => :seconds), t.expires_at) "
    "FROM api_tokens t WHERE t.token_hash = :token_hash AND t.revoked_at IS NULL "
    "AND (t.expires_at IS NULL OR t.expires_at > now()) "
    "RETURNING expires_at"
)
"""A new session of the live token whose hash is ``:token_hash``, for ``:seconds`` at most (never past
the token's own expiry); no row when the token is not live."""

CURRENT = text(
    "SELECT s.csrf, s.expires_at AS session_expires_at, t.name, t.scopes, t.registries, t.expires_at "
    "FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id "
    "WHERE s.session_hash = :session_hash AND s.expires_at > now() "
    "AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"
)
"""The live session whose hash is ``:session_hash``, with its token's name, scopes and registries."""

CLOSE = text("DELETE FROM console_sessions WHERE session_hash = :session_hash RETURNING token_id")
"""End the session whose hash is ``:session_hash`` (logout)."""

PURGE = text(
    "WITH ended AS (DELETE FROM console_sessions s WHERE s.expires_at <= now() "
    "OR NOT EXISTS (SELECT FROM api_tokens t WHERE t.id = s.token_id AND t.revoked_at IS NULL "
    "AND (t.expires_at IS NULL OR t.expires_at > now())) RETURNING 1) SELECT count(*) AS ended FROM ended"
)
"""Forget the sessions that have ended (expired, or their token revoked or expired): run at each login."""
