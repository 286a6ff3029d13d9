"""Audit history: every mutation leaves one immutable event saying who changed what, and how.

This module also holds the seeded catalog and one working call of every mutation of the schema,
which test_access.py runs as every kind of principal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import graphql
import pytest
from tortoise import Tortoise, connections

from modelyard.graphql.schema import build_schema
from tests.conftest import GraphQLClient

INSIDE = "vision/resnet"  # a model inside the namespace `vision`
OUTSIDE = "other"  # a model in no namespace


def schema_mutations() -> list[str]:
    """Every mutation field of the schema as served, so a new one cannot slip past these tests."""
    mutation_type = graphql.build_schema(build_schema().as_str()).mutation_type
    assert mutation_type is not None
    return sorted(mutation_type.fields)


MUTATIONS = schema_mutations()


# --- the catalog every case starts from ------------------------------------------------------

SEED_MODEL = """
mutation($m: String!, $d: String!, $dv: String!, $v1: String!, $v4: String!) {
  createModel(input: {name: $m, description: "card v0"}) { name }
  registerDataset(input: {name: $d, version: "2024-01"}) { ref }
  v1: createVersion(input: {model: $m, params: [{key: "lr", value: 0.1}],
      metrics: [{key: "accuracy", value: 0.8}], tags: [{key: "stage", value: "dev"}],
      lineage: [{parent: $dv, relation: TRAINED_ON}]}) { ref }
  v2: createVersion(input: {model: $m, lineage: [{parent: $v1, relation: FINE_TUNED_FROM}]}) { ref }
  v3: createVersion(input: {model: $m}) { ref }
  v4: createVersion(input: {model: $m}) { ref }
  archiveVersion(ref: $v4) { ref }
  setAlias(input: {model: $m, alias: "production", version: "1"}) { name }
}"""




@dataclass(frozen=True)
class Principal:
    """Who calls: a token's name, scope and namespace (no token: anonymous)."""

    token: str | None
    scope: str = ""
    namespace: str | None = None


PRINCIPALS = {
    "anonymous": Principal(None),
    "read": Principal("reader", "READ"),
    "write": Principal("writer", "WRITE"),
    "admin": Principal("root", "ADMIN"),
    "vision-write": Principal("vision-writer", "WRITE", "vision"),
    "vision-admin": Principal("vision-admin", "ADMIN", "vision"),
    "vision-read": Principal("vision-reader", "READ", "vision"),
}


async def seed(gql: GraphQLClient) -> dict[str, str]:
    """Two models (one namespaced) with versions, lineage, an alias, datasets; tokens for everyone.

    Returns each token's secret by token name (`<model>-spare` are read tokens there to be revoked).
    """
    for m in (INSIDE, OUTSIDE):
        await gql.ok(SEED_MODEL, {"m": m, "d": f"{m}-data", "dv": f"{m}-data@2024-01",
                                  "v1": f"{m}:1", "v4": f"{m}:4"})
    spares = [Principal(f"{slug(m)}-spare", "READ") for m in (INSIDE, OUTSIDE)]
    tokens = [p for p in [*PRINCIPALS.values(), *spares] if p.token is not None]
    args = ", ".join(f"$t{i}: CreateTokenInput!" for i in range(len(tokens)))
    fields = " ".join(f"t{i}: createToken(input: $t{i}) {{ secret }}" for i in range(len(tokens)))
    data = await gql.ok(f"mutation({args}) {{ {fields} }}", {
        f"t{i}": {"name": p.token, "scope": p.scope, "namespace": p.namespace} for i, p in enumerate(tokens)
    })
    return {str(p.token): data[f"t{i}"]["secret"] for i, p in enumerate(tokens)}


async def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every catalog table (audit log and tokens included), in key order."""
    db = connections.get("default")
    out = {}
    for table in Tortoise.apps["modelyard"].values():
        meta = table._meta
        out[meta.db_table] = await db.execute_query_dict(
            f"SELECT * FROM {meta.db_table} ORDER BY {meta.db_pk_column}"
        )
    for row in out["token"]:  # when a valid token was last presented is not catalog state
        row.pop("last_used_at")
    return out


def newest_event_id(state: dict[str, list[dict[str, Any]]]) -> int:
    return max((e["id"] for e in state["audit_event"]), default=0)


# --- one successful call of every mutation, with the audit event it must leave ---------------


@dataclass(frozen=True)
class Call:
    """A mutation that succeeds for an admin on the seeded catalog, and what its event records."""

    document: str
    variables: dict[str, Any]
    kind: str
    object_type: str
    object_ref: str
    model: str | None
    changes: dict[str, Any]


class IsoTime:
    """Equal to any ISO-8601 timestamp string."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(datetime.fromisoformat(other))

    def __repr__(self) -> str:
        return "<an ISO timestamp>"


def slug(model: str) -> str:
    return model.replace("/", "-")


def namespace_of(model: str) -> str | None:
    return model.split("/", 1)[0] if "/" in model else None


def was(before: Any, after: Any) -> dict[str, Any]:
    return {"before": before, "after": after}


CASES: dict[str, Callable[[str], Call]] = {
    "createModel": lambda m: Call(
        "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }",
        {"i": {"name": f"{m}-new", "description": "card", "tags": [{"key": "team", "value": "cv"}]}},
        "MODEL_CREATED", "Model", f"{m}-new", f"{m}-new",
        {"description": was(None, "card"), "task": was(None, "other"), "tags": was(None, {"team": "cv"})},
    ),
    "updateModel": lambda m: Call(
        "mutation($i: UpdateModelInput!) { updateModel(input: $i) { name } }",
        {"i": {"name": m, "description": "card v1", "task": "IMAGE_CLASSIFICATION"}},
        "MODEL_UPDATED", "Model", m, m,
        {"description": was("card v0", "card v1"), "task": was("other", "image-classification")},
    ),
    "deleteModel": lambda m: Call(
        "mutation($n: String!) { deleteModel(name: $n) { name } }",
        {"n": m},
        "MODEL_DELETED", "Model", m, m, {"versions": was(4, 0)},
    ),
    "createVersion": lambda m: Call(
        "mutation($i: CreateVersionInput!) { createVersion(input: $i) { ref } }",
        {"i": {"model": m, "params": [{"key": "lr", "value": 0.01}],
               "lineage": [{"parent": f"{m}:1", "relation": "DISTILLED_FROM"}]}},
        "VERSION_CREATED", "ModelVersion", f"{m}:5", m,
        {"status": was(None, "READY"), "params": was(None, {"lr": 0.01}),
         "lineage": was(None, [f"DISTILLED_FROM {m}:1"])},
    ),
    "createVersions": lambda m: Call(
        "mutation($i: [CreateVersionInput!]!) { createVersions(input: $i) { ref } }",
        {"i": [{"model": m, "params": [{"key": "lr", "value": 0.02}],
                "lineage": [{"parent": f"{m}:2", "relation": "QUANTIZED_FROM"}]}]},
        "VERSION_CREATED", "ModelVersion", f"{m}:5", m,
        {"status": was(None, "READY"), "params": was(None, {"lr": 0.02}),
         "lineage": was(None, [f"QUANTIZED_FROM {m}:2"])},
    ),
    "updateVersion": lambda m: Call(
        "mutation($i: UpdateVersionInput!) { updateVersion(input: $i) { ref } }",
        {"i": {"ref": f"{m}:1", "description": "better", "tags": [{"key": "stage", "value": "prod"}]}},
        "VERSION_UPDATED", "ModelVersion", f"{m}:1", m,
        {"description": was("", "better"), "tags": was({"stage": "dev"}, {"stage": "prod"})},
    ),
    "archiveVersion": lambda m: Call(
        "mutation($r: String!) { archiveVersion(ref: $r) { ref } }",
        {"r": f"{m}:3"},
        "VERSION_STATUS_CHANGED", "ModelVersion", f"{m}:3", m, {"status": was("READY", "ARCHIVED")},
    ),
    "restoreVersion": lambda m: Call(
        "mutation($r: String!) { restoreVersion(ref: $r) { ref } }",
        {"r": f"{m}:4"},
        "VERSION_STATUS_CHANGED", "ModelVersion", f"{m}:4", m, {"status": was("ARCHIVED", "READY")},
    ),
    "logMetrics": lambda m: Call(
        "mutation($i: LogMetricsInput!) { logMetrics(input: $i) { ref } }",
        {"i": {"ref": f"{m}:1", "metrics": [{"key": "accuracy", "value": 0.9, "step": 2}]}},
        "METRICS_LOGGED", "ModelVersion", f"{m}:1", m,
        {"metrics": was(None, [{"key": "accuracy", "value": 0.9, "step": 2}])},
    ),
    "setAlias": lambda m: Call(
        "mutation($i: SetAliasInput!) { setAlias(input: $i) { name } }",
        {"i": {"model": m, "alias": "production", "version": "2"}},
        "ALIAS_SET", "Alias", f"{m}@production", m, {"version": was(1, 2)},
    ),
    "deleteAlias": lambda m: Call(
        "mutation($i: DeleteAliasInput!) { deleteAlias(input: $i) { name } }",
        {"i": {"model": m, "alias": "production"}},
        "ALIAS_DELETED", "Alias", f"{m}@production", m, {"version": was(1, None)},
    ),
    # The parent is named through an alias: the log must say which version that was then.
    "addLineage": lambda m: Call(
        "mutation($i: AddLineageInput!) { addLineage(input: $i) { ref } }",
        {"i": {"ref": f"{m}:3", "parent": f"{m}@production", "relation": "DERIVED_FROM"}},
        "LINEAGE_ADDED", "ModelVersion", f"{m}:3", m, {"lineage": was(None, f"DERIVED_FROM {m}:1")},
    ),
    "removeLineage": lambda m: Call(
        "mutation($i: AddLineageInput!) { removeLineage(input: $i) { ref } }",
        {"i": {"ref": f"{m}:2", "parent": f"{m}:1", "relation": "FINE_TUNED_FROM"}},
        "LINEAGE_REMOVED", "ModelVersion", f"{m}:2", m, {"lineage": was(f"FINE_TUNED_FROM {m}:1", None)},
    ),
    "registerDataset": lambda m: Call(
        "mutation($i: RegisterDatasetInput!) { registerDataset(input: $i) { ref } }",
        {"i": {"name": f"{m}-data", "version": "2024-06", "uri": "s3://data/x", "size": 10}},
        "DATASET_REGISTERED", "DatasetVersion", f"{m}-data@2024-06", None,
        {"uri": was(None, "s3://data/x"), "size": was(None, 10)},
    ),
    "createToken": lambda m: Call(
        "mutation($i: CreateTokenInput!) { createToken(input: $i) { secret } }",
        {"i": {"name": f"{slug(m)}-token", "scope": "READ", "namespace": namespace_of(m)}},
        "TOKEN_CREATED", "Token", f"{slug(m)}-token", None,
        {"scope": was(None, "read"), "namespace": was(None, namespace_of(m))},
    ),
    "revokeToken": lambda m: Call(
        "mutation($n: String!) { revokeToken(name: $n) { name } }",
        {"n": f"{slug(m)}-spare"},
        "TOKEN_REVOKED", "Token", f"{slug(m)}-spare", None, {"revokedAt": was(None, IsoTime())},
    ),
}


def test_every_mutation_of_the_schema_has_a_case() -> None:
    assert sorted(CASES) == MUTATIONS



# --- every mutation leaves its event ------------------------------------------------------------

EVENTS = """query($f: AuditFilter, $first: Int, $after: String) {
  auditLog(filter: $f, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id kind at actor model objectType objectRef changes }
  }
}"""


async def events(gql: GraphQLClient, **filter: Any) -> list[dict[str, Any]]:
    """Audit events matching `filter`, newest first (one page of 100)."""
    return (await gql.ok(EVENTS, {"f": filter, "first": 100}))["auditLog"]["nodes"]


@pytest.mark.parametrize("mutation", MUTATIONS)
async def test_every_mutation_records_who_changed_what(gql: GraphQLClient, mutation: str) -> None:
    if mutation not in CASES:
        pytest.fail(f"mutation {mutation} has no case in CASES: add one")
    await seed(gql)
    last = (await events(gql))[0]["id"]
    call = CASES[mutation](INSIDE)

    await gql.ok(call.document, call.variables)

    new = await events(gql, afterId=last)
    assert new, f"{mutation} wrote no audit event"
    assert {e["actor"] for e in new} == {"admin-env"}
    assert [{k: e[k] for k in ("kind", "objectType", "objectRef", "model")} for e in new] == [{
        "kind": call.kind, "objectType": call.object_type, "objectRef": call.object_ref, "model": call.model,
    }]
    changes = new[0]["changes"]
    assert {key: changes.get(key) for key in call.changes} == call.changes  # fields added later may join
    assert all(set(change) == {"before", "after"} for change in changes.values()), changes


# --- a failing mutation leaves nothing, its event included --------------------------------------


@dataclass(frozen=True)
class Failure:
    """A call of a mutation that the catalog refuses after it has started to look (or write)."""

    document: str
    variables: dict[str, Any]
    code: str
    setup: str = ""  # run first, as admin


FAILURES: dict[str, Callable[[str], Failure]] = {
    "createModel": lambda m: Failure(CASES["createModel"](m).document, {"i": {"name": m}}, "CONFLICT"),
    "updateModel": lambda m: Failure(
        CASES["updateModel"](m).document,
        {"i": {"name": m, "description": "lost", "tags": [{"key": "bad key", "value": "v"}]}}, "INVALID",
    ),
    "deleteModel": lambda m: Failure(
        CASES["deleteModel"](m).document, {"n": m}, "CONFLICT",
        setup=f'mutation {{ createVersion(input: {{model: "other", lineage: [{{parent: "{m}:1", '
        'relation: DISTILLED_FROM}]}) { ref } }',
    ),
    "createVersion": lambda m: Failure(
        CASES["createVersion"](m).document,
        {"i": {"model": m, "params": [{"key": "lr", "value": 1}],
               "lineage": [{"parent": f"{m}:1", "relation": "DISTILLED_FROM"},
                           {"parent": f"{m}:99", "relation": "DERIVED_FROM"}]}}, "NOT_FOUND",
    ),
    "createVersions": lambda m: Failure(
        CASES["createVersions"](m).document,
        {"i": [{"model": m, "params": [{"key": "lr", "value": 1}]},
               {"model": m, "lineage": [{"parent": f"{m}:5", "relation": "DERIVED_FROM"},
                                        {"parent": f"{m}:99", "relation": "DERIVED_FROM"}]}]}, "NOT_FOUND",
    ),
    "updateVersion": lambda m: Failure(
        CASES["updateVersion"](m).document, {"i": {"ref": f"{m}:99", "description": "lost"}}, "NOT_FOUND",
    ),
    "archiveVersion": lambda m: Failure(CASES["archiveVersion"](m).document, {"r": f"{m}@production"}, "CONFLICT"),
    "restoreVersion": lambda m: Failure(CASES["restoreVersion"](m).document, {"r": f"{m}:1"}, "CONFLICT"),
    "logMetrics": lambda m: Failure(
        CASES["logMetrics"](m).document,
        {"i": {"ref": f"{m}:99", "metrics": [{"key": "accuracy", "value": 0.1}]}}, "NOT_FOUND",
    ),
    "setAlias": lambda m: Failure(
        CASES["setAlias"](m).document, {"i": {"model": m, "alias": "production", "version": "4"}}, "CONFLICT",
    ),
    "deleteAlias": lambda m: Failure(
        CASES["deleteAlias"](m).document, {"i": {"model": m, "alias": "staging"}}, "NOT_FOUND",
    ),
    "addLineage": lambda m: Failure(
        CASES["addLineage"](m).document,
        {"i": {"ref": f"{m}:1", "parent": f"{m}:2", "relation": "DERIVED_FROM"}}, "CONFLICT",
    ),
    "removeLineage": lambda m: Failure(
        CASES["removeLineage"](m).document,
        {"i": {"ref": f"{m}:3", "parent": f"{m}:1", "relation": "FINE_TUNED_FROM"}}, "NOT_FOUND",
    ),
    "registerDataset": lambda m: Failure(
        CASES["registerDataset"](m).document, {"i": {"name": f"{m}-data", "version": "2024-01"}}, "CONFLICT",
    ),
    "createToken": lambda m: Failure(
        CASES["createToken"](m).document, {"i": {"name": "reader", "scope": "ADMIN"}}, "CONFLICT",
    ),
    "revokeToken": lambda m: Failure(
        CASES["revokeToken"](m).document, {"n": "other-spare"}, "CONFLICT",
        setup='mutation { revokeToken(name: "other-spare") { name } }',
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
async def test_a_failing_mutation_records_nothing(gql: GraphQLClient, mutation: str) -> None:
    if mutation not in FAILURES:
        pytest.fail(f"mutation {mutation} has no case in FAILURES: add one")
    await seed(gql)
    failure = FAILURES[mutation](INSIDE)
    if failure.setup:
        await gql.ok(failure.setup)
    before = await snapshot()

    error = await gql.error(failure.document, failure.variables)

    assert error["extensions"]["code"] == failure.code, error
    assert await snapshot() == before


# --- reading the log ----------------------------------------------------------------------------


async def test_audit_log_filters_by_model_kind_and_actor(gql: GraphQLClient) -> None:
    secrets = await seed(gql)
    writer = gql.as_token(secrets["writer"])
    await writer.ok(*_call("setAlias", OUTSIDE))
    await writer.ok(*_call("logMetrics", OUTSIDE))
    await gql.as_token(secrets["vision-writer"]).ok(*_call("updateModel", INSIDE))

    seeded = [("MODEL_CREATED", "other"), *[("VERSION_CREATED", f"other:{n}") for n in (1, 2, 3, 4)],
              ("VERSION_STATUS_CHANGED", "other:4"), ("ALIAS_SET", "other@production")]
    by_writer = [("ALIAS_SET", "other@production"), ("METRICS_LOGGED", "other:1")]
    assert _kinds(await events(gql, model="other")) == [*reversed(seeded + by_writer)]
    assert _kinds(await events(gql, actor="writer")) == [*reversed(by_writer)]
    assert _kinds(await events(gql, kinds=["ALIAS_SET"])) == [
        ("ALIAS_SET", "other@production"), ("ALIAS_SET", "other@production"), ("ALIAS_SET", "vision/resnet@production"),
    ]
    assert _kinds(await events(gql, model="other", kinds=["ALIAS_SET", "MODEL_CREATED"], actor="admin-env")) == [
        ("ALIAS_SET", "other@production"), ("MODEL_CREATED", "other"),
    ]
    assert _kinds(await events(gql, model=INSIDE, actor="vision-writer")) == [("MODEL_UPDATED", INSIDE)]
    assert await events(gql, model="missing") == []
    moved = (await events(gql, actor="writer", kinds=["ALIAS_SET"]))[0]
    assert moved["changes"] == {"version": {"before": 1, "after": 2}} and moved["model"] == "other"


async def test_audit_log_pages_newest_first(gql: GraphQLClient) -> None:
    await seed(gql)
    everything = await events(gql, model="other")
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.ok(EVENTS, {"f": {"model": "other"}, "first": 3, "after": after}))["auditLog"]
        assert page["totalCount"] == len(everything) == 7
        seen += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == everything
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    times = [datetime.fromisoformat(e["at"]) for e in seen]
    assert times == sorted(times, reverse=True)


async def test_token_events_are_shown_to_admins_only(gql: GraphQLClient) -> None:
    secrets = await seed(gql)
    await gql.ok(*_call("revokeToken", OUTSIDE))
    token_kinds = ["TOKEN_CREATED", "TOKEN_REVOKED"]

    as_admin = await events(gql.as_token(secrets["root"]), kinds=token_kinds)
    created = {e["objectRef"] for e in as_admin if e["kind"] == "TOKEN_CREATED"}
    assert created == {"admin-env", "other-spare", "vision-resnet-spare",
                       *(p.token for p in PRINCIPALS.values() if p.token)}
    assert [e["objectRef"] for e in as_admin if e["kind"] == "TOKEN_REVOKED"] == ["other-spare"]

    for name in (None, "reader", "writer", "vision-admin"):
        reader = gql.as_token(secrets[name] if name else None)
        page = (await reader.ok(EVENTS, {"f": {"kinds": token_kinds}}))["auditLog"]
        assert page["nodes"] == [] and page["totalCount"] == 0, name
        everything = (await reader.ok(EVENTS, {"first": 100}))["auditLog"]
        assert not [e for e in everything["nodes"] if e["kind"] in token_kinds], name
        assert everything["totalCount"] == 16, name  # the catalog's own events, all of them


def _call(mutation: str, model: str) -> tuple[str, dict[str, Any]]:
    call = CASES[mutation](model)
    return call.document, call.variables


def _kinds(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["objectRef"]) for e in found]


async def test_a_time_without_offset_is_read_as_utc_and_a_bad_time_is_refused(gql: GraphQLClient) -> None:
    await seed(gql)
    everything = await events(gql, model="other")
    newest = datetime.fromisoformat(everything[0]["at"])
    naive_after = (newest + timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert await events(gql, model="other", since=naive_after) == []
    assert await events(gql, model="other", until=naive_after) == everything
    for bad in ("yesterday", "2026-13-01T00:00:00", 1735689600):
        error = await gql.error(EVENTS, {"f": {"since": bad}, "first": 1})
        assert error["extensions"]["code"] == "INVALID" and "ISO 8601" in error["message"], error
