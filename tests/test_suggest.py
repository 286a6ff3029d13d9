"""`suggestModels(name)`: the model names closest to what someone typed, for a "not found" page,
among the models the caller may read, in a constant number of SQL statements."""

from __future__ import annotations

import dataclasses
import json

import httpx
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.config import Settings
from tests.conftest import GraphQLClient, SqlLog
from tests.helpers import model

SUGGEST = "query($n: String!, $f: Int) { suggestModels(name: $n, first: $f) { name } }"
NAMES = ["demo/iris-classifier", "demo/wine-classifier", "demo/digits-mlp", "demo/digits-student",
         "demo/tiny-chat", "vision/resnet50", "iris"]


async def suggested(gql: GraphQLClient, name: str, first: int | None = None) -> list[str]:
    found = await gql.ok(SUGGEST, {"n": name, "f": first} if first is not None else {"n": name})
    return [m["name"] for m in found["suggestModels"]]


async def test_the_closest_names_come_first(gql: GraphQLClient) -> None:
    for name in NAMES:
        await model(gql, name)
    assert (await suggested(gql, "iris-clasifier"))[0] == "demo/iris-classifier"
    assert (await suggested(gql, "demo/wine-clasifer"))[0] == "demo/wine-classifier"
    assert (await suggested(gql, "Resnet-50"))[0] == "vision/resnet50"  # case and punctuation are forgiven
    assert (await suggested(gql, "demo/iris-classifer:7"))[0] == "demo/iris-classifier"  # a ref: its model
    assert (await suggested(gql, "  demo/iris-classifier@production "))[0] == "demo/iris-classifier"
    assert set(await suggested(gql, "digits", first=2)) == {"demo/digits-mlp", "demo/digits-student"}
    assert len(await suggested(gql, "classifier")) == 2
    assert len(await suggested(gql, "demo", first=20)) == 5
    assert len(await suggested(gql, "demo", first=3)) == 3
    assert await suggested(gql, "quantum-teleporter") == []
    assert await suggested(gql, "") == [] and await suggested(gql, "iris", first=0) == []
    page = await gql.ok('{ suggestModels(name: "tiny chat") { name task latestVersion { ref } } }')
    assert page["suggestModels"] == [{"name": "demo/tiny-chat", "task": "OTHER", "latestVersion": None}]


async def test_bad_input_is_refused_with_a_code(gql: GraphQLClient) -> None:
    await model(gql, "iris")
    assert await suggested(gql, "x" * 200) == []
    for name, first, code in (("x" * 201, 5, "LIMIT"), ("iris\x00", 5, "INVALID"), ("iris", -1, "INVALID"),
                              ("iris", 21, "LIMIT")):
        error = await gql.error(SUGGEST, {"n": name, "f": first})
        assert error["extensions"]["code"] == code, (name, first, error)
    # json.dumps writes a lone surrogate as the escape `\ud800`, as a client in another language would.
    body = json.dumps({"query": SUGGEST, "variables": {"n": "iris\ud800"}})
    answer = await gql.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID" and "surrogate" in error["message"], error


async def test_private_reads_suggest_only_inside_the_namespace(settings: Settings) -> None:
    application = create_app(dataclasses.replace(settings, public_read=False))
    async with LifespanManager(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as http:
            admin = GraphQLClient(http)
            for name in ("other/secret-model", "other/x", "team/secret-model-2", "team/m"):
                await model(admin, name)
            made = await admin.ok('mutation { createToken(input: {name: "team-reader", scope: READ, '
                                  'namespace: "team"}) { secret } }')
            reader = admin.as_token(made["createToken"]["secret"])
            assert await suggested(admin, "other/secret-model") == ["other/secret-model", "team/secret-model-2"]
            assert await suggested(reader, "other/secret-model") == ["team/secret-model-2"]
            assert await suggested(reader, "secret-model") == ["team/secret-model-2"]
            anonymous = await reader.as_token(None).error(SUGGEST, {"n": "m"})
            assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"


async def test_statements_do_not_grow_with_the_catalog(gql: GraphQLClient, sql_log: SqlLog) -> None:
    query = '{ suggestModels(name: "model-3", first: 20) { name tags { key } latestVersion { ref } } }'
    counts = []
    for total in (5, 60):
        for i in range(len(counts) * 5, total):
            await model(gql, f"model-{i}")
        sql_log.reset()
        assert (await gql.ok(query))["suggestModels"][0]["name"] == "model-3"
        counts.append(len(sql_log.catalog))
    assert counts[0] == counts[1] <= 3, sql_log.catalog


async def test_the_cost_limit_counts_every_suggested_model(gql: GraphQLClient, sql_log: SqlLog) -> None:
    sql_log.reset()
    error = await gql.error('{ suggestModels(name: "m", first: 20) { versions(first: 100) '
                            '{ nodes { params { key } metrics { key } tags { key } } } } }')
    assert error["extensions"]["code"] == "LIMIT" and "objects" in error["message"], error
    assert sql_log.catalog == []
    await gql.ok('{ suggestModels(name: "m", first: 2) { versions(first: 100) '
                 '{ nodes { params { key } metrics { key } tags { key } } } } }')
