"""createVersions (issue 14, item 4): many versions in one transaction, each as createVersion makes
it (numbers, lineage, audit, events), all or nothing, in far fewer statements."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from modelyard.catalog.audit import CHANNEL
from modelyard.catalog.manifest import manifest, manifest_digest
from modelyard.catalog.versions import ANALYZE_AFTER, MAX_BATCH
from tests.conftest import ADMIN_SECRET, GraphQLClient, SqlLog
from tests.helpers import model, replay, version
from tests.test_audit import snapshot

CREATE_VERSIONS = """
mutation($i: [CreateVersionInput!]!) { createVersions(input: $i) { id ref number status manifestDigest } }"""

VERSION = """
query($ref: String!) {
  version(ref: $ref) {
    status description manifestDigest createdBy
    model { name }
    params { key type value number }
    metrics { key value step }
    metricHistory(key: "loss") { value step }
    tags { key value }
    run { runId uri codeRepository commit startedAt endedAt }
    parents { relation parent { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
    artifacts { path digest size mediaType }
  }
}"""

EVENTS = """
query($f: AuditFilter) { auditLog(first: 100, filter: $f) { nodes { id kind actor model objectRef changes } } }"""


async def create_versions(gql: GraphQLClient, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = (await gql.ok(CREATE_VERSIONS, {"i": items}))["createVersions"]
    return result


def parent(ref: str, relation: str = "FINE_TUNED_FROM") -> dict[str, str]:
    return {"parent": ref, "relation": relation}


async def events_after(gql: GraphQLClient, after: int) -> list[dict[str, Any]]:
    """Audit events with an id above `after`, oldest first."""
    nodes: list[dict[str, Any]] = (await gql.ok(EVENTS, {"f": {"afterId": after}}))["auditLog"]["nodes"]
    return nodes[::-1]


async def newest_event(gql: GraphQLClient) -> int:
    nodes = (await gql.ok("{ auditLog(first: 1) { nodes { id } } }"))["auditLog"]["nodes"]
    return int(nodes[0]["id"]) if nodes else 0


async def test_a_batch_numbers_each_models_versions_in_input_order(gql: GraphQLClient) -> None:
    await model(gql, "a")
    await model(gql, "team/b")
    await version(gql, "a")
    created = await create_versions(gql, [{"model": m, "description": f"item {i}"}
                                          for i, m in enumerate(["a", "team/b", "a", "team/b", "a"], 1)])
    assert [v["ref"] for v in created] == ["a:2", "team/b:1", "a:3", "team/b:2", "a:4"]
    assert all(v["status"] == "READY" for v in created)
    assert len({v["id"] for v in created}) == 5
    described = await gql.ok('{ model(name: "a") { versions(first: 10) { nodes { number description } } } }')
    assert described["model"]["versions"]["nodes"] == [
        {"number": 4, "description": "item 5"}, {"number": 3, "description": "item 3"},
        {"number": 2, "description": "item 1"}, {"number": 1, "description": ""},
    ]
    assert (await version(gql, "a"))["number"] == 5  # a single create continues the numbering
    assert (await version(gql, "team/b"))["number"] == 3


async def test_a_batch_version_holds_exactly_what_create_version_stores(gql: GraphQLClient) -> None:
    data = b"weights" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    put = await gql.http.put(f"/api/blobs/{digest}", content=data, headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    assert put.status_code == 201, put.text
    await model(gql, "base")
    await version(gql, "base")
    await gql.ok('mutation { registerDataset(input: {name: "wiki", version: "2024-06"}) { ref } }')
    await model(gql, "chat")
    content = {
        "model": "chat",
        "description": "the same content twice",
        "params": [{"key": "lr", "value": 0.0003}, {"key": "epochs", "value": 3}, {"key": "opt", "value": "adamw"},
                   {"key": "bf16", "value": True}, {"key": "layers", "value": [1, 2]},
                   {"key": "warmup", "value": 100, "type": "FLOAT"}, {"key": "seed", "value": 9007199254740993}],
        "metrics": [{"key": "loss", "value": 2.0, "step": 1}, {"key": "loss", "value": 1.5, "step": 2},
                    {"key": "loss", "value": 1.7, "step": 1}, {"key": "accuracy", "value": 0.91}],
        "tags": [{"key": "team", "value": "nlp"}, {"key": "stage", "value": "dev"}],
        "run": {"runId": "r-1", "uri": "https://ci/1", "codeRepository": "git@x:y.git", "commit": "abc",
                "startedAt": "2026-01-01T10:00:00+00:00", "endedAt": "2026-01-01T12:00:00+00:00"},
        "lineage": [parent("base:1"), parent("wiki@2024-06", "TRAINED_ON")],
        "artifacts": [{"path": "model.safetensors", "digest": digest}, {"path": "README.md", "digest": digest}],
    }
    last = await newest_event(gql)
    single = await version(gql, "chat", **{k: v for k, v in content.items() if k != "model"})
    (batched,) = await create_versions(gql, [content])

    assert (single["ref"], batched["ref"]) == ("chat:1", "chat:2")
    assert batched["manifestDigest"] == single["manifestDigest"]  # same model, params and files
    one = (await gql.ok(VERSION, {"ref": "chat:1"}))["version"]
    two = (await gql.ok(VERSION, {"ref": "chat:2"}))["version"]
    assert two == one
    assert {(p["key"], p["type"]) for p in two["params"]} >= {("warmup", "FLOAT"), ("seed", "INT")}
    assert {m["key"]: m["step"] for m in two["metrics"]} == {"loss": 2, "accuracy": None}
    assert len(two["artifacts"]) == 2 and len(two["parents"]) == 2
    made = await events_after(gql, last)
    assert [e["objectRef"] for e in made] == ["chat:1", "chat:2"]
    assert made[1]["changes"] == made[0]["changes"] and made[1]["actor"] == made[0]["actor"]


async def test_a_later_item_may_name_an_earlier_one_as_its_parent(gql: GraphQLClient) -> None:
    await model(gql, "m")
    await model(gql, "n")
    await gql.ok('mutation { registerDataset(input: {name: "corpus", version: "v1"}) { ref } }')
    plain = manifest_digest(manifest("m", [], []))  # of every version of m without params or files
    created = await create_versions(gql, [
        {"model": "m"},
        {"model": "m", "lineage": [parent("m:1")]},
        {"model": "n", "lineage": [parent("m:2", "DISTILLED_FROM")]},
        {"model": "m", "lineage": [parent("m", "DERIVED_FROM"), parent("corpus@v1", "TRAINED_ON")]},  # latest: m:2
        {"model": "m", "lineage": [parent("m:3"), parent("n:1", "QUANTIZED_FROM")]},
        {"model": "n", "lineage": [parent(f"m@{plain}")]},  # the first version with that digest
    ])
    assert [v["ref"] for v in created] == ["m:1", "m:2", "n:1", "m:3", "m:4", "n:2"]
    assert created[0]["manifestDigest"] == plain

    async def parents(ref: str) -> set[tuple[str, str]]:
        v = (await gql.ok(VERSION, {"ref": ref}))["version"]
        return {(p["relation"], p["parent"]["ref"]) for p in v["parents"]}

    assert await parents("m:1") == set()
    assert await parents("m:2") == {("FINE_TUNED_FROM", "m:1")}
    assert await parents("n:1") == {("DISTILLED_FROM", "m:2")}
    assert await parents("m:3") == {("DERIVED_FROM", "m:2"), ("TRAINED_ON", "corpus@v1")}
    assert await parents("m:4") == {("FINE_TUNED_FROM", "m:3"), ("QUANTIZED_FROM", "n:1")}
    assert await parents("n:2") == {("FINE_TUNED_FROM", "m:1")}
    up = await gql.ok('{ version(ref: "m:4") { ancestors(depth: 5) { depth parent { ... on ModelVersion { ref } } } } }')
    walked = sorted((e["depth"], e["parent"]["ref"]) for e in up["version"]["ancestors"] if e["parent"])
    assert walked == [(1, "m:3"), (1, "n:1"), (2, "m:2"), (2, "m:2"), (3, "m:1")]  # m:2 by both paths


async def test_one_event_per_version_in_input_order(gql: GraphQLClient) -> None:
    await model(gql, "vision/a")
    await model(gql, "b")
    last = await newest_event(gql)
    await create_versions(gql, [
        {"model": "b", "params": [{"key": "lr", "value": 0.1}]},
        {"model": "vision/a", "lineage": [parent("b:1")]},
        {"model": "b"},
    ])
    made = await events_after(gql, last)
    assert [(e["kind"], e["objectRef"], e["model"], e["actor"]) for e in made] == [
        ("VERSION_CREATED", "b:1", "b", "admin-env"),
        ("VERSION_CREATED", "vision/a:1", "vision/a", "admin-env"),
        ("VERSION_CREATED", "b:2", "b", "admin-env"),
    ]
    ids = [int(e["id"]) for e in made]
    assert ids == sorted(ids)
    assert made[0]["changes"]["params"] == {"before": None, "after": {"lr": 0.1}}
    assert made[1]["changes"]["lineage"] == {"before": None, "after": ["FINE_TUNED_FROM b:1"]}


async def test_a_subscriber_receives_every_version_of_a_batch_in_order(live_server: str) -> None:
    name = f"live-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=live_server) as http:
        gql = GraphQLClient(http)
        await model(gql, name)
        since = await newest_event(gql)
        await create_versions(gql, [{"model": name} for _ in range(3)])
    query = f'subscription {{ events(model: "{name}", since: {since}) {{ id kind objectRef }} }}'
    received = await replay(live_server, ADMIN_SECRET, query, quiet=1.0)
    events = [p["data"]["events"] for p in received]
    assert [(e["kind"], e["objectRef"]) for e in events] == [("VERSION_CREATED", f"{name}:{n}") for n in (1, 2, 3)]
    assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)


async def test_postgres_replicas_are_woken_once_with_the_newest_event(gql: GraphQLClient, db_url: str) -> None:
    if not db_url.startswith("postgres"):
        pytest.skip("NOTIFY is PostgreSQL's; on SQLite subscribers poll")
    await model(gql, "m")
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(db_url)
    try:
        await conn.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        await create_versions(gql, [{"model": "m"} for _ in range(4)])
        payload = await asyncio.wait_for(heard.get(), 10)
        await asyncio.sleep(0.2)
        assert heard.empty()  # one wake-up for the batch
    finally:
        await conn.close()
    assert int(payload) == await newest_event(gql)


# --- a bad item: its code, a message naming it, and nothing of the batch ------------------------

BAD_ITEMS: dict[str, tuple[list[dict[str, Any]], str, int, str]] = {
    # case: items (model "m" holds m:1 already), code, the item named, what the message says
    "bad param": ([{"model": "m"}, {"model": "m", "params": [{"key": "bad key", "value": 1}]}],
                  "INVALID", 2, "invalid param key"),
    "repeated tag": ([{"model": "m"}, {"model": "m"}, {"model": "m", "tags": [{"key": "t", "value": "1"},
                                                                             {"key": "t", "value": "2"}]}],
                     "INVALID", 3, "tag 't' is given twice"),
    "unknown parent": ([{"model": "m"}, {"model": "m"}, {"model": "m", "lineage": [parent("m:99")]}],
                       "NOT_FOUND", 3, "no version m:99 exists"),
    "unknown model": ([{"model": "m"}, {"model": "nope"}], "NOT_FOUND", 2, "model 'nope' does not exist"),
    "bad model name": ([{"model": "m"}, {"model": "Bad Name"}], "INVALID", 2, "invalid model name"),
    # A parent must exist before its child, so a batch cannot close a cycle: naming itself or a
    # later item is naming a version that does not exist yet.
    "itself as parent": ([{"model": "m"}, {"model": "m", "lineage": [parent("m:3")]}],
                         "NOT_FOUND", 2, "no version m:3 exists"),
    "a later item as parent": ([{"model": "m", "lineage": [parent("m:3")]}, {"model": "m"}],
                               "NOT_FOUND", 1, "no version m:3 exists"),
    "repeated parent": ([{"model": "m"}, {"model": "m", "lineage": [parent("m:2"), parent("m:2")]}],
                        "INVALID", 2, "is given twice"),
    "empty": ([], "INVALID", 0, "at least one version"),
    "too many": ([{"model": "m"}] * (MAX_BATCH + 1), "LIMIT", 0, f"at most {MAX_BATCH} versions"),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
async def test_a_bad_item_fails_the_whole_batch_and_says_which(gql: GraphQLClient, sql_log: SqlLog,
                                                                case: str) -> None:
    items, code, index, says = BAD_ITEMS[case]
    await model(gql, "m")
    await version(gql, "m")
    before = await snapshot()
    sql_log.reset()

    error = await gql.error(CREATE_VERSIONS, {"i": items})

    assert error["extensions"]["code"] == code, error
    prefix = f"createVersions item {index}: " if index else ""
    assert error["message"].startswith(prefix) and says in error["message"], error["message"]
    if not index:  # the batch as a whole is refused before any work
        assert sql_log.catalog == []
    assert await snapshot() == before
    assert (await version(gql, "m"))["number"] == 2  # no number was used up


async def test_a_namespaced_writer_may_not_slip_a_model_outside_into_a_batch(gql: GraphQLClient) -> None:
    await model(gql, "vision/a")
    await model(gql, "other")
    token = (await gql.ok('mutation { createToken(input: {name: "vw", scope: WRITE, namespace: "vision"}) { secret } }'))
    writer = gql.as_token(token["createToken"]["secret"])
    before = await snapshot()
    error = await writer.error(CREATE_VERSIONS, {"i": [{"model": "vision/a"}, {"model": "other"}]})
    assert error["extensions"]["code"] == "FORBIDDEN" and "'other'" in error["message"]
    empty = await gql.as_token(None).error(CREATE_VERSIONS, {"i": []})
    assert empty["extensions"]["code"] == "UNAUTHENTICATED"
    assert await snapshot() == before
    assert [v["ref"] for v in await create_versions(writer, [{"model": "vision/a"}] * 2)] == ["vision/a:1", "vision/a:2"]


# --- statements: per-batch work is done once ----------------------------------------------------

def rich(model_name: str, parents: list[dict[str, str]], i: int) -> dict[str, Any]:
    """A version with 30 params, 10 metrics, 2 tags and `parents`."""
    return {
        "model": model_name,
        "params": [{"key": f"p{k}", "value": k * i} for k in range(30)],
        "metrics": [{"key": f"m{k}", "value": k / 10} for k in range(10)],
        "tags": [{"key": "stage", "value": "dev"}, {"key": "i", "value": str(i)}],
        "lineage": parents,
    }


async def test_fifty_versions_in_a_batch_cost_one_statement_more_than_one(
    gql: GraphQLClient, sql_log: SqlLog
) -> None:
    await model(gql, "base")
    await version(gql, "base")
    for name in ("single", "flat", "chain"):
        await model(gql, name)
    sql_log.reset()
    await version(gql, "single", **{k: v for k, v in rich("single", [parent("base:1")], 0).items() if k != "model"})
    one = len(sql_log.catalog)
    sql_log.reset()
    await create_versions(gql, [rich("flat", [parent("base:1")], i) for i in range(50)])
    flat = len(sql_log.catalog)
    sql_log.reset()
    chained = [rich("chain", [parent("base:1")] + ([parent(f"chain:{i}")] if i else []), i) for i in range(50)]
    await create_versions(gql, chained)
    chain = len(sql_log.catalog)

    # One createVersion: the model, its number, the parent, the version, params, tags, metric
    # points, metrics, the edge and the event (PostgreSQL adds its two locks and NOTIFY).
    assert one <= 13, sql_log.catalog
    # Fifty versions, unrelated or each naming the one before by number: the same statements,
    # plus one to read back the versions' ids.
    assert flat <= one + 1, sql_log.catalog
    assert chain <= one + 1, sql_log.catalog
    assert (await gql.ok(VERSION, {"ref": "chain:50"}))["version"]["parents"][1]["parent"] == {
        "__typename": "ModelVersion", "ref": "chain:49"}


async def test_a_large_batch_refreshes_postgres_statistics_and_a_small_one_does_not(
    gql: GraphQLClient, sql_log: SqlLog, db_url: str
) -> None:
    await model(gql, "bulk")
    sql_log.reset()
    await create_versions(gql, [{"model": "bulk"} for _ in range(ANALYZE_AFTER - 1)])
    assert not [s for s in sql_log.catalog if s.startswith("ANALYZE")]
    largest = await create_versions(gql, [{"model": "bulk", "params": [{"key": "i", "value": i}]}
                                          for i in range(MAX_BATCH)])
    assert [v["number"] for v in largest] == list(range(ANALYZE_AFTER, ANALYZE_AFTER + MAX_BATCH))
    analyzed = [s for s in sql_log.catalog if s.startswith("ANALYZE")]
    if not db_url.startswith("postgres"):
        assert analyzed == []  # SQLite's planner keeps no statistics to refresh
        return
    assert len(analyzed) == 1 and '"model_version"' in analyzed[0] and '"param"' in analyzed[0]
    conn = await asyncpg.connect(db_url)
    try:
        counted = await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'model_version'")
    finally:
        await conn.close()
    assert counted == ANALYZE_AFTER - 1 + MAX_BATCH
