"""Bad input answers a clear error with its code, names what was wrong, and writes nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_SECRET, GraphQLClient

CREATE_MODEL = "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }"
CREATE_VERSION = "mutation($i: CreateVersionInput!) { createVersion(input: $i) { ref number } }"
SET_ALIAS = "mutation($i: SetAliasInput!) { setAlias(input: $i) { name } }"
ADD_LINEAGE = "mutation($i: AddLineageInput!) { addLineage(input: $i) { ref } }"
REGISTER_DATASET = "mutation($i: RegisterDatasetInput!) { registerDataset(input: $i) { ref } }"
ARCHIVE = "mutation($ref: String!) { archiveVersion(ref: $ref) { ref } }"
STATE = """
query($name: String!) {
  model(name: $name) {
    description tags { key value } aliases { name version { ref } }
    versions(first: 50) {
      totalCount
      nodes {
        ref status description
        params { key type value } metrics { key value } tags { key value }
        parents { relation parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
      }
    }
  }
}"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def fails(
    gql: GraphQLClient, query: str, variables: dict[str, Any] | None, code: str, *names: str
) -> str:
    """Assert the request fails with `code` and a message naming each of `names`; return it."""
    error = await gql.error(query, variables)
    assert error["extensions"]["code"] == code, error
    for name in names:
        assert name in error["message"], error
    return str(error["message"])


async def model(gql: GraphQLClient, name: str, **fields: Any) -> None:
    await gql.ok(CREATE_MODEL, {"i": {"name": name, **fields}})


async def version(gql: GraphQLClient, name: str, **fields: Any) -> str:
    data = await gql.ok(CREATE_VERSION, {"i": {"model": name, **fields}})
    return str(data["createVersion"]["ref"])


async def state(gql: GraphQLClient, name: str) -> Any:
    """Everything a user can see of one model, to compare before and after a failure."""
    return (await gql.ok(STATE, {"name": name}))["model"]


async def model_count(gql: GraphQLClient) -> int:
    return int((await gql.ok("{ models(first: 1) { totalCount } }"))["models"]["totalCount"])


async def seed(gql: GraphQLClient) -> None:
    """`m:1` (aliased `prod`), the dataset version `ds@v1`."""
    await model(gql, "m", description="card")
    await version(
        gql, "m", params=[{"key": "lr", "value": 0.1}], metrics=[{"key": "acc", "value": 0.9}]
    )
    await gql.ok(SET_ALIAS, {"i": {"model": "m", "alias": "prod", "version": "1"}})
    await gql.ok(REGISTER_DATASET, {"i": {"name": "ds", "version": "v1", "uri": "s3://ds/v1"}})


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Upper", "has space", "a" * 65, "a/b/c", "", "-dash", "ns/", "x\u00e9"],
    ids=[
        "uppercase",
        "space",
        "too-long",
        "two-slashes",
        "empty",
        "leading-dash",
        "empty-name",
        "accent",
    ],
)
async def test_invalid_model_name_is_refused_and_nothing_is_created(
    gql: GraphQLClient, name: str
) -> None:
    await fails(gql, CREATE_MODEL, {"i": {"name": name}}, "INVALID", repr(name))
    assert await model_count(gql) == 0


@pytest.mark.parametrize(
    "fields, code, named",
    [
        ({"tags": [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]}, "INVALID", "'k'"),
        ({"tags": [{"key": "bad key", "value": "v"}]}, "INVALID", "'bad key'"),
        ({"tags": [{"key": f"k{i}", "value": "v"} for i in range(101)]}, "LIMIT", "100"),
    ],
    ids=["duplicate-tag", "bad-tag-key", "too-many-tags"],
)
async def test_bad_model_tags_create_nothing(
    gql: GraphQLClient, fields: dict[str, Any], code: str, named: str
) -> None:
    await fails(gql, CREATE_MODEL, {"i": {"name": "m", **fields}}, code, named)
    assert await model_count(gql) == 0


async def test_duplicate_model_is_conflict_and_keeps_the_first(gql: GraphQLClient) -> None:
    await model(gql, "vision/resnet", description="first")
    await fails(
        gql,
        CREATE_MODEL,
        {"i": {"name": "vision/resnet", "description": "second"}},
        "CONFLICT",
        "vision/resnet",
    )
    assert await model_count(gql) == 1
    assert (await state(gql, "vision/resnet"))["description"] == "first"


async def test_failed_model_update_changes_nothing(gql: GraphQLClient) -> None:
    await seed(gql)
    before = await state(gql, "m")
    query = "mutation($i: UpdateModelInput!) { updateModel(input: $i) { name } }"
    bad_tags = [{"key": "ok", "value": "1"}, {"key": "no way", "value": "2"}]
    await fails(
        gql,
        query,
        {"i": {"name": "m", "description": "new", "tags": bad_tags}},
        "INVALID",
        "'no way'",
    )
    assert await state(gql, "m") == before


# --- refs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["ghost", "ghost:1", "m:9", "m@staging", f"m@sha256:{'0' * 64}", "ns/m:1"]
)
async def test_unknown_ref_reads_as_null(gql: GraphQLClient, ref: str) -> None:
    await seed(gql)
    data = await gql.ok("query($r: String!) { version(ref: $r) { ref } }", {"r": ref})
    assert data == {"version": None}


@pytest.mark.parametrize(
    "ref", ["m:0", "m:abc", "m@", "m@sha256:xyz", "M:1", "m:-1", "m@Prod", ":1"]
)
async def test_malformed_ref_is_invalid(gql: GraphQLClient, ref: str) -> None:
    await seed(gql)
    before = await state(gql, "m")
    await fails(
        gql, "query($r: String!) { version(ref: $r) { ref } }", {"r": ref}, "INVALID", repr(ref)
    )
    await fails(gql, ARCHIVE, {"ref": ref}, "INVALID", repr(ref))
    assert await state(gql, "m") == before


UNKNOWN = [
    pytest.param(ARCHIVE, {"ref": "m:9"}, "m:9", id="archive-missing-version"),
    pytest.param(
        'mutation { restoreVersion(ref: "ghost:1") { ref } }',
        None,
        "ghost",
        id="restore-missing-model",
    ),
    pytest.param(
        "mutation($i: LogMetricsInput!) { logMetrics(input: $i) { ref } }",
        {"i": {"ref": "m:9", "metrics": [{"key": "acc", "value": 1.0}]}},
        "m:9",
        id="log-metrics",
    ),
    pytest.param(
        "mutation($i: UpdateVersionInput!) { updateVersion(input: $i) { ref } }",
        {"i": {"ref": "m@staging", "description": "x"}},
        "staging",
        id="update-missing-alias",
    ),
    pytest.param(
        SET_ALIAS,
        {"i": {"model": "ghost", "alias": "prod", "version": "1"}},
        "ghost",
        id="alias-on-missing-model",
    ),
    pytest.param(
        "mutation($i: DeleteAliasInput!) { deleteAlias(input: $i) { name } }",
        {"i": {"model": "m", "alias": "staging"}},
        "staging",
        id="delete-missing-alias",
    ),
    pytest.param(
        ADD_LINEAGE,
        {"i": {"ref": "m:1", "parent": "ghost:2", "relation": "FINE_TUNED_FROM"}},
        "ghost",
        id="lineage-to-missing-model",
    ),
    pytest.param(
        ADD_LINEAGE,
        {"i": {"ref": "m:7", "parent": "m:1", "relation": "FINE_TUNED_FROM"}},
        "m:7",
        id="lineage-from-missing-version",
    ),
    pytest.param(
        ADD_LINEAGE,
        {"i": {"ref": "m:1", "parent": "nods@v1", "relation": "TRAINED_ON"}},
        "nods",
        id="trained-on-missing-dataset",
    ),
    pytest.param(
        ADD_LINEAGE,
        {"i": {"ref": "m:1", "parent": "ds@v9", "relation": "TRAINED_ON"}},
        "ds@v9",
        id="trained-on-missing-dataset-version",
    ),
    pytest.param(
        'mutation { deleteModel(name: "ghost") { name } }', None, "ghost", id="delete-missing-model"
    ),
    pytest.param(
        '{ lineage(ref: "ghost:1") { edges { depth } } }', None, "ghost", id="lineage-query"
    ),
]


@pytest.mark.parametrize("query, variables, named", UNKNOWN)
async def test_unknown_target_is_not_found_and_changes_nothing(
    gql: GraphQLClient, query: str, variables: dict[str, Any] | None, named: str
) -> None:
    await seed(gql)
    before = await state(gql, "m")
    await fails(gql, query, variables, "NOT_FOUND", named)
    assert await state(gql, "m") == before
    assert await model_count(gql) == 1


# --- aliases -------------------------------------------------------------------------------------


async def test_alias_to_missing_version_is_not_found(gql: GraphQLClient) -> None:
    await seed(gql)
    before = await state(gql, "m")
    await fails(
        gql,
        SET_ALIAS,
        {"i": {"model": "m", "alias": "staging", "version": "5"}},
        "NOT_FOUND",
        "m:5",
    )
    await fails(
        gql, SET_ALIAS, {"i": {"model": "m", "alias": "prod", "version": "5"}}, "NOT_FOUND", "m:5"
    )
    assert await state(gql, "m") == before  # no new alias, `prod` did not move


async def test_alias_to_another_models_version_is_invalid(gql: GraphQLClient) -> None:
    await seed(gql)
    await model(gql, "other")
    await version(gql, "other")
    await fails(
        gql,
        SET_ALIAS,
        {"i": {"model": "m", "alias": "prod", "version": "other:1"}},
        "INVALID",
        "other:1",
    )
    assert (await state(gql, "m"))["aliases"] == [{"name": "prod", "version": {"ref": "m:1"}}]


@pytest.mark.parametrize("alias", ["Prod", "latest", "9lives", "", "a b"])
async def test_invalid_alias_name_is_refused(gql: GraphQLClient, alias: str) -> None:
    await seed(gql)
    await fails(
        gql,
        SET_ALIAS,
        {"i": {"model": "m", "alias": alias, "version": "1"}},
        "INVALID",
        repr(alias),
    )
    assert [a["name"] for a in (await state(gql, "m"))["aliases"]] == ["prod"]


async def test_alias_to_archived_version_is_conflict(gql: GraphQLClient) -> None:
    await seed(gql)
    await version(gql, "m")
    await gql.ok(ARCHIVE, {"ref": "m:2"})
    before = await state(gql, "m")
    await fails(
        gql, SET_ALIAS, {"i": {"model": "m", "alias": "prod", "version": "2"}}, "CONFLICT", "m:2"
    )
    await fails(
        gql, SET_ALIAS, {"i": {"model": "m", "alias": "beta", "version": "2"}}, "CONFLICT", "m:2"
    )
    assert await state(gql, "m") == before


async def test_archiving_an_aliased_version_is_conflict(gql: GraphQLClient) -> None:
    await seed(gql)
    before = await state(gql, "m")
    await fails(gql, ARCHIVE, {"ref": "m:1"}, "CONFLICT", "m:1", "prod")
    await fails(gql, ARCHIVE, {"ref": "m@prod"}, "CONFLICT", "prod")
    assert await state(gql, "m") == before
    assert before["versions"]["nodes"][0]["status"] == "READY"


# --- lineage -------------------------------------------------------------------------------------


async def chain(gql: GraphQLClient) -> None:
    """a:1 ← b:1 ← c:1 (each fine-tuned from the one before)."""
    await model(gql, "a")
    await version(gql, "a")
    for child, parent in (("b", "a:1"), ("c", "b:1")):
        await model(gql, child)
        await version(gql, child, lineage=[{"parent": parent, "relation": "FINE_TUNED_FROM"}])


async def test_lineage_cycle_is_conflict_and_adds_no_edge(gql: GraphQLClient) -> None:
    await chain(gql)
    before = await state(gql, "a")
    message = await fails(
        gql,
        ADD_LINEAGE,
        {"i": {"ref": "a:1", "parent": "c:1", "relation": "DISTILLED_FROM"}},
        "CONFLICT",
        "cycle",
    )
    assert "c:1" in message  # the user's ref, not an internal row id
    assert await state(gql, "a") == before


async def test_self_lineage_is_conflict(gql: GraphQLClient) -> None:
    await chain(gql)
    before = await state(gql, "b")
    await fails(
        gql,
        ADD_LINEAGE,
        {"i": {"ref": "b:1", "parent": "b:1", "relation": "DERIVED_FROM"}},
        "CONFLICT",
        "own lineage parent",
    )
    assert await state(gql, "b") == before


async def test_existing_lineage_edge_is_refused(gql: GraphQLClient) -> None:
    await chain(gql)
    before = await state(gql, "b")
    error = await gql.error(
        ADD_LINEAGE, {"i": {"ref": "b:1", "parent": "a:1", "relation": "FINE_TUNED_FROM"}}
    )
    assert error["extensions"]["code"] in ("CONFLICT", "INVALID")
    assert "exists" in error["message"] or "twice" in error["message"]
    assert await state(gql, "b") == before


# --- createVersion: every failure leaves the model as it was and consumes no number --------------


BAD_VERSIONS = [
    pytest.param(
        {"params": [{"key": "lr", "value": "abc", "type": "FLOAT"}]},
        "INVALID",
        "'lr'",
        id="string-as-float",
    ),
    pytest.param(
        {"params": [{"key": "steps", "value": 2**63, "type": "INT"}]},
        "INVALID",
        "'steps'",
        id="int-overflow",
    ),
    pytest.param(
        {"params": [{"key": "steps", "value": -(2**63) - 1}]},
        "INVALID",
        "'steps'",
        id="int-underflow",
    ),
    pytest.param(
        {"params": [{"key": "steps", "value": 1.5, "type": "INT"}]},
        "INVALID",
        "'steps'",
        id="fraction-as-int",
    ),
    pytest.param(
        {"params": [{"key": "flag", "value": 1, "type": "BOOL"}]},
        "INVALID",
        "'flag'",
        id="int-as-bool",
    ),
    pytest.param(
        {"params": [{"key": "n", "value": True, "type": "INT"}]}, "INVALID", "'n'", id="bool-as-int"
    ),
    pytest.param(
        {"params": [{"key": "lr", "value": "NaN", "type": "FLOAT"}]},
        "INVALID",
        "'lr'",
        id="nan-string",
    ),
    pytest.param(
        {"params": [{"key": "name", "value": [1], "type": "STRING"}]},
        "INVALID",
        "'name'",
        id="list-as-string",
    ),
    pytest.param(
        {"params": [{"key": "lr", "value": None}]}, "INVALID", "params[0].value", id="null-value"
    ),
    pytest.param(
        {"params": [{"key": "lr", "value": 0.1}, {"key": "lr", "value": 0.2}]},
        "INVALID",
        "'lr'",
        id="duplicate-param",
    ),
    pytest.param(
        {"params": [{"key": "bad key", "value": 1}]}, "INVALID", "'bad key'", id="bad-param-key"
    ),
    pytest.param(
        {"params": [{"key": "s", "value": "x" * 513}]}, "INVALID", "'s'", id="string-too-long"
    ),
    pytest.param(
        {"tags": [{"key": "t", "value": "1"}, {"key": "t", "value": "2"}]},
        "INVALID",
        "'t'",
        id="duplicate-tag",
    ),
    pytest.param(
        {"metrics": [{"key": "bad key", "value": 1.0}]}, "INVALID", "'bad key'", id="bad-metric-key"
    ),
    pytest.param(
        {"run": {"startedAt": "2024-01-02T00:00:00+00:00", "endedAt": "2024-01-01T00:00:00+00:00"}},
        "INVALID",
        "before",
        id="run-ends-before-start",
    ),
    pytest.param(
        {"lineage": [{"parent": "m:9", "relation": "FINE_TUNED_FROM"}]},
        "NOT_FOUND",
        "m:9",
        id="missing-parent-version",
    ),
    pytest.param(
        {"lineage": [{"parent": "ghost:1", "relation": "FINE_TUNED_FROM"}]},
        "NOT_FOUND",
        "ghost",
        id="missing-parent-model",
    ),
    pytest.param(
        {"lineage": [{"parent": "m:x", "relation": "FINE_TUNED_FROM"}]},
        "INVALID",
        "m:x",
        id="malformed-parent-ref",
    ),
    pytest.param(
        {"lineage": [{"parent": "nods@v1", "relation": "TRAINED_ON"}]},
        "NOT_FOUND",
        "nods",
        id="trained-on-missing-dataset",
    ),
    pytest.param(
        {"lineage": [{"parent": "ds@v2", "relation": "TRAINED_ON"}]},
        "NOT_FOUND",
        "ds@v2",
        id="trained-on-missing-dataset-version",
    ),
    pytest.param(
        {"lineage": [{"parent": "ds@v 1", "relation": "TRAINED_ON"}]},
        "INVALID",
        "v 1",
        id="malformed-dataset-ref",
    ),
    pytest.param(
        {
            "lineage": [
                {"parent": "m:1", "relation": "FINE_TUNED_FROM"},
                {"parent": "m@prod", "relation": "FINE_TUNED_FROM"},
            ]
        },
        "INVALID",
        "twice",
        id="duplicate-lineage-parent",
    ),
    pytest.param({"model": "ghost"}, "NOT_FOUND", "ghost", id="missing-model"),
    pytest.param({"model": "Bad Name"}, "INVALID", "'Bad Name'", id="invalid-model-name"),
]


@pytest.mark.parametrize("fields, code, named", BAD_VERSIONS)
async def test_failed_create_version_writes_nothing_and_takes_no_number(
    gql: GraphQLClient, fields: dict[str, Any], code: str, named: str
) -> None:
    await seed(gql)
    before = await state(gql, "m")
    await fails(gql, CREATE_VERSION, {"i": {"model": "m", **fields}}, code, named)
    assert await state(gql, "m") == before
    assert await version(gql, "m") == "m:2"  # the failed attempt consumed no number


@pytest.mark.parametrize("value", ["1e999", "-1e999"], ids=["inf", "minus-inf"])
async def test_non_finite_numbers_are_invalid(gql: GraphQLClient, value: str) -> None:
    await seed(gql)
    before = await state(gql, "m")
    mutation = 'mutation { createVersion(input: {model: "m", %s}) { ref } }'
    for field, named in (
        (f'params: [{{key: "lr", value: {value}}}]', "'lr'"),
        (f'params: [{{key: "lr", value: {value}, type: FLOAT}}]', "'lr'"),
        (f'metrics: [{{key: "acc", value: {value}}}]', "'acc'"),
    ):
        await fails(gql, mutation % field, None, "INVALID", named)
    assert await state(gql, "m") == before
    assert await version(gql, "m") == "m:2"


async def test_nan_in_json_variables_is_invalid(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    await seed(gql)
    body = json.dumps(
        {
            "query": CREATE_VERSION,
            "variables": {"i": {"model": "m", "params": [{"key": "lr", "value": float("nan")}]}},
        }
    )  # `NaN`, as Python writes it
    response = await client.post(
        "/graphql", content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {ADMIN_SECRET}"},
    )
    errors = response.json()["errors"]
    assert errors[0]["extensions"]["code"] == "INVALID"
    assert "lr" in errors[0]["message"] or "NaN" in errors[0]["message"]
    assert await version(gql, "m") == "m:2"


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"description": "a\x00b"}, "description"),
        ({"params": [{"key": "s", "value": "a\x00b"}]}, "'s'"),
        ({"tags": [{"key": "t", "value": "\x00"}]}, "'t'"),
        ({"run": {"commit": "ab\x00"}}, "commit"),
    ],
    ids=["description", "param", "tag", "run"],
)
async def test_nul_character_in_text_is_invalid_on_every_database(
    gql: GraphQLClient, fields: dict[str, Any], named: str
) -> None:
    # PostgreSQL cannot store U+0000 in text; SQLite can: both must answer the same.
    await seed(gql)
    before = await state(gql, "m")
    await fails(gql, CREATE_VERSION, {"i": {"model": "m", **fields}}, "INVALID", named)
    assert await state(gql, "m") == before
    assert await version(gql, "m") == "m:2"


async def test_failed_log_metrics_records_none_of_the_batch(gql: GraphQLClient) -> None:
    await seed(gql)
    before = await state(gql, "m")
    query = "mutation($i: LogMetricsInput!) { logMetrics(input: $i) { ref } }"
    batch = [{"key": "acc", "value": 0.95}, {"key": "bad key", "value": 1.0}]
    await fails(gql, query, {"i": {"ref": "m:1", "metrics": batch}}, "INVALID", "'bad key'")
    await fails(gql, query, {"i": {"ref": "m:1", "metrics": []}}, "INVALID")
    assert await state(gql, "m") == before


async def test_failed_version_update_changes_nothing(gql: GraphQLClient) -> None:
    await seed(gql)
    before = await state(gql, "m")
    query = "mutation($i: UpdateVersionInput!) { updateVersion(input: $i) { ref } }"
    bad = {"ref": "m:1", "description": "new", "tags": [{"key": "no way", "value": "1"}]}
    await fails(gql, query, {"i": bad}, "INVALID", "'no way'")
    assert await state(gql, "m") == before


# --- datasets ------------------------------------------------------------------------------------


DATASET = "query($n: String!) { dataset(name: $n) { versions { ref uri digest } } }"


async def test_registering_a_dataset_version_twice_is_conflict(gql: GraphQLClient) -> None:
    await seed(gql)
    again = {"name": "ds", "version": "v1", "uri": "s3://elsewhere"}
    await fails(gql, REGISTER_DATASET, {"i": again}, "CONFLICT", "ds@v1")
    versions = (await gql.ok(DATASET, {"n": "ds"}))["dataset"]["versions"]
    assert versions == [{"ref": "ds@v1", "uri": "s3://ds/v1", "digest": None}]


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"digest": "sha256:xyz"}, "sha256:xyz"),
        ({"digest": "md5:" + "0" * 32}, "md5:"),
        ({"digest": "sha256:" + "A" * 64}, "sha256:AAAA"),
        ({"digest": ""}, "''"),
        ({"version": "v 1"}, "'v 1'"),
        ({"name": "Bad"}, "'Bad'"),
        ({"size": -1}, "size"),
        ({"uri": "s3://a\x00b"}, "uri"),
    ],
    ids=[
        "not-hex",
        "other-algorithm",
        "uppercase-hex",
        "empty-digest",
        "bad-version",
        "bad-name",
        "negative-size",
        "nul-in-uri",
    ],
)
async def test_bad_dataset_is_invalid_and_creates_nothing(
    gql: GraphQLClient, fields: dict[str, Any], named: str
) -> None:
    spec = {"name": "fresh", "version": "v1", **fields}
    await fails(gql, REGISTER_DATASET, {"i": spec}, "INVALID", named)
    assert (await gql.ok(DATASET, {"n": "fresh"}))["dataset"] is None


# --- cursors and node ids ------------------------------------------------------------------------


PAGED = [
    "query($a: String) { models(after: $a) { totalCount } }",
    "query($a: String) { versions(after: $a) { totalCount } }",
    'query($a: String) { model(name: "m") { versions(after: $a) { totalCount } } }',
]


@pytest.mark.parametrize("query", PAGED, ids=["models", "versions", "model-versions"])
@pytest.mark.parametrize(
    "cursor",
    ["not a cursor!", b64("x:1"), b64("o:-1"), b64("o:1.5"), ""],
    ids=["garbage", "wrong-kind", "negative", "fraction", "empty"],
)
async def test_bad_after_cursor_is_invalid(gql: GraphQLClient, query: str, cursor: str) -> None:
    await seed(gql)
    await fails(gql, query, {"a": cursor}, "INVALID", repr(cursor))


@pytest.mark.parametrize("query", PAGED, ids=["models", "versions", "model-versions"])
async def test_cursor_beyond_any_offset_is_invalid_or_empty_not_a_crash(
    gql: GraphQLClient, query: str
) -> None:
    await seed(gql)
    body = await gql.raw(
        query.replace("totalCount", "edges { cursor }"), {"a": b64("o:99999999999999999999")}
    )
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "INVALID", body
    else:
        assert '"edges": []' in json.dumps(body["data"])


@pytest.mark.parametrize("node_id", ["garbage!", b64("Model:abc"), b64("no colon"), "\u00e9"])
async def test_malformed_node_id_is_invalid(gql: GraphQLClient, node_id: str) -> None:
    await fails(
        gql, "query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, "INVALID", repr(node_id)
    )


@pytest.mark.parametrize(
    "node_id",
    [b64("Model:999"), b64("Nope:1"), b64("ModelVersion:-1"), b64("Model:99999999999999999999")],
    ids=["missing-row", "unknown-type", "negative", "beyond-int64"],
)
async def test_node_id_of_nothing_is_null_not_a_crash(gql: GraphQLClient, node_id: str) -> None:
    await seed(gql)
    body = await gql.raw("query($id: ID!) { node(id: $id) { id } }", {"id": node_id})
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "INVALID", body
    else:
        assert body["data"]["node"] is None


# --- bodies the JSON parser refuses (issue 11 item 7) --------------------------------------------

WRITE = 'mutation { createModel(input: {name: "written"}) { name } }'
BAD_BODIES = {
    "number": b"42",
    "string": b'"{ models { totalCount } }"',
    "null": b"null",
    "list": b'[{"query": "' + WRITE.replace('"', '\\"').encode() + b'"}]',
    "invalid-utf8": b'{"query": "' + WRITE.replace('"', '\\"').encode() + b'", "x": "\xff\xfe"}',
    "5000-digit-integer": (
        '{"query": "query($n: Int) { models(first: $n) { totalCount } }", "variables": {"n": '
        + "9" * 5000 + "}}"
    ).encode(),
    "variables-5000-deep": (
        '{"query": "' + WRITE.replace('"', '\\"') + '", "variables": {"v": ' + "[" * 5000 + "]" * 5000 + "}}"
    ).encode(),
    "variables-not-an-object": b'{"query": "' + WRITE.replace('"', '\\"').encode() + b'", "variables": [1]}',
    "query-not-a-string": b'{"query": 42}',
    "no-query": b'{"variables": {}}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_a_body_json_cannot_carry_is_a_coded_400_and_writes_nothing(
    gql: GraphQLClient, client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post("/graphql", content=body, headers={
        "content-type": "application/json", "authorization": f"Bearer {ADMIN_SECRET}"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert "data" not in answer, answer
    assert answer["errors"][0]["extensions"]["code"] in ("INVALID", "LIMIT"), answer
    assert await model_count(gql) == 0


async def test_json_nested_deeper_than_the_transport_allows_is_limit(client: httpx.AsyncClient) -> None:
    # Deep enough to refuse, shallow enough for json.loads: refused by a fixed bound, not by
    # whatever stack depth the parser happens to reach.
    body = '{"query": "{ __typename }", "variables": {"v": ' + "[" * 200 + "]" * 200 + "}}"
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "LIMIT" and "nested" in error["message"], error


# --- a request of several mutations says what it did (issue 11 item 9) ---------------------------


async def test_when_a_later_mutation_fails_the_earlier_result_is_in_data(gql: GraphQLClient) -> None:
    body = await gql.raw("""mutation {
        first: createModel(input: {name: "kept"}) { name }
        second: createModel(input: {name: "kept"}) { name }
        third: createModel(input: {name: "also-kept"}) { name }
    }""")
    assert body["data"] == {"first": {"name": "kept"}, "second": None, "third": {"name": "also-kept"}}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [(["second"], "CONFLICT")]
    events = await gql.ok('{ auditLog(first: 10) { nodes { objectRef } } }')
    assert {n["objectRef"] for n in events["auditLog"]["nodes"]} >= {"kept", "also-kept"}
    assert await model_count(gql) == 2
