"""Search: typed comparisons on params and metrics, tags, aliases, lineage and groups, in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.helpers import model, version

SEARCH = """
query($f: VersionFilter, $o: [VersionOrder!], $first: Int, $after: String) {
  versions(filter: $f, orderBy: $o, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { ref }
  }
}"""

# (model, lr, epochs, optimizer, accuracy, tags)
ROWS = [
    ("a", 1e-4, 3, "adamw", 0.95, {"team": "nlp"}),
    ("a", 5e-3, 3, "sgd", 0.97, {"team": "nlp"}),
    ("a", 2e-4, 10, "adamw", 0.85, {}),
    ("b", 1e-2, 1, "sgd", 0.50, {"team": "cv"}),
    ("b", 9e-4, 5, "adamw", 0.92, {}),
]


@pytest.fixture
async def catalog(gql: GraphQLClient) -> None:
    await model(gql, "a")
    await model(gql, "b")
    await gql.ok('mutation { registerDataset(input: {name: "imagenet", version: "2012"}) { ref } }')
    for i, (m, lr, epochs, opt, acc, tags) in enumerate(ROWS):
        lineage = [{"parent": "a:1", "relation": "FINE_TUNED_FROM"}] if m == "b" else []
        if i == 3:
            lineage.append({"parent": "imagenet@2012", "relation": "TRAINED_ON"})
        await version(
            gql, m,
            params=[{"key": "lr", "value": lr}, {"key": "epochs", "value": epochs},
                    {"key": "optimizer", "value": opt}, {"key": "bf16", "value": i % 2 == 0}],
            metrics=[{"key": "accuracy", "value": acc}],
            tags=[{"key": k, "value": v} for k, v in tags.items()],
            lineage=lineage,
        )
    await gql.ok('mutation { setAlias(input: {model: "a", alias: "production", version: "2"}) { name } }')


async def refs(gql: GraphQLClient, f: dict[str, Any] | None = None, **kw: Any) -> list[str]:
    data = await gql.ok(SEARCH, {"f": f, "first": 100, **kw})
    return sorted(n["ref"] for n in data["versions"]["nodes"])


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ({"params": [{"key": "lr", "lt": 1e-3}], "metrics": [{"key": "accuracy", "gt": 0.9}]}, ["a:1", "b:2"]),
        ({"params": [{"key": "lr", "gte": 1e-4, "lte": 2e-4}]}, ["a:1", "a:3"]),
        ({"params": [{"key": "epochs", "eq": 3}]}, ["a:1", "a:2"]),
        ({"params": [{"key": "epochs", "in": [1, 5]}]}, ["b:1", "b:2"]),
        ({"params": [{"key": "optimizer", "eq": "sgd"}]}, ["a:2", "b:1"]),
        ({"params": [{"key": "optimizer", "ne": "sgd"}]}, ["a:1", "a:3", "b:2"]),
        ({"params": [{"key": "bf16", "eq": True}]}, ["a:1", "a:3", "b:2"]),
        ({"metrics": [{"key": "accuracy", "lt": 0.9}]}, ["a:3", "b:1"]),
        ({"tags": [{"key": "team", "value": "nlp"}]}, ["a:1", "a:2"]),
        ({"tags": [{"key": "team"}]}, ["a:1", "a:2", "b:1"]),
        ({"alias": "production"}, ["a:2"]),
        ({"model": "b"}, ["b:1", "b:2"]),
        ({"derivedFrom": "a:1"}, ["b:1", "b:2"]),
        ({"derivedFrom": "a@production"}, []),
        ({"trainedOn": "imagenet"}, ["b:1"]),
        ({"trainedOn": "imagenet@2012"}, ["b:1"]),
        ({"or": [{"params": [{"key": "lr", "gt": 5e-3}]}, {"metrics": [{"key": "accuracy", "gte": 0.97}]}]}, ["a:2", "b:1"]),
        ({"model": "a", "not": {"tags": [{"key": "team"}]}}, ["a:3"]),
        ({"and": [{"model": "a"}, {"or": [{"params": [{"key": "epochs", "eq": 10}]}, {"alias": "production"}]}]}, ["a:2", "a:3"]),
    ],
)
async def test_filters(gql: GraphQLClient, catalog: None, f: dict[str, Any], expected: list[str]) -> None:
    assert await refs(gql, f) == expected


async def test_archived_only_when_asked(gql: GraphQLClient, catalog: None) -> None:
    await gql.ok('mutation { archiveVersion(ref: "a:3") { status } }')
    assert "a:3" not in await refs(gql)
    assert await refs(gql, {"status": ["ARCHIVED"]}) == ["a:3"]


async def test_created_ranges(gql: GraphQLClient, catalog: None) -> None:
    data = await gql.ok('{ version(ref: "a:3") { createdAt } }')
    at = data["version"]["createdAt"]
    after = await refs(gql, {"createdAfter": at})
    before = await refs(gql, {"createdBefore": at})
    assert "a:3" in after and "a:3" not in before and len(after) + len(before) == len(ROWS)
    naive = datetime.fromisoformat(at).astimezone(UTC).replace(tzinfo=None).isoformat()  # no zone: read as UTC
    assert await refs(gql, {"createdAfter": naive}) == after and await refs(gql, {"createdBefore": naive}) == before


async def test_order_by_metric_and_param_with_pages(gql: GraphQLClient, catalog: None) -> None:
    first = await gql.ok(SEARCH, {"o": {"field": "METRIC", "key": "accuracy"}, "first": 2})
    page = first["versions"]
    assert [n["ref"] for n in page["nodes"]] == ["a:2", "a:1"] and page["totalCount"] == 5
    assert page["pageInfo"]["hasNextPage"]
    rest = await gql.ok(SEARCH, {"o": {"field": "METRIC", "key": "accuracy"}, "first": 10,
                                 "after": page["pageInfo"]["endCursor"]})
    assert [n["ref"] for n in rest["versions"]["nodes"]] == ["b:2", "a:3", "b:1"]
    asc = await gql.ok(SEARCH, {"o": {"field": "PARAM", "key": "lr", "descending": False}, "first": 5})
    assert [n["ref"] for n in asc["versions"]["nodes"]] == ["a:1", "a:3", "b:2", "a:2", "b:1"]
    # versions without the key sort last in both directions
    await version(gql, "a")
    for descending in (True, False):
        data = await gql.ok(SEARCH, {"o": {"field": "METRIC", "key": "accuracy", "descending": descending}, "first": 10})
        assert data["versions"]["nodes"][-1]["ref"] == "a:4"
