"""Abusive queries are refused before they run; every error has a code; bugs are masked."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import httpx
import pytest
from graphql import build_client_schema, get_introspection_query
from tortoise import connections

from modelyard.config import Settings
from tests.conftest import GraphQLClient, SqlLog


async def seed(gql: GraphQLClient) -> None:
    """A model `m` with one version carrying a param and a metric."""
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    await gql.ok(
        'mutation { createVersion(input: {model: "m", params: [{key: "lr", value: 0.1}], '
        'metrics: [{key: "acc", value: 0.9}]}) { ref } }'
    )


async def refused(
    gql: GraphQLClient,
    sql_log: SqlLog,
    query: str,
    variables: dict[str, Any] | None = None,
    code: str = "LIMIT",
) -> str:
    """Assert the request fails with `code` before any SQL is sent; return the message."""
    sql_log.reset()
    body = await gql.raw(query, variables)
    assert body.get("errors"), body
    error = body["errors"][0]
    assert error["extensions"]["code"] == code, error
    assert not body.get("data"), body
    assert sql_log.catalog == [], sql_log.catalog  # authentication aside, nothing ran
    return str(error["message"])


def nested(depth: int) -> str:
    """A query whose deepest field is `depth` levels down: model → latestVersion → model → …"""
    fields = ['model(name: "m")'] + [
        "latestVersion" if i % 2 else "model" for i in range(1, depth - 1)
    ]
    return "{ " + " { ".join(fields) + " { __typename id }" + " }" * (len(fields) - 1) + " }"


# --- page size -----------------------------------------------------------------------------------


CONNECTIONS = {
    "models": "query($n: Int) { models(first: $n) { totalCount nodes { name } } }",
    "versions": "query($n: Int) { versions(first: $n) { totalCount nodes { ref } } }",
    "model-versions": """query($n: Int) {
        model(name: "m") { versions(first: $n) { totalCount nodes { ref } } } }""",
}


@pytest.mark.parametrize("query", CONNECTIONS.values(), ids=CONNECTIONS.keys())
async def test_first_over_100_is_limit_and_100_works(
    gql: GraphQLClient, sql_log: SqlLog, settings: Settings, query: str
) -> None:
    await seed(gql)
    assert settings.max_page_size == 100
    message = await refused(gql, sql_log, query, {"n": 101})
    assert "100" in message and "101" in message
    assert (await gql.ok(query, {"n": 100})) is not None
    assert sql_log.statements  # the accepted query did reach the database


@pytest.mark.parametrize("query", CONNECTIONS.values(), ids=CONNECTIONS.keys())
async def test_negative_first_is_invalid(gql: GraphQLClient, query: str) -> None:
    await seed(gql)
    error = await gql.error(query, {"n": -1})
    assert error["extensions"]["code"] == "INVALID"
    assert "first" in error["message"]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("{ models { totalCount } }", {"models": {"totalCount": 1}}),
        ("{ versions { totalCount } }", {"versions": {"totalCount": 1}}),
        (
            '{ model(name: "m") { versions { totalCount } } }',
            {"model": {"versions": {"totalCount": 1}}},
        ),
    ],
    ids=CONNECTIONS.keys(),
)
async def test_connection_without_arguments_uses_the_default_page(
    gql: GraphQLClient, query: str, expected: dict[str, Any]
) -> None:
    await seed(gql)
    assert await gql.ok(query) == expected


async def test_lineage_depth_over_limit_is_limit(gql: GraphQLClient, settings: Settings) -> None:
    await seed(gql)
    too_deep = settings.max_lineage_depth + 1
    for query in (
        f'{{ lineage(ref: "m:1", depth: {too_deep}) {{ edges {{ depth }} }} }}',
        f'{{ version(ref: "m:1") {{ ancestors(depth: {too_deep}) {{ depth }} }} }}',
    ):
        error = await gql.error(query)
        assert error["extensions"]["code"] == "LIMIT"
        assert str(settings.max_lineage_depth) in error["message"]


# --- depth, aliases, tokens ----------------------------------------------------------------------


async def test_query_deeper_than_max_depth_is_refused_before_running(
    gql: GraphQLClient, sql_log: SqlLog, settings: Settings
) -> None:
    await seed(gql)
    message = await refused(gql, sql_log, nested(settings.max_depth + 2))
    assert str(settings.max_depth) in message and "deep" in message
    assert (await gql.ok(nested(settings.max_depth)))["model"] is not None


async def test_cyclic_fragments_are_invalid_not_endless(
    gql: GraphQLClient, sql_log: SqlLog
) -> None:
    query = """
    { model(name: "m") { ...M } }
    fragment M on Model { latestVersion { model { ...M } } }
    """
    await refused(gql, sql_log, query, code="INVALID")


async def test_too_many_aliases_is_refused_before_running(
    gql: GraphQLClient, sql_log: SqlLog, settings: Settings
) -> None:
    await seed(gql)

    def aliased(n: int) -> str:
        return "{ " + " ".join(f'a{i}: model(name: "m") {{ name }}' for i in range(n)) + " }"

    message = await refused(gql, sql_log, aliased(settings.max_aliases + 1))
    assert str(settings.max_aliases) in message and "aliases" in message
    assert len(await gql.ok(aliased(settings.max_aliases))) == settings.max_aliases


async def test_too_many_tokens_is_refused_before_running(
    gql: GraphQLClient, sql_log: SqlLog, settings: Settings
) -> None:
    await seed(gql)

    def padded(values: int) -> str:  # 19 tokens around `values` list items
        return (
            "{ versions(first: 1, filter: {status: [" + "READY " * values + "]}) { totalCount } }"
        )

    message = await refused(gql, sql_log, padded(settings.max_tokens))
    assert str(settings.max_tokens) in message and "tokens" in message
    assert (await gql.ok(padded(settings.max_tokens - 19)))["versions"] == {"totalCount": 1}


# --- cost ----------------------------------------------------------------------------------------


VERSION_LISTS = "params { key } metrics { key } tags { key }"
EXPENSIVE = {
    "nested-connections": """{ models(first: 100) {
        nodes { versions(first: 100) { nodes { params { key value } } } } } }""",
    "variables": """query($n: Int) { models(first: $n) {
        nodes { versions(first: $n) { nodes { params { key } } } } } }""",
    "fragments": """
        { models(first: 100) { ...M } }
        fragment M on ModelConnection { nodes { versions(first: 100) { ...V } } }
        fragment V on ModelVersionConnection { nodes { params { key } metrics { key } } }""",
    "many-aliases": "{ "
    + " ".join(f"a{i}: versions(first: 100) {{ nodes {{ {VERSION_LISTS} }} }}" for i in range(20))
    + " }",
}


@pytest.mark.parametrize("query", EXPENSIVE.values(), ids=EXPENSIVE.keys())
async def test_expensive_query_is_refused_before_running(
    gql: GraphQLClient, sql_log: SqlLog, settings: Settings, query: str
) -> None:
    await seed(gql)
    message = await refused(gql, sql_log, query, {"n": 100})
    assert str(settings.max_cost) in message


async def test_nested_page_over_100_is_refused_before_running(
    gql: GraphQLClient, sql_log: SqlLog
) -> None:
    await seed(gql)
    message = await refused(
        gql, sql_log, "{ models(first: 1) { nodes { versions(first: 101) { nodes { ref } } } } }"
    )
    assert "101" in message


async def test_reasonable_nested_pages_are_not_refused(gql: GraphQLClient) -> None:
    # At most 100 models and 1,000 versions: far below the 50,000-object cost limit.
    await seed(gql)
    data = await gql.ok(
        "{ models(first: 100) { nodes { name versions(first: 10) { nodes { ref } } } } }"
    )
    assert data["models"]["nodes"] == [{"name": "m", "versions": {"nodes": [{"ref": "m:1"}]}}]


async def test_graphiql_introspection_is_not_refused(gql: GraphQLClient) -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    schema = build_client_schema(cast(Any, await gql.ok(query)))
    assert schema.get_type("ModelVersion") is not None
    assert "createVersion" in schema.mutation_type.fields  # type: ignore[union-attr]


async def test_aliased_introspection_counts_against_the_alias_limit(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # 200 aliased `__schema` answered 2.3 MB to an anonymous caller.
    for field in ("__schema { types { name fields { name } } }", '__type(name: "Query") { name }', "__typename"):
        query = "{ " + " ".join(f"s{i}: {field}" for i in range(200)) + " }"
        response = await client.post("/graphql", json={"query": query})
        body = response.json()
        assert "data" not in body, (field, len(response.content))
        error = body["errors"][0]
        assert error["extensions"]["code"] == "LIMIT" and "aliases" in error["message"], error
        assert len(response.content) < 1000


async def test_introspection_counts_against_the_cost_limit(client: httpx.AsyncClient, settings: Settings) -> None:
    operation, fragments = get_introspection_query(descriptions=True).split("fragment", 1)
    full = operation.split("{", 1)[1].rsplit("}", 1)[0]  # `__schema { … }`
    query = "query { " + " ".join(f"s{i}: {full}" for i in range(settings.max_aliases)) + " } fragment" + fragments
    response = await client.post("/graphql", json={"query": query})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "LIMIT" and "objects" in error["message"], error
    assert len(response.content) < 1000


# --- malformed requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "{ models { ",
        "query {",
        "}}}",
        "mutation { createModel(input: {name: }) { name } }",
        '{ model(name: "m) }',
    ],
    ids=["unclosed", "empty-selection", "stray-braces", "missing-value", "unterminated-string"],
)
async def test_syntax_error_is_invalid_json(
    client: httpx.AsyncClient, sql_log: SqlLog, query: str
) -> None:
    sql_log.reset()
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code in (200, 400)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID"
    assert error["message"].startswith("Syntax Error")
    assert error["locations"]
    assert sql_log.catalog == []


@pytest.mark.parametrize(
    "query, variables, named",
    [
        ("{ nope }", None, "nope"),
        ('{ model(name: "m") { nope } }', None, "nope"),
        ('{ model(name: "m", colour: "red") { name } }', None, "colour"),
        ("{ model { name } }", None, "name"),
        ('{ models(first: "ten") { totalCount } }', None, "ten"),
        ('mutation { createModel(input: {name: "x", task: PAINTING}) { name } }', None, "PAINTING"),
        ("query($n: Int) { models(first: $n) { totalCount } }", {"n": "ten"}, "ten"),
        ("query($n: String!) { model(name: $n) { name } }", {"n": 42}, "42"),
        ('{ model(name: "m") }', None, "model"),
    ],
    ids=[
        "unknown-root-field",
        "unknown-field",
        "unknown-argument",
        "missing-argument",
        "wrong-literal-type",
        "unknown-enum",
        "wrong-variable-type",
        "number-as-string",
        "missing-selection",
    ],
)
async def test_invalid_document_is_invalid_and_names_the_problem(
    gql: GraphQLClient, sql_log: SqlLog, query: str, variables: dict[str, Any] | None, named: str
) -> None:
    message = await refused(gql, sql_log, query, variables, code="INVALID")
    assert named in message


async def test_body_that_is_not_json_is_a_clear_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.text


# --- unexpected failures are masked --------------------------------------------------------------


LEAKS = ("Traceback", 'File "', "no such table", "does not exist", "SELECT", "OperationalError")


async def test_server_failure_is_masked_for_the_client_and_logged_in_full(
    own_gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    gql = own_gql  # it drops a table: on a database no other test uses
    await seed(gql)
    await connections.get("default").execute_script("DROP TABLE metric")
    caplog.set_level(logging.ERROR, logger="modelyard.graphql")
    queries = [
        '{ version(ref: "m:1") { ref metrics { key value } } }',
        'mutation { logMetrics(input: {ref: "m:1", metrics: [{key: "acc", value: 1.0}]}) { ref } }',
    ]
    for query in queries:
        caplog.clear()
        body = await gql.raw(query)
        error = body["errors"][0]
        assert error["extensions"] == {"code": "INTERNAL"}
        assert "logged on the server" in error["message"]
        assert not any(leak in json.dumps(body) for leak in LEAKS), body
        logged = [
            r
            for r in caplog.records
            if r.name == "modelyard.graphql" and r.levelno == logging.ERROR
        ]
        assert logged and logged[0].exc_info is not None
        assert "Traceback" in caplog.text and "metric" in caplog.text
    # The rest of the catalog still answers.
    data = await gql.ok('{ version(ref: "m:1") { ref params { key } } }')
    assert data["version"] == {"ref": "m:1", "params": [{"key": "lr"}]}
