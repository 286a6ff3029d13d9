"""Light rows for the reads a page repeats thousands of times: tuples, not ORM instances.

Building a Tortoise model per row (field by field, dates through a regex parser) cost more than the
SQL itself on a model page; these reads go through `Sql` and come back as named tuples with the
attributes the ORM rows have, so code that takes either reads them alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from tortoise.models import Model

M = TypeVar("M", bound=Model)


class ParamRecord(NamedTuple):
    version_id: int
    key: str
    kind: str
    value_json: str
    num_value: float | None


class MetricRecord(NamedTuple):
    """A latest metric value or a logged point (same columns)."""

    version_id: int
    key: str
    value: float
    step: int | None
    logged_at: datetime


PARAM_COLUMNS = "version_id, key, kind, value_json, num_value"
METRIC_COLUMNS = "version_id, key, value, step, logged_at"


def db_time(value: Any) -> datetime:
    """A stored time as an aware UTC datetime: SQLite keeps ISO 8601 text, asyncpg gives datetimes."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def params(rows: list[Any]) -> list[ParamRecord]:
    return [ParamRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def metrics(rows: list[Any]) -> list[MetricRecord]:
    return [MetricRecord(r[0], r[1], r[2], r[3], db_time(r[4])) for r in rows]


def orm_row(table: type[M], row: dict[str, Any]) -> M:
    """An ORM instance of `table` from a raw row holding all its columns (extra ones are ignored),
    built as Tortoise builds the rows of its own queries: for raw SQL whose rows the ORM must own
    (a windowed page fetched with its rows in one statement)."""
    return table._init_from_db(**row)
