"""Connections: one generic GraphQL page for every paged field (a leaf: it knows no domain).

A connection is a page of the read layer (``inventory.read.paging``: one behaviour for every listing,
``endCursor`` null on an empty page except on the resumable feed) as GraphQL shows it: ``nodes``,
``pageInfo``, ``nextToken`` (ECR's name: the ``endCursor`` while there is a next page, null at the end),
and ``edges``, made only when asked for (a page's cursors are not free, and most clients want ``nodes``).
A domain names its connection by subclassing ``Connection[Node]`` (GraphQL names its edges ``NodeEdge``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay

from inventory.api.resolvers import resolver
from inventory.read.paging import Page

T = TypeVar("T")
ConnectionType = TypeVar("ConnectionType", bound="Connection[Any]")


@strawberry.type(description="An item of a page, and its cursor (a position to continue from).")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="A cursor for use in pagination")
    node: T = strawberry.field(description="The item at the end of the edge")


@strawberry.type
class Connection(Generic[T]):
    page_info: relay.PageInfo = strawberry.field(description="Pagination data for this connection")
    nodes: list[T]
    next_token: str | None = strawberry.field(
        description="The endCursor while there is a next page, null at the end: ECR's nextToken."
    )
    cursors: strawberry.Private[Callable[[], list[str]]]

    @resolver(description="Contains the nodes in this connection")
    def edges(self) -> list[Edge[T]]:
        return [Edge(cursor=c, node=n) for c, n in zip(self.cursors(), self.nodes, strict=True)]


def connection(cls: type[ConnectionType], page: Page[Any], nodes: Sequence[Any], **more: Any) -> ConnectionType:
    """``cls`` of ``page``, with its items as ``nodes`` (and the fields ``more`` of a subclass)."""
    info = relay.PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=page.start_cursor,
        end_cursor=page.end_cursor,
    )
    return cls(page_info=info, nodes=list(nodes), next_token=page.next_token, cursors=page.cursors, **more)
