"""Light rows for the reads a page repeats thousands of times: tuples, not ORM instances.

Building a Tortoise model per row (field by field, dates through a regex parser) cost more than the
SQL itself on a model page; these reads go through `Sql` and come back as named tuples with the
attributes the ORM rows have, so code that takes either reads them alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol


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



VERSION_COLUMNS = ("id, model_id, number, description, status, manifest_digest, created_by, created_at, "
                   "updated_at, run, onnx")


class VersionLike(Protocol):
    """A stored version as the read paths use it: a `VersionRow` or a `VersionRecord`."""

    id: int
    model_id: int
    number: int
    description: str
    status: str
    manifest_digest: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def run(self) -> dict[str, Any] | None: ...

    @property
    def onnx(self) -> dict[str, Any] | None: ...


class VersionRecord:
    """A version read without the ORM (VERSION_COLUMNS, in order); `run` and `onnx` are decoded
    when first asked for, as most pages never ask."""

    __slots__ = ("_onnx", "_run", "created_at", "created_by", "description", "id", "manifest_digest",
                 "model_id", "number", "status", "updated_at")

    def __init__(self, row: Any) -> None:
        (self.id, self.model_id, self.number, self.description, self.status, self.manifest_digest,
         self.created_by, created, updated, self._run, self._onnx) = row
        self.created_at, self.updated_at = db_time(created), db_time(updated)

    @property
    def run(self) -> dict[str, Any] | None:
        if isinstance(self._run, str):
            self._run = json.loads(self._run)
        return self._run  # type: ignore[no-any-return]

    @property
    def onnx(self) -> dict[str, Any] | None:
        if isinstance(self._onnx, str):
            self._onnx = json.loads(self._onnx)
        return self._onnx  # type: ignore[no-any-return]


def versions(rows: list[Any]) -> list[VersionRecord]:
    return [VersionRecord(r) for r in rows]
