"""The fast path for lists of plain objects answers exactly what graphql-core's own path answers."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from modelyard.graphql.execution import Executor


@strawberry.enum
class Kind(Enum):
    INT = "int"
    STRING = "string"


@strawberry.type
class Item:
    key: str
    kind: Kind
    number: float | None
    count: int


GOOD: list[Any] = [Item(key=f"k{i}", kind=Kind.INT if i % 2 else Kind.STRING, number=None if i % 3 else i / 2,
                        count=i) for i in range(50)]


@strawberry.type
class Query:
    @strawberry.field
    def good(self) -> list[Item]:
        return GOOD

    @strawberry.field
    def null_key(self) -> list[Item]:  # a null where the schema promises a string
        return [GOOD[0], Item(key=None, kind=Kind.INT, number=1.0, count=1), GOOD[2]]  # type: ignore[arg-type]

    @strawberry.field
    def bad_count(self) -> list[Item | None] | None:  # an int graphql-core refuses (beyond 32 bits)
        return [GOOD[0], Item(key="x", kind=Kind.INT, number=1.0, count=2**40)]


DOCS = [
    "{ good { key kind number count __typename } }",
    "{ good { k: key n: number key } }",
    "{ good { key ...F } } fragment F on Item { kind count }",
    "{ nullKey { key kind } }",
    "{ badCount { key count } }",
    "{ good { key @skip(if: true) kind } }",
]


def run(executor: type, doc: str) -> Any:
    schema = strawberry.Schema(query=Query, execution_context_class=executor)
    result = schema.execute_sync(doc)
    errors = [(e.message, e.path) for e in result.errors or []]
    return result.data, errors


def test_same_answers_as_graphql_core_with_and_without_errors() -> None:
    for doc in DOCS:
        assert run(Executor, doc) == run(StrawberryGraphQLCoreExecutionContext, doc), doc
    data, errors = run(Executor, "{ nullKey { key kind } }")
    assert data is None and errors and errors[0][1] == ["nullKey", 1, "key"]


def test_plain_lists_skip_per_field_resolution() -> None:
    calls = 0

    class Counting(Executor):
        def execute_field(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return super().execute_field(*args, **kwargs)

    run(Counting, "{ good { key kind number count } }")
    assert calls == 1  # only `good` itself; its 50 × 4 leaves completed in one loop
