"""Custom scalars: a 64-bit integer (GraphQL `Int` is 32-bit), arbitrary JSON, and a DateTime
whose refusal names the format."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only; longer cannot fit in 64 bits


def _parse_long(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("Long must be an integer")
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"Long must be a 64-bit integer, got {value!r}")
    return value


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"DateTime must be an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"DateTime must be ISO 8601 (2026-01-31T12:00:00Z), got {value!r}") from None
    return parsed


Long = NewType("Long", int)

SCALARS: dict[object, ScalarDefinition] = {
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit signed integer (byte sizes, large counts, int params).",
        serialize=int,
        parse_value=_parse_long,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description="Date with time (ISO 8601). A filter reads a time without an offset as UTC; "
        "times that are recorded (run times, token expiry) must carry one.",
        serialize=datetime.isoformat,
        parse_value=_parse_datetime,
    ),
}

__all__ = ["JSON", "Long", "SCALARS"]
