"""Search ordering: several sort keys, each way, with keyset cursors that page through exactly once."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

import pytest

from tests.conftest import GraphQLClient, SqlLog
from tests.helpers import model, version

SEARCH = """
query($o: [VersionOrder!], $first: Int, $after: String, $f: VersionFilter) {
  versions(orderBy: $o, first: $first, after: $after, filter: $f) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { ref } }
  }
}"""

# (model, accuracy or None, lr or None); created in this order
ROWS: list[tuple[str, float | None, float | None]] = [
    ("zeta", 0.9, 1e-3), ("alpha", 0.8, None), ("zeta", None, 1e-3), ("mid", 0.9, 5e-4),
    ("alpha", 0.95, 1e-3), ("mid", None, None), ("zeta", 0.8, 2e-3), ("alpha", 0.9, 5e-4),
]


@pytest.fixture
async def catalog(gql: GraphQLClient) -> list[dict[str, Any]]:
    """The versions of ROWS as dicts (ref, model, number, created, accuracy, lr)."""
    for name in sorted({r[0] for r in ROWS}):
        await model(gql, name)
    made, numbers = [], dict.fromkeys((r[0] for r in ROWS), 0)
    for i, (name, acc, lr) in enumerate(ROWS):
        numbers[name] += 1
        await version(gql, name, metrics=[{"key": "accuracy", "value": acc}] if acc is not None else [],
                      params=[{"key": "lr", "value": lr}] if lr is not None else [])
        made.append({"ref": f"{name}:{numbers[name]}", "MODEL_NAME": name, "NUMBER": numbers[name],
                     "CREATED_AT": i, "METRIC": acc, "PARAM": lr, "id": i})
    return made


def expected(rows: list[dict[str, Any]], order: list[dict[str, Any]]) -> list[str]:
    """The refs in `order`, as a user would sort them by hand: missing values last, then by id."""
    result = sorted(rows, key=lambda r: r["id"], reverse=order[-1].get("descending", True))
    for o in reversed(order):
        field, down = o["field"], o.get("descending", True)
        present = sorted((r for r in result if r[field] is not None), key=lambda r: r[field], reverse=down)
        result = present + [r for r in result if r[field] is None]
    return [r["ref"] for r in result]


async def walk(gql: GraphQLClient, order: list[dict[str, Any]] | dict[str, Any], first: int) -> list[str]:
    """Every ref, page by page, following endCursor."""
    refs: list[str] = []
    after = None
    for _ in range(len(ROWS) + 2):
        page = (await gql.ok(SEARCH, {"o": order, "first": first, "after": after}))["versions"]
        refs += [e["node"]["ref"] for e in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            return refs
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    raise AssertionError("paging did not end")


ORDERS = [
    [{"field": "MODEL_NAME", "descending": False}, {"field": "NUMBER", "descending": False}],
    [{"field": "MODEL_NAME", "descending": True}, {"field": "NUMBER", "descending": False}],
    [{"field": "METRIC", "key": "accuracy"}, {"field": "MODEL_NAME", "descending": False}],
    [{"field": "METRIC", "key": "accuracy", "descending": False}, {"field": "PARAM", "key": "lr"}],
    [{"field": "PARAM", "key": "lr", "descending": False}, {"field": "CREATED_AT"}],
    [{"field": "CREATED_AT", "descending": False}],
    [{"field": "NUMBER"}, {"field": "METRIC", "key": "accuracy", "descending": False}],
]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: ",".join(f"{k['field']}{'-' if k.get('descending', True) else '+'}" for k in o))
async def test_pages_walk_every_version_once_in_order(gql: GraphQLClient, catalog: list[dict[str, Any]],
                                                      order: list[dict[str, Any]]) -> None:
    want = expected(catalog, order)
    whole = (await gql.ok(SEARCH, {"o": order, "first": 100}))["versions"]
    assert [e["node"]["ref"] for e in whole["edges"]] == want
    for first in (1, 3):
        assert await walk(gql, order, first) == want


async def test_one_key_without_a_list_still_works(gql: GraphQLClient, catalog: list[dict[str, Any]]) -> None:
    order = {"field": "NUMBER", "descending": False}
    assert await walk(gql, order, 2) == expected(catalog, [order])
    literal = await gql.ok('{ versions(first: 3, orderBy: {field: MODEL_NAME, descending: false}) { nodes { ref } } }')
    assert [n["ref"] for n in literal["versions"]["nodes"]] == ["alpha:1", "alpha:2", "alpha:3"]  # ties by id


async def test_a_cursor_resumes_after_its_row_when_versions_arrive(gql: GraphQLClient,
                                                                   catalog: list[dict[str, Any]]) -> None:
    order = [{"field": "MODEL_NAME", "descending": False}, {"field": "NUMBER", "descending": False}]
    page = (await gql.ok(SEARCH, {"o": order, "first": 3}))["versions"]
    assert [e["node"]["ref"] for e in page["edges"]] == ["alpha:1", "alpha:2", "alpha:3"]
    await model(gql, "aaa")  # sorts before everything seen so far: an offset would repeat alpha:3
    await version(gql, "aaa")
    rest = (await gql.ok(SEARCH, {"o": order, "first": 100, "after": page["pageInfo"]["endCursor"]}))["versions"]
    assert [e["node"]["ref"] for e in rest["edges"]] == ["mid:1", "mid:2", "zeta:1", "zeta:2", "zeta:3"]
    assert rest["totalCount"] == len(ROWS) + 1  # the count is of all matches, not of what follows


async def test_search_of_the_issue_is_one_request(gql: GraphQLClient, catalog: list[dict[str, Any]]) -> None:
    f = {"params": [{"key": "lr", "lte": 1e-3}], "metrics": [{"key": "accuracy", "gte": 0.9}]}
    order = [{"field": "MODEL_NAME", "descending": False}, {"field": "NUMBER", "descending": False}]
    data = (await gql.ok(SEARCH, {"o": order, "f": f, "first": 100}))["versions"]
    assert [e["node"]["ref"] for e in data["edges"]] == ["alpha:2", "alpha:3", "mid:1", "zeta:1"]


async def test_offset_cursors_handed_out_before_still_work(gql: GraphQLClient, catalog: list[dict[str, Any]]) -> None:
    order = [{"field": "CREATED_AT", "descending": False}]
    old = base64.b64encode(b"o:1").decode()  # "after the second row"
    rest = (await gql.ok(SEARCH, {"o": order, "first": 100, "after": old}))["versions"]
    assert [e["node"]["ref"] for e in rest["edges"]] == expected(catalog, order)[2:]


def forged(signature: str, values: list[Any], row_id: int) -> str:
    return base64.b64encode(b"k:" + json.dumps([signature, values, row_id]).encode()).decode()


@pytest.mark.parametrize(
    ("variables", "code", "message"),
    [
        ({"o": [{"field": "NUMBER"}] * 2}, "INVALID", "names a key twice"),
        ({"o": [{"field": "NUMBER"}, {"field": "CREATED_AT"}, {"field": "MODEL_NAME"},
                {"field": "METRIC", "key": "a"}, {"field": "PARAM", "key": "b"}]}, "LIMIT", "at most 4 keys"),
        ({"o": [{"field": "METRIC"}]}, "INVALID", "needs a key"),
        ({"o": [{"field": "NUMBER", "key": "x"}]}, "INVALID", "takes no key"),
        ({"o": [{"field": "NUMBER"}], "after": forged("CREATED_AT-", ["2026-01-01T00:00:00+00:00"], 3)},
         "INVALID", "another ordering"),
        ({"o": [{"field": "NUMBER"}], "after": forged("NUMBER-", ["three"], 3)}, "INVALID", "invalid cursor"),
        ({"o": [{"field": "NUMBER"}], "after": forged("NUMBER-", [1, 2], 3)}, "INVALID", "invalid cursor"),
        ({"o": [{"field": "NUMBER"}], "after": forged("NUMBER-", [2**70], 3)}, "INVALID", "invalid cursor"),
        ({"o": [{"field": "CREATED_AT"}], "after": forged("CREATED_AT-", ["yesterday"], 3)}, "INVALID", "not a time"),
        ({"after": base64.b64encode(b"k:[not json").decode()}, "INVALID", "invalid cursor"),
        ({"after": "%%%"}, "INVALID", "invalid cursor"),
    ],
)
async def test_bad_orders_and_cursors_are_refused(gql: GraphQLClient, catalog: list[dict[str, Any]],
                                                 variables: dict[str, Any], code: str, message: str) -> None:
    error = await gql.error(SEARCH, {"first": 5, **variables})
    assert error["extensions"]["code"] == code and message in error["message"], error


async def test_ordered_page_statements_do_not_grow(gql: GraphQLClient, catalog: list[dict[str, Any]],
                                                   sql_log: SqlLog) -> None:
    query = """query($after: String, $first: Int) {
      versions(first: $first, after: $after, orderBy: [{field: MODEL_NAME, descending: false}, {field: NUMBER}]) {
        pageInfo { endCursor } nodes { ref number model { name } param(key: "lr") { value } metric(key: "accuracy") { value } }
      }
    }"""
    counts = []
    for first, after in ((1, None), (6, None), (6, "first")):
        if after:
            after = (await gql.ok(query, {"first": 1}))["versions"]["pageInfo"]["endCursor"]
        sql_log.reset()
        data = await gql.ok(query, {"first": first, "after": after})
        assert len(data["versions"]["nodes"]) == first
        counts.append(len(sql_log.catalog))
    # search, version rows, their models, the page's params, the page's metrics
    assert counts == [5, 5, 5], counts


async def test_by_model_name_sqlite_walks_the_indexes_without_sorting(
    gql: GraphQLClient, catalog: list[dict[str, Any]], sql_log: SqlLog, settings: Any,
) -> None:
    """Ordered by (model name, number), SQLite reads models by name and each one's versions by
    number, and stops at the page's end: no sort of every match (PostgreSQL plans for itself)."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("a SQLite plan")
    order = [{"field": "MODEL_NAME", "descending": False}, {"field": "NUMBER", "descending": False}]
    sql_log.reset()
    await gql.ok(SEARCH, {"o": order, "first": 3, "f": {"metrics": [{"key": "accuracy", "gt": 0.5}]}})
    (statement,) = [s for s in sql_log.catalog if "ORDER BY k0" in s]
    path = settings.database_url.removeprefix("sqlite://")
    with sqlite3.connect(path) as conn:
        values = ["ARCHIVED", "accuracy", 0.5]
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, values)]
    assert plan[0].startswith("SCAN m USING COVERING INDEX"), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
