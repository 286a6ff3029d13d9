"""Cursor pagination: opaque offset cursors and the shared page-size limit."""

from __future__ import annotations

import base64

import strawberry

from modelyard.errors import InvalidError, LimitError

DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def encode_cursor(offset: int) -> str:
    """The opaque cursor of the row at `offset`."""
    return base64.b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """The offset just after `cursor`; INVALID for anything we did not hand out."""
    if cursor is None:
        return 0
    try:
        kind, _, num = base64.b64decode(cursor, validate=True).decode().partition(":")
        if kind != "o" or not (num.isascii() and num.isdigit()) or len(num) > 9:  # an offset we could have handed out
            raise ValueError(cursor)
        return int(num) + 1
    except ValueError as exc:
        raise InvalidError(f"invalid cursor {cursor!r}") from exc


def page_args(first: int | None, after: str | None, max_page: int) -> tuple[int, int]:
    """(limit, offset) for `first`/`after`; LIMIT beyond `max_page`."""
    if first is None:
        first = DEFAULT_PAGE
    if first < 0:
        raise InvalidError("first must not be negative")
    if first > max_page:
        raise LimitError(f"first may be at most {max_page}, got {first}")
    return first, decode_cursor(after)


def page_info(offset: int, count: int, has_next: bool) -> PageInfo:
    """PageInfo for `count` rows starting at `offset`."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=offset > 0,
        start_cursor=encode_cursor(offset) if count else None,
        end_cursor=encode_cursor(offset + count - 1) if count else None,
    )
