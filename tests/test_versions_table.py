"""What a model's versions table reads (issue 12): chosen params and metrics only
(`params(keys:)`, `metrics(keys:)`), the keys there are to choose from (`paramKeys`,
`metricKeys`), archived versions left out on request — in a constant number of statements."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, SqlLog
from tests.helpers import model, version

TABLE = """
query($name: String!, $first: Int, $after: String, $archived: Boolean!, $p: [String!], $m: [String!]) {
  model(name: $name) {
    paramKeys { key versions }
    metricKeys { key versions }
    versions(first: $first, after: $after, includeArchived: $archived) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { number status params(keys: $p) { key value } metrics(keys: $m) { key value } }
    }
  }
}"""
ARCHIVE = "mutation($r: String!) { archiveVersion(ref: $r) { ref } }"


async def five_versions(gql: GraphQLClient, name: str = "m") -> None:
    """`m:1`…`m:5`: every version has `lr` and `accuracy`, odd ones `seed` and `loss`; 2 and 4 archived."""
    await model(gql, name)
    for n in range(1, 6):
        params: list[dict[str, Any]] = [{"key": "lr", "value": n / 100}]
        metrics: list[dict[str, Any]] = [{"key": "accuracy", "value": n / 10}]
        if n % 2:
            params.append({"key": "seed", "value": n})
            metrics.append({"key": "loss", "value": 1 / n})
        await version(gql, name, params=params, metrics=metrics)
    for n in (2, 4):
        await gql.ok(ARCHIVE, {"r": f"{name}:{n}"})


async def table(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    found = (await gql.ok(TABLE, {"name": "m", "archived": True, **variables}))["model"]
    assert found is not None
    return found  # type: ignore[no-any-return]


async def test_only_the_chosen_keys_in_the_order_asked(gql: GraphQLClient) -> None:
    await five_versions(gql)
    nodes = (await table(gql, p=["seed", "lr", "missing", "lr"], m=["loss"]))["versions"]["nodes"]
    assert [n["number"] for n in nodes] == [5, 4, 3, 2, 1]
    assert nodes[0]["params"] == [{"key": "seed", "value": 5}, {"key": "lr", "value": 0.05}]
    assert nodes[1]["params"] == [{"key": "lr", "value": 0.04}]
    assert nodes[0]["metrics"] == [{"key": "loss", "value": 0.2}] and nodes[1]["metrics"] == []
    everything = (await table(gql))["versions"]["nodes"]
    assert [p["key"] for p in everything[0]["params"]] == ["lr", "seed"]
    assert [m["key"] for m in everything[0]["metrics"]] == ["accuracy", "loss"]
    assert (await table(gql, p=[], m=[]))["versions"]["nodes"][0]["params"] == []


async def test_the_keys_to_choose_from_most_common_first(gql: GraphQLClient) -> None:
    await five_versions(gql)
    found = await table(gql, first=1)
    assert found["paramKeys"] == [{"key": "lr", "versions": 5}, {"key": "seed", "versions": 3}]
    assert found["metricKeys"] == [{"key": "accuracy", "versions": 5}, {"key": "loss", "versions": 3}]
    await model(gql, "empty")
    empty = (await gql.ok(TABLE, {"name": "empty", "archived": True}))["model"]
    assert empty["paramKeys"] == empty["metricKeys"] == [] and empty["versions"]["totalCount"] == 0


async def test_archived_versions_are_left_out_on_request_and_pages_stay_full(gql: GraphQLClient) -> None:
    await five_versions(gql)
    shown = []
    after = None
    while True:
        page = (await table(gql, archived=False, first=2, after=after))["versions"]
        assert page["totalCount"] == 3
        assert len(page["nodes"]) == 2 or not page["pageInfo"]["hasNextPage"]
        shown += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [(n["number"], n["status"]) for n in shown] == [(5, "READY"), (3, "READY"), (1, "READY")]
    everything = (await table(gql, first=10))["versions"]
    assert everything["totalCount"] == 5 and [n["number"] for n in everything["nodes"]] == [5, 4, 3, 2, 1]


async def test_bad_keys_are_refused_with_a_code(gql: GraphQLClient) -> None:
    await five_versions(gql)
    bad = await gql.error(TABLE, {"name": "m", "archived": True, "p": ["not a key!"]})
    assert bad["extensions"]["code"] == "INVALID" and "param" in bad["message"], bad
    many = await gql.error(TABLE, {"name": "m", "archived": True, "m": [f"k{i}" for i in range(101)]})
    assert many["extensions"]["code"] == "LIMIT" and "100" in many["message"], many


async def test_statements_do_not_grow_with_versions_or_keys(gql: GraphQLClient, sql_log: SqlLog) -> None:
    await five_versions(gql)
    counts = []
    for first, keys in ((1, ["lr"]), (5, ["lr", "seed", "x", "y"])):
        for archived in (True, False):
            sql_log.reset()
            await table(gql, first=first, archived=archived, p=keys, m=keys)
            counts.append(len(sql_log.catalog))
    assert len(set(counts)) == 1, counts
    assert counts[0] <= 8, sql_log.catalog
