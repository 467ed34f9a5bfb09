"""Relay-style connections: `first`/`after` in, edges, nodes and pageInfo out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry

from datasources.pagination import Page

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T] = strawberry.field(
        description="The nodes of `edges`, for clients without cursors."
    )
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(description=...) as Any
        description="Items matching the filter across all pages (one extra query)."
    )
    async def total_count(self) -> int | None:
        return await self.counter() if self.counter else None


def connection(
    page: Page[Any],
    to_node: Callable[[Any], T],
    counter: Callable[[], Awaitable[int]] | None = None,
) -> Connection[T]:
    nodes = [to_node(item) for item in page.items]
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)],
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        counter=counter,
    )
