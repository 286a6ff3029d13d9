"""Small value types: tags, params, metrics, run info."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

import strawberry

from modelyard.catalog.params import ParamKind
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


class ParamLike(Protocol):
    """A stored param: a `ParamRow` or a light row read without the ORM."""

    key: str
    kind: str
    value_json: str
    num_value: float | None


class MetricLike(Protocol):
    """A stored metric value: a `MetricRow`, a `MetricPointRow` or a light row."""

    key: str
    value: float
    step: int | None
    logged_at: datetime


def _long(step: int | None) -> Long | None:  # type: ignore[valid-type]
    return None if step is None else Long(step)


# Params, metrics and metric points are plain attributes: a model page shows thousands of them,
# and plain leaves complete in one loop (see `modelyard.graphql.execution`).


@strawberry.type(description="A typed param: numbers compare as numbers in filters.")
class Param:
    key: str
    kind: ParamTypeEnum = strawberry.field(name="type")  # type: ignore[valid-type]
    value: JSON = strawberry.field(description="The value as JSON of its own type.")
    number: float | None = strawberry.field(description="The value as a number, for int, float and bool params.")

    @classmethod
    def of(cls, row: ParamLike) -> Param:
        kind, number = _KINDS[row.kind], row.num_value
        if kind is ParamKind.FLOAT and number is not None and number != 0.0:
            value: Any = number  # the float itself; decoding its JSON gives the same float, slower
        elif kind is ParamKind.INT and number is not None and abs(number) < _EXACT:
            value = int(number)
        elif kind is ParamKind.BOOL and number is not None:
            value = number == 1.0
        else:  # strings, JSON, zeros (-0.0 keeps its sign only in JSON), ints beyond 2**53
            value = json.loads(row.value_json)
        return cls(key=row.key, kind=kind, value=value, number=number)


_KINDS = {k.value: k for k in ParamKind}
_EXACT = 2.0**53  # every integer below it is exact as a float


@strawberry.type(description="The latest value of a metric.")
class Metric:
    key: str
    value: float
    step: Long | None  # type: ignore[valid-type]
    logged_at: datetime

    @classmethod
    def of(cls, row: MetricLike) -> Metric:
        return cls(key=row.key, value=row.value, step=_long(row.step), logged_at=row.logged_at)


@strawberry.type(description="One logged value of a metric.")
class MetricPoint:
    value: float
    step: Long | None  # type: ignore[valid-type]
    logged_at: datetime

    @classmethod
    def of(cls, row: MetricLike) -> MetricPoint:
        return cls(value=row.value, step=_long(row.step), logged_at=row.logged_at)


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
