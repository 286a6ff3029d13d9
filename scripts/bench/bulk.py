"""Bulk-write benchmark: versions per second seeding a catalog through the API, one `createVersion`
per request against `createVersions` batches (issue 14, item 4).

For each database (a fresh SQLite file, a fresh PostgreSQL database created and dropped here) and
each way of writing, the script starts `python -m modelyard.cli serve` in its own process on a
free loopback port, on a database of its own, creates M models (untimed), then times sending
M × V versions, each with P typed params, 10 metrics, 2 tags, run info and, from the second on,
FINE_TUNED_FROM the version before it (catalog.py's `random_content`, the same data each time):

    single   one `createVersion` per request, model after model
    batch    one `createVersions` per model: its V versions, each naming the one before

Requests are sequential over one keep-alive connection. It prints versions/s for each, the
batch/single ratio, and the 1-minute load average before and after each run.

    python scripts/bench/bulk.py                        # 50 × 20 × 30, SQLite and PostgreSQL
    python scripts/bench/bulk.py --models 10 --db sqlite
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from catalog import (
    ADMIN_SECRET,
    DB_KINDS,
    DB_TITLES,
    PG_ADMIN_URL,
    fresh_database,
    graphql,
    random_content,
)
from machine import command_line, free_port, git_state, machine, process

MODES = ("single", "batch")
CREATE_MODEL = "mutation($n: String!) { createModel(input: {name: $n}) { name } }"
CREATE_VERSION = "mutation($v: CreateVersionInput!) { createVersion(input: $v) { number } }"
CREATE_VERSIONS = "mutation($v: [CreateVersionInput!]!) { createVersions(input: $v) { number } }"
CHECK = """query($n: String!) { model(name: $n) { versions(first: 1) { totalCount nodes {
  number manifestDigest parents { relation parent { ... on ModelVersion { ref } } } } } } }"""


@dataclass(frozen=True)
class Options:
    models: int
    versions: int
    params: int
    dbs: tuple[str, ...]
    pg_admin_url: str
    seed: int


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50, help="models (default 50)")
    parser.add_argument("--versions", type=int, default=20,
                        help="versions per model, also the batch size (default 20, at most 500)")
    parser.add_argument("--params", type=int, default=30, help="params per version (default 30)")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite,postgres (default both)")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL to create DBs on")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    args = parser.parse_args(argv)
    dbs = tuple(d.strip() for d in args.db.split(",") if d.strip())
    if not dbs or any(d not in DB_KINDS for d in dbs):
        parser.error(f"--db takes a comma list of {', '.join(DB_KINDS)}")
    if args.models < 1 or not 2 <= args.versions <= 500 or not 1 <= args.params <= 1000:
        parser.error("need at least 1 model, 2 to 500 versions and 1 to 1000 params")
    return Options(args.models, args.versions, args.params, dbs, args.pg_admin_url, args.seed)


def version_inputs(opts: Options, name: str, rng: random.Random) -> list[dict[str, Any]]:
    """The V `CreateVersionInput`s of one model, each fine-tuned from the one before."""
    out = []
    for n in range(1, opts.versions + 1):
        content = random_content(rng, opts.params)
        out.append({
            "model": name,
            "params": [{"key": p.key, "value": p.value, "type": p.kind.name} for p in content.params],
            "metrics": [{"key": k, "value": v} for k, v in content.metrics()],
            "tags": [{"key": k, "value": v} for k, v in content.tags.items()],
            "run": {"runId": content.run.run_id, "codeRepository": content.run.code_repository,
                    "commit": content.run.commit},
            "lineage": [{"parent": f"{name}:{n - 1}", "relation": "FINE_TUNED_FROM"}] if n > 1 else [],
        })
    return out


@dataclass(frozen=True)
class Run:
    db: str
    mode: str
    versions: int
    seconds: float
    requests: int
    load_before: float
    load_after: float

    @property
    def rate(self) -> float:
        return self.versions / self.seconds


def write(client: httpx.Client, mode: str, inputs: list[dict[str, Any]]) -> int:
    """Send one model's versions the `mode` way; the requests it took."""
    if mode == "batch":
        graphql(client, {"query": CREATE_VERSIONS, "variables": {"v": inputs}})
        return 1
    for item in inputs:
        graphql(client, {"query": CREATE_VERSION, "variables": {"v": item}})
    return len(inputs)


def check(client: httpx.Client, opts: Options, name: str) -> str:
    """The newest version of `name` is number V, fine-tuned from V-1: its manifest digest."""
    data = graphql(client, {"query": CHECK, "variables": {"n": name}})["model"]["versions"]
    newest = data["nodes"][0]
    parents = [p["parent"]["ref"] for p in newest["parents"]]
    if data["totalCount"] != opts.versions or parents != [f"{name}:{opts.versions - 1}"]:
        raise SystemExit(f"{name} was not written as expected: {data}")
    return str(newest["manifestDigest"])


def run(kind: str, mode: str, opts: Options) -> tuple[Run, list[str]]:
    """Seed a fresh database of `kind` the `mode` way through a real server; the timing and the
    newest version's digest of every model (the same data must give the same versions)."""
    names = [f"bench/model-{i:03d}" for i in range(opts.models)]
    rng = random.Random(opts.seed)
    inputs = [version_inputs(opts, name, rng) for name in names]
    with fresh_database(kind, opts.pg_admin_url) as db:
        port = free_port()
        env = {"MODELYARD_DATABASE_URL": db.url, "MODELYARD_DATA_DIR": str(db.settings.data_dir),
               "MODELYARD_PORT": str(port), "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET}
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "modelyard.cli", "serve"]
        with process(argv, env, f"{url}/healthz", "modelyard serve"), httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_SECRET}"}, timeout=600,
        ) as client:
            for name in [*names, "bench/warmup"]:
                graphql(client, {"query": CREATE_MODEL, "variables": {"n": name}})
            write(client, mode, version_inputs(opts, "bench/warmup", random.Random(0))[:2])  # untimed
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            requests = sum(write(client, mode, model_inputs) for model_inputs in inputs)
            seconds = time.perf_counter() - started
            load_after = os.getloadavg()[0]
            digests = [check(client, opts, name) for name in names]
    total = opts.models * opts.versions
    return Run(kind, mode, total, seconds, requests, load_before, load_after), digests


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    print(f"$ {command_line()}\nmodelyard {git_state()}; {machine()}; server in its own process, "
          f"sequential requests\n{opts.models} models × {opts.versions} versions × {opts.params} params, "
          f"10 metrics, 2 tags, run info, each version FINE_TUNED_FROM the one before", flush=True)
    runs: list[Run] = []
    for kind in opts.dbs:
        digests: dict[str, list[str]] = {}
        for mode in MODES:
            result, digests[mode] = run(kind, mode, opts)
            runs.append(result)
            print(f"  {DB_TITLES[kind]:<10} {mode:<6} {result.versions} versions in {result.requests} "
                  f"requests, {result.seconds:.2f} s: {result.rate:,.0f} versions/s "
                  f"(load {result.load_before:.2f} → {result.load_after:.2f})", flush=True)
        if digests["single"] != digests["batch"]:
            raise SystemExit(f"{kind}: the two ways wrote different versions")
    print(f"\n| database | createVersion (versions/s) | createVersions ×{opts.versions} (versions/s) | ratio |")
    print("|---|---:|---:|---:|")
    for kind in opts.dbs:
        single, batch = (next(r for r in runs if r.db == kind and r.mode == m) for m in MODES)
        print(f"| {DB_TITLES[kind]} | {single.rate:,.0f} | {batch.rate:,.0f} | {batch.rate / single.rate:.1f}× |")
    print(f"\n1-minute load average now {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
