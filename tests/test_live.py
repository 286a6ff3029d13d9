"""The real server process under uvicorn, driven by a real GraphQL client and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from tests.conftest import ADMIN_SECRET


async def test_gql_client_against_uvicorn(live_server: str) -> None:
    transport = HTTPXAsyncTransport(url=f"{live_server}/graphql", headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    async with Client(transport=transport, fetch_schema_from_transport=True) as session:
        await session.execute(gql('mutation { createModel(input: {name: "live-base"}) { name } }'))
        await session.execute(gql(
            'mutation { createVersion(input: {model: "live-base", params: [{key: "lr", value: 0.01}]}) { ref } }'
        ))
        search = gql("query($f: VersionFilter) { versions(filter: $f) { totalCount nodes { ref param(key: \"lr\") { value } } } }")
        search.variable_values = {"f": {"model": "live-base", "params": [{"key": "lr", "lt": 0.1}]}}
        result = await session.execute(search)
        assert result["versions"] == {"totalCount": 1, "nodes": [{"ref": "live-base:1", "param": {"value": 0.01}}]}
        try:
            await session.execute(gql('mutation { createModel(input: {name: "live-base"}) { name } }'))
        except TransportQueryError as exc:
            assert exc.errors and exc.errors[0]["extensions"]["code"] == "CONFLICT"
        else:
            raise AssertionError("a duplicate model was accepted")


def test_server_binds_loopback_and_answers_health(live_server: str) -> None:
    assert live_server.startswith("http://127.0.0.1:")
    assert httpx.get(f"{live_server}/healthz").json()["status"] == "ok"


def test_cli_migrate_creates_the_catalog(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "modelyard.db").stat().st_size > 0
    again = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert again.returncode == 0, again.stderr


def test_cli_rejects_bad_settings() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "migrate", "--database-url", "mysql://nope"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "mysql" in done.stderr


def test_replicas_starting_together_migrate_one_after_the_other(pg_database: str) -> None:
    """Two `modelyard migrate` at once on an empty PostgreSQL database both succeed."""
    import asyncio

    import asyncpg

    async def reset() -> None:
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(reset())
    command = [sys.executable, "-m", "modelyard.cli", "migrate", "--database-url", pg_database]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0], [r[1][-500:] for r in results]
