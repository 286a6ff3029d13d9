"""No N+1: a model page costs the same number of SQL statements for 5 versions as for 50."""

from __future__ import annotations

from tests.conftest import GraphQLClient, SqlLog
from tests.helpers import model, version

MODEL_PAGE = """
query($name: String!, $first: Int!) {
  model(name: $name) {
    name description task tags { key value }
    aliases { name version { number } }
    latestVersion { ref }
    versions(first: $first) {
      totalCount
      nodes {
        ref number status createdAt
        params { key type value }
        metrics { key value }
        tags { key value }
        aliases { name }
        parents { relation parent { ... on ModelVersion { ref model { name task } } ... on DatasetVersion { ref } } }
      }
    }
  }
}"""


async def seed(gql: GraphQLClient, name: str, n: int) -> None:
    await model(gql, f"{name}-base")
    await version(gql, f"{name}-base")
    await model(gql, name)
    for i in range(n):
        lineage = [{"parent": f"{name}-base:1", "relation": "FINE_TUNED_FROM"}]
        if i:
            lineage.append({"parent": f"{name}:{i}", "relation": "DERIVED_FROM"})
        await version(
            gql, name,
            params=[{"key": f"p{j}", "value": j * 1.5} for j in range(5)],
            metrics=[{"key": "acc", "value": 0.5 + i / 200}],
            tags=[{"key": "i", "value": str(i)}],
            lineage=lineage,
        )
    await gql.ok('mutation($m: String!) { setAlias(input: {model: $m, alias: "production", version: "1"}) { name } }', {"m": name})


async def statements(gql: GraphQLClient, sql_log: SqlLog, name: str, first: int) -> int:
    sql_log.reset()
    data = await gql.ok(MODEL_PAGE, {"name": name, "first": first})
    nodes = data["model"]["versions"]["nodes"]
    assert len(nodes) == first
    assert all(len(n["params"]) == 5 and n["parents"] for n in nodes)
    return len(sql_log.statements)


async def test_model_page_statements_do_not_grow_with_versions(gql: GraphQLClient, sql_log: SqlLog) -> None:
    await seed(gql, "small", 5)
    await seed(gql, "large", 50)
    few = await statements(gql, sql_log, "small", 5)
    many = await statements(gql, sql_log, "large", 50)
    # token, model, its aliases, latest, the page with its rows, count, 5 lists, parents' versions and
    # models, and the aliases' versions: 14. The last is one fewer when the page, which holds them, primed
    # the loader first (which resolver gets there first is up to the event loop), so the bound is not
    # an equality; an N+1 would add statements by the version.
    assert few <= 14 and many <= 14, f"5 versions: {few} statements, 50 versions: {many}"


async def test_versions_search_page_statements_are_constant(gql: GraphQLClient, sql_log: SqlLog) -> None:
    await seed(gql, "s", 30)
    q = '{ versions(first: %d, filter: {model: "s"}) { nodes { ref params { key } metrics { key } model { name } ancestors(depth: 3) { depth } } } }'
    counts = []
    for first in (3, 30):
        sql_log.reset()
        data = await gql.ok(q % first)
        assert len(data["versions"]["nodes"]) == first
        counts.append(len(sql_log.statements))
    assert counts[0] == counts[1]
