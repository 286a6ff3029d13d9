"""Fixtures: the real app on real SQLite and real PostgreSQL, a real uvicorn, SQL counting."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from modelyard.app import create_app
from modelyard.config import Settings

PG_ADMIN_URL = os.environ.get("MODELYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    """A free TCP port on loopback (ports on these machines are shared)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_sync(coro: Any) -> Any:
    """Run a coroutine on its own loop in a thread (a session loop may be running here)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run_sync(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog database of each kind; migrations run when the app starts."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("pg_database")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    return url


ADMIN_SECRET = "myd_" + "a" * 43  # seeded by the app as the admin token `admin-env`


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, admin_token=ADMIN_SECRET)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The real app with its lifespan (migrations, connections) running."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


class GraphQLClient:
    """Posts GraphQL documents to the app (as the admin token unless told otherwise)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = ADMIN_SECRET) -> None:
        self.http = http
        self.token = token

    def as_token(self, token: str | None) -> GraphQLClient:
        """The same client presenting another token (None: anonymous)."""
        return GraphQLClient(self.http, token)

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code in (200, 400), response.text
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a request that must succeed."""
        body = await self.raw(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The first error of a request that must fail."""
        body = await self.raw(query, variables)
        assert body.get("errors"), f"expected an error, got {body}"
        return body["errors"][0]


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


class SqlLog(logging.Handler):
    """Counts the SQL statements Tortoise sends."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in ("%s: %s", "%s") and record.args:
            self.statements.append(str(record.args[0]))

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def sql_log() -> Iterator[SqlLog]:
    logger = logging.getLogger("tortoise.db_client")
    handler = SqlLog()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`modelyard serve` as a real process under uvicorn on a free loopback port (SQLite)."""
    port = free_port()
    data = tmp_path_factory.mktemp("live")
    env = {**os.environ, "MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port),
           "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET}
    env.pop("MODELYARD_DATABASE_URL", None)
    log_path = data / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
