"""Small GraphQL snippets and clients shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets

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


async def replay(url: str, token: str, query: str, quiet: float = 2.0) -> list[dict[str, Any]]:
    """The payloads a graphql-transport-ws subscription to a real server sends (`next` ones, and
    an `error` one as `{"errors": …}`), until it completes or has been quiet `quiet` seconds."""
    events = []
    async with websockets.connect(url.replace("http", "ws") + "/graphql",
                                  subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        with contextlib.suppress(TimeoutError):
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), quiet))
                assert message["type"] in ("next", "error", "complete"), message
                if message["type"] == "complete":
                    break
                events.append(message["payload"] if message["type"] == "next" else {"errors": message["payload"]})
                if message["type"] == "error":
                    break
    return events
