"""`compare(a, b)`: two versions side by side — params, metrics, artifacts and lineage parents —
with the reads `version(ref)` allows, and a constant number of SQL statements."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.config import Settings
from tests.conftest import ADMIN_SECRET, GraphQLClient, SqlLog
from tests.helpers import model, version

COMPARE = """
query($a: String!, $b: String!) {
  compare(a: $a, b: $b) {
    a { ref } b { ref }
    params { key change delta a { type value } b { type value } }
    metrics { key change delta a { value step } b { value step } }
    artifacts { path change sizeDelta a { digest size } b { digest size } }
    parents { relation side parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
  }
}"""
DATASET = "mutation($n: String!, $v: String!) { registerDataset(input: {name: $n, version: $v}) { ref } }"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def put_blob(gql: GraphQLClient, data: bytes) -> str:
    """Upload `data` as the admin; its digest."""
    answer = await gql.http.put(f"/api/blobs/{digest_of(data)}", content=data,
                                headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    assert answer.status_code in (200, 201), answer.text
    return digest_of(data)


async def artifacts(gql: GraphQLClient, files: dict[str, bytes]) -> list[dict[str, str]]:
    return [{"path": path, "digest": await put_blob(gql, data)} for path, data in files.items()]


async def two_classifiers(gql: GraphQLClient) -> None:
    """`clf:1` and `clf:2`, differing in every way a comparison reports, and `base:1`."""
    await model(gql, "base")
    await version(gql, "base")
    for v in ("v1", "v2"):
        await gql.ok(DATASET, {"n": "ds", "v": v})
    await model(gql, "clf")
    await version(
        gql, "clf",
        params=[{"key": "lr", "value": 0.01}, {"key": "epochs", "value": 3}, {"key": "optimizer", "value": "adam"},
                {"key": "shuffle", "value": True}, {"key": "layers", "value": [64]}, {"key": "seed", "value": 7},
                {"key": "old", "value": "x"}],
        metrics=[{"key": "accuracy", "value": 0.7, "step": 1}, {"key": "accuracy", "value": 0.8, "step": 2},
                 {"key": "loss", "value": 0.5}, {"key": "only_a", "value": 1.0}],
        artifacts=await artifacts(gql, {"weights.bin": b"weights one", "README.md": b"# clf", "old.txt": b"old"}),
        lineage=[{"parent": "base:1", "relation": "FINE_TUNED_FROM"}, {"parent": "ds@v1", "relation": "TRAINED_ON"}],
    )
    await version(
        gql, "clf",
        params=[{"key": "lr", "value": 0.001}, {"key": "epochs", "value": 5}, {"key": "optimizer", "value": "sgd"},
                {"key": "shuffle", "value": False}, {"key": "layers", "value": [64, 32]}, {"key": "seed", "value": 7},
                {"key": "batch", "value": 32}],
        metrics=[{"key": "accuracy", "value": 0.9, "step": 5}, {"key": "loss", "value": 0.5},
                 {"key": "only_b", "value": 2.0}],
        artifacts=await artifacts(gql, {"weights.bin": b"weights two, larger", "README.md": b"# clf", "new.txt": b"n"}),
        lineage=[{"parent": "base:1", "relation": "FINE_TUNED_FROM"}, {"parent": "ds@v2", "relation": "TRAINED_ON"},
                 {"parent": "ds@v1", "relation": "EVALUATED_ON"}],
    )


async def test_two_versions_side_by_side(gql: GraphQLClient) -> None:
    await two_classifiers(gql)
    found = (await gql.ok(COMPARE, {"a": "clf:1", "b": "clf:2"}))["compare"]
    assert (found["a"]["ref"], found["b"]["ref"]) == ("clf:1", "clf:2")

    params = {p["key"]: p for p in found["params"]}
    assert [p["key"] for p in found["params"]] == sorted(params)
    assert {k: p["change"] for k, p in params.items()} == {
        "batch": "ADDED", "epochs": "CHANGED", "layers": "CHANGED", "lr": "CHANGED", "old": "REMOVED",
        "optimizer": "CHANGED", "seed": "SAME", "shuffle": "CHANGED"}
    assert params["epochs"]["a"] == {"type": "INT", "value": 3} and params["epochs"]["b"] == {"type": "INT", "value": 5}
    assert params["epochs"]["delta"] == 2 and params["seed"]["delta"] == 0
    assert abs(params["lr"]["delta"] - (0.001 - 0.01)) < 1e-12
    assert params["batch"]["a"] is None and params["batch"]["b"] == {"type": "INT", "value": 32}
    assert params["old"]["b"] is None and params["old"]["a"] == {"type": "STRING", "value": "x"}
    for key in ("optimizer", "shuffle", "layers", "batch", "old"):  # not two numbers: no delta
        assert params[key]["delta"] is None, key
    assert params["layers"]["b"]["value"] == [64, 32]

    metrics = {m["key"]: m for m in found["metrics"]}
    assert {k: m["change"] for k, m in metrics.items()} == {
        "accuracy": "CHANGED", "loss": "SAME", "only_a": "REMOVED", "only_b": "ADDED"}
    assert metrics["accuracy"]["a"] == {"value": 0.8, "step": 2}  # the latest value, not the first
    assert metrics["accuracy"]["b"] == {"value": 0.9, "step": 5}
    assert abs(metrics["accuracy"]["delta"] - 0.1) < 1e-12 and metrics["loss"]["delta"] == 0
    assert metrics["only_a"]["b"] is None and metrics["only_a"]["delta"] is None
    assert metrics["only_b"]["a"] is None and metrics["only_b"]["b"]["value"] == 2.0

    files = {f["path"]: f for f in found["artifacts"]}
    assert [f["path"] for f in found["artifacts"]] == sorted(files)
    assert {p: f["change"] for p, f in files.items()} == {
        "README.md": "SAME", "weights.bin": "CHANGED", "new.txt": "ADDED", "old.txt": "REMOVED"}
    onnx = files["weights.bin"]
    assert (onnx["a"]["digest"], onnx["b"]["digest"]) == (digest_of(b"weights one"), digest_of(b"weights two, larger"))
    assert onnx["sizeDelta"] == len(b"weights two, larger") - len(b"weights one")
    assert files["README.md"]["a"] == files["README.md"]["b"] and files["README.md"]["sizeDelta"] == 0
    assert files["new.txt"]["a"] is None and files["old.txt"]["b"] is None

    assert [(p["relation"], p["parent"]["ref"], p["side"]) for p in found["parents"]] == [
        ("FINE_TUNED_FROM", "base:1", "BOTH"),
        ("TRAINED_ON", "ds@v1", "A_ONLY"),
        ("TRAINED_ON", "ds@v2", "B_ONLY"),
        ("EVALUATED_ON", "ds@v1", "B_ONLY"),
    ]


async def test_any_two_refs_of_one_model_or_two(gql: GraphQLClient) -> None:
    await two_classifiers(gql)
    await gql.ok('mutation { setAlias(input: {model: "clf", alias: "production", version: "2"}) { name } }')
    digest = (await gql.ok('{ version(ref: "clf:1") { manifestDigest } }'))["version"]["manifestDigest"]
    found = (await gql.ok(COMPARE, {"a": f"clf@{digest}", "b": "clf@production"}))["compare"]
    assert (found["a"]["ref"], found["b"]["ref"]) == ("clf:1", "clf:2")
    across = (await gql.ok(COMPARE, {"a": "base:1", "b": "clf"}))["compare"]  # `clf`: the newest READY
    assert (across["a"]["ref"], across["b"]["ref"]) == ("base:1", "clf:2")
    assert {p["change"] for p in across["params"]} == {"ADDED"}
    assert [(p["relation"], p["side"]) for p in across["parents"]][:1] == [("FINE_TUNED_FROM", "B_ONLY")]
    itself = (await gql.ok(COMPARE, {"a": "clf:2", "b": "clf@production"}))["compare"]
    assert {e["change"] for kind in ("params", "metrics", "artifacts") for e in itself[kind]} == {"SAME"}
    assert {p["side"] for p in itself["parents"]} == {"BOTH"}


async def test_unknown_refs_are_not_found_and_malformed_ones_invalid(gql: GraphQLClient, sql_log: SqlLog) -> None:
    await two_classifiers(gql)
    for a, b, named in (("clf:1", "clf:9", "clf:9"), ("nope:1", "clf:1", "nope:1"),
                        ("clf:1", "clf@canary", "clf@canary")):
        error = await gql.error(COMPARE, {"a": a, "b": b})
        assert error["extensions"]["code"] == "NOT_FOUND", error
        assert named in error["message"], error
    for a, b, named in (("nope:1", "Bad Ref", "Bad Ref"), ("clf:0", "clf:1", "clf:0"), ("clf:1", "clf@", "clf@")):
        sql_log.reset()
        error = await gql.error(COMPARE, {"a": a, "b": b})
        assert error["extensions"]["code"] == "INVALID", error
        assert named in error["message"], error
        assert sql_log.catalog == [], sql_log.catalog  # refused before either ref was looked up


async def many_sided(gql: GraphQLClient, name: str, n: int) -> None:
    """`name:1` and `name:2`, each with `n` params, metrics (two points each), artifacts and
    dataset parents, half of them shared and half changed."""
    await model(gql, name)
    for i in range(n):
        await gql.ok(DATASET, {"n": f"{name}-data", "v": f"d{i}"})
    for v in range(1, 3):
        files = {f"w{i}.bin": f"{name} {i} {v if i % 2 else 0}".encode() for i in range(n)}
        await version(
            gql, name,
            params=[{"key": f"p{i}", "value": i * v} for i in range(n)],
            metrics=[{"key": f"m{i}", "value": i / v, "step": s} for i in range(n) for s in (1, 2)],
            artifacts=await artifacts(gql, files),
            lineage=[{"parent": f"{name}-data@d{i}", "relation": "TRAINED_ON" if v == 1 else "EVALUATED_ON"}
                     for i in range(n)],
        )


PAGE = """
query($a: String!, $b: String!) {
  compare(a: $a, b: $b) {
    a { ref params { key value } metrics { key value } artifacts { path } }
    b { ref model { name } }
    params { key change delta a { value } b { value } }
    metrics { key change delta a { value step loggedAt } b { value } }
    artifacts { path change a { digest size mediaType } b { digest } }
    parents { relation side parent { ... on ModelVersion { ref } ... on DatasetVersion { ref dataset { name } } } }
  }
}"""


async def test_statements_do_not_grow_with_params_metrics_artifacts_or_parents(
        gql: GraphQLClient, sql_log: SqlLog) -> None:
    await many_sided(gql, "few", 1)
    await many_sided(gql, "many", 30)
    counts = []
    for name, n in (("few", 1), ("many", 30)):
        sql_log.reset()
        found = (await gql.ok(PAGE, {"a": f"{name}:1", "b": f"{name}:2"}))["compare"]
        assert len(found["params"]) == len(found["metrics"]) == len(found["artifacts"]) == n
        assert len(found["parents"]) == 2 * n and len(found["a"]["params"]) == n
        counts.append(len(sql_log.catalog))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 12, sql_log.catalog


SETUP = [
    'mutation { createModel(input: {name: "other/x"}) { name } }',
    'mutation { createVersion(input: {model: "other/x"}) { ref } }',
    'mutation { registerDataset(input: {name: "other/secret-data", version: "v1"}) { ref } }',
    'mutation { createModel(input: {name: "team/base"}) { name } }',
    'mutation { createVersion(input: {model: "team/base"}) { ref } }',
    'mutation { createModel(input: {name: "team/m"}) { name } }',
    'mutation { createVersion(input: {model: "team/m", lineage: [{parent: "other/x:1", relation: FINE_TUNED_FROM}, '
    '{parent: "other/secret-data@v1", relation: TRAINED_ON}, {parent: "team/base:1", relation: DERIVED_FROM}]}) '
    '{ ref } }',
    'mutation { createVersion(input: {model: "team/m", lineage: [{parent: "team/base:1", relation: DERIVED_FROM}]}) '
    '{ ref } }',
]


@contextlib.asynccontextmanager
async def private(settings: Settings) -> AsyncIterator[tuple[GraphQLClient, GraphQLClient]]:
    """A private-read app with `team/` and `other/` models: the admin and a `team` reader."""
    application = create_app(dataclasses.replace(settings, public_read=False))
    async with LifespanManager(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as http:
            admin = GraphQLClient(http)
            for query in SETUP:
                await admin.ok(query)
            made = await admin.ok('mutation { createToken(input: {name: "team-reader", scope: READ, '
                                  'namespace: "team"}) { secret } }')
            yield admin, admin.as_token(made["createToken"]["secret"])


def sides(found: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["relation"], p["parent"]["ref"], p["side"]) for p in found["compare"]["parents"]]


async def test_private_reads_stay_in_the_namespace(settings: Settings, sql_log: SqlLog) -> None:
    async with private(settings) as (admin, reader):
        mine = await reader.ok(COMPARE, {"a": "team/m:1", "b": "team/m:2"})
        assert sides(mine) == [("DERIVED_FROM", "team/base:1", "BOTH")]  # the edges out of `team/` are hidden
        assert "other/" not in json.dumps(mine)
        assert sides(await admin.ok(COMPARE, {"a": "team/m:1", "b": "team/m:2"})) == [
            ("FINE_TUNED_FROM", "other/x:1", "A_ONLY"), ("DERIVED_FROM", "team/base:1", "BOTH"),
            ("TRAINED_ON", "other/secret-data@v1", "A_ONLY")]
        for a, b in (("team/m:1", "other/x:1"), ("other/x:1", "team/m:1"), ("other/nope:1", "team/m:1"),
                     ("team/m:1", "other/nope:1")):
            sql_log.reset()
            error = await reader.error(COMPARE, {"a": a, "b": b})
            assert error["extensions"]["code"] == "FORBIDDEN", error  # the same answer whether it exists or not
            assert sql_log.catalog == [], sql_log.catalog  # refused before any lookup
        anonymous = await reader.as_token(None).error(COMPARE, {"a": "team/m:1", "b": "team/m:2"})
        assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"
