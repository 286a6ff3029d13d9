"""Cursor pagination: opaque cursors (offsets, or keyset positions for version searches) and the
shared page-size limit."""

from __future__ import annotations

import base64
import json
import math

import strawberry

from modelyard.catalog.ordering import Position
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


def encode_position(position: Position) -> str:
    """The opaque cursor of a row at `position` of a keyset-paged search."""
    text = json.dumps([position.signature, list(position.values), position.id], separators=(",", ":"))
    return base64.b64encode(b"k:" + text.encode()).decode()


def decode_position(cursor: str | None) -> Position | int:
    """Where to resume after `cursor`: a position, or an offset for an offset cursor (handed out
    before searches were keyset-paged); INVALID for anything we did not hand out."""
    if cursor is None:
        return 0
    try:
        raw = base64.b64decode(cursor, validate=True)
    except ValueError as exc:
        raise InvalidError(f"invalid cursor {cursor!r:.100}") from exc
    if not raw.startswith(b"k:"):
        return decode_cursor(cursor)
    try:
        signature, values, row_id = json.loads(raw[2:])
        if not (isinstance(signature, str) and isinstance(values, list) and type(row_id) is int):
            raise ValueError(cursor)
        if not (0 < row_id < 2**63 and all(_plain(v) for v in values)):
            raise ValueError(cursor)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidError(f"invalid cursor {cursor!r:.100}") from exc
    return Position(signature, tuple(values), row_id)


def _plain(value: object) -> bool:
    """A sort value we could have handed out: null, text, a finite number within 64 bits."""
    if value is None or type(value) is str:
        return True
    if type(value) is int:
        return -(2**63) <= value < 2**63
    return type(value) is float and math.isfinite(value)


def page_size(first: int | None, max_page: int) -> int:
    """The page size `first` asks for; LIMIT beyond `max_page`."""
    if first is None:
        first = DEFAULT_PAGE
    if first < 0:
        raise InvalidError("first must not be negative")
    if first > max_page:
        raise LimitError(f"first may be at most {max_page}, got {first}")
    return first


def page_args(first: int | None, after: str | None, max_page: int) -> tuple[int, int]:
    """(limit, offset) for `first`/`after`; LIMIT beyond `max_page`."""
    return page_size(first, max_page), decode_cursor(after)


def page_info(offset: int, count: int, has_next: bool) -> PageInfo:
    """PageInfo for `count` rows starting at `offset`."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=offset > 0,
        start_cursor=encode_cursor(offset) if count else None,
        end_cursor=encode_cursor(offset + count - 1) if count else None,
    )


def cursors_info(cursors: list[str], has_next: bool, has_previous: bool) -> PageInfo:
    """PageInfo for a page whose rows have `cursors`."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )

