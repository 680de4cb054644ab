"""Opaque cursors that mirror ECR's nextToken: keyset positions bound to the query they came from.

A cursor is base64url JSON ``[binding, *key]``: ``binding`` is a short hash of the
query (what is listed, its filter, its order and the token's registries) and ``key``
the position of the last row returned. A cursor presented with another query, or one
that does not decode to a key of the shape its query reads (``decode``'s ``shape``), is
an ``InvalidParameterException``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from inventory.read.bounds import unclean
from inventory.read.errors import invalid_parameter

Part = Callable[[Any], Any]
"""One part of a key: its value as the query reads it; ValueError when it is not one."""
NEVER = "-infinity"
"""The sort key of a time that is not known (``search.Order``'s ``missing``)."""


def integer(value: Any) -> int:
    """An id or a position: a non-negative bigint."""
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(value)
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or unclean(value) is not None:
        raise ValueError(value)
    return value


def time(value: Any) -> datetime:
    """An ISO time with its offset."""
    parsed = datetime.fromisoformat(text(value))
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed


def time_or_never(value: Any) -> datetime | str:
    return NEVER if value == NEVER else time(value)


def size(value: Any) -> int:
    """An image size, or -1 when it is not known."""
    if type(value) is not int or not -1 <= value < 2**63:
        raise ValueError(value)
    return value


def canonical(*parts: Any) -> str:
    """The query a cursor belongs to, as canonical JSON: equal queries, equal text."""
    return json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))


def binding(*parts: Any) -> str:
    """A stable short hash of the query a cursor belongs to."""
    return hash_of(canonical(*parts))


def hash_of(query: str) -> str:
    """``binding`` of the query whose ``canonical`` text is ``query``."""
    return hashlib.blake2b(query.encode(), digest_size=8).hexdigest()


def encode(bound_to: str, key: list[Any]) -> str:
    raw = json.dumps([bound_to, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, bound_to: str, shape: Sequence[Part], *, argument: str = "after") -> list[Any]:
    """The key of ``cursor``, each part read by its ``shape``; InvalidParameterException if it is not
    one of this query's."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        assert isinstance(decoded, list) and len(decoded) >= 2
    except (ValueError, AssertionError, UnicodeDecodeError, RecursionError):
        raise invalid_parameter(f"{argument}: not a cursor of this API") from None
    if decoded[0] != bound_to:
        raise invalid_parameter(f"{argument}: this cursor belongs to another query (another filter or order)")
    key = decoded[1:]
    try:
        if len(key) != len(shape):
            raise ValueError(key)
        return [read(part) for read, part in zip(shape, key, strict=True)]
    except (ValueError, TypeError):
        raise invalid_parameter(f"{argument}: not a cursor of this API") from None
