"""No INTERNAL for bad input reaching the catalog (issue 11, item 7): each case the probe found
answers a coded GraphQL error (INVALID or LIMIT) and writes nothing, on SQLite and PostgreSQL.
NaN and ±Infinity are never stored. (The transport's cases: tests/test_bad_input.py.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_SECRET, GraphQLClient
from tests.test_audit import snapshot

CREATE_VERSION = "mutation($i: CreateVersionInput!) { createVersion(input: $i) { ref } }"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": value}
    return value


async def post_raw(client: httpx.AsyncClient, query: str, variables_json: str) -> dict[str, Any]:
    """Post a body whose variables are given as JSON text (deep nesting and escaped surrogates
    that a JSON encoder in this process would refuse to write)."""
    body = '{"query": ' + json.dumps(query) + ', "variables": ' + variables_json + "}"
    response = await client.post("/graphql", content=body, headers={
        "content-type": "application/json", "authorization": f"Bearer {ADMIN_SECRET}"})
    assert response.status_code in (200, 400), response.text
    return dict(response.json())


async def seeded(gql: GraphQLClient) -> None:
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    await gql.ok('mutation { createVersion(input: {model: "m", params: [{key: "lr", value: 0.1}]}) { ref } }')


async def refused(gql: GraphQLClient, query: str, variables: dict[str, Any] | None, codes: set[str],
                  named: str = "") -> dict[str, Any]:
    before = await snapshot()
    error = await gql.error(query, variables)
    assert error["extensions"]["code"] in codes, error
    assert named in error["message"], error
    assert await snapshot() == before, "a refused request changed the catalog"
    return error


@pytest.mark.parametrize(("fields", "named"), [
    ({"description": "\ud800"}, "description"),
    ({"tags": [{"key": "t", "value": "a\udfffb"}]}, "'t'"),
    ({"params": [{"key": "s", "value": "\ud800"}]}, "'s'"),
    ({"params": [{"key": "j", "value": {"k": "\ud800"}}]}, "'j'"),
    ({"params": [{"key": "j", "value": {"\ud800": 1}}]}, "'j'"),
    ({"params": [{"key": "j", "value": ["a\u0000b"]}]}, "'j'"),
    ({"run": {"commit": "\ud800"}}, "commit"),
], ids=["description", "tag", "param", "json-value", "json-key", "json-nul", "run"])
async def test_lone_surrogates_are_invalid(gql: GraphQLClient, client: httpx.AsyncClient,
                                           fields: dict[str, Any], named: str) -> None:
    await seeded(gql)
    before = await snapshot()
    # json.dumps writes a lone surrogate as the escape `\ud800`, as a client in another language would.
    body = await post_raw(client, CREATE_VERSION, json.dumps({"i": {"model": "m", **fields}}))
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID" and named in error["message"], error
    assert await snapshot() == before


async def test_a_huge_integer_typed_float_is_invalid(gql: GraphQLClient) -> None:
    await seeded(gql)
    big = int("9" * 400)
    for kind in ("FLOAT", "INT", None):
        param = {"key": "big", "value": big, **({"type": kind} if kind else {})}
        await refused(gql, CREATE_VERSION, {"i": {"model": "m", "params": [param]}}, {"INVALID"}, "'big'")


@pytest.mark.parametrize("depth", [40, 950, 2000])
async def test_deeply_nested_json_params_are_refused(gql: GraphQLClient, client: httpx.AsyncClient,
                                                     depth: int) -> None:
    await seeded(gql)
    before = await snapshot()
    value = '{"x": ' * depth + "1" + "}" * depth
    body = await post_raw(client, CREATE_VERSION,
                          '{"i": {"model": "m", "params": [{"key": "deep", "value": ' + value + "}]}}")
    assert body["errors"][0]["extensions"]["code"] in {"INVALID", "LIMIT"}, body
    assert await snapshot() == before


async def test_json_params_within_the_depth_limit_read_back(gql: GraphQLClient) -> None:
    await seeded(gql)
    value = nested(30)
    await gql.ok(CREATE_VERSION, {"i": {"model": "m", "params": [{"key": "ok", "value": value}]}})
    data = await gql.ok('{ version(ref: "m:2") { param(key: "ok") { value } } }')
    assert data["version"]["param"]["value"] == value


@pytest.mark.parametrize("raw", ['{"x": NaN}', '{"x": [Infinity]}', '{"x": {"y": -Infinity}}', "NaN"])
async def test_non_finite_numbers_inside_json_params_are_never_stored(
    gql: GraphQLClient, client: httpx.AsyncClient, raw: str
) -> None:
    await seeded(gql)
    before = await snapshot()
    body = await post_raw(client, CREATE_VERSION,
                          '{"i": {"model": "m", "params": [{"key": "j", "value": ' + raw + ', "type": "JSON"}]}}')
    assert body["errors"][0]["extensions"]["code"] == "INVALID", body
    assert await snapshot() == before
    assert (await gql.ok('{ version(ref: "m:1") { params { key value } } }'))["version"]["params"] == [
        {"key": "lr", "value": 0.1}]


@pytest.mark.parametrize("run", [
    {"startedAt": "2026-01-01T10:00:00", "endedAt": "2026-01-01T11:00:00+00:00"},
    {"startedAt": "2026-01-01T10:00:00+00:00", "endedAt": "2026-01-01T11:00:00"},
    {"startedAt": "2026-01-01T10:00:00"},
])
async def test_run_times_without_a_zone_are_invalid(gql: GraphQLClient, run: dict[str, str]) -> None:
    await seeded(gql)
    await refused(gql, CREATE_VERSION, {"i": {"model": "m", "run": run}}, {"INVALID"}, "time zone")


async def test_an_in_list_too_long_is_a_limit(gql: GraphQLClient) -> None:
    await seeded(gql)
    for field in ("params", "metrics"):
        query = f"query($v: [JSON!]) {{ versions(filter: {{{field}: [{{key: \"lr\", in: $v}}]}}) {{ nodes {{ ref }} }} }}"
        await refused(gql, query, {"v": list(range(40_000))}, {"LIMIT"}, "in")
    query = 'query($v: [JSON!]) { versions(filter: {params: [{key: "lr", in: $v}]}) { nodes { ref } } }'
    found = await gql.ok(query, {"v": [0.1, *range(999)]})
    assert [n["ref"] for n in found["versions"]["nodes"]] == ["m:1"]


@pytest.mark.parametrize("depth", [20, 60, 200])
async def test_filters_nested_too_deep_are_a_limit(gql: GraphQLClient, depth: int) -> None:
    await seeded(gql)
    spec: dict[str, Any] = {"model": "m"}
    for i in range(depth):
        spec = {"not": spec} if i % 2 else {"and": [spec]}
    query = "query($f: VersionFilter) { versions(filter: $f) { nodes { ref } } }"
    error = await gql.error(query, {"f": spec})
    # Ours up to the depth graphql-core allows in variables, graphql-core's beyond it.
    assert error["extensions"]["code"] in ({"LIMIT"} if depth < 100 else {"LIMIT", "INVALID"}), error


async def test_filters_nested_a_little_still_work(gql: GraphQLClient) -> None:
    await seeded(gql)
    spec: dict[str, Any] = {"not": {"not": {"and": [{"or": [{"model": "m"}]}]}}}
    found = await gql.ok("query($f: VersionFilter) { versions(filter: $f) { nodes { ref } } }", {"f": spec})
    assert [n["ref"] for n in found["versions"]["nodes"]] == ["m:1"]


@pytest.mark.parametrize("actor", ["a" * 1_000_000, "x" * 129, "bad\x00actor"])
async def test_an_oversized_audit_actor_filter_is_invalid(gql: GraphQLClient, actor: str) -> None:
    await seeded(gql)
    error = await gql.error("query($a: String!) { auditLog(filter: {actor: $a}) { nodes { id } } }", {"a": actor})
    assert error["extensions"]["code"] in {"INVALID", "LIMIT"}, error


async def test_a_ref_with_a_huge_version_number_is_invalid(gql: GraphQLClient) -> None:
    await seeded(gql)
    for query in ('query($r: String!) { version(ref: $r) { ref } }',
                  'query($r: String!) { versions(filter: {derivedFrom: $r}) { nodes { ref } } }',
                  'mutation($r: String!) { archiveVersion(ref: $r) { ref } }'):
        await refused(gql, query, {"r": "m:" + "9" * 5000}, {"INVALID"})


@pytest.mark.parametrize("variables", [
    '{"f": {"tags": [{"key": "t", "value": "\\ud800"}]}}',
    '{"f": {"params": [{"key": "lr", "eq": "\\ud800"}]}}',
    '{"f": {"params": [{"key": "lr", "in": ["a", "\\udc00"]}]}}',
    '{"f": {"params": [{"key": "lr", "eq": "a\\u0000"}]}}',
])
async def test_search_strings_are_text(gql: GraphQLClient, client: httpx.AsyncClient, variables: str) -> None:
    await seeded(gql)
    body = await post_raw(client, "query($f: VersionFilter) { versions(filter: $f) { nodes { ref } } }", variables)
    assert body["errors"][0]["extensions"]["code"] == "INVALID", body


async def test_model_name_search_is_text(gql: GraphQLClient, client: httpx.AsyncClient) -> None:
    await seeded(gql)
    body = await post_raw(client, "query($s: String) { models(filter: {nameContains: $s}) { nodes { name } } }",
                          '{"s": "\\ud800"}')
    assert body["errors"][0]["extensions"]["code"] == "INVALID", body
