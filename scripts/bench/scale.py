"""Scale benchmark: do catalog operations on PostgreSQL cost the same at 400k versions as at 4k?

It creates a fresh PostgreSQL database `modelyard_scale_<random>` (dropped at the end unless
`--keep`), migrates it with the app's own code (`open_database`), and bulk-loads it with asyncpg
COPY: rows exactly as `createVersion` writes them (catalog.py's `random_content` generator: 30
typed params, 10 metrics, 2 tags and run info a version, and the manifest digest), models of 20
versions each fine-tuned from the previous, first versions fine-tuned from a few base models,
every version TRAINED_ON a dataset version, `production`/`staging` aliases, and a dedicated
25-generation cross-model chain for the ancestry walk.

    small   --models-small 200 × --versions 20           =   4,000 versions (120k params)
    large   grown by COPY to --models-large 20000 × 20   = 400,000 versions (12M params)

After each load it runs ANALYZE (the server's own ANALYZE when it has one, see `analyze`), starts
the real app under uvicorn on a free loopback port in a thread, and times sequential GraphQL POSTs
over HTTP (p50/p95 of `--requests` after a warm-up):

    (1) the model page of one model (20 versions: params, metrics, aliases, parents)
    (2) the ancestors of the chain's tip, 20 generations deep
    (3) search `lr < 0.001 and accuracy > 0.9`, first 100 by model name then number, with
        totalCount (counting every match grows with the catalog) and (3b) without it
    (4) createVersion with 30 params, 10 metrics and a FINE_TUNED_FROM parent
    (5) the model page of a model picked at random each request (caches do not flatter)

It prints both sizes side by side with the large/small ratio (the goal: < 1.5×), the load average
around each measurement, row counts and seeding times, then, at the large size, EXPLAIN (ANALYZE,
BUFFERS) of every statement one request of each operation sends (captured with a logging handler
on `tortoise.db_client`), the indexes each uses, and any Seq Scan on a big table.

    python scripts/bench/scale.py --models-large 2000            # quick: 40k versions
    python scripts/bench/scale.py                                 # full: 4k → 400k versions
    python scripts/bench/scale.py --keep --pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from catalog import (
    ACTOR,
    ADMIN_SECRET,
    ANCESTORS_DOC,
    CHAIN_GENERATIONS,
    CREATE_DOC,
    METRIC_KEYS,
    MODEL_PAGE_DOC,
    VERIFY_DOC,
    Operation,
    Result,
    SqlCounter,
    VersionContent,
    capture,
    graphql,
    live_server,
    measure,
    model_name,
    pg_admin,
    random_content,
)
from machine import command_line, git_state, machine

from modelyard.catalog.lineage import Relation
from modelyard.catalog.manifest import manifest, manifest_digest
from modelyard.catalog.models import Task
from modelyard.catalog.params import ParamKind, typed_param
from modelyard.config import Settings
from modelyard.db import database

PG_ADMIN_URL = os.environ.get(
    "MODELYARD_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ANCESTOR_DEPTH = 20
DATASETS, DATASET_VERSIONS = 10, 6
TAG_SLOTS = 2  # random_content gives a version two tags (framework, stage)
EDGE_SLOTS = 2  # a version's model parent (slot 0) and its dataset (slot 1)
ALIAS_SLOTS = 2  # production, staging
CHUNK_MODELS = 250  # models per COPY transaction: bounded memory whatever the size
LR_BELOW, ACCURACY_ABOVE = 1e-3, 0.9
GOAL_RATIO = 1.5
BIG_TABLE_ROWS = 10_000  # a Seq Scan on a table this large at the large size is a finding
SLOW_STATEMENT_MS = 50.0
FULL_PLAN_MS = 1.0  # statements faster than this print their indexes, not their whole plan
TASKS = list(Task)

# Every column each table is loaded with, in COPY order (tables in foreign-key-safe order).
COLUMNS: dict[str, tuple[str, ...]] = {
    "dataset": ("id", "full_name", "description", "created_at", "created_by"),
    "dataset_version": ("id", "dataset_id", "version", "uri", "digest", "size", "description",
                        "created_at", "created_by"),
    "model": ("id", "namespace", "name", "full_name", "description", "task", "tags",
              "version_seq", "created_at", "updated_at", "created_by"),
    "model_version": ("id", "model_id", "number", "description", "status", "manifest_digest",
                      "run", "onnx", "created_at", "updated_at", "created_by"),
    "param": ("id", "version_id", "key", "kind", "num_value", "text_value", "value_json"),
    "metric": ("id", "version_id", "key", "value", "step", "logged_at"),
    "metric_point": ("id", "version_id", "key", "value", "step", "logged_at"),
    "version_tag": ("id", "version_id", "key", "value"),
    "lineage_edge": ("id", "child_id", "parent_version_id", "parent_dataset_id", "relation",
                     "created_at"),
    "alias": ("id", "model_id", "name", "version_id", "updated_at", "updated_by"),
    "alias_move": ("id", "model_id", "alias", "version_id", "at", "actor"),
}
COUNTED = ("model", "model_version", "param", "metric", "metric_point", "version_tag",
           "lineage_edge", "alias", "alias_move", "dataset", "dataset_version", "audit_event")

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]
Payload = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# GraphQL documents (the model page and the ancestry walk are catalog.py's)
# ---------------------------------------------------------------------------------------------

ORDER_FIELDS_DOC = '{ __type(name: "VersionOrderField") { enumValues { name } } }'
ORDER_BY_NAME = "[{field: MODEL_NAME, descending: false}, {field: NUMBER, descending: false}]"
ORDER_BY_NUMBER = "{field: NUMBER, descending: false}"  # before MODEL_NAME existed


def search_doc(order_by: str, total_count: bool) -> str:
    """Search `lr < $lt and accuracy > $gt`, first 100 in `order_by`, with or without the count."""
    count = "totalCount\n    " if total_count else ""
    return f"""
query Search($lt: Float!, $gt: Float!) {{
  versions(first: 100, filter: {{params: [{{key: "lr", lt: $lt}}],
                                metrics: [{{key: "accuracy", gt: $gt}}]}},
           orderBy: {order_by}) {{
    {count}nodes {{ ref number model {{ name }} param(key: "lr") {{ value }} metric(key: "accuracy") {{ value }} }}
  }}
}}
"""


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Sizes of the two catalogs, how many requests to time, and where PostgreSQL is."""

    models_small: int
    models_large: int
    versions: int
    params: int
    metrics: int
    requests: int
    warmup: int
    workers: int
    seed: int
    keep: bool
    pg_admin_url: str


def parse_options(argv: Sequence[str]) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-small", type=int, default=200, help="models of the small catalog")
    parser.add_argument("--models-large", type=int, default=20_000, help="models once grown")
    parser.add_argument("--versions", type=int, default=20, help="versions per model")
    parser.add_argument("--params", type=int, default=30, help="typed params per version")
    parser.add_argument("--metrics", type=int, default=len(METRIC_KEYS),
                        help=f"metrics per version (2..{len(METRIC_KEYS)})")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per operation")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    parser.add_argument("--workers", type=int, default=2, help="processes generating + COPYing")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    parser.add_argument("--keep", action="store_true", help="keep the database (print its URL)")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL to create it on")
    args = parser.parse_args(argv)
    if not 1 <= args.models_small <= args.models_large:
        parser.error("need 1 <= --models-small <= --models-large")
    if min(args.versions, args.params, args.requests, args.workers, args.warmup) < 1:
        parser.error("--versions, --params, --requests, --workers and --warmup must be at least 1")
    if not 2 <= args.metrics <= len(METRIC_KEYS) or args.params > 1000:
        parser.error(f"--metrics takes 2..{len(METRIC_KEYS)}, --params at most 1000")
    return Options(
        models_small=args.models_small, models_large=args.models_large, versions=args.versions,
        params=args.params, metrics=args.metrics, requests=args.requests, warmup=args.warmup,
        workers=args.workers, seed=args.seed, keep=args.keep, pg_admin_url=args.pg_admin_url,
    )


# ---------------------------------------------------------------------------------------------
# Where every row goes: ids are computed, so chunks load independently and in parallel
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The catalog's shape and its id scheme.

    Regular model `i` (0-based) has id i+1 and versions i·V+1 … i·V+V; the chain's models and
    versions come after the largest size; a version's params, metrics, tags and edges take the
    id slots (version id − 1)·slots + 1 …, so ids of the large catalog are reserved from the start
    and versions the server creates during the small measurement never collide with them.
    """

    models_small: int
    models_large: int
    versions: int
    params: int
    metrics: int
    seed: int
    start: datetime  # created_at of version id 0; version k is 30·k seconds later

    @property
    def base_count(self) -> int:
        """Base models: version 1 of every other model is fine-tuned from one's newest version."""
        return max(1, min(10, self.models_small // 10))

    def version_id(self, index: int, number: int) -> int:
        return index * self.versions + number

    def chain_model_id(self, generation: int) -> int:
        return self.models_large + 1 + generation

    def chain_version_id(self, generation: int) -> int:
        return self.models_large * self.versions + 1 + generation

    def at(self, version_id: int) -> datetime:
        return self.start + timedelta(seconds=30 * version_id)

    def reserved(self) -> dict[str, int]:
        """The largest id each table's rows may take; sequences start after it."""
        last = self.chain_version_id(CHAIN_GENERATIONS - 1)
        return {
            "dataset": DATASETS, "dataset_version": DATASETS * DATASET_VERSIONS,
            "model": self.chain_model_id(CHAIN_GENERATIONS - 1), "model_version": last,
            "param": last * self.params, "metric": last * self.metrics,
            "metric_point": last * self.metrics, "version_tag": last * TAG_SLOTS,
            "lineage_edge": last * EDGE_SLOTS, "alias": self.models_large * ALIAS_SLOTS,
            "alias_move": self.models_large * ALIAS_SLOTS,
        }


def make_layout(opts: Options) -> Layout:
    """Version timestamps end a day ago, 30 s apart, in id order (the catalog grew over time)."""
    span = timedelta(seconds=30 * (opts.models_large * opts.versions + CHAIN_GENERATIONS + 1))
    start = datetime.now(UTC).replace(microsecond=0) - span - timedelta(days=1)
    return Layout(opts.models_small, opts.models_large, opts.versions, opts.params, opts.metrics,
                  opts.seed, start)


# ---------------------------------------------------------------------------------------------
# Rows, as the catalog services write them
# ---------------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    """JSON as the Tortoise JSONField encodes it."""
    return json.dumps(value, separators=(",", ":"))


def empty_rows() -> Rows:
    return {table: [] for table in COLUMNS}


def metric_values(content: VersionContent, count: int) -> list[tuple[str, float]]:
    """The first `count` of the metrics `random_content` drew (accuracy and loss first)."""
    return content.metrics()[:count]


def dataset_rows(layout: Layout, rows: Rows) -> list[str]:
    """DATASETS × DATASET_VERSIONS dataset versions; their refs (`corpus-D@2024-0V`)."""
    refs = []
    for d in range(DATASETS):
        name = f"corpus-{d}"
        rows["dataset"].append((d + 1, name, f"{name}, seeded by the scale benchmark",
                                layout.start, ACTOR))
        for v in range(DATASET_VERSIONS):
            label = f"2024-{v + 1:02d}"
            digest = manifest_digest({"dataset": name, "version": label})
            rows["dataset_version"].append((
                d * DATASET_VERSIONS + v + 1, d + 1, label, f"s3://datasets/{name}/{label}/",
                digest, (d + 1) * (v + 1) * 1_000_000_000, f"{name} snapshot {label}",
                layout.start, ACTOR,
            ))
            refs.append(f"{name}@{label}")
    return refs


def _dataset_version_id(k: int) -> int:
    return k % (DATASETS * DATASET_VERSIONS) + 1


def version_rows(
    layout: Layout, rows: Rows, rng: random.Random, model: tuple[int, str], number: int,
    vid: int, parent: int | None, dataset: int,
) -> None:
    """One version with its params, metrics (current and history), tags and lineage edges."""
    model_id, full_name = model
    content = random_content(rng, layout.params)
    if len(content.tags) > TAG_SLOTS:
        raise RuntimeError(f"random_content now gives {len(content.tags)} tags: raise TAG_SLOTS")
    at = layout.at(vid)
    digest = manifest_digest(manifest(full_name, content.params, []))
    rows["model_version"].append((vid, model_id, number, f"{full_name} v{number}", "READY",
                                  digest, _json(content.run.as_json()), None, at, at, None))
    base = (vid - 1) * layout.params
    rows["param"].extend(
        (base + k + 1, vid, p.key, p.kind.value, p.num_value, p.text_value, p.value_json)
        for k, p in enumerate(content.params)
    )
    base = (vid - 1) * layout.metrics
    for k, (key, value) in enumerate(metric_values(content, layout.metrics)):
        rows["metric"].append((base + k + 1, vid, key, value, None, at))
        rows["metric_point"].append((base + k + 1, vid, key, value, None, at))
    base = (vid - 1) * TAG_SLOTS
    rows["version_tag"].extend((base + k + 1, vid, key, value)
                               for k, (key, value) in enumerate(content.tags.items()))
    base = (vid - 1) * EDGE_SLOTS
    if parent is not None:
        rows["lineage_edge"].append((base + 1, vid, parent, None,
                                     Relation.FINE_TUNED_FROM.value, at))
    rows["lineage_edge"].append((base + 2, vid, None, dataset, Relation.TRAINED_ON.value, at))


def _model_row(layout: Layout, model_id: int, full_name: str, task: Task, count: int,
               first_vid: int) -> Row:
    namespace, name = full_name.split("/")
    return (model_id, namespace, name, full_name,
            f"# {full_name}\n\nA model seeded by the scale benchmark.", task.value,
            _json({"owner": namespace}), count, layout.at(first_vid),
            layout.at(first_vid + count - 1), None)


def model_rows(layout: Layout, rows: Rows, index: int) -> None:
    """Regular model `index`: V versions, each fine-tuned from the previous (version 1 from a base
    model's newest), each trained on a dataset version, and its aliases."""
    full_name, model_id, count = model_name(index), index + 1, layout.versions
    rng = random.Random(f"{layout.seed}/{full_name}")  # the same content whatever the chunking
    rows["model"].append(_model_row(layout, model_id, full_name, TASKS[index % len(TASKS)], count,
                                    layout.version_id(index, 1)))
    for number in range(1, count + 1):
        vid = layout.version_id(index, number)
        parent: int | None = vid - 1 if number > 1 else None
        if number == 1 and index >= layout.base_count:
            parent = layout.version_id(index % layout.base_count, count)
        version_rows(layout, rows, rng, (model_id, full_name), number, vid, parent,
                     _dataset_version_id(index + number))
    targets = []
    if index % 2 == 0:
        targets.append((0, "production", layout.version_id(index, max(1, count - 1 - index % 3))))
    if index % 4 == 0:
        targets.append((1, "staging", layout.version_id(index, count)))
    for slot, alias, vid in targets:
        alias_id = index * ALIAS_SLOTS + slot + 1
        at = layout.at(vid) + timedelta(hours=1)
        rows["alias"].append((alias_id, model_id, alias, vid, at, ACTOR))
        rows["alias_move"].append((alias_id, model_id, alias, vid, at, ACTOR))


def chain_rows(layout: Layout, rows: Rows) -> str:
    """CHAIN_GENERATIONS one-version models, each fine-tuned from the previous; the tip's ref."""
    for g in range(CHAIN_GENERATIONS):
        full_name, model_id, vid = f"chain/gen-{g:02d}", layout.chain_model_id(g), layout.chain_version_id(g)
        rng = random.Random(f"{layout.seed}/{full_name}")
        rows["model"].append(_model_row(layout, model_id, full_name, Task.TEXT_GENERATION, 1, vid))
        parent = layout.chain_version_id(g - 1) if g else None
        version_rows(layout, rows, rng, (model_id, full_name), 1, vid, parent, _dataset_version_id(g))
    return f"chain/gen-{CHAIN_GENERATIONS - 1:02d}:1"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


async def copy_rows(conn: asyncpg.Connection, rows: Rows) -> None:
    """COPY every table's rows, in foreign-key-safe order, in one transaction."""
    async with conn.transaction():
        for table, columns in COLUMNS.items():
            if rows[table]:
                await conn.copy_records_to_table(table, records=rows[table], columns=columns)


async def _load_models(url: str, layout: Layout, start: int, stop: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        rows = empty_rows()
        for index in range(start, stop):
            model_rows(layout, rows, index)
        await copy_rows(conn, rows)
        return len(rows["model_version"])
    finally:
        await conn.close()


def load_models(url: str, layout: Layout, start: int, stop: int) -> int:
    """Generate and COPY regular models start … stop-1 (a worker process's task); versions loaded."""
    return asyncio.run(_load_models(url, layout, start, stop))


async def _load_small_extras(url: str, layout: Layout) -> tuple[list[str], str]:
    conn = await asyncpg.connect(url)
    try:
        rows = empty_rows()
        refs = dataset_rows(layout, rows)
        tip = chain_rows(layout, rows)
        await copy_rows(conn, rows)
        return refs, tip
    finally:
        await conn.close()


def load_range(url: str, layout: Layout, start: int, stop: int, workers: int) -> None:
    """Models start … stop-1 in chunks of CHUNK_MODELS, over `workers` processes."""
    chunks = [(a, min(stop, a + CHUNK_MODELS)) for a in range(start, stop, CHUNK_MODELS)]
    if workers == 1 or len(chunks) == 1:
        for a, b in chunks:
            load_models(url, layout, a, b)
        return
    done, total, reported, started = 0, (stop - start) * layout.versions, 0, time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(load_models, url, layout, a, b) for a, b in chunks]
        for future in futures:
            done += future.result()
            if done * 10 // total > reported or done == total:  # every tenth
                reported = done * 10 // total
                elapsed = time.perf_counter() - started
                print(f"  loaded {done:,} of {total:,} versions in {elapsed:.0f} s "
                      f"({done / elapsed:,.0f} versions/s)", flush=True)


async def _set_sequences(url: str, layout: Layout) -> None:
    """Every table's id sequence past the ids reserved for the largest catalog."""
    conn = await asyncpg.connect(url)
    try:
        for table, reserved in layout.reserved().items():
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST($1::bigint, (SELECT COALESCE(MAX(id), 0) FROM {table})))", reserved)
    finally:
        await conn.close()


async def analyze(url: str) -> str:
    """Give the planner statistics after a bulk load; what ran.

    The server's own path is used when it has one (`modelyard.db.database.analyze`), so the bench
    measures what a deployment gets; otherwise a plain ANALYZE of the whole database.
    """
    server_analyze = getattr(database, "analyze", None)
    if callable(server_analyze):
        await database.open_database(url)
        try:
            await server_analyze()
        finally:
            await database.close_database()
        return "the server's modelyard.db.database.analyze()"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    sites = _analyze_sites()
    if sites:  # the server gained an ANALYZE this bench does not know how to call: say so
        return ("ANALYZE by the bench; NOTE src/ now runs ANALYZE at " + ", ".join(sites)
                + ": make `analyze` in scripts/bench/scale.py call it")
    return "ANALYZE by the bench: src/ runs no ANALYZE of its own"


def _analyze_sites() -> list[str]:
    """Where the server's source mentions ANALYZE (file:line)."""
    package = Path(database.__file__).resolve().parents[1]
    return [f"{path.relative_to(package.parent)}:{n}"
            for path in sorted(package.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if "ANALYZE" in line]


async def _checkpoint(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
        return "CHECKPOINT"
    except asyncpg.InsufficientPrivilegeError:
        return "no CHECKPOINT (not a superuser)"
    finally:
        await conn.close()


def quiesce(url: str, max_wait: float = 60.0) -> str:
    """Flush what the load dirtied and let its CPU load fade, so the measurements start alike."""
    done = asyncio.run(_checkpoint(url))
    started = time.monotonic()
    while os.getloadavg()[0] > 1.0 and time.monotonic() - started < max_wait:
        time.sleep(5)
    return (f"{done}, waited {time.monotonic() - started:.0f} s for the 1-minute load average "
            f"to fall under 1.0 (now {os.getloadavg()[0]:.2f})")


async def row_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in COUNTED}
    finally:
        await conn.close()


@dataclass
class Load:
    """One load step: how long it took (generation + COPY + sequences + ANALYZE), what ran, the
    rows then, and how the database was let settle before the measurements."""

    seconds: float
    analyzed_with: str
    counts: dict[str, int]
    settled: str


def load_small(url: str, layout: Layout, workers: int) -> tuple[Load, list[str], str]:
    """Migrate with the app's code, then datasets, the chain and the small catalog's models."""
    started = time.perf_counter()
    asyncio.run(_migrate(url))
    refs, tip = asyncio.run(_load_small_extras(url, layout))
    load_range(url, layout, 0, layout.models_small, workers)
    asyncio.run(_set_sequences(url, layout))
    how = asyncio.run(analyze(url))
    seconds = time.perf_counter() - started
    counts = asyncio.run(row_counts(url))
    return Load(seconds, how, counts, quiesce(url)), refs, tip


def grow(url: str, layout: Layout, workers: int) -> Load:
    """Add the large catalog's remaining models by COPY, then sequences and ANALYZE."""
    started = time.perf_counter()
    load_range(url, layout, layout.models_small, layout.models_large, workers)
    asyncio.run(_set_sequences(url, layout))
    how = asyncio.run(analyze(url))
    seconds = time.perf_counter() - started
    counts = asyncio.run(row_counts(url))
    return Load(seconds, how, counts, quiesce(url))


async def _migrate(url: str) -> None:
    await database.open_database(url)  # runs the committed migrations
    await database.close_database()


# ---------------------------------------------------------------------------------------------
# The database
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(opts: Options) -> Iterator[str]:
    """A new database `modelyard_scale_<random>`; dropped after the block unless --keep."""
    name = f"modelyard_scale_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_admin(opts.pg_admin_url, f'CREATE DATABASE "{name}"'))
    url = f"{opts.pg_admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        if opts.keep:
            print(f"\nkept the database: {url}")
        else:
            asyncio.run(pg_admin(opts.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            print(f"\ndropped the database {name}")


async def _server_facts(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
        rows = await conn.fetch(
            "SELECT name, current_setting(name) AS value FROM pg_settings "
            "WHERE name = ANY($1::text[]) ORDER BY name",
            ["shared_buffers", "work_mem", "autovacuum", "random_page_cost", "jit"])
        settings = ", ".join(f"{r['name']}={r['value']}" for r in rows)
        return f"PostgreSQL {version} ({settings})"
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# Operations and measurement
# ---------------------------------------------------------------------------------------------


def _check_page(data: dict[str, Any], want: int) -> None:
    nodes = data["model"]["versions"]["nodes"]
    if len(nodes) != want:
        raise RuntimeError(f"model page has {len(nodes)} versions, want {want}")
    if not all(n["params"] and n["metrics"] and n["parents"] for n in nodes):
        raise RuntimeError("a version of the model page lacks params, metrics or parents")


def _check_ancestors(data: dict[str, Any]) -> None:
    depths = {e["depth"] for e in data["version"]["ancestors"]}
    if max(depths) != ANCESTOR_DEPTH:
        raise RuntimeError(f"ancestors reach depth {max(depths)}, want {ANCESTOR_DEPTH}")


def _check_search(by_name: bool) -> Callable[[dict[str, Any]], None]:
    def check(data: dict[str, Any]) -> None:
        nodes = data["versions"]["nodes"]
        if not 0 < len(nodes) <= 100:
            raise RuntimeError(f"search returned {len(nodes)} versions, want 1 … 100")
        for node in nodes:
            if not (node["param"]["value"] < LR_BELOW and node["metric"]["value"] > ACCURACY_ABOVE):
                raise RuntimeError(f"search returned a version outside the filter: {node}")
        keys = [((n["model"]["name"] if by_name else ""), n["number"]) for n in nodes]
        if keys != sorted(keys):
            raise RuntimeError("search results are not in the requested order")

    return check


def create_input(rng: random.Random, model: str, opts: Options) -> Payload:
    """createVersion: P typed params, M metrics, 2 tags, fine-tuned from the model's latest."""
    content = random_content(rng, opts.params)
    return {
        "model": model,
        "description": "created by the scale benchmark",
        "params": [{"key": p.key, "value": p.value, "type": p.kind.name} for p in content.params],
        "metrics": [{"key": k, "value": v} for k, v in metric_values(content, opts.metrics)],
        "tags": [{"key": k, "value": v} for k, v in content.tags.items()],
        "lineage": [{"parent": model, "relation": "FINE_TUNED_FROM"}],
    }


@dataclass(frozen=True)
class Catalog:
    """What the operations need to know about the loaded catalog."""

    models: int  # regular models loaded: model_name(0 … models-1)
    page_model: str
    chain_tip: str
    order_by: str  # the orderBy of the search (ORDER_BY_NAME once the server has MODEL_NAME)


def operations(catalog: Catalog, opts: Options) -> list[Operation]:
    """(1)–(5) in the order they run: reads, then the write."""
    pick, writes = random.Random(opts.seed + 7), random.Random(opts.seed + 11)
    by_name = catalog.order_by == ORDER_BY_NAME
    search_vars = {"lt": LR_BELOW, "gt": ACCURACY_ABOVE}
    versions = opts.versions

    def page(name: str) -> Payload:
        return {"query": MODEL_PAGE_DOC, "variables": {"name": name, "first": versions}}

    return [
        Operation("page", f"(1) model page, {versions} versions", lambda i: page(catalog.page_model),
                  lambda d: _check_page(d, versions)),
        Operation("ancestors", f"(2) ancestors {ANCESTOR_DEPTH} deep",
                  lambda i: {"query": ANCESTORS_DOC,
                             "variables": {"ref": catalog.chain_tip, "depth": ANCESTOR_DEPTH}},
                  _check_ancestors),
        Operation("search", "(3) search, first 100, with totalCount",
                  lambda i: {"query": search_doc(catalog.order_by, True), "variables": search_vars},
                  _check_search(by_name)),
        Operation("search_nocount", "(3b) search, first 100, no totalCount",
                  lambda i: {"query": search_doc(catalog.order_by, False), "variables": search_vars},
                  _check_search(by_name)),
        Operation("page_random", f"(5) model page of a random model, {versions} versions",
                  lambda i: page(model_name(pick.randrange(catalog.models))),
                  lambda d: _check_page(d, versions)),
        Operation("create", f"(4) createVersion: {opts.params} params, {opts.metrics} metrics, "
                  "1 parent",
                  lambda i: {"query": CREATE_DOC, "variables": {"input": create_input(
                      writes, model_name(writes.randrange(catalog.models)), opts)}}),
    ]


def order_by_of(client: httpx.Client) -> str:
    """The list form by model name then number once the schema has MODEL_NAME, else by number."""
    values = graphql(client, {"query": ORDER_FIELDS_DOC})["__type"]["enumValues"]
    return ORDER_BY_NAME if "MODEL_NAME" in {v["name"] for v in values} else ORDER_BY_NUMBER


def verify(client: httpx.Client, refs: list[str]) -> None:
    """Recompute manifest digests from params read over the API: COPY wrote what the server would."""
    for ref in refs:
        v = graphql(client, {"query": VERIFY_DOC, "variables": {"ref": ref}})["version"]
        params = [typed_param(p["key"], p["value"], ParamKind[p["type"]]) for p in v["params"]]
        if manifest_digest(manifest(v["model"]["name"], params, [])) != v["manifestDigest"]:
            raise RuntimeError(f"loaded {ref}: the manifest digest does not match its params")


# ---------------------------------------------------------------------------------------------
# Query plans
# ---------------------------------------------------------------------------------------------


@dataclass
class Statement:
    """One statement of a request and what EXPLAIN (ANALYZE, BUFFERS) said about it."""

    text: str
    values: list[Any]
    plan: list[str]
    ms: float | None
    indexes: list[str]
    seq_scans: list[str]  # big tables scanned whole


_INDEX_RE = re.compile(r"(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on) (\S+)")
_SEQ_RE = re.compile(r"Seq Scan on (\w+)")
_TIME_RE = re.compile(r"Execution Time: ([\d.]+) ms")


def _one_line(text: str, limit: int = 400) -> str:
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= limit else line[:limit] + " …"


async def _explain(conn: asyncpg.Connection, text: str, values: list[Any],
                   counts: dict[str, int]) -> Statement | None:
    """EXPLAIN (ANALYZE, BUFFERS) of a read, or of a write in a transaction rolled back; INSERTs
    (no plan but index upkeep) are skipped."""
    verb = text.lstrip().split(None, 1)[0].upper()
    if verb not in ("SELECT", "WITH", "UPDATE", "DELETE"):
        return None
    tr = conn.transaction()
    await tr.start()
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {text}", *values)
    except (asyncpg.PostgresError, asyncpg.DataError) as exc:
        return Statement(text, values, [f"EXPLAIN failed: {exc}"], None, [], [])
    finally:
        await tr.rollback()
    plan = [r[0] for r in rows]
    joined = "\n".join(plan)
    ms = _TIME_RE.search(joined)
    big = [t for t in _SEQ_RE.findall(joined) if counts.get(t, 0) >= BIG_TABLE_ROWS]
    return Statement(text, values, plan, float(ms.group(1)) if ms else None,
                     list(dict.fromkeys(_INDEX_RE.findall(joined))), big)


async def _index_legend(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT indexname, tablename, indexdef FROM pg_indexes "
                            "WHERE schemaname = 'public'")
    legend = {}
    for r in rows:
        cols = r["indexdef"].split(" USING btree ", 1)[-1]
        legend[r["indexname"]] = f"{r['tablename']} {cols}"
    return legend


async def explain_all(url: str, captured: list[tuple[str, list[Any]]],
                      counts: dict[str, int]) -> tuple[list[Statement], dict[str, str]]:
    """Plans of the statements one request sent, as the server plans them (force_custom_plan)."""
    conn = await asyncpg.connect(url, server_settings={"plan_cache_mode": "force_custom_plan"})
    try:
        out = []
        for text, values in captured:
            statement = await _explain(conn, text, values, counts)
            if statement is not None:
                out.append(statement)
        return out, await _index_legend(conn)
    finally:
        await conn.close()


@dataclass
class Finding:
    """A Seq Scan on a big table, or a slow statement, at the large size."""

    op: str
    statement: Statement
    why: str


def print_plans(op: Operation, captured: list[tuple[str, list[Any]]], statements: list[Statement],
                legend: dict[str, str], findings: list[Finding]) -> None:
    """Each statement with the indexes it uses, and the whole plan of those taking ≥ FULL_PLAN_MS
    or scanning a big table (which stand out)."""
    skipped = len(captured) - len(statements)
    print(f"\n--- {op.label}: {len(captured)} statements"
          + (f" ({skipped} INSERT, not explained)" if skipped else ""))
    for n, s in enumerate(statements, 1):
        print(f"[{n}] {_one_line(s.text)}")
        print(f"    values: {_one_line(repr(s.values), 200)}")
        used = "; ".join(f"{i} = {legend.get(i, '?')}" for i in s.indexes) or "no index"
        print(f"    {s.ms if s.ms is not None else '?'} ms; indexes: {used}")
        for scanned in s.seq_scans:
            print(f"    !!!!!! SEQ SCAN on {scanned} at the large size: a finding for the server")
            findings.append(Finding(op.label, s, f"Seq Scan on {scanned}"))
        if s.ms is not None and s.ms > SLOW_STATEMENT_MS and not s.seq_scans:
            findings.append(Finding(op.label, s, f"{s.ms:.1f} ms"))
        if s.seq_scans or s.ms is None or s.ms >= FULL_PLAN_MS:
            for line in s.plan:
                print(f"      {line}")


# ---------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One size: its load, its measurements and the load average around them."""

    name: str
    load: Load
    results: list[Result]
    loadavg: tuple[float, float]
    order_by: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def versions(self) -> int:
        return self.load.counts["model_version"]


def measure_phase(name: str, url: str, catalog: Catalog, load: Load, opts: Options,
                  verify_refs: list[str], explain: bool) -> Phase:
    """Start the app on the loaded database, time every operation, and (large) explain them."""
    counter = SqlCounter()
    with tempfile.TemporaryDirectory(prefix="modelyard-scale-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", database_url=url, admin_token=ADMIN_SECRET)
        with live_server(settings) as base, httpx.Client(
            base_url=base, timeout=600, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
        ) as client:
            verify(client, verify_refs)
            catalog = Catalog(catalog.models, catalog.page_model, catalog.chain_tip,
                              order_by_of(client))
            before = os.getloadavg()[0]
            results = []
            for op in operations(catalog, opts):
                results.append(measure(client, counter, op, opts))
                r = results[-1]
                print(f"  {op.label}: p50 {r.p50:.2f} ms, p95 {r.p95:.2f} ms, SQL {r.sql}",
                      flush=True)
            phase = Phase(name, load, results, (before, os.getloadavg()[0]), catalog.order_by)
            if explain:
                print(f"\n== EXPLAIN (ANALYZE, BUFFERS) at {phase.versions:,} versions: "
                      "the statements one request of each operation sent, with the indexes "
                      f"each uses (whole plans of those taking ≥ {FULL_PLAN_MS:g} ms)")
                for op in operations(catalog, opts):
                    captured = capture(client, counter, op.payload(opts.warmup + opts.requests))
                    statements, legend = asyncio.run(explain_all(url, captured, load.counts))
                    print_plans(op, captured, statements, legend, phase.findings)
    return phase


def _size(versions: int) -> str:
    return f"{round(versions / 1000):,}k" if versions >= 1000 else str(versions)


def _ratio(small: float, large: float) -> str:
    return f"{large / small:.2f}×" if small > 0 else "–"


def report(small: Phase, large: Phase, opts: Options) -> str:
    """Both sizes side by side with the ratio, the loads, the row counts and the findings."""
    width = max(len(r.op.label) for r in small.results)
    s_name, l_name = _size(small.versions), _size(large.versions)
    head = (f"{'operation':<{width}} {'SQL':>5} {s_name + ' p50':>9} {s_name + ' p95':>9} "
            f"{l_name + ' p50':>10} {l_name + ' p95':>10} {'p50 ×':>7} {'p95 ×':>7}  goal")
    lines = [head, "-" * len(head)]
    for rs, rl in zip(small.results, large.results, strict=True):
        ratio = rl.p50 / rs.p50
        goal = f"{'<' if ratio < GOAL_RATIO else '>='} {GOAL_RATIO}×"
        if rs.op.key == "search":
            goal += " (totalCount counts every match: grows with the catalog)"
        sql = rs.sql if rs.sql == rl.sql else f"{rs.sql}/{rl.sql}"
        lines.append(f"{rs.op.label:<{width}} {sql:>5} {rs.p50:>9.2f} {rs.p95:>9.2f} "
                     f"{rl.p50:>10.2f} {rl.p95:>10.2f} {_ratio(rs.p50, rl.p50):>7} "
                     f"{_ratio(rs.p95, rl.p95):>7}  {goal}")
    lines.append(f"\nlatencies in ms over {opts.requests} sequential requests after {opts.warmup} "
                 "warm-up (SQL: statements per request, counted on the warm-up)")
    lines.append(f"search: `lr < {LR_BELOW:g} and accuracy > {ACCURACY_ABOVE}`, orderBy: "
                 + (large.order_by if large.order_by == ORDER_BY_NAME else
                    f"{large.order_by} (the server has no MODEL_NAME yet)"))
    for p in (small, large):
        lines.append(f"{p.name}: {p.versions:,} versions loaded in {p.load.seconds:.1f} s "
                     f"({p.load.analyzed_with}); 1-minute load average {p.loadavg[0]:.2f} → "
                     f"{p.loadavg[1]:.2f} during the measurements ({os.cpu_count()} CPUs)")
    lines.append("\nrows after each load (the small counts include nothing the measurements wrote; "
                 "the large ones include the small phase's createVersion requests):")
    lines.append(f"  {'table':<16} {'small':>12} {'large':>12}")
    for table in COUNTED:
        lines.append(f"  {table:<16} {small.load.counts[table]:>12,} {large.load.counts[table]:>12,}")
    return "\n".join(lines)


def print_findings(findings: list[Finding]) -> None:
    if not findings:
        print(f"\nNo Seq Scan on a table of ≥ {BIG_TABLE_ROWS:,} rows and no statement over "
              f"{SLOW_STATEMENT_MS:g} ms at the large size.")
        return
    print(f"\n== FINDINGS at the large size ({len(findings)}): Seq Scans on tables of ≥ "
          f"{BIG_TABLE_ROWS:,} rows, statements over {SLOW_STATEMENT_MS:g} ms")
    for f in findings:
        print(f"  {f.op}: {f.why}: {_one_line(f.statement.text, 240)}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    layout = make_layout(opts)
    print(f"$ {command_line()}\nmodelyard {git_state()}; {machine()}", flush=True)
    page_index = (opts.models_small // 2) // 4 * 4  # in the small catalog, with both aliases
    with fresh_database(opts) as url:
        print(asyncio.run(_server_facts(url)), flush=True)
        print(f"\n== small: {opts.models_small} models × {opts.versions} versions × {opts.params} "
              f"params × {opts.metrics} metrics (+ {CHAIN_GENERATIONS}-generation chain) …",
              flush=True)
        small_load, _, tip = load_small(url, layout, opts.workers)
        print(f"loaded in {small_load.seconds:.1f} s; {small_load.analyzed_with}; "
              f"{small_load.settled}", flush=True)
        refs = [f"{model_name(0)}:1", f"{model_name(opts.models_small - 1)}", tip]
        catalog = Catalog(opts.models_small, model_name(page_index), tip, ORDER_BY_NUMBER)
        small = measure_phase("small", url, catalog, small_load, opts, refs, explain=False)
        print(f"\n== growing to {opts.models_large} models × {opts.versions} versions by COPY "
              f"({opts.workers} worker processes) …", flush=True)
        large_load = grow(url, layout, opts.workers)
        print(f"grown in {large_load.seconds:.1f} s; {large_load.analyzed_with}; "
              f"{large_load.settled}", flush=True)
        refs.append(model_name(opts.models_large - 1))
        catalog = Catalog(opts.models_large, catalog.page_model, tip, ORDER_BY_NUMBER)
        large = measure_phase("large", url, catalog, large_load, opts, refs, explain=True)
        print("\n== RESULT\n" + report(small, large, opts))
        print_findings(large.findings)
    print(f"\nCommand: `{command_line()}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
