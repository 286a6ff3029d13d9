"""Anything private reads hide is hidden on every path (issue 11, item 4): with reads private, a
token bound to `team` learns nothing about `other/` through the audit log, subscriptions,
search filters, lineage writes or errors (blobs: tests/test_blob_visibility.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.config import Settings
from tests.conftest import ADMIN_SECRET, GraphQLClient, free_port, running
from tests.helpers import replay

SETUP = [
    'mutation { createModel(input: {name: "other/x"}) { name } }',
    'mutation { createVersion(input: {model: "other/x"}) { ref } }',
    'mutation { registerDataset(input: {name: "other/secret-data", version: "v1", uri: "s3://hidden"}) { ref } }',
    'mutation { createModel(input: {name: "team/m"}) { name } }',
    'mutation { createVersion(input: {model: "team/m", lineage: ['
    '{parent: "other/x:1", relation: FINE_TUNED_FROM}, {parent: "other/secret-data@v1", relation: TRAINED_ON}]}) { ref } }',
    'mutation { createVersion(input: {model: "team/m"}) { ref } }',
    'mutation { addLineage(input: {ref: "team/m:2", parent: "other/x:1", relation: DISTILLED_FROM}) { ref } }',
    'mutation { removeLineage(input: {ref: "team/m:2", parent: "other/x:1", relation: DISTILLED_FROM}) { ref } }',
]
SECRET_WORDS = ("other/x", "other/secret-data", "secret-data", "s3://hidden")


@contextlib.asynccontextmanager
async def private(settings: Settings) -> AsyncIterator[tuple[GraphQLClient, GraphQLClient, GraphQLClient]]:
    """A private-read app with the scenario: admin, a `team` reader and a `team` writer."""
    application = create_app(dataclasses.replace(settings, public_read=False))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            admin = GraphQLClient(http)
            for query in SETUP:
                await admin.ok(query)
            made = await admin.ok('mutation { r: createToken(input: {name: "team-reader", scope: READ, '
                                  'namespace: "team"}) { secret } w: createToken(input: {name: "team-writer", '
                                  'scope: WRITE, namespace: "team"}) { secret } }')
            yield admin, admin.as_token(made["r"]["secret"]), admin.as_token(made["w"]["secret"])


def leaks(body: Any) -> list[str]:
    text = json.dumps(body)
    return [w for w in SECRET_WORDS if w in text]


AUDIT = "{ auditLog(first: 100) { nodes { kind objectRef changes } } }"


async def test_the_audit_log_names_nothing_outside_the_namespace(settings: Settings) -> None:
    async with private(settings) as (admin, reader, _):
        seen = await reader.ok(AUDIT)
        assert leaks(seen) == [], seen
        kinds = [e["kind"] for e in seen["auditLog"]["nodes"]]
        assert kinds.count("LINEAGE_ADDED") == 1 and kinds.count("VERSION_CREATED") == 2
        created = next(e for e in seen["auditLog"]["nodes"]
                       if e["kind"] == "VERSION_CREATED" and e["objectRef"] == "team/m:1")
        # What happened stays visible (an edge of each relation), not what it pointed at.
        assert [s.split()[0] for s in created["changes"]["lineage"]["after"]] == ["FINE_TUNED_FROM", "TRAINED_ON"]
        assert all("outside namespace" in s for s in created["changes"]["lineage"]["after"])
        full = json.dumps(await admin.ok(AUDIT))
        assert "other/x:1" in full and "other/secret-data@v1" in full  # admins see everything


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`modelyard serve` with private reads, as a real process (subscriptions need a socket)."""
    port = free_port()
    data = tmp_path_factory.mktemp("private-reads")
    env = {**os.environ, "MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port),
           "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, "MODELYARD_PUBLIC_READ": "false"}
    env.pop("MODELYARD_DATABASE_URL", None)
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", data / "server.log"):
        yield url


async def test_subscriptions_name_nothing_outside_the_namespace(private_server: str) -> None:
    async with httpx.AsyncClient(base_url=private_server) as http:
        admin = GraphQLClient(http)
        for query in SETUP:
            await admin.ok(query)
        made = await admin.ok('mutation { createToken(input: {name: "team-reader", scope: READ, '
                              'namespace: "team"}) { secret } }')
    query = "subscription { events(since: 0) { kind objectRef changes } }"
    events = await replay(private_server, made["createToken"]["secret"], query)
    kinds = [e["data"]["events"]["kind"] for e in events]
    assert kinds.count("VERSION_CREATED") == 2 and "LINEAGE_ADDED" in kinds, events
    assert leaks(events) == [], events
    everything = await replay(private_server, ADMIN_SECRET, query)
    assert "other/x:1" in json.dumps(everything)


@pytest.mark.parametrize("field", ["derivedFrom", "trainedOn"])
async def test_filters_are_no_existence_oracle(settings: Settings, field: str) -> None:
    async with private(settings) as (_, reader, _w):
        existing = "other/x:1" if field == "derivedFrom" else "other/secret-data@v1"
        missing = "other/nope:1" if field == "derivedFrom" else "other/nope@v1"
        query = f"query($r: String!) {{ versions(filter: {{{field}: $r}}) {{ nodes {{ ref }} }} }}"
        one, two = await reader.raw(query, {"r": existing}), await reader.raw(query, {"r": missing})
        strip = [{k: v for k, v in e.items() if k != "locations"} for e in one["errors"]]
        assert strip[0]["extensions"]["code"] == "FORBIDDEN"
        assert json.dumps(one).replace(existing, "REF") == json.dumps(two).replace(missing, "REF")


async def test_lineage_writes_are_no_existence_oracle(settings: Settings) -> None:
    """A team writer naming an outside parent hears FORBIDDEN whether it exists or not."""
    async with private(settings) as (_, _r, writer):
        for parent in ("other/x:1", "other/nope:1", "other/secret-data@v1", "other/nope@v1"):
            relation = "TRAINED_ON" if "@" in parent else "FINE_TUNED_FROM"
            for query in (
                f'mutation {{ createVersion(input: {{model: "team/m", lineage: [{{parent: "{parent}", relation: {relation}}}]}}) {{ ref }} }}',
                f'mutation {{ addLineage(input: {{ref: "team/m:2", parent: "{parent}", relation: {relation}}}) {{ ref }} }}',
            ):
                error = await writer.error(query)
                assert error["extensions"]["code"] == "FORBIDDEN", (parent, error)
                assert "outside" in error["message"], error


async def test_public_reads_still_cross_namespaces(gql: GraphQLClient) -> None:
    for query in SETUP:
        await gql.ok(query)
    created = [e for e in (await gql.ok(AUDIT))["auditLog"]["nodes"] if e["objectRef"] == "team/m:1"]
    assert created[0]["changes"]["lineage"]["after"] == ["FINE_TUNED_FROM other/x:1", "TRAINED_ON other/secret-data@v1"]
    found = await gql.ok('{ versions(filter: {derivedFrom: "other/x:1"}) { nodes { ref } } }')
    assert [n["ref"] for n in found["versions"]["nodes"]] == ["team/m:1"]


async def test_gathered_reads_are_consistent(settings: Settings) -> None:
    async with private(settings) as (_, reader, _w):
        bodies = await asyncio.gather(*(reader.raw(AUDIT) for _ in range(3)))
        assert all(leaks(b) == [] for b in bodies)
