"""Small GraphQL snippets shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient

CREATE_MODEL = "mutation($i: CreateModelInput!) { createModel(input: $i) { id name } }"
CREATE_VERSION = """
mutation($i: CreateVersionInput!) {
  createVersion(input: $i) { id ref number status manifestDigest }
}"""


async def model(gql: GraphQLClient, name: str, **fields: Any) -> dict[str, Any]:
    """Create a model; return its id and name."""
    return (await gql.ok(CREATE_MODEL, {"i": {"name": name, **fields}}))["createModel"]


async def version(gql: GraphQLClient, model_name: str, **fields: Any) -> dict[str, Any]:
    """Create a version of `model_name`; return its id, ref, number, status and digest."""
    return (await gql.ok(CREATE_VERSION, {"i": {"model": model_name, **fields}}))["createVersion"]
