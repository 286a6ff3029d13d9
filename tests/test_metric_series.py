"""`metricSeries`: every metric's history of a version in one field, for pages that chart them."""

from __future__ import annotations

from tests.conftest import GraphQLClient, SqlLog

LOG = "mutation($r: String!, $m: [MetricInput!]!) { logMetrics(input: {ref: $r, metrics: $m}) { ref } }"
SERIES = "{ versions(first: 10) { nodes { ref metricSeries { key points { value step } } } } }"


async def test_every_metric_history_by_key_in_constant_queries(gql: GraphQLClient, sql_log: SqlLog) -> None:
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    for n in (1, 2, 3):
        await gql.ok('mutation { createVersion(input: {model: "m"}) { ref } }')
        points = [{"key": k, "value": n * 10 + s + (0.5 if k == "loss" else 0), "step": s}
                  for s in range(n + 1) for k in ("loss", "acc")]
        await gql.ok(LOG, {"r": f"m:{n}", "m": points})
    sql_log.reset()
    nodes = {v["ref"]: v["metricSeries"] for v in (await gql.ok(SERIES))["versions"]["nodes"]}
    queries = len(sql_log.catalog)
    assert [s["key"] for s in nodes["m:3"]] == ["acc", "loss"]
    assert nodes["m:3"][1]["points"] == [{"value": 30 + s + 0.5, "step": s} for s in range(4)]
    assert [len(s["points"]) for s in nodes["m:1"]] == [2, 2]
    await gql.ok('mutation { createVersion(input: {model: "m"}) { ref } }')
    sql_log.reset()
    await gql.ok(SERIES)
    assert len(sql_log.catalog) == queries  # one more version, no more statements
