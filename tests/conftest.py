"""Fixtures: the real app on real SQLite and real PostgreSQL, a real uvicorn, SQL counting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
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


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own (no schema yet), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run_sync(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        _run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_database("modelyard_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite catalog with every migration applied, by `modelyard migrate`."""
    path = tmp_path_factory.mktemp("sqlite-template") / "catalog.db"
    subprocess.run([sys.executable, "-m", "modelyard.cli", "migrate", "--database-url", f"sqlite://{path}"],
                   check=True, capture_output=True)
    return path


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog database of each kind; migrations run when the app starts."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        for suffix in ("", "-wal", "-shm"):  # a migrated catalog: saves Tortoise's planning per test
            if template.with_name(template.name + suffix).exists():
                shutil.copyfile(template.with_name(template.name + suffix), tmp_path / f"catalog.db{suffix}")
        return f"sqlite://{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("pg_database")
    conn = await asyncpg.connect(url)
    try:
        await _empty_catalog(conn)
    finally:
        await conn.close()
    return url


MIGRATIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "src" / "modelyard" / "db"
                                       / "migrations").glob("0*.py"))


async def _empty_catalog(conn: asyncpg.Connection) -> None:
    """Empty every table of a fully migrated catalog (the app then finds nothing to migrate, which
    saves ~0.9 s of Tortoise's migration planning per test); anything else starts from no schema."""
    migrated = await conn.fetchval("SELECT to_regclass('public.tortoise_migrations') IS NOT NULL")
    applied = sorted(await conn.fetch("SELECT name FROM tortoise_migrations")) if migrated else []
    if [r["name"] for r in applied] != MIGRATIONS:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        return
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                              "AND tablename <> 'tortoise_migrations'")
    names = ", ".join(f'"{r["tablename"]}"' for r in tables)
    await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


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


@pytest.fixture(params=["sqlite", "postgres"])
async def own_gql(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GraphQLClient]:
    """`gql` on a catalog database that no other test uses: for tests that break its schema (a
    table dropped in the shared PostgreSQL database fails the tests that come after)."""
    with contextlib.ExitStack() as stack:
        url = (f"sqlite://{tmp_path / 'own.db'}" if request.param == "sqlite"
               else stack.enter_context(fresh_database("modelyard_own")))
        application = create_app(Settings(data_dir=tmp_path / "data", database_url=url, admin_token=ADMIN_SECRET))
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield GraphQLClient(http)


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

    @property
    def catalog(self) -> list[str]:
        """Statements beyond authentication (the token lookup every request with a token makes,
        and the `last_used_at` it notes at most once a minute)."""
        return [s for s in self.statements if 'FROM "token"' not in s and not s.startswith('UPDATE "token"')]


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


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], probe: str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process started with `command`, once `probe` answers 200; stopped on exit."""
    log = log_path.open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(probe, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[2]} did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`modelyard serve` as a real process under uvicorn on a free loopback port (SQLite)."""
    port = free_port()
    data = tmp_path_factory.mktemp("live")
    env = {**os.environ, "MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port),
           "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET}
    env.pop("MODELYARD_DATABASE_URL", None)
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", data / "server.log"):
        yield url


@pytest.fixture(scope="module")
def pg_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two `modelyard serve` processes (replicas) on one PostgreSQL database of their own and one
    blob folder, each on its own free port: their URLs."""
    data = tmp_path_factory.mktemp("replicas")
    with fresh_database("modelyard_replicas") as db, contextlib.ExitStack() as stack:
        subprocess.run([sys.executable, "-m", "modelyard.cli", "migrate", "--database-url", db],
                       check=True, capture_output=True)
        urls = []
        for i in range(2):
            port = free_port()
            env = {**os.environ, "MODELYARD_DATABASE_URL": db, "MODELYARD_PORT": str(port),
                   "MODELYARD_DATA_DIR": str(data), "MODELYARD_STORAGE_URL": str(data / "blobs"),
                   "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET}
            url = f"http://127.0.0.1:{port}"
            stack.enter_context(running([sys.executable, "-m", "modelyard.cli", "serve"], env,
                                        f"{url}/healthz", data / f"replica{i}.log"))
            urls.append(url)
        yield urls


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run`'s server: the demo catalog seeded by scripts/demo/seed.py, then `modelyard
    serve` on it as a real process (SQLite), with the admin token set."""
    data = tmp_path_factory.mktemp("demo-ui")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    seed = Path(__file__).resolve().parents[1] / "scripts" / "demo" / "seed.py"
    done = subprocess.run([sys.executable, str(seed), "--data-dir", str(data)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    port = free_port()
    env = {**env, "MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port), "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET}
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", data / "server.log"):
        yield url


# --- Blob storage (issue 4): a real S3-compatible server and each BlobStore backend ----------

S3_KEYS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server (the same server ThreadedMotoServer runs) in its own process on a free port.

    Not in-process: moto keeps objects in memory, which would count in the storage tests'
    tracemalloc peaks, and warnings raised in its server thread would meet this suite's
    filterwarnings=error and turn into HTTP 500s.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with running(command, dict(os.environ), f"{url}/moto-api/data.json", tmp_path_factory.mktemp("moto") / "moto.log"):
        yield url


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client on the test server, to create, inspect and empty buckets."""
    import boto3
    import botocore.config

    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=S3_KEYS["region"],
        aws_access_key_id=S3_KEYS["access_key"], aws_secret_access_key=S3_KEYS["secret_key"],
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    yield client
    client.close()


def _drop_bucket(client: Any, bucket: str) -> None:
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(params=["local", "s3"])
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open BlobStore of each backend: a folder under tmp_path, or a fresh bucket on moto."""
    import anyio.to_thread

    from modelyard.storage import LocalBlobStore
    from modelyard.storage.s3 import S3BlobStore

    if request.param == "local":
        async with LocalBlobStore(tmp_path / "store") as local:
            yield local
        return
    admin = request.getfixturevalue("s3_admin")
    bucket = f"modelyard-{uuid.uuid4().hex[:12]}"
    await anyio.to_thread.run_sync(lambda: admin.create_bucket(Bucket=bucket))
    try:
        store = S3BlobStore(bucket, "registry", endpoint_url=request.getfixturevalue("s3_endpoint"), **S3_KEYS)
        async with store:
            yield store
    finally:
        await anyio.to_thread.run_sync(_drop_bucket, admin, bucket)


@pytest.fixture
async def store_client(settings: Settings, blob_store: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on each blob store backend (local folder, moto S3), downloads not redirected."""
    import dataclasses

    application = create_app(dataclasses.replace(settings, redirect_downloads=False), store=blob_store)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            c.headers["Authorization"] = f"Bearer {ADMIN_SECRET}"
            yield c


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs; the suite runs as root), to fill up."""
    disk = tmp_path / "tiny"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)
