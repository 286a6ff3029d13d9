"""Catalog benchmark: seed N models × V versions × P params, then time GraphQL over real HTTP.

For each database (a fresh SQLite file in a temp dir, a fresh PostgreSQL database created and
dropped here) the script seeds the catalog in-process, starts the real app under a real uvicorn
on a free loopback port in a background thread, and sends sequential GraphQL POSTs with httpx:

    floor  `{ __typename }`: HTTP + GraphQL with no SQL, the per-request floor
    (a)    the model page: a model, its versions with params, metrics, aliases, parents and
           the parents' models (also for a 5-version and a 50-version model: no N+1)
    (b)    a search across all versions: `lr < 1e-3 and accuracy > 0.9`, first 100
    (c)    the ancestors of a version 20 generations deep
    (d)    `createVersion` with P params, 2 metrics, 2 tags and 2 lineage parents

It prints p50/p95 latency (ms) and SQL statements per request (counted with a logging handler on
`tortoise.db_client`, as tests/conftest.py does), EXPLAIN output for the search and the lineage
walk, and a markdown table for the README.

    python scripts/bench/catalog.py --quick
    python scripts/bench/catalog.py [--models 1000 --versions 20 --params 30 --requests 200]
                                    [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import platform
import random
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from machine import command_line, git_state, machine
from tortoise import connections

from modelyard.app import create_app
from modelyard.catalog import aliases, datasets, models, versions
from modelyard.catalog.lineage import ParentSpec, Relation
from modelyard.catalog.manifest import manifest, manifest_digest
from modelyard.catalog.params import ParamKind, TypedParam, typed_param
from modelyard.config import Settings
from modelyard.db.database import close_database, open_database
from modelyard.db.tables import (
    AliasRow,
    DatasetRow,
    DatasetVersionRow,
    LineageEdgeRow,
    MetricPointRow,
    MetricRow,
    ModelRow,
    ParamRow,
    VersionRow,
    VersionTagRow,
)

PG_ADMIN_URL = os.environ.get(
    "MODELYARD_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_KINDS = ("sqlite", "postgres")
DB_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
FULL = {"models": 1000, "versions": 20, "params": 30, "requests": 200}
QUICK = {"models": 50, "versions": 10, "params": 30, "requests": 50}
CHAIN_GENERATIONS = 25  # the dedicated cross-model chain; (c) walks 20 of them
ANCESTOR_DEPTH = 20
SMALL_PAGE, LARGE_PAGE = 5, 50  # versions of the two models that check (a) for N+1
PAGE_SIZE = 100  # versions on the model page: the default largest page (max_page_size)
DATASETS, DATASET_VERSIONS = 10, 6
VERSIONS_PER_CHUNK = 2000  # seeding batch: bounded memory whatever N × V × P
LR_BELOW, ACCURACY_ABOVE = 1e-3, 0.9

# ---------------------------------------------------------------------------------------------
# GraphQL documents
# ---------------------------------------------------------------------------------------------

FLOOR_DOC = "{ __typename }"

MODEL_PAGE_DOC = """
query ModelPage($name: String!, $first: Int!) {
  model(name: $name) {
    id name namespace description task createdAt
    tags { key value }
    aliases { name version { number } }
    versions(first: $first) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        id number ref status manifestDigest createdAt
        params { key type value }
        metrics { key value step }
        aliases { name }
        parents {
          relation
          parent {
            __typename
            ... on ModelVersion { ref number model { name task } }
            ... on DatasetVersion { ref uri dataset { name } }
          }
        }
      }
    }
  }
}
"""

SEARCH_DOC = """
query Search($lt: Float!, $gt: Float!) {
  versions(first: 100, filter: {params: [{key: "lr", lt: $lt}],
                                metrics: [{key: "accuracy", gt: $gt}]}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      ref number createdAt
      model { name }
      param(key: "lr") { value }
      metric(key: "accuracy") { value }
    }
  }
}
"""

ANCESTORS_DOC = """
query Ancestors($ref: String!, $depth: Int!) {
  version(ref: $ref) {
    ref
    ancestors(depth: $depth) {
      depth relation
      child { ref }
      parent {
        __typename
        ... on ModelVersion { ref manifestDigest }
        ... on DatasetVersion { ref }
      }
    }
  }
}
"""

CREATE_DOC = """
mutation Create($input: CreateVersionInput!) {
  createVersion(input: $input) { ref number manifestDigest }
}
"""

VERIFY_DOC = """
query Verify($ref: String!) {
  version(ref: $ref) { ref manifestDigest model { name } params { key type value } }
}
"""

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------

ACTOR = "bench"
ADMIN_SECRET = "myd_" + "b" * 43  # the bench seeds it as the server's admin token


@dataclass(frozen=True)
class Options:
    """What to seed, where, and how many requests to time."""

    models: int
    versions: int
    params: int
    requests: int
    warmup: int
    dbs: tuple[str, ...]
    pg_admin_url: str
    seed: int
    explain: bool


def parse_options(argv: Sequence[str]) -> Options:
    """Options from the command line; `--quick` changes the defaults, explicit flags win."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, help="models to seed (default 1000; quick 50)")
    parser.add_argument("--versions", type=int, help="versions per model (default 20; quick 10)")
    parser.add_argument("--params", type=int, help="params per version (default 30)")
    parser.add_argument("--requests", type=int, help="timed requests per operation (default 200)")
    parser.add_argument("--warmup", type=int, help="untimed requests first (default R/10, 3..20)")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite,postgres (default both)")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL to create DBs on")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    parser.add_argument("--no-explain", action="store_true", help="skip the query plans")
    parser.add_argument("--quick", action="store_true", help="small run: 50 × 10 × 30, 50 requests")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    dbs = tuple(d.strip() for d in args.db.split(",") if d.strip())
    if not dbs or any(d not in DB_KINDS for d in dbs):
        parser.error(f"--db takes a comma list of {', '.join(DB_KINDS)}")
    if min(sizes.values()) < 1 or sizes["params"] > 1000:
        parser.error("sizes must be at least 1 (and at most 1000 params, the API's limit)")
    warmup = args.warmup if args.warmup is not None else max(3, min(20, sizes["requests"] // 10))
    return Options(
        models=sizes["models"], versions=sizes["versions"], params=sizes["params"],
        requests=sizes["requests"], warmup=max(1, warmup), dbs=dbs,
        pg_admin_url=args.pg_admin_url, seed=args.seed, explain=not args.no_explain,
    )


# ---------------------------------------------------------------------------------------------
# Fresh databases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """A fresh, empty catalog database and the settings to serve it."""

    kind: str
    url: str
    settings: Settings
    sqlite_path: Path | None = None


async def _pg_admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(kind: str, pg_admin_url: str) -> Iterator[Database]:
    """SQLite in a temp dir, or a new PostgreSQL database `modelyard_bench_<random>`; removed after."""
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        if kind == "sqlite":
            path = Path(tmp) / "catalog.db"
            url = f"sqlite://{path}"
            yield Database(kind, url, Settings(data_dir=data_dir, database_url=url, admin_token=ADMIN_SECRET), path)
            return
        name = f"modelyard_bench_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
        try:
            url = f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
            yield Database(kind, url, Settings(data_dir=data_dir, database_url=url, admin_token=ADMIN_SECRET))
        finally:
            asyncio.run(_pg_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ---------------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the measurements need to know about the seeded catalog."""

    model_names: list[str]
    dataset_refs: list[str]
    chain_tip: str
    small_model: str
    large_model: str
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionContent:
    """The random content of one version, as `createVersion` would receive it."""

    params: list[TypedParam]
    accuracy: float
    loss: float
    tags: dict[str, str]
    run: versions.RunInfo


_EXTRA_KINDS = ("float", "int", "string", "bool")


def random_params(rng: random.Random, count: int) -> list[TypedParam]:
    """`count` typed params: lr, epochs, batch_size, optimizer, … then extra_NN of mixed kinds."""
    named: list[tuple[str, Any]] = [
        ("lr", 10 ** rng.uniform(-5, -2)),
        ("epochs", rng.randint(1, 100)),
        ("batch_size", rng.choice([8, 16, 32, 64, 128, 256])),
        ("optimizer", rng.choice(["adam", "adamw", "sgd", "lion"])),
        ("use_amp", rng.random() < 0.5),
        ("dropout", rng.uniform(0.0, 0.5)),
        ("weight_decay", 10 ** rng.uniform(-6, -2)),
        ("scheduler", rng.choice(["cosine", "linear", "constant"])),
        ("seed", rng.randint(0, 2**31 - 1)),
        ("gradient_checkpointing", rng.random() < 0.5),
    ]
    for i in range(max(0, count - len(named))):
        kind = _EXTRA_KINDS[i % len(_EXTRA_KINDS)]
        value: Any = {
            "float": rng.uniform(-1.0, 1.0),
            "int": rng.randint(0, 10_000),
            "string": f"value-{rng.randint(0, 999)}",
            "bool": rng.random() < 0.5,
        }[kind]
        named.append((f"extra_{i:02d}", value))
    return [typed_param(key, value) for key, value in named[:count]]


def random_content(rng: random.Random, param_count: int) -> VersionContent:
    """Params, metrics, tags and run info of one version."""
    return VersionContent(
        params=random_params(rng, param_count),
        accuracy=rng.uniform(0.5, 0.99),
        loss=rng.uniform(0.01, 2.0),
        tags={"framework": rng.choice(["pytorch", "jax", "sklearn"]), "stage": "candidate"},
        run=versions.RunInfo(
            run_id=f"run-{rng.getrandbits(64):016x}",
            code_repository="https://git.example.com/ml/train",
            commit=f"{rng.getrandbits(160):040x}",
        ),
    )


def model_name(index: int) -> str:
    """`team-K/model-NNNNN`: names spread over ten namespaces."""
    return f"team-{index % 10}/model-{index:05d}"


async def _seed_datasets() -> list[str]:
    """DATASETS × DATASET_VERSIONS dataset versions, through the catalog service."""
    refs = []
    for d in range(DATASETS):
        for v in range(DATASET_VERSIONS):
            name, label = f"corpus-{d}", f"2024-{v + 1:02d}"
            await datasets.register_dataset(datasets.NewDatasetVersion(
                name=name, version=label, uri=f"s3://datasets/{name}/{label}/",
                digest="sha256:" + hashlib.sha256(f"{name}@{label}".encode()).hexdigest(),
                size=(d + 1) * (v + 1) * 1_000_000_000, description=f"{name} snapshot {label}",
            ), actor=ACTOR)
            refs.append(f"{name}@{label}")
    return refs


async def _bulk_models(names: list[str], version_count: int) -> dict[str, int]:
    """Insert the model rows (their version counter already at `version_count`); name → id."""
    tasks = [t for t in models.Task]
    await ModelRow.bulk_create([
        ModelRow(
            namespace=n.split("/")[0], name=n.split("/")[1], full_name=n,
            description=f"# {n}\n\nA model seeded by the catalog benchmark.",
            task=tasks[i % len(tasks)].value, tags={"owner": n.split("/")[0]},
            version_seq=version_count,
        )
        for i, n in enumerate(names)
    ], batch_size=5000)
    return dict(await ModelRow.filter(full_name__in=names).values_list("full_name", "id"))


def _version_row(model_id: int, full_name: str, number: int, content: VersionContent) -> VersionRow:
    """The version row `create_version` would insert for this content."""
    return VersionRow(
        model_id=model_id, number=number, description=f"{full_name} v{number}", status="READY",
        manifest_digest=manifest_digest(manifest(full_name, content.params, [])),
        run=content.run.as_json(), created_by=None,
    )


def _content_rows(version_id: int, content: VersionContent) -> list[Any]:
    """Param, metric, metric point and tag rows of one version, as `create_version` makes them."""
    rows: list[Any] = [
        ParamRow(version_id=version_id, key=p.key, kind=p.kind.value, num_value=p.num_value,
                 text_value=p.text_value, value_json=p.value_json)
        for p in content.params
    ]
    for key, value in (("accuracy", content.accuracy), ("loss", content.loss)):
        rows.append(MetricPointRow(version_id=version_id, key=key, value=value, step=None))
        rows.append(MetricRow(version_id=version_id, key=key, value=value, step=None))
    rows.extend(VersionTagRow(version_id=version_id, key=k, value=v) for k, v in content.tags.items())
    return rows


async def _bulk_insert(rows: list[Any]) -> None:
    """bulk_create rows grouped by table, in foreign-key-safe order."""
    for table in (ParamRow, MetricPointRow, MetricRow, VersionTagRow, LineageEdgeRow, AliasRow):
        of_table = [r for r in rows if type(r) is table]
        if of_table:
            await table.bulk_create(of_table, batch_size=20_000)


@dataclass
class _ChunkState:
    """What crosses seeding chunks: the base models' newest versions, the dataset versions."""

    rng: random.Random
    dataset_ids: list[int]
    base_count: int
    base_tips: dict[int, int] = field(default_factory=dict)


async def _seed_chunk(
    state: _ChunkState, chunk: list[tuple[int, str, int]], version_count: int, param_count: int
) -> None:
    """Versions of a few models with everything they carry, their lineage and aliases."""
    contents: dict[tuple[int, int], VersionContent] = {}
    rows = []
    for _, name, model_id in chunk:
        for number in range(1, version_count + 1):
            content = random_content(state.rng, param_count)
            contents[(model_id, number)] = content
            rows.append(_version_row(model_id, name, number, content))
    await VersionRow.bulk_create(rows, batch_size=5000)
    found = await VersionRow.filter(model_id__in=[c[2] for c in chunk]).values_list(
        "id", "model_id", "number"
    )
    ids = {(m, n): i for i, m, n in found}
    for index, _, model_id in chunk:
        if index < state.base_count:
            state.base_tips[index] = ids[(model_id, version_count)]
    extra: list[Any] = []
    for index, _, model_id in chunk:
        extra.extend(_model_rows(state, index, model_id, ids, contents, version_count))
    await _bulk_insert(extra)


def _model_rows(
    state: _ChunkState, index: int, model_id: int, ids: dict[tuple[int, int], int],
    contents: dict[tuple[int, int], VersionContent], version_count: int,
) -> list[Any]:
    """Content, lineage (fine-tune chain, base model, dataset) and aliases of one model."""
    out: list[Any] = []
    for number in range(1, version_count + 1):
        vid = ids[(model_id, number)]
        out.extend(_content_rows(vid, contents[(model_id, number)]))
        if number > 1:
            parent: int | None = ids[(model_id, number - 1)]
        else:
            parent = state.base_tips.get(index % state.base_count) if index >= state.base_count else None
        if parent is not None:
            out.append(LineageEdgeRow(child_id=vid, parent_version_id=parent,
                                      relation=Relation.FINE_TUNED_FROM.value))
        dataset = state.dataset_ids[(index + number) % len(state.dataset_ids)]
        out.append(LineageEdgeRow(child_id=vid, parent_dataset_id=dataset,
                                  relation=Relation.TRAINED_ON.value))
    if index % 2 == 0:
        target = ids[(model_id, max(1, version_count - 1 - index % 3))]
        out.append(AliasRow(model_id=model_id, name="production", version_id=target))
    if index % 4 == 0:
        out.append(AliasRow(model_id=model_id, name="staging",
                            version_id=ids[(model_id, version_count)]))
    return out


async def _service_version(
    rng: random.Random, model: str, param_count: int, parents: list[ParentSpec]
) -> VersionRow:
    """One version through `versions.create_version`, exactly as `createVersion` makes it."""
    content = random_content(rng, param_count)
    return await versions.create_version(versions.NewVersion(
        model=model, description=f"{model} via the catalog service", params=content.params,
        metrics=[versions.MetricPoint("accuracy", content.accuracy),
                 versions.MetricPoint("loss", content.loss)],
        tags=content.tags, run=content.run, lineage=parents,
    ), actor=ACTOR)


async def _seed_chain(rng: random.Random, dataset_refs: list[str], param_count: int) -> str:
    """CHAIN_GENERATIONS models, each version 1 fine-tuned from the previous one; the tip's ref."""
    previous: str | None = None
    for g in range(CHAIN_GENERATIONS):
        name = f"chain/gen-{g:02d}"
        await models.create_model(name, task=models.Task.TEXT_GENERATION, description="chain", actor=ACTOR)
        parents = [ParentSpec(dataset_refs[g % len(dataset_refs)], Relation.TRAINED_ON)]
        if previous is not None:
            parents.insert(0, ParentSpec(previous, Relation.FINE_TUNED_FROM))
        await _service_version(rng, name, param_count, parents)
        previous = f"{name}:1"
    assert previous is not None
    return previous


async def _seed_probe_model(
    rng: random.Random, name: str, count: int, dataset_refs: list[str], param_count: int
) -> str:
    """A model of `count` chained versions with a production alias, through the services."""
    await models.create_model(name, task=models.Task.TEXT_CLASSIFICATION, actor=ACTOR)
    for n in range(1, count + 1):
        parents = [ParentSpec(dataset_refs[n % len(dataset_refs)], Relation.TRAINED_ON)]
        if n > 1:
            parents.insert(0, ParentSpec(f"{name}:{n - 1}", Relation.FINE_TUNED_FROM))
        await _service_version(rng, name, param_count, parents)
    await aliases.set_alias(name, "production", str(max(1, count - 1)), actor=ACTOR)
    return name


async def _row_counts() -> dict[str, int]:
    tables = (ModelRow, VersionRow, ParamRow, MetricRow, MetricPointRow, VersionTagRow, AliasRow,
              DatasetRow, DatasetVersionRow, LineageEdgeRow)
    return {t._meta.db_table: await t.all().count() for t in tables}


async def _analyze_if_postgres() -> None:
    """Give PostgreSQL's planner statistics, as autovacuum would soon after a bulk load."""
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script("ANALYZE")


async def seed(db: Database, opts: Options) -> Seeded:
    """Migrate the fresh database and fill it; services for the few, bulk_create for the many."""
    started = time.perf_counter()
    rng = random.Random(opts.seed)
    await open_database(db.url)
    try:
        dataset_refs = await _seed_datasets()
        dataset_ids = list(await DatasetVersionRow.all().order_by("id").values_list("id", flat=True))
        names = [model_name(i) for i in range(opts.models)]
        ids = await _bulk_models(names, opts.versions)
        state = _ChunkState(rng, dataset_ids, base_count=max(1, min(10, opts.models // 10)))
        per_chunk = max(1, VERSIONS_PER_CHUNK // opts.versions)
        indexed = [(i, n, ids[n]) for i, n in enumerate(names)]
        for start in range(0, len(indexed), per_chunk):
            await _seed_chunk(state, indexed[start:start + per_chunk], opts.versions, opts.params)
        chain_tip = await _seed_chain(rng, dataset_refs, opts.params)
        small = await _seed_probe_model(rng, "probe/five", SMALL_PAGE, dataset_refs, opts.params)
        large = await _seed_probe_model(rng, "probe/fifty", LARGE_PAGE, dataset_refs, opts.params)
        await _analyze_if_postgres()
        rows = await _row_counts()
    finally:
        await close_database()
    return Seeded(names, dataset_refs, chain_tip, small, large,
                  seconds=time.perf_counter() - started, rows=rows)


# ---------------------------------------------------------------------------------------------
# The live server and SQL counting
# ---------------------------------------------------------------------------------------------


class SqlCounter(logging.Handler):
    """Counts the SQL statements Tortoise sends (and keeps them while `keep` is set)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.keep = False
        self.kept: list[tuple[str, list[Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in ("%s: %s", "%s") and record.args:
            self.count += 1
            if self.keep:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                values: Any = args[1] if len(args) > 1 and args[1] else []
                self.kept.append((str(args[0]), list(values)))


@contextlib.contextmanager
def counting(counter: SqlCounter) -> Iterator[SqlCounter]:
    """Attach `counter` to `tortoise.db_client` at DEBUG for the duration of the block."""
    logger = logging.getLogger("tortoise.db_client")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old_level)


@contextlib.contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a free 127.0.0.1 port, in a background thread; its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no race for shared ports
    port = int(sock.getsockname()[1])
    app = create_app(settings)
    gc.collect()  # as `modelyard serve` does before it starts uvicorn
    gc.freeze()
    config = uvicorn.Config(app, host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def graphql(client: httpx.Client, payload: dict[str, Any]) -> dict[str, Any]:
    """POST one GraphQL request; its data, or an exception carrying the errors."""
    response = client.post("/graphql", json=payload)
    return _data(response)


def _data(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


# ---------------------------------------------------------------------------------------------
# Operations and measurement
# ---------------------------------------------------------------------------------------------

Payload = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One measured request kind: the i-th request's payload, and a check of its answer."""

    key: str
    label: str
    payload: Callable[[int], Payload]
    check: Callable[[dict[str, Any]], None] = lambda data: None


@dataclass
class Result:
    """Latencies (ms) of the timed requests and statements of the counted ones."""

    op: Operation
    latencies: list[float]
    statements: list[int]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[94]

    @property
    def sql(self) -> str:
        low, high = min(self.statements), max(self.statements)
        return str(low) if low == high else f"{low}–{high}"


def measure(client: httpx.Client, counter: SqlCounter, op: Operation, opts: Options) -> Result:
    """Warm up while counting statements, then time `opts.requests` sequential requests."""
    statements = []
    with counting(counter):
        for i in range(opts.warmup):
            before = counter.count
            op.check(graphql(client, op.payload(i)))
            statements.append(counter.count - before)
    latencies = []
    for i in range(opts.warmup, opts.warmup + opts.requests):
        payload = op.payload(i)
        started = time.perf_counter()
        response = client.post("/graphql", json=payload)
        latencies.append((time.perf_counter() - started) * 1000)
        op.check(_data(response))
    return Result(op, latencies, statements)


def _spread(items: Sequence[str], i: int) -> str:
    """A different item for consecutive requests, visiting all of them (a large prime stride)."""
    return items[(i * 7919) % len(items)]


def _check_page(expected: int | None) -> Callable[[dict[str, Any]], None]:
    def check(data: dict[str, Any]) -> None:
        page = data["model"]["versions"]
        if expected is not None and len(page["nodes"]) != min(expected, PAGE_SIZE):
            raise RuntimeError(f"model page has {len(page['nodes'])} versions, want {expected}")

    return check


def _check_search(data: dict[str, Any]) -> None:
    for node in data["versions"]["nodes"]:
        if not (node["param"]["value"] < LR_BELOW and node["metric"]["value"] > ACCURACY_ABOVE):
            raise RuntimeError(f"search returned a version outside the filter: {node}")


def _check_ancestors(data: dict[str, Any]) -> None:
    depths = {e["depth"] for e in data["version"]["ancestors"]}
    if max(depths) != ANCESTOR_DEPTH:
        raise RuntimeError(f"ancestors reach depth {max(depths)}, want {ANCESTOR_DEPTH}")


def _create_input(rng: random.Random, seeded: Seeded, opts: Options, i: int) -> Payload:
    """A createVersion input: P typed params, 2 metrics, 2 tags, fine-tuned from the latest."""
    model = seeded.model_names[(i * 104_729 + 17) % len(seeded.model_names)]
    content = random_content(rng, opts.params)
    return {
        "model": model,
        "description": "created by the benchmark",
        "params": [{"key": p.key, "value": p.value, "type": p.kind.name} for p in content.params],
        "metrics": [{"key": "accuracy", "value": content.accuracy},
                    {"key": "loss", "value": content.loss}],
        "tags": [{"key": k, "value": v} for k, v in content.tags.items()],
        "lineage": [
            {"parent": model, "relation": "FINE_TUNED_FROM"},
            {"parent": _spread(seeded.dataset_refs, i), "relation": "TRAINED_ON"},
        ],
    }


def operations(seeded: Seeded, opts: Options) -> list[Operation]:
    """The floor, (a) at three sizes, (b), (c) and (d), in the order they run ((d) writes last)."""
    rng = random.Random(opts.seed + 1)

    def page(name: str) -> Callable[[int], Payload]:
        return lambda i: {"query": MODEL_PAGE_DOC, "variables": {"name": name, "first": PAGE_SIZE}}

    return [
        Operation("floor", "`{ __typename }` (HTTP + GraphQL floor)",
                  lambda i: {"query": FLOOR_DOC}),
        Operation("page", f"(a) model page, {opts.versions} versions",
                  lambda i: {"query": MODEL_PAGE_DOC,
                             "variables": {"name": _spread(seeded.model_names, i),
                                           "first": PAGE_SIZE}},
                  _check_page(opts.versions)),
        Operation("page_small", f"(a) model page, {SMALL_PAGE} versions",
                  page(seeded.small_model), _check_page(SMALL_PAGE)),
        Operation("page_large", f"(a) model page, {LARGE_PAGE} versions",
                  page(seeded.large_model), _check_page(LARGE_PAGE)),
        Operation("search", f"(b) search `lr < {LR_BELOW:g} and accuracy > {ACCURACY_ABOVE}`, "
                  "first 100 + totalCount",
                  lambda i: {"query": SEARCH_DOC,
                             "variables": {"lt": LR_BELOW, "gt": ACCURACY_ABOVE}},
                  _check_search),
        Operation("ancestors", f"(c) ancestors {ANCESTOR_DEPTH} generations deep",
                  lambda i: {"query": ANCESTORS_DOC,
                             "variables": {"ref": seeded.chain_tip, "depth": ANCESTOR_DEPTH}},
                  _check_ancestors),
        Operation("create", f"(d) createVersion: {opts.params} params, 2 metrics, 2 parents",
                  lambda i: {"query": CREATE_DOC,
                             "variables": {"input": _create_input(rng, seeded, opts, i)}}),
    ]


def verify_seed(client: httpx.Client, seeded: Seeded) -> int:
    """Recompute manifest digests from params read over the API; the number of versions checked."""
    refs = [f"{seeded.model_names[0]}:1", f"{seeded.model_names[-1]}:1",
            f"{seeded.model_names[len(seeded.model_names) // 2]}", seeded.chain_tip]
    for ref in refs:
        v = graphql(client, {"query": VERIFY_DOC, "variables": {"ref": ref}})["version"]
        params = [typed_param(p["key"], p["value"], ParamKind[p["type"]]) for p in v["params"]]
        digest = manifest_digest(manifest(v["model"]["name"], params, []))
        if digest != v["manifestDigest"]:
            raise RuntimeError(f"seeded {ref}: manifest digest {v['manifestDigest']} != {digest}")
    return len(refs)


# ---------------------------------------------------------------------------------------------
# Query plans
# ---------------------------------------------------------------------------------------------


def capture(client: httpx.Client, counter: SqlCounter, payload: Payload) -> list[tuple[str, list[Any]]]:
    """The statements (text and values) one request sends."""
    counter.kept.clear()
    counter.keep = True
    try:
        with counting(counter):
            graphql(client, payload)
    finally:
        counter.keep = False
    return list(counter.kept)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def explain_sqlite(path: Path, statement: str, values: list[Any]) -> list[str]:
    """EXPLAIN QUERY PLAN as an indented tree, plus the statement's median time over 5 runs."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", values).fetchall()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node_id, parent, _, detail in rows:
            depth[node_id] = depth.get(parent, 0) + 1
            lines.append("  " * depth[node_id] + detail)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            conn.execute(statement, values).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        lines.append(f"  (sqlite3 direct: median {statistics.median(times):.1f} ms over 5 runs)")
        return lines
    finally:
        conn.close()


def _pg_literal(value: Any) -> str:
    """A bind value written as SQL, for `EXECUTE` of a prepared statement."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no literal for {value!r}")


async def _prepared_timings(conn: asyncpg.Connection, statement: str, values: list[Any]) -> str:
    """Times of 10 executions of one prepared statement, as asyncpg runs it under Tortoise."""
    prepared = await conn.prepare(statement)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        await prepared.fetch(*values)
        times.append((time.perf_counter() - started) * 1000)
    first, later = statistics.median(times[:5]), statistics.median(times[5:])
    return (f"  (asyncpg prepared statement: executions 1–5 median {first:.1f} ms, "
            f"6–10 median {later:.1f} ms{'  <-- SLOWER: generic plan' if later > 2 * first + 1 else ''})")


async def explain_postgres(url: str, statement: str, values: list[Any]) -> list[str]:
    """The custom plan, the generic plan PostgreSQL may switch to after 5 runs, and run times."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *values)
        lines = ["  custom plan (EXPLAIN ANALYZE with these values):"]
        lines += ["    " + r[0] for r in rows]
        with contextlib.suppress(TypeError):
            args = ", ".join(_pg_literal(v) for v in values)
            await conn.execute(f"PREPARE bench_plan AS {statement}")
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            rows = await conn.fetch(f"EXPLAIN (ANALYZE) EXECUTE bench_plan({args})" if args
                                    else "EXPLAIN (ANALYZE) EXECUTE bench_plan")
            await conn.execute("RESET plan_cache_mode; DEALLOCATE bench_plan")
            lines += ["  generic plan (what a prepared statement may use from its 6th run):"]
            lines += ["    " + r[0] for r in rows]
        lines.append(await _prepared_timings(conn, statement, values) + "  [plan_cache_mode=auto]")
        # What the server does: modelyard's connections run with force_custom_plan.
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        lines.append(await _prepared_timings(conn, statement, values) + "  [force_custom_plan, as served]")
        return lines
    finally:
        await conn.close()


def print_plans(db: Database, client: httpx.Client, counter: SqlCounter, seeded: Seeded) -> None:
    """Plans of the search statements (b) and of the recursive lineage walk (c)."""
    wanted = [
        ("(b)", {"query": SEARCH_DOC, "variables": {"lt": LR_BELOW, "gt": ACCURACY_ABOVE}},
         "FROM model_version v WHERE"),
        ("(c)", {"query": ANCESTORS_DOC,
                 "variables": {"ref": seeded.chain_tip, "depth": ANCESTOR_DEPTH}},
         "WITH RECURSIVE"),
    ]
    print(f"\nQuery plans on {DB_TITLES[db.kind]}:")
    for label, payload, marker in wanted:
        for text, values in capture(client, counter, payload):
            if marker not in text:
                continue
            print(f"\n{label} {_one_line(text)}\n    values: {values}")
            if db.sqlite_path is not None:
                lines = explain_sqlite(db.sqlite_path, text, values)
            else:
                lines = asyncio.run(explain_postgres(db.url, text, values))
            print("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------


@dataclass
class DbRun:
    """Everything measured on one database."""

    kind: str
    seeded: Seeded
    results: list[Result]
    server_version: str
    load: tuple[float, float]  # 1-minute load average before and after the measurements

    def result(self, key: str) -> Result:
        return next(r for r in self.results if r.op.key == key)


def _server_version(client: httpx.Client, db: Database) -> str:
    if db.kind == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"

    async def version() -> str:
        conn = await asyncpg.connect(db.url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return f"PostgreSQL {asyncio.run(version())}"


def run_database(kind: str, opts: Options) -> DbRun:
    """Fresh database → seed → live server → measure every operation → plans."""
    with fresh_database(kind, opts.pg_admin_url) as db:
        print(f"\n== {DB_TITLES[kind]}: seeding {opts.models} models × {opts.versions} versions × "
              f"{opts.params} params …", flush=True)
        seeded = asyncio.run(seed(db, opts))
        print(f"seeded in {seeded.seconds:.1f} s: "
              + ", ".join(f"{k} {v:,}" for k, v in seeded.rows.items()), flush=True)
        counter = SqlCounter()
        with live_server(db.settings) as url, httpx.Client(
            base_url=url, timeout=300, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
        ) as client:
            checked = verify_seed(client, seeded)
            print(f"verified {checked} seeded versions over the API (manifest digests match)")
            load_before = os.getloadavg()[0]
            results = []
            for op in operations(seeded, opts):
                results.append(measure(client, counter, op, opts))
                r = results[-1]
                print(f"  {op.label}: p50 {r.p50:.2f} ms, p95 {r.p95:.2f} ms, SQL {r.sql}",
                      flush=True)
            load = (load_before, os.getloadavg()[0])
            server_version = _server_version(client, db)
            if opts.explain:
                print_plans(db, client, counter, seeded)
        return DbRun(kind, seeded, results, server_version, load)


def plain_table(run: DbRun, opts: Options) -> str:
    """One database's figures as a fixed-width table."""
    width = max(len(r.op.label) for r in run.results)
    head = f"{'operation':<{width}} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'SQL/req':>8}"
    title = (f"{run.server_version} — {opts.models} models × {opts.versions} versions × "
             f"{opts.params} params, seeded in {run.seeded.seconds:.1f} s, "
             f"{opts.requests} timed requests each after {opts.warmup} warm-up, "
             f"load average {run.load[0]:.2f} → {run.load[1]:.2f} ({os.cpu_count()} CPUs); "
             "SQL/req counted on the warm-up requests, latency timed with no log handler")
    lines = [title, head, "-" * len(head)]
    for r in run.results:
        lines.append(f"{r.op.label:<{width}} {r.p50:>8.2f} {r.p95:>8.2f} "
                     f"{statistics.fmean(r.latencies):>8.2f} {r.sql:>8}")
    small, large = run.result("page_small"), run.result("page_large")
    grows = max(large.statements) > max(small.statements)
    verdict = "grows with rows: N+1" if grows else "does not grow with rows: no N+1"
    lines.append(f"N+1 check (a): {small.sql} statements for {SMALL_PAGE} versions, "
                 f"{large.sql} for {LARGE_PAGE} ({verdict})")
    return "\n".join(lines)


def markdown_table(runs: list[DbRun]) -> str:
    """Operations as rows, p50/p95/statements per database as columns."""
    head = ["operation"]
    for run in runs:
        t = DB_TITLES[run.kind]
        head += [f"{t} p50 ms", f"{t} p95 ms", f"{t} SQL/req"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for i, result in enumerate(runs[0].results):
        cells = [result.op.label]
        for run in runs:
            r = run.results[i]
            cells += [f"{r.p50:.1f}", f"{r.p95:.1f}", r.sql]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(f"{DB_TITLES[r.kind]} {r.seeded.seconds:.0f} s" for r in runs)
    return "\n".join(lines) + f"\n\nSeeding (not measured): {seeds}."


def environment() -> str:
    """Machine and software, so the figures can be compared."""
    return (f"modelyard {git_state()}; Python {platform.python_version()}, "
            f"uvicorn {uvicorn.__version__}, {machine()}; "
            f"client and server in one process (server in a thread), sequential requests")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every requested database and print the tables."""
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    print(f"$ {command_line()}\n{environment()}", flush=True)
    runs = [run_database(kind, opts) for kind in opts.dbs]
    print()
    for run in runs:
        print(plain_table(run, opts) + "\n")
    print(markdown_table(runs))
    print(f"\nCommand: `{command_line()}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
