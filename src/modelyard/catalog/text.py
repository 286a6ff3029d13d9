"""Rules for free text (descriptions, tag and param values, URIs) shared by every service."""

from __future__ import annotations

from modelyard.errors import InvalidError, LimitError


def check_text(value: str, what: str, max_len: int) -> str:
    """Refuse NUL characters (PostgreSQL cannot store them in text) and over-long text."""
    if "\x00" in value:
        raise InvalidError(f"{what} contains a NUL character")
    if len(value) > max_len:
        raise LimitError(f"{what} is longer than {max_len} characters")
    return value
