"""A console page's query parameters, read into the read layer's arguments; a bad one is ``BadParameter``
(a 400 page whose message names the parameter)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from starlette.requests import Request

from inventory.read.bounds import unclean


class BadParameter(Exception):
    """A query parameter the page cannot take: its name and what is wrong with it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def text(request: Request, name: str) -> str | None:
    """The parameter as text (None: absent or empty)."""
    value = request.query_params.get(name)
    if value is None or value.strip() == "":
        return None
    problem = unclean(value)
    if problem is not None:
        raise BadParameter(name, problem)
    return value.strip()


def choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    """One of ``choices`` (given in any case), or None."""
    value = text(request, name)
    if value is None:
        return None
    for known in choices:
        if value.upper() == known.upper():
            return known
    raise BadParameter(name, f"must be one of {', '.join(c.lower() for c in choices)}, got {value!r}")


def flag(request: Request, name: str) -> bool:
    """A yes/no parameter: ``1``, ``true``, ``yes``, ``on``; or ``0``, ``false``, ``no``, ``off`` (absent: no)."""
    value = text(request, name)
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise BadParameter(name, f"must be true or false, got {value!r}")


def time(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time (``2026-01-01T12:00:00Z``, ``2026-01-01T12:00``, ``2026-01-01``); without an offset
    it is UTC (what the pages show)."""
    value = text(request, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        raise BadParameter(name, f"not a time (ISO 8601, e.g. 2026-01-01T12:00:00Z): {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def time_value(at: datetime | None) -> str:
    """A time as the pages write it in a parameter (and in a datetime-local field, minutes precise)."""
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
