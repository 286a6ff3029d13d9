"""Catalog benchmark: seed N models × V versions × P params × 10 metrics, then time GraphQL over
real HTTP, and beside each figure the SQL floor: what the request's own statements cost alone.

For each database (a fresh SQLite file in a temp dir, a fresh PostgreSQL database created and
dropped here) the script seeds the catalog in-process, starts the real app under a real uvicorn
on a free loopback port in a background thread, and sends sequential GraphQL POSTs with httpx:

    floor  `{ __typename }`: HTTP + GraphQL with no catalog SQL, the per-request floor
    (a)    the model page: a model, its versions with params, metrics, aliases, parents and
           the parents' models (also for a 5-version and a 50-version model: no N+1)
    (b)    a search page: `lr < 1e-3 and accuracy > 0.9`, first 100 ordered by (model name,
           version number), two projected fields; again with totalCount (counting every match)
    (c)    the ancestors of a version 20 generations deep
    (d)    `createVersion` with P params, 10 metrics, 2 tags and 2 lineage parents

It prints p50/p95 latency (ms) and SQL statements per request (counted with a logging handler on
`tortoise.db_client`, as tests/conftest.py does). The SQL floor of an operation: the statements
one request sends, captured with their values, executed again directly on the database outside
the app, one after the other, summed, median over R repetitions: sqlite3 on the same file, or
one asyncpg connection with each statement prepared once (and `plan_cache_mode =
force_custom_plan`, as the server's connections). No server can spend less on that request's
data; request p50 / floor p50 is what the app adds (HTTP, GraphQL, ORM, Python). The writes of
(d) run inside a transaction rolled back after every repetition, after (untimed, in the same
transaction) deleting the version the captured request created and rewinding the id sequence, so
the replayed INSERTs get the same number and id; that floor has no COMMIT (no fsync).

Also printed: the goals of issue 14 beside the measured p50, the load average before and after,
EXPLAIN output for the search and the lineage walk, and a markdown table for the README.

    python scripts/bench/catalog.py --quick
    python scripts/bench/catalog.py [--models 200 --versions 20 --params 30 --requests 200]
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
FULL = {"models": 200, "versions": 20, "params": 30, "requests": 200}
QUICK = {"models": 50, "versions": 10, "params": 30, "requests": 50}
CHAIN_GENERATIONS = 25  # the dedicated cross-model chain; (c) walks 20 of them
ANCESTOR_DEPTH = 20
SMALL_PAGE, LARGE_PAGE = 5, 50  # versions of the two models that check (a) for N+1
PAGE_SIZE = 100  # versions on the model page: the default largest page (max_page_size)
DATASETS, DATASET_VERSIONS = 10, 6
VERSIONS_PER_CHUNK = 2000  # seeding batch: bounded memory whatever N × V × P
LR_BELOW, ACCURACY_ABOVE = 1e-3, 0.9
SEARCH_PAGE = 100  # rows of the search page (b)
METRIC_KEYS = ("accuracy", "loss", "precision", "recall", "f1", "auc",
               "val_accuracy", "val_loss", "latency_ms", "throughput")
# Issue 14's goals for p50 (ms), by operation key; `page` is the 20-version model page.
GOALS = {"page": 25.0, "page_large": 60.0, "ancestors": 20.0, "search": 20.0}
GOAL_PAGE_VERSIONS = 20

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

BY_NAME = "[{field: MODEL_NAME, descending: false}, {field: NUMBER, descending: false}]"
BY_NUMBER = "{field: NUMBER, descending: false}"  # for a server without MODEL_NAME (before issue 14)

SEARCH_DOC = """
query Search($lt: Float!, $gt: Float!) {
  versions(first: 100,
           filter: {params: [{key: "lr", lt: $lt}], metrics: [{key: "accuracy", gt: $gt}]},
           orderBy: [{field: MODEL_NAME, descending: false}, {field: NUMBER, descending: false}]) {
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

# The same page and the number of all matches: counting them is extra work, measured apart.
SEARCH_COUNT_DOC = SEARCH_DOC.replace("query Search(", "query SearchCount(").replace(
    "    pageInfo {", "    totalCount\n    pageInfo {")

ORDER_FIELDS_DOC = '{ __type(name: "VersionOrderField") { enumValues { name } } }'


def search_doc(order: str, total_count: bool = False) -> str:
    """SEARCH_DOC (or SEARCH_COUNT_DOC) with `order` as its orderBy."""
    return (SEARCH_COUNT_DOC if total_count else SEARCH_DOC).replace(BY_NAME, order)

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
    parser.add_argument("--models", type=int, help="models to seed (default 200; quick 50)")
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


async def pg_admin(admin_url: str, statement: str) -> None:
    """Run one statement on the admin connection (CREATE/DROP DATABASE)."""
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
        asyncio.run(pg_admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
        try:
            url = f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
            yield Database(kind, url, Settings(data_dir=data_dir, database_url=url, admin_token=ADMIN_SECRET))
        finally:
            asyncio.run(pg_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
    more_metrics: dict[str, float] = field(default_factory=dict)  # the other 8 of METRIC_KEYS

    def metrics(self) -> list[tuple[str, float]]:
        """Every metric, accuracy and loss first: (key, value)."""
        return [("accuracy", self.accuracy), ("loss", self.loss), *self.more_metrics.items()]


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


def random_metrics(rng: random.Random, accuracy: float, loss: float) -> dict[str, float]:
    """The 8 metrics besides accuracy and loss, consistent with them (f1 from precision, recall)."""
    precision = min(0.999, accuracy * rng.uniform(0.9, 1.05))
    recall = min(0.999, accuracy * rng.uniform(0.9, 1.05))
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "auc": min(0.999, accuracy + rng.uniform(0.0, 0.08)),
        "val_accuracy": accuracy * rng.uniform(0.93, 1.0),
        "val_loss": loss * rng.uniform(1.0, 1.3),
        "latency_ms": rng.uniform(2.0, 200.0),
        "throughput": rng.uniform(100.0, 10_000.0),
    }


def random_content(rng: random.Random, param_count: int) -> VersionContent:
    """Params, 10 metrics, tags and run info of one version."""
    params = random_params(rng, param_count)
    accuracy, loss = rng.uniform(0.5, 0.99), rng.uniform(0.01, 2.0)
    return VersionContent(
        params=params,
        accuracy=accuracy,
        loss=loss,
        more_metrics=random_metrics(rng, accuracy, loss),
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
    for key, value in content.metrics():
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
        metrics=[versions.MetricPoint(key, value) for key, value in content.metrics()],
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
    """Counts the SQL statements Tortoise sends (and keeps them while `keep` is set).

    `kept` holds (text, values); `methods` the client method that sent each one (`execute_many`:
    the values are a list of rows; `execute_script`: no values), for replaying them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.keep = False
        self.kept: list[tuple[str, list[Any]]] = []
        self.methods: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in ("%s: %s", "%s") and record.args:
            self.count += 1
            if self.keep:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                values: Any = args[1] if len(args) > 1 and args[1] else []
                self.kept.append((str(args[0]), list(values)))
                self.methods.append(record.funcName)


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
    creates_version: bool = False  # its SQL floor must first undo the version it created


@dataclass
class Result:
    """Latencies (ms) of the timed requests and statements of the counted ones."""

    op: Operation
    latencies: list[float]
    statements: list[int]
    floor: Floor | None = None  # the SQL floor of one request's statements

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


def _check_search(data: dict[str, Any], order: str = BY_NAME) -> None:
    """Every row inside the filter, rows in `order` ((model name, number) or number alone),
    a full page when there are more, as many rows as totalCount allows when it is asked for."""
    page = data["versions"]
    nodes = page["nodes"]
    for node in nodes:
        if not (node["param"]["value"] < LR_BELOW and node["metric"]["value"] > ACCURACY_ABOVE):
            raise RuntimeError(f"search returned a version outside the filter: {node}")
    keys = [(node["model"]["name"], node["number"]) for node in nodes]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"search returned a version twice: {keys}")
    in_order = keys == sorted(keys) if order == BY_NAME else keys == sorted(keys, key=lambda k: k[1])
    if not in_order:
        raise RuntimeError(f"search rows are not ordered by {order}: {keys[:10]} …")
    if len(nodes) > SEARCH_PAGE or (page["pageInfo"]["hasNextPage"] and len(nodes) < SEARCH_PAGE):
        raise RuntimeError(f"search page has {len(nodes)} rows, want {SEARCH_PAGE} or the last few")
    if "totalCount" in page and len(nodes) != min(SEARCH_PAGE, page["totalCount"]):
        raise RuntimeError(f"search page has {len(nodes)} rows of {page['totalCount']} matches")


def search_order(client: httpx.Client) -> str:
    """BY_NAME, or BY_NUMBER when the server's VersionOrderField has no MODEL_NAME yet."""
    values = graphql(client, {"query": ORDER_FIELDS_DOC})["__type"]["enumValues"]
    return BY_NAME if "MODEL_NAME" in {v["name"] for v in values} else BY_NUMBER


def _check_ancestors(data: dict[str, Any]) -> None:
    depths = {e["depth"] for e in data["version"]["ancestors"]}
    if max(depths) != ANCESTOR_DEPTH:
        raise RuntimeError(f"ancestors reach depth {max(depths)}, want {ANCESTOR_DEPTH}")


def _create_input(rng: random.Random, seeded: Seeded, opts: Options, i: int) -> Payload:
    """A createVersion input: P typed params, 10 metrics, 2 tags, fine-tuned from the latest."""
    model = seeded.model_names[(i * 104_729 + 17) % len(seeded.model_names)]
    content = random_content(rng, opts.params)
    return {
        "model": model,
        "description": "created by the benchmark",
        "params": [{"key": p.key, "value": p.value, "type": p.kind.name} for p in content.params],
        "metrics": [{"key": k, "value": v} for k, v in content.metrics()],
        "tags": [{"key": k, "value": v} for k, v in content.tags.items()],
        "lineage": [
            {"parent": model, "relation": "FINE_TUNED_FROM"},
            {"parent": _spread(seeded.dataset_refs, i), "relation": "TRAINED_ON"},
        ],
    }


def operations(seeded: Seeded, opts: Options, order: str = BY_NAME) -> list[Operation]:
    """The floor, (a) at three sizes, (b) twice, (c) and (d), in the order they run ((d) writes
    last); `order`: the search's orderBy (BY_NUMBER only for a server without MODEL_NAME)."""
    rng = random.Random(opts.seed + 1)
    search_variables = {"lt": LR_BELOW, "gt": ACCURACY_ABOVE}
    by = "(model, number)" if order == BY_NAME else "number (server lacks MODEL_NAME)"

    def check_search(data: dict[str, Any]) -> None:
        _check_search(data, order)

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
                  f"first {SEARCH_PAGE} by {by}",
                  lambda i: {"query": search_doc(order), "variables": search_variables},
                  check_search),
        Operation("search_count", "(b) the same page + totalCount (counts every match)",
                  lambda i: {"query": search_doc(order, total_count=True),
                             "variables": search_variables},
                  check_search),
        Operation("ancestors", f"(c) ancestors {ANCESTOR_DEPTH} generations deep",
                  lambda i: {"query": ANCESTORS_DOC,
                             "variables": {"ref": seeded.chain_tip, "depth": ANCESTOR_DEPTH}},
                  _check_ancestors),
        Operation("create", f"(d) createVersion: {opts.params} params, {len(METRIC_KEYS)} "
                  "metrics, 2 parents",
                  lambda i: {"query": CREATE_DOC,
                             "variables": {"input": _create_input(rng, seeded, opts, i)}},
                  creates_version=True),
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
# The SQL floor: one request's statements, executed again directly on the database
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement a request sent: its text in the connection's placeholders, values as sent."""

    text: str
    values: list[Any]
    method: str  # the Tortoise client method that sent it

    @property
    def many(self) -> bool:
        """Sent with executemany: `values` is a list of rows."""
        return self.method == "execute_many"

    @property
    def writes(self) -> bool:
        return not re.match(r"\s*(SELECT|WITH)\b", self.text, re.IGNORECASE)


@dataclass(frozen=True)
class Floor:
    """The SQL floor of an operation: each repetition's summed statement times (ms)."""

    statements: int
    times: list[float]
    rolled_back: bool  # the statements write: run in a transaction rolled back each time

    @property
    def p50(self) -> float:
        return statistics.median(self.times) if self.times else 0.0


def capture_statements(
    client: httpx.Client, counter: SqlCounter, payload: Payload
) -> tuple[list[Statement], dict[str, Any]]:
    """The statements one request sends, with their values, and the request's data."""
    counter.kept.clear()
    counter.methods.clear()
    counter.keep = True
    try:
        with counting(counter):
            data = graphql(client, payload)
    finally:
        counter.keep = False
    kept = zip(counter.kept, counter.methods, strict=True)
    return [Statement(text, values, method) for (text, values), method in kept], data


def capture(client: httpx.Client, counter: SqlCounter, payload: Payload) -> list[tuple[str, list[Any]]]:
    """The statements (text and values) one request sends."""
    return [(s.text, s.values) for s in capture_statements(client, counter, payload)[0]]


_CREATED_ID = {  # the version a createVersion request made, by model name and number
    "sqlite": "SELECT v.id FROM model_version v JOIN model m ON m.id = v.model_id "
              "WHERE m.full_name = ? AND v.number = ?",
    "postgres": "SELECT v.id FROM model_version v JOIN model m ON m.id = v.model_id "
                "WHERE m.full_name = $1 AND v.number = $2",
}


def _sqlite_undo(conn: sqlite3.Connection, version_id: int) -> None:
    """Inside the replay's transaction: the created version gone (its rows cascade) and its id
    next again, so the replayed INSERTs find the same number free and get the same id."""
    conn.execute("DELETE FROM model_version WHERE id = ?", [version_id])
    conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'model_version'", [version_id - 1])


def sqlite_floor(path: Path, statements: list[Statement], created: int | None,
                 opts: Options) -> Floor:
    """Execute the statements with sqlite3 on the catalog file, warm-up then timed repetitions.

    The connection is in autocommit mode with foreign keys on, as Tortoise's; statements that
    write run in a transaction rolled back after each repetition (`created`: undo that first)."""
    writes = any(s.writes for s in statements)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        times = []
        for i in range(opts.warmup + opts.requests):
            if writes:
                conn.execute("BEGIN")
                if created is not None:
                    _sqlite_undo(conn, created)
            started = time.perf_counter()
            for s in statements:
                if s.many:
                    conn.executemany(s.text, s.values)
                else:
                    conn.execute(s.text, s.values).fetchall()
            elapsed = (time.perf_counter() - started) * 1000
            if writes:
                conn.execute("ROLLBACK")
            if i >= opts.warmup:
                times.append(elapsed)
        return Floor(len(statements), times, writes)
    finally:
        conn.close()


async def _pg_undo(conn: asyncpg.Connection, sequence: str, version_id: int) -> None:
    """As `_sqlite_undo`; `setval` is not transactional: `postgres_floor` restores it after."""
    await conn.execute("DELETE FROM model_version WHERE id = $1", version_id)
    await conn.execute("SELECT setval($1, $2)", sequence, version_id - 1)


async def postgres_floor(url: str, statements: list[Statement], created: int | None,
                         opts: Options) -> Floor:
    """Execute the statements on one asyncpg connection, each prepared once, then timed.

    `plan_cache_mode = force_custom_plan` as the server's connections (modelyard.db.database);
    statements that write run in a transaction rolled back after each repetition."""
    writes = any(s.writes for s in statements)
    conn = await asyncpg.connect(url, server_settings={"plan_cache_mode": "force_custom_plan"})
    try:
        prepared = [await conn.prepare(s.text) for s in statements]
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence('model_version', 'id')")
        times = []
        try:
            for i in range(opts.warmup + opts.requests):
                if writes:
                    await conn.execute("BEGIN")
                    if created is not None:
                        await _pg_undo(conn, sequence, created)
                started = time.perf_counter()
                for s, statement in zip(statements, prepared, strict=True):
                    if s.many:
                        await statement.executemany(s.values)
                    else:
                        await statement.fetch(*s.values)
                elapsed = (time.perf_counter() - started) * 1000
                if writes:
                    await conn.execute("ROLLBACK")
                if i >= opts.warmup:
                    times.append(elapsed)
        finally:
            if created is not None:  # the sequence as the captured request left it
                await conn.execute("SELECT setval($1, $2)", sequence, created)
        return Floor(len(statements), times, writes)
    finally:
        await conn.close()


def _created_version_id(db: Database, payload: Payload, data: dict[str, Any]) -> int:
    """The id of the version a createVersion request made; it must be the newest."""
    values = [payload["variables"]["input"]["model"], data["createVersion"]["number"]]

    async def pg() -> tuple[int, int]:
        conn = await asyncpg.connect(db.url)
        try:
            return (await conn.fetchval(_CREATED_ID["postgres"], *values),
                    await conn.fetchval("SELECT max(id) FROM model_version"))
        finally:
            await conn.close()

    if db.sqlite_path is not None:
        with contextlib.closing(sqlite3.connect(db.sqlite_path)) as conn:
            found = (conn.execute(_CREATED_ID["sqlite"], values).fetchone()[0],
                     conn.execute("SELECT max(id) FROM model_version").fetchone()[0])
    else:
        found = asyncio.run(pg())
    if found[0] != found[1]:
        raise RuntimeError(f"the created version {found[0]} is not the newest ({found[1]})")
    return int(found[0])


def sql_floor(db: Database, client: httpx.Client, counter: SqlCounter, op: Operation,
              opts: Options) -> Floor:
    """Capture one more request of `op`, then time its statements directly on the database.

    A request just before it makes sure the captured one is not the one that touches the
    token's `last_used_at` (once a minute): the floor is that of a typical request. After a
    write's floor one more request checks the database is as the captured request left it."""
    n = opts.warmup + opts.requests
    op.check(graphql(client, op.payload(n)))
    payload = op.payload(n + 1)
    statements, data = capture_statements(client, counter, payload)
    op.check(data)
    created = _created_version_id(db, payload, data) if op.creates_version else None
    if db.sqlite_path is not None:
        floor = sqlite_floor(db.sqlite_path, statements, created, opts)
    else:
        floor = asyncio.run(postgres_floor(db.url, statements, created, opts))
    if created is not None:
        op.check(graphql(client, op.payload(n + 2)))
    return floor


# ---------------------------------------------------------------------------------------------
# Query plans
# ---------------------------------------------------------------------------------------------


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


def print_plans(db: Database, client: httpx.Client, counter: SqlCounter, seeded: Seeded,
                order: str = BY_NAME) -> None:
    """Plans of the search statements (b), page and count, and of the recursive lineage walk (c)."""
    wanted = [
        ("(b)", {"query": search_doc(order, total_count=True),
                 "variables": {"lt": LR_BELOW, "gt": ACCURACY_ABOVE}},
         "EXISTS ("),
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
    """Fresh database → seed → live server → measure every operation and its SQL floor → plans."""
    with fresh_database(kind, opts.pg_admin_url) as db:
        print(f"\n== {DB_TITLES[kind]}: seeding {opts.models} models × {opts.versions} versions × "
              f"{opts.params} params × {len(METRIC_KEYS)} metrics …", flush=True)
        seeded = asyncio.run(seed(db, opts))
        print(f"seeded in {seeded.seconds:.1f} s: "
              + ", ".join(f"{k} {v:,}" for k, v in seeded.rows.items()), flush=True)
        counter = SqlCounter()
        with live_server(db.settings) as url, httpx.Client(
            base_url=url, timeout=300, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
        ) as client:
            checked = verify_seed(client, seeded)
            print(f"verified {checked} seeded versions over the API (manifest digests match)")
            order = search_order(client)
            if order != BY_NAME:
                print(f"the server has no MODEL_NAME order yet: the search is ordered by {order}")
            load_before = os.getloadavg()[0]
            results = []
            for op in operations(seeded, opts, order):
                r = measure(client, counter, op, opts)
                r.floor = sql_floor(db, client, counter, op, opts)
                results.append(r)
                print(f"  {op.label}: p50 {r.p50:.2f} ms, p95 {r.p95:.2f} ms, SQL {r.sql}, "
                      f"SQL floor {r.floor.p50:.2f} ms ({_ratio(r)} of it)", flush=True)
            load = (load_before, os.getloadavg()[0])
            server_version = _server_version(client, db)
            if opts.explain:
                print_plans(db, client, counter, seeded, order)
        return DbRun(kind, seeded, results, server_version, load)


def goal(key: str, opts: Options) -> float | None:
    """Issue 14's p50 goal (ms) for an operation of this run, if it has one."""
    if key == "page" and opts.versions != GOAL_PAGE_VERSIONS:
        return None  # the goal is for a 20-version page
    return GOALS.get(key)


def _goal_cell(key: str, opts: Options) -> str:
    limit = goal(key, opts)
    return "" if limit is None else f"≤ {limit:g}"


def _ratio(r: Result) -> str:
    """Request p50 over SQL floor p50: how many times the floor the request costs."""
    if r.floor is None or not r.floor.statements or r.floor.p50 <= 0:
        return "–"
    return f"{r.p50 / r.floor.p50:.1f}×"


def _floor_cell(r: Result) -> str:
    if r.floor is None:
        return "n/a"
    return f"{r.floor.p50:.2f}{'†' if r.floor.rolled_back else ''}"


FLOOR_NOTE = ("SQL floor: the statements one request sent, with its values, executed again directly "
              "on the database (sqlite3 on the same file; one asyncpg connection, each statement "
              "prepared once, force_custom_plan as served), one after the other, summed, median "
              "of the repetitions; ×floor = request p50 / floor p50. "
              "† writes: run in a transaction rolled back each time, after deleting (untimed) the "
              "version the captured request created and rewinding its id, so the INSERTs get the "
              "same number and id; no COMMIT, so no fsync, which the request pays.")


def plain_table(run: DbRun, opts: Options) -> str:
    """One database's figures as a fixed-width table."""
    width = max(len(r.op.label) for r in run.results)
    head = (f"{'operation':<{width}} {'goal':>5} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} "
            f"{'floor ms':>9} {'×floor':>7} {'SQL/req':>8}")
    title = (f"{run.server_version} — {opts.models} models × {opts.versions} versions × "
             f"{opts.params} params × {len(METRIC_KEYS)} metrics, seeded in "
             f"{run.seeded.seconds:.1f} s, {opts.requests} timed requests (and floor repetitions) "
             f"each after {opts.warmup} warm-up, load average {run.load[0]:.2f} → "
             f"{run.load[1]:.2f} ({os.cpu_count()} CPUs); SQL/req counted on the warm-up requests, "
             "latency timed with no log handler; floor ms: see the note below the tables")
    lines = [title, head, "-" * len(head)]
    for r in run.results:
        lines.append(f"{r.op.label:<{width}} {_goal_cell(r.op.key, opts):>5} {r.p50:>8.2f} "
                     f"{r.p95:>8.2f} {statistics.fmean(r.latencies):>8.2f} {_floor_cell(r):>9} "
                     f"{_ratio(r):>7} {r.sql:>8}")
    small, large = run.result("page_small"), run.result("page_large")
    grows = max(large.statements) > max(small.statements)
    verdict = "grows with rows: N+1" if grows else "does not grow with rows: no N+1"
    lines.append(f"N+1 check (a): {small.sql} statements for {SMALL_PAGE} versions, "
                 f"{large.sql} for {LARGE_PAGE} ({verdict})")
    return "\n".join(lines)


def markdown_table(runs: list[DbRun], opts: Options | None = None) -> str:
    """Operations as rows; per database p50, p95, SQL floor, ×floor and statements as columns."""
    head = ["operation", "goal p50 ms"]
    for run in runs:
        t = DB_TITLES[run.kind]
        head += [f"{t} p50 ms", f"{t} p95 ms", f"{t} SQL floor ms", f"{t} ×floor", f"{t} SQL/req"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for i, result in enumerate(runs[0].results):
        cells = [result.op.label, _goal_cell(result.op.key, opts) if opts else ""]
        for run in runs:
            r = run.results[i]
            cells += [f"{r.p50:.1f}", f"{r.p95:.1f}", _floor_cell(r), _ratio(r), r.sql]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(f"{DB_TITLES[r.kind]} {r.seeded.seconds:.0f} s" for r in runs)
    loads = ", ".join(f"{DB_TITLES[r.kind]} {r.load[0]:.2f} → {r.load[1]:.2f}" for r in runs)
    return "\n".join(lines) + (f"\n\n{FLOOR_NOTE}\n\nSeeding (not measured): {seeds}. "
                               f"Load average (1 min) before → after: {loads}.")


GOAL_TEXT = {
    "page": f"model page of {GOAL_PAGE_VERSIONS} versions",
    "page_large": f"model page of {LARGE_PAGE} versions",
    "ancestors": f"ancestry {ANCESTOR_DEPTH} deep",
    "search": f"search page of {SEARCH_PAGE} rows",
}


def goals_summary(runs: list[DbRun], opts: Options) -> str:
    """Issue 14's goals beside the measured p50 (printed, not asserted)."""
    lines = ["Goals of issue 14 (p50) and measured p50 (not asserted):"]
    for key, text in GOAL_TEXT.items():
        limit = goal(key, opts)
        if limit is None:
            measured = f"not measured (this run's pages have {opts.versions} versions)"
        else:
            measured = ", ".join(f"{DB_TITLES[run.kind]} {run.result(key).p50:.1f} ms "
                                 f"(SQL floor {_floor_cell(run.result(key))})" for run in runs)
        lines.append(f"  {text + ' ≤ ' + format(GOALS[key], 'g') + ' ms':<38} {measured}")
    return "\n".join(lines)


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
    print(goals_summary(runs, opts) + "\n")
    print(markdown_table(runs, opts))
    print(f"\nCommand: `{command_line()}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
