"""Small value types: tags, params, metrics, run info."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import strawberry

from modelyard.catalog.params import ParamKind
from modelyard.db.tables import MetricPointRow, MetricRow, ParamRow
from modelyard.graphql.scalars import JSON, Long
from modelyard.graphql.types.enums import ParamTypeEnum


@strawberry.type(description="A key → value label.")
class Tag:
    key: str
    value: str


def tags_of(mapping: dict[str, str] | list[Any]) -> list[Tag]:
    """Tags from a dict or from tag rows, sorted by key."""
    if isinstance(mapping, dict):
        return [Tag(key=k, value=v) for k, v in sorted(mapping.items())]
    return [Tag(key=r.key, value=r.value) for r in mapping]


@strawberry.type(description="A typed param: numbers compare as numbers in filters.")
class Param:
    row: strawberry.Private[ParamRow]

    @strawberry.field
    def key(self) -> str:
        return self.row.key

    @strawberry.field(name="type")
    def kind(self) -> ParamTypeEnum:  # type: ignore[valid-type]
        return ParamKind(self.row.kind)

    @strawberry.field(description="The value as JSON of its own type.")
    def value(self) -> JSON:
        return json.loads(self.row.value_json)

    @strawberry.field(description="The value as a number, for int, float and bool params.")
    def number(self) -> float | None:
        return self.row.num_value


@strawberry.type(description="The latest value of a metric.")
class Metric:
    row: strawberry.Private[MetricRow]

    @strawberry.field
    def key(self) -> str:
        return self.row.key

    @strawberry.field
    def value(self) -> float:
        return self.row.value

    @strawberry.field
    def step(self) -> Long | None:  # type: ignore[valid-type]
        return self.row.step

    @strawberry.field
    def logged_at(self) -> datetime:
        return self.row.logged_at


@strawberry.type(description="One logged value of a metric.")
class MetricPoint:
    row: strawberry.Private[MetricPointRow]

    @strawberry.field
    def value(self) -> float:
        return self.row.value

    @strawberry.field
    def step(self) -> Long | None:  # type: ignore[valid-type]
        return self.row.step

    @strawberry.field
    def logged_at(self) -> datetime:
        return self.row.logged_at


@strawberry.type(description="Every logged value of one metric, oldest first.")
class MetricSeries:
    key: str
    points: list[MetricPoint]


@strawberry.type(description="The external run and code that produced a version.")
class RunInfo:
    run_id: str | None = None
    uri: str | None = None
    code_repository: str | None = None
    commit: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunInfo | None:
        if not data:
            return None
        parsed = dict(data)
        for key in ("started_at", "ended_at"):
            if parsed.get(key):
                parsed[key] = datetime.fromisoformat(parsed[key])
        return cls(**parsed)
