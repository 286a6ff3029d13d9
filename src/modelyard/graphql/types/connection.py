"""Relay cursor connections, generic over the node type (`ModelConnection`, `ModelVersionConnection`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from modelyard.graphql.pagination import PageInfo, cursors_info, encode_cursor, page_info

T = TypeVar("T")


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def nodes(self) -> list[T]:
        return [e.node for e in self.edges]

    @strawberry.field(description="Matches across all pages (counted only when asked for).")
    async def total_count(self) -> int:
        return await self.counter()

    @classmethod
    def page(
        cls, nodes: Sequence[T], offset: int, has_next: bool, counter: Callable[[], Awaitable[int]]
    ) -> Connection[T]:
        """A connection over `nodes`, found at `offset` of the whole result."""
        return cls(
            edges=[Edge(cursor=encode_cursor(offset + i), node=n) for i, n in enumerate(nodes)],
            page_info=page_info(offset, len(nodes), has_next),
            counter=counter,
        )

    @classmethod
    def of(
        cls, nodes: Sequence[T], cursors: Sequence[str], has_next: bool, has_previous: bool,
        counter: Callable[[], Awaitable[int]],
    ) -> Connection[T]:
        """A connection over `nodes` with their own cursors (keyset pages)."""
        return cls(
            edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)],
            page_info=cursors_info(list(cursors), has_next, has_previous),
            counter=counter,
        )
