"""Lineage: walks up and down to any depth in one recursive query; the graph stays a DAG."""

from __future__ import annotations

from tests.conftest import GraphQLClient, SqlLog
from tests.helpers import model, version


async def chain(gql: GraphQLClient, n: int) -> None:
    """g0:1 ← g1:1 ← … ← g{n-1}:1, each FINE_TUNED_FROM the previous, across models."""
    for i in range(n):
        await model(gql, f"g{i}")
        lineage = [{"parent": f"g{i - 1}:1", "relation": "FINE_TUNED_FROM"}] if i else []
        await version(gql, f"g{i}", lineage=lineage)


async def test_ancestors_twenty_deep_in_one_statement(gql: GraphQLClient, sql_log: SqlLog) -> None:
    await chain(gql, 22)
    q = '{ version(ref: "g21:1") { ancestors(depth: 20) { depth relation parent { ... on ModelVersion { ref } } } } }'
    sql_log.reset()
    data = await gql.ok(q)
    edges = data["version"]["ancestors"]
    assert [e["depth"] for e in edges] == list(range(1, 21))
    assert [e["parent"]["ref"] for e in edges] == [f"g{i}:1" for i in range(20, 0, -1)]
    recursive = [s for s in sql_log.statements if "WITH RECURSIVE" in s]
    assert len(recursive) == 1


async def test_descendants_and_lineage_graph(gql: GraphQLClient) -> None:
    await chain(gql, 4)
    await gql.ok('mutation { registerDataset(input: {name: "corpus", version: "v1"}) { ref } }')
    await gql.ok('mutation { addLineage(input: {ref: "g1:1", parent: "corpus@v1", relation: TRAINED_ON}) { ref } }')
    down = await gql.ok('{ version(ref: "g0:1") { descendants(depth: 2) { depth child { ref } } children { child { ref } } } }')
    assert [(e["depth"], e["child"]["ref"]) for e in down["version"]["descendants"]] == [(1, "g1:1"), (2, "g2:1")]
    assert down["version"]["children"] == [{"child": {"ref": "g1:1"}}]
    graph = await gql.ok("""{ lineage(ref: "g2:1", direction: BOTH, depth: 5) {
        root { ref } edges { relation depth child { ref } parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
        nodes { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref } } } }""")
    g = graph["lineage"]
    edges = {(e["child"]["ref"], e["relation"], e["parent"]["ref"]) for e in g["edges"]}
    assert edges == {
        ("g2:1", "FINE_TUNED_FROM", "g1:1"), ("g1:1", "FINE_TUNED_FROM", "g0:1"),
        ("g1:1", "TRAINED_ON", "corpus@v1"), ("g3:1", "FINE_TUNED_FROM", "g2:1"),
    }
    assert g["nodes"][0] == {"__typename": "ModelVersion", "ref": "g2:1"}
    assert {n["ref"] for n in g["nodes"]} == {"g0:1", "g1:1", "g2:1", "g3:1", "corpus@v1"}
    used = await gql.ok('{ dataset(name: "corpus") { versions { ref usedBy { relation child { ref } } } } }')
    assert used["dataset"]["versions"] == [{"ref": "corpus@v1", "usedBy": [{"relation": "TRAINED_ON", "child": {"ref": "g1:1"}}]}]


async def test_cycles_and_self_edges_are_refused(gql: GraphQLClient) -> None:
    await chain(gql, 3)
    err = await gql.error('mutation { addLineage(input: {ref: "g0:1", parent: "g2:1", relation: DERIVED_FROM}) { ref } }')
    assert err["extensions"]["code"] == "CONFLICT" and "cycle" in err["message"]
    err = await gql.error('mutation { addLineage(input: {ref: "g1:1", parent: "g1:1", relation: DERIVED_FROM}) { ref } }')
    assert err["extensions"]["code"] == "CONFLICT" and "own" in err["message"]
    up = await gql.ok('{ version(ref: "g0:1") { parents { relation } } }')
    assert up["version"]["parents"] == []
    await gql.ok('mutation { removeLineage(input: {ref: "g2:1", parent: "g1:1", relation: FINE_TUNED_FROM}) { ref } }')
    # with the edge gone the same link is no longer a cycle
    await gql.ok('mutation { addLineage(input: {ref: "g0:1", parent: "g2:1", relation: DERIVED_FROM}) { ref } }')


async def test_model_with_descendants_elsewhere_cannot_be_deleted(gql: GraphQLClient) -> None:
    await chain(gql, 2)
    err = await gql.error('mutation { deleteModel(name: "g0") { name } }')
    assert err["extensions"]["code"] == "CONFLICT" and "g1:1" in err["message"]
    assert (await gql.ok('{ version(ref: "g0:1") { ref } }'))["version"] == {"ref": "g0:1"}
