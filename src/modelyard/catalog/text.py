"""Rules for free text (descriptions, tag and param values, URIs) shared by every service."""

from __future__ import annotations

from modelyard.errors import InvalidError, LimitError


def check_text(value: str, what: str, max_len: int) -> str:
    """Refuse over-long text, NUL characters (PostgreSQL cannot store them in text) and lone
    surrogates (JSON can carry `\\ud800`, but it is no character: UTF-8 cannot encode it)."""
    if len(value) > max_len:
        raise LimitError(f"{what} is longer than {max_len} characters")
    if "\x00" in value:
        raise InvalidError(f"{what} contains a NUL character")
    if not _encodable(value):
        raise InvalidError(f"{what} contains a lone surrogate, which is not valid Unicode text")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
