"""Secrets out of what people and logs see: URLs and query strings shown with their credentials as ``***``.

- ``url``: a webhook's URL as shown everywhere (``webhooks list``, GraphQL, logs, errors):
  its userinfo and every query value redacted, ``https://***@hooks.example.com/in?apikey=***``.
  Deliveries use the real URL.
- ``database_url``: the password and every query value named like a secret
  (``?password=…``, ``sslpassword``, ``sslkey``) redacted.
- ``query_string``: the query of a request as the access log writes it: any ``inv_…`` value,
  and the values of parameters named like a secret (``token``, ``access_token``, ``key``,
  ``secret``, ``password``, …), redacted.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable

REDACTED = "***"
_SECRET_NAME = re.compile(r"token|key|secret|passw|pwd|auth|signature|credential|session", re.IGNORECASE)
_TOKEN = re.compile(r"inv_")


def _pairs(query: str) -> list[tuple[str, str | None]]:
    """``query``'s parameters as written (undecoded), a parameter without ``=`` with None."""
    out: list[tuple[str, str | None]] = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        out.append((name, value if equals else None))
    return out


def _joined(pairs: list[tuple[str, str | None]]) -> str:
    return "&".join(name if value is None else f"{name}={value}" for name, value in pairs)


def _secret(name: str, value: str) -> bool:
    decoded_name, decoded_value = urllib.parse.unquote_plus(name), urllib.parse.unquote_plus(value)
    return bool(_SECRET_NAME.search(decoded_name) or _TOKEN.search(decoded_value) or _TOKEN.search(value))


def query_string(query: str) -> str:
    """``query`` with the values of secret-looking parameters (and any ``inv_`` token) redacted."""
    if not query:
        return query
    pairs = _pairs(query)
    return _joined([(name, REDACTED if value is not None and _secret(name, value) else value) for name, value in pairs])


def path(target: str) -> str:
    """A request target (``/graphql?access_token=…``) with its query string redacted."""
    base, question, query = target.partition("?")
    return f"{base}{question}{query_string(query)}" if question else target


def url(value: str) -> str:
    """A URL with its userinfo and every query value redacted (fit to show wherever a webhook is shown)."""

    def every_value(query: str) -> str:
        return _joined([(name, None if v is None else REDACTED) for name, v in _pairs(query)])

    return _redacted(value, lambda userinfo: REDACTED, every_value, keep_fragment=False)


def database_url(value: str) -> str:
    """A database URL with its password, and every query value named like a secret, redacted."""

    def password(userinfo: str) -> str:
        user, colon, _ = userinfo.partition(":")
        return f"{user}:{REDACTED}" if colon else userinfo

    return _redacted(value, password, query_string, keep_fragment=True)


def _redacted(value: str, userinfo: Callable[[str], str], query: Callable[[str], str], *, keep_fragment: bool) -> str:
    """``value`` with its userinfo and its query string each rewritten; ``***`` if it is no URL."""
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return REDACTED
    who, at, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo(who)}@{host}" if at else host
    fragment = parts.fragment if keep_fragment else ""
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, query(parts.query) if parts.query else "", fragment)
    )


class AccessLogFilter(logging.Filter):
    """Redacts the query string of the request target in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], path(args[2]), args[3], args[4])
        return True
