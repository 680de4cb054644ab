"""Opaque cursors that mirror ECR's nextToken: keyset positions bound to the query they came from.

A cursor is base64url JSON ``[binding, *key]``: ``binding`` is a short hash of the
query (what is listed, its filter and its order) and ``key`` the position of the
last row returned. A cursor presented with another query, or one that does not
decode, is an ``InvalidParameterException``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from inventory.api.errors import invalid_parameter


def binding(*parts: Any) -> str:
    """A stable short hash of the query a cursor belongs to."""
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def encode(bound_to: str, key: list[Any]) -> str:
    raw = json.dumps([bound_to, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, bound_to: str, *, argument: str = "after") -> list[Any]:
    """The key of ``cursor``; InvalidParameterException if it is not one of this query's."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        assert isinstance(decoded, list) and len(decoded) >= 2
    except (ValueError, AssertionError, UnicodeDecodeError):
        raise invalid_parameter(f"{argument}: not a cursor of this API") from None
    if decoded[0] != bound_to:
        raise invalid_parameter(f"{argument}: this cursor belongs to another query (another filter or order)")
    return list(decoded[1:])
