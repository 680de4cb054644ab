"""Keyset pages: one behaviour for every paged read (a leaf: it knows no domain and no face).

A page is cut from ``size + 1`` rows fetched after a keyset position: the extra row only says that there
is a next page. ``end_cursor`` is the last row's cursor; the page after the last one is empty and has no
``end_cursor`` (None), except on a resumable feed (``events``), whose empty page hands back the position it
was asked from, to poll with. ``next_token`` (ECR's name) is the ``end_cursor`` while there is a next page,
None on the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from inventory.aws.semantics import DEFAULT_MAX_RESULTS, MAX_RESULTS
from inventory.read.errors import invalid_parameter

T = TypeVar("T")
U = TypeVar("U")


def page_size(first: int | None, argument: str = "first") -> int:
    """``first``: 1..1000, default 100, as ECR's maxResults; outside is an error, never a clamp."""
    if first is None:
        return DEFAULT_MAX_RESULTS
    if not 1 <= first <= MAX_RESULTS:
        raise invalid_parameter(f"{argument}: must be between 1 and {MAX_RESULTS}, got {first}")
    return first


@dataclass(frozen=True)
class Page(Generic[T]):
    """The items of a page, and where it stands in its listing."""

    items: list[T]
    has_next: bool
    has_previous: bool
    start_cursor: str | None
    end_cursor: str | None
    cursors: Callable[[], list[str]]
    """Each item's cursor, made only when a face asks for them (they are not free)."""

    @property
    def next_token(self) -> str | None:
        return self.end_cursor if self.has_next else None

    def map(self, convert: Callable[[list[T]], list[U]]) -> Page[U]:
        """This page with its items converted (all at once: a converter may look things up once per page)."""
        return Page(
            convert(self.items), self.has_next, self.has_previous, self.start_cursor, self.end_cursor, self.cursors
        )


def keyset_page(
    rows: Sequence[T], size: int, after: str | None, cursor: Callable[[T], str], *, resumable: bool = False
) -> Page[T]:
    """The page of ``size + 1`` fetched ``rows`` asked for ``after``; ``cursor`` makes a row's cursor."""
    items = list(rows[:size])
    end = cursor(items[-1]) if items else after if resumable else None
    return Page(
        items,
        has_next=len(rows) > size,
        has_previous=after is not None,
        start_cursor=cursor(items[0]) if items else None,
        end_cursor=end,
        cursors=lambda: [cursor(item) for item in items],
    )
