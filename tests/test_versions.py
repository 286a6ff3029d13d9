"""Versions: one createVersion carries everything; numbers are atomic; typed params round-trip."""

from __future__ import annotations

import asyncio
import math

from tests.conftest import GraphQLClient
from tests.helpers import model, version

VERSION_PAGE = """
query($ref: String!) {
  version(ref: $ref) {
    ref number status description manifestDigest createdBy
    model { name task }
    params { key type value number }
    lr: param(key: "lr") { value }
    metrics { key value step }
    metricHistory(key: "loss") { value step }
    tags { key value }
    run { runId uri codeRepository commit startedAt endedAt }
    parents { relation parent { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
  }
}"""


async def test_create_version_with_everything_in_one_call(gql: GraphQLClient) -> None:
    await model(gql, "base-llm", task="TEXT_GENERATION")
    await version(gql, "base-llm")
    await gql.ok('mutation { registerDataset(input: {name: "wiki", version: "2024-06", uri: "s3://d/wiki", size: 5000000000}) { ref size } }')
    await model(gql, "chat-llm", task="TEXT_GENERATION")
    created = await version(
        gql,
        "chat-llm",
        description="first chat tune",
        params=[
            {"key": "lr", "value": 0.0003},
            {"key": "epochs", "value": 3},
            {"key": "optimizer", "value": "adamw"},
            {"key": "bf16", "value": True},
            {"key": "layers", "value": [1, 2, 3]},
            {"key": "warmup", "value": 100, "type": "FLOAT"},
            {"key": "seed", "value": 9007199254740993},
        ],
        metrics=[{"key": "loss", "value": 2.0, "step": 1}, {"key": "loss", "value": 1.5, "step": 2},
                 {"key": "accuracy", "value": 0.91}],
        tags=[{"key": "team", "value": "nlp"}],
        run={"runId": "r-42", "uri": "https://ci/runs/42", "codeRepository": "git@x:y.git", "commit": "abc123",
             "startedAt": "2026-01-01T10:00:00+00:00", "endedAt": "2026-01-01T12:00:00+00:00"},
        lineage=[{"parent": "base-llm:1", "relation": "FINE_TUNED_FROM"},
                 {"parent": "wiki@2024-06", "relation": "TRAINED_ON"}],
    )
    assert created["ref"] == "chat-llm:1" and created["status"] == "READY"
    v = (await gql.ok(VERSION_PAGE, {"ref": "chat-llm:1"}))["version"]
    params = {p["key"]: (p["type"], p["value"]) for p in v["params"]}
    assert params == {
        "lr": ("FLOAT", 0.0003), "epochs": ("INT", 3), "optimizer": ("STRING", "adamw"),
        "bf16": ("BOOL", True), "layers": ("JSON", [1, 2, 3]), "warmup": ("FLOAT", 100.0),
        "seed": ("INT", 9007199254740993),  # beyond 2**53: kept exactly
    }
    assert v["lr"] == {"value": 0.0003}
    assert {m["key"]: (m["value"], m["step"]) for m in v["metrics"]} == {"loss": (1.5, 2), "accuracy": (0.91, None)}
    assert [(p["value"], p["step"]) for p in v["metricHistory"]] == [(2.0, 1), (1.5, 2)]
    assert v["tags"] == [{"key": "team", "value": "nlp"}]
    assert v["run"]["runId"] == "r-42" and v["run"]["startedAt"].startswith("2026-01-01T10:00:00")
    assert v["model"] == {"name": "chat-llm", "task": "TEXT_GENERATION"}
    parents = {(p["relation"], p["parent"]["__typename"], p["parent"]["ref"]) for p in v["parents"]}
    assert parents == {("FINE_TUNED_FROM", "ModelVersion", "base-llm:1"), ("TRAINED_ON", "DatasetVersion", "wiki@2024-06")}
    pinned = (await gql.ok('query($r: String!) { version(ref: $r) { ref } }', {"r": f"chat-llm@{v['manifestDigest']}"}))
    assert pinned["version"]["ref"] == "chat-llm:1"


async def test_fifty_concurrent_creates_number_one_to_fifty(gql: GraphQLClient) -> None:
    await model(gql, "busy")
    results = await asyncio.gather(*(version(gql, "busy", params=[{"key": "i", "value": i}]) for i in range(50)))
    assert sorted(r["number"] for r in results) == list(range(1, 51))
    count = await gql.ok('{ model(name: "busy") { versions(first: 100) { totalCount nodes { number } } } }')
    numbers = [n["number"] for n in count["model"]["versions"]["nodes"]]
    assert numbers == list(range(50, 0, -1)) and count["model"]["versions"]["totalCount"] == 50


async def test_refs_resolve_latest_alias_number_and_digest(gql: GraphQLClient) -> None:
    await model(gql, "vision/resnet")
    v1 = await version(gql, "vision/resnet", params=[{"key": "depth", "value": 50}])
    await version(gql, "vision/resnet", params=[{"key": "depth", "value": 101}])
    await gql.ok('mutation { setAlias(input: {model: "vision/resnet", alias: "production", version: "1"}) { name } }')
    q = 'query($r: String!) { version(ref: $r) { number } }'
    assert (await gql.ok(q, {"r": "vision/resnet"}))["version"]["number"] == 2
    assert (await gql.ok(q, {"r": "vision/resnet@production"}))["version"]["number"] == 1
    assert (await gql.ok(q, {"r": f"vision/resnet@{v1['manifestDigest']}"}))["version"]["number"] == 1
    assert (await gql.ok(q, {"r": "vision/resnet:3"}))["version"] is None
    # the alias moves, the archived version drops out of "latest" but stays addressable
    await gql.ok('mutation { setAlias(input: {model: "vision/resnet", alias: "production", version: "vision/resnet:2"}) { name } }')
    await gql.ok('mutation { archiveVersion(ref: "vision/resnet:1") { status } }')
    assert (await gql.ok(q, {"r": "vision/resnet@production"}))["version"]["number"] == 2
    assert (await gql.ok('{ version(ref: "vision/resnet:1") { status } }'))["version"]["status"] == "ARCHIVED"
    restored = await gql.ok('mutation { restoreVersion(ref: "vision/resnet:1") { status } }')
    assert restored["restoreVersion"]["status"] == "READY"


async def test_update_version_and_log_metrics(gql: GraphQLClient) -> None:
    await model(gql, "m")
    await version(gql, "m", metrics=[{"key": "acc", "value": 0.5, "step": 10}])
    await gql.ok('mutation { logMetrics(input: {ref: "m:1", metrics: [{key: "acc", value: 0.4, step: 5}, {key: "f1", value: 0.7}]}) { ref } }')
    data = await gql.ok('{ version(ref: "m:1") { metrics { key value step } } }')
    # an older step does not replace the latest value; a new key appears
    assert {m["key"]: m["value"] for m in data["version"]["metrics"]} == {"acc": 0.5, "f1": 0.7}
    await gql.ok('mutation { logMetrics(input: {ref: "m:1", metrics: [{key: "acc", value: 0.6, step: 20}, {key: "f1", value: 0.8}]}) { ref } }')
    data = await gql.ok('{ version(ref: "m:1") { metrics { key value step } } }')
    # a later step and an unstepped point move the current values
    assert {m["key"]: (m["value"], m["step"]) for m in data["version"]["metrics"]} == {"acc": (0.6, 20), "f1": (0.8, None)}
    updated = await gql.ok('mutation { updateVersion(input: {ref: "m:1", description: "better", tags: [{key: "a", value: "b"}]}) { description tags { key value } } }')
    assert updated["updateVersion"] == {"description": "better", "tags": [{"key": "a", "value": "b"}]}


async def test_models_update_list_and_delete(gql: GraphQLClient) -> None:
    for name in ("vision/a", "vision/b", "nlp/c"):
        await model(gql, name, task="IMAGE_CLASSIFICATION" if name.startswith("vision") else "OTHER")
    data = await gql.ok('{ models(first: 1, filter: {namespace: "vision"}) { totalCount pageInfo { hasNextPage endCursor } nodes { name namespace } } }')
    page = data["models"]
    assert page["totalCount"] == 2 and page["nodes"] == [{"name": "vision/a", "namespace": "vision"}]
    nxt = await gql.ok('query($a: String) { models(first: 5, after: $a, filter: {namespace: "vision"}) { nodes { name } pageInfo { hasNextPage } } }', {"a": page["pageInfo"]["endCursor"]})
    assert nxt["models"] == {"nodes": [{"name": "vision/b"}], "pageInfo": {"hasNextPage": False}}
    upd = await gql.ok('mutation { updateModel(input: {name: "nlp/c", description: "# Card", task: TEXT_CLASSIFICATION, tags: [{key: "owner", value: "ana"}]}) { description task tags { key value } } }')
    assert upd["updateModel"] == {"description": "# Card", "task": "TEXT_CLASSIFICATION", "tags": [{"key": "owner", "value": "ana"}]}
    await version(gql, "nlp/c")
    await gql.ok('mutation { deleteModel(name: "nlp/c") { name } }')
    assert (await gql.ok('{ model(name: "nlp/c") { name } }'))["model"] is None
    assert (await gql.ok('{ version(ref: "nlp/c:1") { ref } }'))["version"] is None


async def test_node_ids_round_trip(gql: GraphQLClient) -> None:
    m = await model(gql, "n")
    v = await version(gql, "n")
    q = 'query($id: ID!) { node(id: $id) { __typename id ... on Model { name } ... on ModelVersion { ref } } }'
    assert (await gql.ok(q, {"id": m["id"]}))["node"] == {"__typename": "Model", "id": m["id"], "name": "n"}
    assert (await gql.ok(q, {"id": v["id"]}))["node"]["ref"] == "n:1"


async def test_model_versions_pages_walk_every_version(gql: GraphQLClient) -> None:
    await model(gql, "paged")
    for _ in range(7):
        await version(gql, "paged")
    seen: list[int] = []
    after = None
    while True:
        data = await gql.ok('query($a: String) { model(name: "paged") { versions(first: 3, after: $a) { pageInfo { hasNextPage endCursor } nodes { number } } } }', {"a": after})
        page = data["model"]["versions"]
        seen += [n["number"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [7, 6, 5, 4, 3, 2, 1]


async def test_concurrent_alias_moves_all_succeed(gql: GraphQLClient) -> None:
    await model(gql, "hot")
    for _ in range(5):
        await version(gql, "hot")
    moves = [gql.ok('mutation($v: String!) { setAlias(input: {model: "hot", alias: "champion", version: $v}) { name } }', {"v": str(i % 5 + 1)}) for i in range(20)]
    await asyncio.gather(*moves)
    data = await gql.ok('{ model(name: "hot") { aliases { name } } }')
    assert data["model"]["aliases"] == [{"name": "champion"}]


async def test_param_values_come_back_exactly_as_given(gql: GraphQLClient) -> None:
    """Floats, ints and bools are answered from their stored number, not their JSON: the same
    value and type for every edge of the number line."""
    values: list[object] = [-0.0, 0.0, 0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, -(2**53) + 1, 2**53 - 1,
                            2**53, -(2**62), True, False, "3", 1e-7, -12.5]
    await model(gql, "exact")
    await version(gql, "exact", params=[{"key": f"k{i:02d}", "value": v} for i, v in enumerate(values)])
    data = await gql.ok('{ version(ref: "exact:1") { params { key value } } }')
    got = [p["value"] for p in data["version"]["params"]]
    assert [(type(v), v) for v in got] == [(type(v), v) for v in values]
    assert math.copysign(1.0, got[0]) == -1.0  # -0.0 keeps its sign
