"""Keyset pages: one behaviour for every connection of the API (a leaf: it knows no domain).

A page is cut from ``size + 1`` rows fetched after a keyset position: the extra row only says that there
is a next page. ``endCursor`` is the last row's cursor; the page after the last one is empty and has no
``endCursor`` (null), except on a resumable feed (``events``), whose empty page hands back the position it
was asked from, to poll with. ``nextToken`` (ECR's name) is the ``endCursor`` while there is a next page,
null on the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from strawberry import relay

from inventory.api.errors import invalid_parameter
from inventory.aws.semantics import DEFAULT_MAX_RESULTS, MAX_RESULTS

T = TypeVar("T")


def page_size(first: int | None) -> int:
    """``first``: 1..1000, default 100, as ECR's maxResults; outside is an error, never a clamp."""
    if first is None:
        return DEFAULT_MAX_RESULTS
    if not 1 <= first <= MAX_RESULTS:
        raise invalid_parameter(f"first: must be between 1 and {MAX_RESULTS}, got {first}")
    return first


@dataclass(frozen=True)
class Page(Generic[T]):
    """The rows of a page, and what its connection says about them."""

    rows: list[T]
    page_info: relay.PageInfo
    next_token: str | None
    cursors: Callable[[], list[str]]
    """Each row's cursor, made only if the query asks for ``edges``."""


def keyset_page(
    rows: Sequence[T], size: int, after: str | None, cursor: Callable[[T], str], *, resumable: bool = False
) -> Page[T]:
    """The page of ``size + 1`` fetched ``rows`` asked for ``after``; ``cursor`` makes a row's cursor."""
    page = list(rows[:size])
    has_next = len(rows) > size
    end = cursor(page[-1]) if page else after if resumable else None
    info = relay.PageInfo(
        has_next_page=has_next,
        has_previous_page=after is not None,
        start_cursor=cursor(page[0]) if page else None,
        end_cursor=end,
    )
    return Page(page, info, end if has_next else None, lambda: [cursor(row) for row in page])
