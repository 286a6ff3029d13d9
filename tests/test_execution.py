"""The fast path for lists of plain objects answers exactly what graphql-core's own path answers;
cached documents still meet the limits."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from modelyard.config import Settings
from modelyard.db.tables import MetricRow
from modelyard.graphql.context import Context
from modelyard.graphql.execution import DocumentLru, Executor
from modelyard.graphql.schema import build_schema
from tests.conftest import GraphQLClient
from tests.helpers import model, version


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


PAGE = """query($name: String!) { model(name: $name) { name aliases { name updatedAt version { number } }
  versions(first: 10) { nodes { __typename number status createdAt createdBy manifestDigest
    params { key type value number } metrics { key value step loggedAt }
    metricSeries { key points { value step loggedAt } }
    p: param(key: "lr") { value } m: metric(key: "acc") { value loggedAt } tags { key value } } } } }"""


async def test_the_model_page_is_the_same_with_the_stock_executor(gql: GraphQLClient, settings: Settings) -> None:
    await model(gql, "exec")
    for i in range(3):
        await version(gql, "exec", params=[{"key": "lr", "value": 0.1 * (i + 1)}, {"key": "opt", "value": "adam"},
                                           {"key": "big", "value": 2**40}, {"key": "on", "value": True}],
                      metrics=[{"key": "acc", "value": 0.5 + i / 10, "step": 2**35}, {"key": "loss", "value": 1.5}])
    await gql.ok('mutation { setAlias(input: {model: "exec", alias: "prod", version: "2"}) { name } }')
    schema = build_schema(settings)

    async def page() -> Any:
        result = await schema.execute(PAGE, variable_values={"name": "exec"}, context_value=Context(settings=settings))
        assert not result.errors, result.errors
        return result.data

    fast = await page()
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    assert await page() == fast
    # Light rows read the times the ORM reads.
    nodes = fast["model"]["versions"]["nodes"]
    stored = {(r.version.number, r.key): r.logged_at.isoformat()
              for r in await MetricRow.all().prefetch_related("version")}
    assert {(n["number"], m["key"]): m["loggedAt"] for n in nodes for m in n["metrics"]} == stored
    assert nodes[0]["params"][0] == {"key": "big", "type": "INT", "value": 2**40, "number": float(2**40)}


async def test_a_cached_document_still_meets_the_limits(gql: GraphQLClient) -> None:
    query = "query($f: Int) { models(first: $f) { nodes { name } } }"
    await gql.ok(query, {"f": 5})
    await gql.ok(query, {"f": 5})  # now from the cache
    error = await gql.error(query, {"f": 10_000})
    assert error["extensions"]["code"] == "LIMIT" and "first" in error["message"], error


async def test_an_invalid_document_is_refused_every_time(gql: GraphQLClient) -> None:
    for _ in range(2):
        error = await gql.error("{ models { nodes { nosuchfield } } }")
        assert error["extensions"]["code"] == "INVALID" and "nosuchfield" in error["message"], error


def test_the_document_cache_is_bounded_and_skips_long_texts() -> None:
    cache = DocumentLru(size=2, longest=10)
    docs = [object() for _ in range(3)]
    for text, doc in zip(("a", "b", "c"), docs, strict=True):
        cache.put(text, doc)  # type: ignore[arg-type]
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") is docs[2]
    cache.put("x" * 11, docs[0])  # type: ignore[arg-type]
    assert cache.get("x" * 11) is None


SEARCH = """query($k: String!, $bad: String!) {
  versions(first: 10, orderBy: [{field: MODEL_NAME, descending: false}, {field: NUMBER}]) { nodes {
    ref number createdAt model { name task namespace createdBy } lr: param(key: $k) { value type }
    acc: metric(key: "acc") { value } nothing: param(key: "absent") { value } } }
  models { nodes { name latestVersion { ref model { name } } } }
  broken: versions(first: 2) { nodes { ref param(key: $bad) { value } } }
}"""


async def test_pure_resolvers_answer_as_graphql_core_does(gql: GraphQLClient, settings: Settings) -> None:
    """Pages call `pure` resolvers (ref, model, param(key:), the model's columns) in the fast
    loop: the same data and the same errors, with their paths, as the stock executor; a
    resolver whose data is not loaded yet (`latestVersion { ref }`) takes the ordinary path."""
    for name in ("b-exec", "a-exec"):
        await model(gql, name)
        for i in range(2):
            await version(gql, name, params=[{"key": "lr", "value": 0.1 * (i + 1)}],
                          metrics=[{"key": "acc", "value": 0.5 + i / 10}] if i else [])
    schema = build_schema(settings)

    async def answer() -> Any:
        result = await schema.execute(SEARCH, variable_values={"k": "lr", "bad": "no spaces"},
                                      context_value=Context(settings=settings))
        return result.data, [(e.message, e.path) for e in result.errors or []]

    fast = await answer()
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    assert await answer() == fast
    data, errors = fast
    assert [n["ref"] for n in data["versions"]["nodes"]] == ["a-exec:2", "a-exec:1", "b-exec:2", "b-exec:1"]
    assert data["versions"]["nodes"][0]["acc"] == {"value": 0.6} and data["versions"]["nodes"][1]["acc"] is None
    assert {n["latestVersion"]["ref"] for n in data["models"]["nodes"]} == {"a-exec:2", "b-exec:2"}
    assert len(errors) == 2 and all("no spaces" in m and p[0] == "broken" for m, p in errors), errors
