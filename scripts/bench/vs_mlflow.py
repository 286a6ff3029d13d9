"""modelyard beside MLflow: the same catalog in both, the same operations, HTTP requests and latency.

The script installs MLflow into its own virtualenv (`.bench/mlflow-venv`, created when missing),
starts `mlflow server` (SQLite backend, artifacts proxied to a local folder, one worker) and
`python -m modelyard.cli serve` (SQLite, local blob store) on free loopback ports, each with a
fresh data dir in one temp dir, and seeds both over HTTP with the same data:

    M models × V versions, each version with P params (lr, epochs, … of mixed types) and ten
    metrics (accuracy, loss, f1, precision, recall, auc, val_loss, val_accuracy, latency_ms,
    throughput); version n of a model is fine-tuned from version n-1; two aliases a model
    (champion → V/2, challenger → V); a chain of 21 one-version models, each fine-tuned from
    the one before, for the ancestry walk.

MLflow has no typed params and no lineage, so there a version is a run (params as strings and
metrics in one `runs/log-batch`, named `<model>-v<number, 4 digits>`) plus a registered model
version whose source is the run, and the parent is a model-version tag `parent=<model>:<n>`.
Both are driven over their REST/GraphQL APIs with httpx; an event hook counts every HTTP request
each operation sends. Each answer is checked against the data (both systems must return the same
versions, params, metrics, aliases, parents, ancestors, in the same order). Per operation, p50 and
p95 over R repetitions (after a few untimed ones), MLflow's p50 over modelyard's, and the load
average (1 min) before and after:

    seeding         the catalog through the API, versions/s, SEED_THREADS models at a time
                    (modelyard: createModel + createVersions + setAlias in one request a model;
                    MLflow: registered-models/create, 4 requests a version, 1 an alias)
    model page      a model with its V versions, their params, metrics, aliases and parents;
                    MLflow with one runs/search `run_id IN (…)` for the runs, and again with
                    one runs/get per version (as `MlflowClient.get_run`)
    search          versions with lr < 1e-3 and accuracy > 0.9, the first 100 ordered by (model
                    name, version number), with their params and metrics; modelyard: one
                    `versions(filter:, orderBy:)` query. MLflow compares params only as strings
                    (`<` is refused), so its user filters by the metric on the server, ordered
                    by run name, 100 runs a page, by lr on the client until 100 pass, then maps
                    runs to model versions (model-versions/search `run_id IN (…)`)
    ancestry        the 20 ancestors of the chain's tip, each with its params; MLflow: follow
                    the tag, one GET a step, then one runs/search for the ancestors' params
    create          a version with P params, ten metrics, a tag and a parent
    upload          a file of --size (1 GiB) as a new version's artifact, timed from the file
                    on disk to the version created (modelyard: sha256 of the file, which the
                    content address needs, PUT, createVersion; MLflow: run, PUT, finish, register)
    download        that version's artifact to a file + fsync (metadata lookups included)

    python scripts/bench/vs_mlflow.py --quick      # 10 models, 64 MiB, 10 repetitions
    python scripts/bench/vs_mlflow.py [--models 200 --versions 20 --params 30 --requests 50]
                                      [--size 1GiB --blob-reps 3] [--dir /some/disk]
                                      [--write-doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from machine import command_line, git_state, machine

ROOT = Path(__file__).resolve().parents[2]
MIB, GIB = 1024**2, 1024**3
MLFLOW_VERSION = "3.17.2"  # 3.18.0's mlflow-skinny was not on the index when this was written
MLFLOW_VENV = ROOT / ".bench" / "mlflow-venv"
ADMIN_SECRET = "myd_" + "v" * 43  # seeded as modelyard's admin token
HTTP_TIMEOUT = httpx.Timeout(900.0, connect=10.0)
STARTUP_SECONDS = 240  # MLflow imports a lot; on a busy 2-CPU machine it takes a while
IO_CHUNK = MIB
CHAIN = 20  # ancestors walked
LR_BELOW, ACCURACY_ABOVE = 1e-3, 0.9
SEARCH_FIRST = 100  # versions the search returns (modelyard `first:`, MLflow `max_results`)
# the ten metrics of every version and the range each is drawn from
METRICS: dict[str, tuple[float, float]] = {
    "accuracy": (0.5, 0.99), "loss": (0.01, 2.0), "f1": (0.4, 0.99), "precision": (0.4, 0.99),
    "recall": (0.4, 0.99), "auc": (0.5, 0.999), "val_loss": (0.01, 2.5), "val_accuracy": (0.45, 0.98),
    "latency_ms": (1.0, 250.0), "throughput": (10.0, 5000.0),
}
BATCH_MAX = 500  # inputs a createVersions call takes
FULL = {"models": 200, "versions": 20, "params": 30, "requests": 50, "size": GIB, "blob_reps": 3}
QUICK = {"models": 10, "versions": 20, "params": 30, "requests": 10, "size": 64 * MIB, "blob_reps": 2}
MV_API = "/api/2.0/mlflow"
ART_API = "/api/2.0/mlflow-artifacts/artifacts"
PR_SET_PDEATHSIG = 1
SEED_THREADS = 4  # models seeded in parallel (each model's versions in order)

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    models: int
    versions: int
    params: int
    requests: int
    warmup: int
    size: int
    blob_reps: int
    parent_dir: Path | None
    write_doc: Path | None
    seed: int


def parse_size(text: str) -> int:
    """Bytes from `1073741824`, `64MiB`, `1GiB`."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    units = {"k": 1024, "m": MIB, "g": GIB}
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 models, 64 MiB, 10 repetitions")
    parser.add_argument("--models", type=int, help="models (default 200; quick 10)")
    parser.add_argument("--versions", type=int, help="versions per model (default 20)")
    parser.add_argument("--params", type=int, help="params per version (default 30)")
    parser.add_argument("--requests", type=int, help="timed repetitions per operation (default 50)")
    parser.add_argument("--size", type=parse_size, help="artifact size (default 1GiB; quick 64MiB)")
    parser.add_argument("--blob-reps", type=int, help="timed uploads and downloads (default 3)")
    parser.add_argument("--dir", type=Path, help="parent of the temp dir (default: system temp)")
    parser.add_argument("--write-doc", type=Path, help="also write the results into this markdown file")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    if sizes["versions"] < 2 or sizes["params"] < 10 or sizes["models"] < 1:
        parser.error("need at least 1 model, 2 versions and 10 params")
    return Options(models=sizes["models"], versions=sizes["versions"], params=sizes["params"],
                   requests=sizes["requests"], warmup=max(2, min(10, sizes["requests"] // 5)),
                   size=sizes["size"], blob_reps=sizes["blob_reps"], parent_dir=args.dir,
                   write_doc=args.write_doc, seed=args.seed)


# ---------------------------------------------------------------------------------------------
# The data, the same for both
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    model: str
    number: int
    params: list[tuple[str, Any]]
    metrics: list[tuple[str, float]]
    parent: str | None  # `model:n`

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.number}"

    @property
    def run_name(self) -> str:
        """MLflow's run of this version: `model-000-v0007`, so runs sort as (model, number)."""
        return f"{self.model}-v{self.number:04d}"

    @property
    def accuracy(self) -> float:
        return dict(self.metrics)["accuracy"]

    @property
    def lr(self) -> float:
        return float(dict(self.params)["lr"])


def random_params(rng: random.Random, count: int) -> list[tuple[str, Any]]:
    """lr, epochs, batch_size, … then extra_NN of mixed kinds (as scripts/bench/catalog.py)."""
    named: list[tuple[str, Any]] = [
        ("lr", 10 ** rng.uniform(-5, -2)), ("epochs", rng.randint(1, 100)),
        ("batch_size", rng.choice([8, 16, 32, 64, 128, 256])),
        ("optimizer", rng.choice(["adam", "adamw", "sgd", "lion"])), ("use_amp", rng.random() < 0.5),
        ("dropout", rng.uniform(0.0, 0.5)), ("weight_decay", 10 ** rng.uniform(-6, -2)),
        ("scheduler", rng.choice(["cosine", "linear", "constant"])), ("seed", rng.randint(0, 2**31 - 1)),
        ("gradient_checkpointing", rng.random() < 0.5),
    ]
    kinds = ("float", "int", "string", "bool")
    for i in range(max(0, count - len(named))):
        kind = kinds[i % 4]
        value: Any = {"float": rng.uniform(-1.0, 1.0), "int": rng.randint(0, 10_000),
                      "string": f"value-{rng.randint(0, 999)}", "bool": rng.random() < 0.5}[kind]
        named.append((f"extra_{i:02d}", value))
    return named[:count]


def new_version(rng: random.Random, model: str, number: int, params: int, parent: str | None) -> Version:
    metrics = [(key, rng.uniform(lo, hi)) for key, (lo, hi) in METRICS.items()]
    return Version(model, number, random_params(rng, params), metrics, parent)


def aliases(versions: int) -> dict[str, int]:
    """The aliases of every model of the catalog: name → version number."""
    return {"champion": max(1, versions // 2), "challenger": versions}


def catalog(opts: Options) -> tuple[list[Version], list[Version]]:
    """The model versions (model by model, in order) and the lineage chain."""
    rng = random.Random(opts.seed)
    out = []
    for m in range(opts.models):
        name = f"model-{m:03d}"
        for n in range(1, opts.versions + 1):
            out.append(new_version(rng, name, n, opts.params, f"{name}:{n - 1}" if n > 1 else None))
    chain = [new_version(rng, f"chain-{k:02d}", 1, opts.params, f"chain-{k - 1:02d}:1" if k else None)
             for k in range(CHAIN + 1)]
    return out, chain


def by_model(versions: list[Version]) -> dict[str, list[Version]]:
    """Versions grouped by model, in order."""
    out: dict[str, list[Version]] = {}
    for v in versions:
        out.setdefault(v.model, []).append(v)
    return out


def mlflow_value(value: Any) -> str:
    """A param as MLflow stores it: a string, as its Python client writes it (str())."""
    return str(value)


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    startup: float = 0.0
    rss: int = 0

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def _wait_ready(p: Proc, path: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_SECONDS:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(p.url + path, timeout=5).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{p.name} did not answer within {STARTUP_SECONDS} s:\n{p.tail()}")


@contextlib.contextmanager
def process(name: str, argv: list[str], env: dict[str, str], cwd: Path, health: str) -> Iterator[Proc]:
    """Start a server in its own process group; stop the whole group afterwards."""
    port = int(env["BENCH_PORT"])
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
    p = Proc(name, proc, f"http://127.0.0.1:{port}", log)
    try:
        p.startup = _wait_ready(p, health)
        p.rss = tree_rss(proc.pid)
        print(f"  {name}: pid {proc.pid}, {p.url}, up in {p.startup:.1f} s, "
              f"RSS {p.rss / MIB:.0f} MiB (process tree)", flush=True)
        yield p
        if proc.poll() is not None:
            raise RuntimeError(f"{name} died during the benchmark:\n{p.tail()}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _clean_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODELYARD_", "MLFLOW_", "VIRTUAL_ENV"))}
    env["BENCH_PORT"] = str(port)
    return env


def modelyard_server(root: Path) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    env = _clean_env(port)
    env.update(MODELYARD_DATA_DIR=str(root / "modelyard-data"), MODELYARD_PORT=str(port),
               MODELYARD_ADMIN_TOKEN=ADMIN_SECRET, MODELYARD_LOG_LEVEL="warning")
    return process("modelyard", [sys.executable, "-m", "modelyard.cli", "serve"], env, root, "/healthz")


def mlflow_server(root: Path) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    argv = [str(MLFLOW_VENV / "bin" / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "mlflow-artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return process("mlflow", argv, _clean_env(port), root, "/health")


def ensure_mlflow() -> str:
    """Create the MLflow virtualenv and install MLflow when missing; its version."""
    mlflow = MLFLOW_VENV / "bin" / "mlflow"
    if not mlflow.exists():
        print(f"installing mlflow=={MLFLOW_VERSION} into {MLFLOW_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(MLFLOW_VENV / "bin" / "python"), "-m", "pip", "install", "-q",
                        f"mlflow=={MLFLOW_VERSION}"], check=True)
    out = subprocess.run([str(MLFLOW_VENV / "bin" / "python"), "-c",
                          "import mlflow; print(mlflow.__version__)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def tree_rss(pid: int) -> int:
    """VmRSS of a process and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


class PeakRss:
    """Samples a process tree's RSS every 20 ms while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.before, self.peak = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self.before = self.peak = tree_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))


# ---------------------------------------------------------------------------------------------
# Clients that count requests
# ---------------------------------------------------------------------------------------------


class Counted:
    """An httpx client whose event hook counts every request sent."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.requests = 0
        self._lock = threading.Lock()
        self.http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT, headers=headers or {},
                                 event_hooks={"request": [self._count]})

    def _count(self, request: httpx.Request) -> None:
        with self._lock:
            self.requests += 1

    def close(self) -> None:
        self.http.close()


def expect(response: httpx.Response, status: int = 200) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url} answered "
                           f"{response.status_code}, not {status}: {response.text[:500]}")
    return response


def gql(c: Counted, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = expect(c.http.post("/graphql", json={"query": query, "variables": variables or {}})).json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return dict(body["data"])


def ml_post(c: Counted, path: str, body: dict[str, Any], retry_locked: bool = False) -> dict[str, Any]:
    """POST to MLflow's REST API; while seeding in parallel, retry what SQLite refused as locked."""
    for attempt in range(5):
        r = c.http.post(MV_API + path, json=body)
        if not (retry_locked and r.status_code >= 500 and "locked" in r.text and attempt < 4):
            return dict(expect(r).json())
        time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def ml_get(c: Counted, path: str, params: dict[str, Any]) -> dict[str, Any]:
    return dict(expect(c.http.get(MV_API + path, params=params)).json())


# ---------------------------------------------------------------------------------------------
# modelyard: seeding and operations
# ---------------------------------------------------------------------------------------------


def my_version_input(v: Version, artifacts: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "model": v.model,
        "params": [{"key": k, "value": val} for k, val in v.params],
        "metrics": [{"key": k, "value": val} for k, val in v.metrics],
        "tags": [{"key": "stage", "value": "candidate"}],
        "lineage": [{"parent": v.parent, "relation": "FINE_TUNED_FROM"}] if v.parent else [],
        "artifacts": artifacts or [],
    }


def my_seed_model(c: Counted, model: str, versions: list[Version], alias: dict[str, int]) -> None:
    """createModel, createVersions (BATCH_MAX a call) and a setAlias each: one request a model
    (one per BATCH_MAX versions beyond)."""
    for start in range(0, len(versions), BATCH_MAX):
        chunk = versions[start:start + BATCH_MAX]
        decl, body = ["$vs: [CreateVersionInput!]!"], ["vs: createVersions(input: $vs) { number }"]
        variables: dict[str, Any] = {"vs": [my_version_input(v) for v in chunk]}
        if start == 0:
            decl.append("$m: CreateModelInput!")
            body.insert(0, "m: createModel(input: $m) { name }")
            variables["m"] = {"name": model}
        if start + BATCH_MAX >= len(versions):
            for i, (name, number) in enumerate(alias.items()):
                decl.append(f"$a{i}: SetAliasInput!")
                body.append(f"a{i}: setAlias(input: $a{i}) {{ name }}")
                variables[f"a{i}"] = {"model": model, "alias": name, "version": str(number)}
        data = gql(c, f"mutation({', '.join(decl)}) {{ {' '.join(body)} }}", variables)
        got = [n["number"] for n in data["vs"]]
        if got != [v.number for v in chunk]:
            raise RuntimeError(f"modelyard numbered {model}'s versions {got}")


def my_seed(c: Counted, versions: list[Version], chain: list[Version], alias: dict[str, int],
            extra_models: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(lambda item: my_seed_model(c, item[0], item[1], alias), by_model(versions).items()))
    for v in chain:
        my_seed_model(c, v.model, [v], {})
    for name in extra_models:
        gql(c, "mutation($m: CreateModelInput!) { createModel(input: $m) { name } }", {"m": {"name": name}})


MY_PAGE = """
query Page($name: String!, $first: Int!) {
  model(name: $name) {
    name description tags { key value } aliases { name version { number } }
    versions(first: $first) {
      totalCount
      nodes {
        number ref status createdAt
        params { key type value }
        metrics { key value step }
        tags { key value }
        parents { relation parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
      }
    }
  }
}
"""

MY_SEARCH = """
query Search($lt: Float!, $gt: Float!, $first: Int!) {
  versions(first: $first,
           filter: {params: [{key: "lr", lt: $lt}], metrics: [{key: "accuracy", gt: $gt}]},
           orderBy: [{field: MODEL_NAME, descending: false}, {field: NUMBER, descending: false}]) {
    nodes { ref params { key value } metrics { key value } }
  }
}
"""

MY_ANCESTORS = """
query Up($ref: String!, $depth: Int!) {
  version(ref: $ref) {
    ref
    ancestors(depth: $depth) {
      depth relation parent { ... on ModelVersion { ref params { key value } } }
    }
  }
}
"""

MY_CREATE = "mutation($v: CreateVersionInput!) { createVersion(input: $v) { ref number } }"
MY_ARTIFACTS = "query($ref: String!) { version(ref: $ref) { artifacts { path digest size } } }"


def my_page(c: Counted, model: str, versions: int) -> dict[str, dict[str, Any]]:
    """number → {params, metrics, aliases, parent} of every version of a model."""
    data = gql(c, MY_PAGE, {"name": model, "first": versions})["model"]
    alias = {a["name"]: str(a["version"]["number"]) for a in data["aliases"]}
    return {str(n["number"]): {
        "params": {p["key"]: p["value"] for p in n["params"]},
        "metrics": {m["key"]: m["value"] for m in n["metrics"]},
        "aliases": sorted(a for a, number in alias.items() if number == str(n["number"])),
        "parent": next((e["parent"]["ref"] for e in n["parents"]), None),
    } for n in data["versions"]["nodes"]}


def my_search(c: Counted) -> list[dict[str, Any]]:
    """The first SEARCH_FIRST matches by (model name, number): one query."""
    nodes = gql(c, MY_SEARCH, {"lt": LR_BELOW, "gt": ACCURACY_ABOVE, "first": SEARCH_FIRST})["versions"]["nodes"]
    return [{"ref": n["ref"], "params": {p["key"]: mlflow_value(p["value"]) for p in n["params"]},
             "metrics": {m["key"]: m["value"] for m in n["metrics"]}} for n in nodes]


def my_ancestors(c: Counted, ref: str) -> list[dict[str, Any]]:
    """The ancestors, nearest first, each with its params: one query."""
    edges = gql(c, MY_ANCESTORS, {"ref": ref, "depth": CHAIN})["version"]["ancestors"]
    return [{"ref": e["parent"]["ref"],
             "params": {p["key"]: mlflow_value(p["value"]) for p in e["parent"]["params"]}}
            for e in sorted(edges, key=lambda e: e["depth"])]


def my_create(c: Counted, v: Version) -> str:
    return str(gql(c, MY_CREATE, {"v": my_version_input(v)})["createVersion"]["ref"])


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(IO_CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(IO_CHUNK):
            yield chunk


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stream_to(c: Counted, url: str, dest: Path, size: int) -> None:
    """GET into a file (no hashing, as MLflow's client does not hash), then fsync."""
    received = 0
    with c.http.stream("GET", url) as response, dest.open("wb") as f:
        expect(response)
        for chunk in response.iter_raw(IO_CHUNK):
            f.write(chunk)
            received += len(chunk)
    fsync_file(dest)
    if received != size:
        raise RuntimeError(f"downloaded {received} bytes, not {size}")


def my_upload(c: Counted, src: Path, v: Version, timings: dict[str, float]) -> str:
    """sha256 the file, PUT the blob, createVersion naming it; the new version's ref."""
    started = time.perf_counter()
    digest = file_digest(src)
    timings["hash"] = time.perf_counter() - started
    size = src.stat().st_size
    expect(c.http.put(f"/api/blobs/{digest}", content=file_chunks(src),
                      headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"}), 201)
    data = gql(c, MY_CREATE, {"v": my_version_input(v, [{"path": "model.bin", "digest": digest}])})
    return str(data["createVersion"]["ref"])


def my_download(c: Counted, ref: str, dest: Path, size: int) -> None:
    """Look up the version's artifacts, GET each blob into a file."""
    for a in gql(c, MY_ARTIFACTS, {"ref": ref})["version"]["artifacts"]:
        stream_to(c, f"/api/blobs/{a['digest']}", dest, size)


# ---------------------------------------------------------------------------------------------
# MLflow: seeding and operations (REST, as few requests as its API allows)
# ---------------------------------------------------------------------------------------------


@dataclass
class MlflowState:
    experiment: str = ""
    search_runs: int = 0  # runs the last search read


def ml_new_run(c: Counted, st: MlflowState, v: Version, retry: bool = False) -> dict[str, Any]:
    """runs/create, then runs/log-batch with P params and the metrics: the run's info."""
    now = int(time.time() * 1000)
    info = ml_post(c, "/runs/create", {"experiment_id": st.experiment, "start_time": now,
                                       "run_name": v.run_name,
                                       "tags": [{"key": "stage", "value": "candidate"}]}, retry)["run"]["info"]
    ml_log(c, info["run_id"], v, now, retry)
    return dict(info)


def ml_log(c: Counted, run_id: str, v: Version, now: int, retry: bool = False) -> None:
    ml_post(c, "/runs/log-batch", {
        "run_id": run_id,
        "params": [{"key": k, "value": mlflow_value(val)} for k, val in v.params],
        "metrics": [{"key": k, "value": val, "timestamp": now, "step": 0} for k, val in v.metrics],
    }, retry)


def ml_finish(c: Counted, run_id: str, retry: bool = False) -> None:
    ml_post(c, "/runs/update", {"run_id": run_id, "status": "FINISHED",
                                "end_time": int(time.time() * 1000)}, retry)


def ml_register(c: Counted, v: Version, info: dict[str, Any], retry: bool = False) -> str:
    """model-versions/create with the run as source and the parent as a tag; the version number."""
    tags = [{"key": "parent", "value": v.parent}] if v.parent else []
    mv = ml_post(c, "/model-versions/create", {"name": v.model, "source": info["artifact_uri"],
                                               "run_id": info["run_id"], "tags": tags}, retry)["model_version"]
    if mv["status"] != "READY":  # the Python client polls model-versions/get until READY
        raise RuntimeError(f"model version {v.model}/{mv['version']} is {mv['status']}")
    return str(mv["version"])


def ml_create(c: Counted, st: MlflowState, v: Version, retry: bool = False) -> str:
    info = ml_new_run(c, st, v, retry)
    ml_finish(c, info["run_id"], retry)
    return f"{v.model}:{ml_register(c, v, info, retry)}"


def ml_seed_model(c: Counted, st: MlflowState, model: str, versions: list[Version],
                  alias: dict[str, int]) -> None:
    """registered-models/create, the versions in order, one registered-models/alias each."""
    ml_post(c, "/registered-models/create", {"name": model}, True)
    for v in versions:
        got = ml_create(c, st, v, True)
        if got != v.ref:
            raise RuntimeError(f"MLflow numbered {v.ref} as {got}")
    for name, number in alias.items():
        ml_post(c, "/registered-models/alias", {"name": model, "alias": name, "version": str(number)}, True)


def ml_seed(c: Counted, st: MlflowState, versions: list[Version], chain: list[Version],
            alias: dict[str, int], extra_models: list[str]) -> None:
    st.experiment = ml_post(c, "/experiments/create", {"name": "bench"})["experiment_id"]
    with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(lambda item: ml_seed_model(c, st, item[0], item[1], alias), by_model(versions).items()))
    for v in chain:
        ml_seed_model(c, st, v.model, [v], {})
    for name in extra_models:
        ml_post(c, "/registered-models/create", {"name": name})


def ml_page(c: Counted, st: MlflowState, model: str, per_run: bool) -> dict[str, dict[str, Any]]:
    """registered-models/get (with the aliases), model-versions/search, then the runs: one
    runs/search (run_id IN …) or, as MlflowClient.get_run would, one runs/get per version."""
    rm = ml_get(c, "/registered-models/get", {"name": model})["registered_model"]
    alias = {a["alias"]: str(a["version"]) for a in rm.get("aliases", [])}
    mvs = ml_get(c, "/model-versions/search", {"filter": f"name='{model}'", "max_results": 1000})
    mvs_list = mvs.get("model_versions", [])
    if per_run:
        runs = [ml_get(c, "/runs/get", {"run_id": mv["run_id"]})["run"] for mv in mvs_list]
    else:
        ids = ", ".join(f"'{mv['run_id']}'" for mv in mvs_list)
        runs = ml_post(c, "/runs/search", {"experiment_ids": [st.experiment], "max_results": 1000,
                                           "filter": f"attributes.run_id IN ({ids})"})["runs"]
    by_run = {r["info"]["run_id"]: r["data"] for r in runs}
    out = {}
    for mv in mvs_list:
        data = by_run[mv["run_id"]]
        tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
        out[str(mv["version"])] = {
            "params": {p["key"]: p["value"] for p in data.get("params", [])},
            "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
            "aliases": sorted(a for a, number in alias.items() if number == str(mv["version"])),
            "parent": tags.get("parent"),
        }
    return out


def ml_search(c: Counted, st: MlflowState) -> list[dict[str, Any]]:
    """Server: runs with accuracy > 0.9 ordered by run name (`model-000-v0007`, i.e. by model and
    number), SEARCH_FIRST a page. Client: float(lr) < 1e-3, until SEARCH_FIRST pass. Server again:
    the model versions of those runs (model-versions/search run_id IN …, one request)."""
    picked: list[dict[str, Any]] = []
    token, st.search_runs = None, 0
    while len(picked) < SEARCH_FIRST:
        body: dict[str, Any] = {"experiment_ids": [st.experiment], "max_results": SEARCH_FIRST,
                                "filter": f"metrics.accuracy > {ACCURACY_ABOVE}",
                                "order_by": ["attributes.run_name ASC"]}
        if token:
            body["page_token"] = token
        page = ml_post(c, "/runs/search", body)
        runs = page.get("runs", [])
        st.search_runs += len(runs)
        picked += [r for r in runs if float(next((p["value"] for p in r["data"].get("params", [])
                                                   if p["key"] == "lr"), "inf")) < LR_BELOW]
        token = page.get("next_page_token")
        if not token:
            break
    picked = picked[:SEARCH_FIRST]
    if not picked:
        return []
    ids = ", ".join(f"'{r['info']['run_id']}'" for r in picked)
    mvs = ml_get(c, "/model-versions/search", {"filter": f"run_id IN ({ids})", "max_results": 1000})
    ref = {mv["run_id"]: (mv["name"], int(mv["version"])) for mv in mvs.get("model_versions", [])}
    hits = sorted(picked, key=lambda r: ref[r["info"]["run_id"]])
    return [{"ref": "{}:{}".format(*ref[r["info"]["run_id"]]),
             "params": {p["key"]: p["value"] for p in r["data"].get("params", [])},
             "metrics": {m["key"]: m["value"] for m in r["data"].get("metrics", [])}} for r in hits]


def ml_ancestors(c: Counted, st: MlflowState, ref: str) -> list[dict[str, Any]]:
    """Follow the `parent` tag: model-versions/get for the start and for each ancestor; then the
    ancestors' params from their runs, one runs/search `run_id IN (…)`."""
    found: list[tuple[str, str]] = []  # (ref, run id), nearest first
    mv = ml_get(c, "/model-versions/get", {"name": ref.split(":")[0], "version": ref.split(":")[1]})
    while len(found) < CHAIN:
        parent = {t["key"]: t["value"] for t in mv["model_version"].get("tags", [])}.get("parent")
        if not parent:
            break
        name, number = parent.split(":")
        mv = ml_get(c, "/model-versions/get", {"name": name, "version": number})
        found.append((parent, mv["model_version"]["run_id"]))
    if not found:
        return []
    ids = ", ".join(f"'{run_id}'" for _, run_id in found)
    runs = ml_post(c, "/runs/search", {"experiment_ids": [st.experiment], "max_results": 1000,
                                       "filter": f"attributes.run_id IN ({ids})"})["runs"]
    params = {r["info"]["run_id"]: {p["key"]: p["value"] for p in r["data"].get("params", [])} for r in runs}
    return [{"ref": parent, "params": params[run_id]} for parent, run_id in found]


def ml_upload(c: Counted, st: MlflowState, src: Path, v: Version) -> str:
    """runs/create + log-batch, PUT the artifact through the server, finish the run, register."""
    info = ml_new_run(c, st, v)
    path = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    size = src.stat().st_size
    expect(c.http.put(f"{ART_API}/{path}/model.bin", content=file_chunks(src),
                      headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"}))
    ml_finish(c, info["run_id"])
    return f"{v.model}:{ml_register(c, v, info)}"


def ml_download(c: Counted, ref: str, dest: Path, size: int) -> None:
    """As mlflow.artifacts.download_artifacts("models:/name/n"): get-download-uri, list, GET each file."""
    name, number = ref.split(":")
    uri = ml_get(c, "/model-versions/get-download-uri", {"name": name, "version": number})["artifact_uri"]
    path = uri.removeprefix("mlflow-artifacts:/")
    files = expect(c.http.get(ART_API, params={"path": path})).json().get("files", [])
    for f in files:
        if not f.get("is_dir"):
            stream_to(c, f"{ART_API}/{path}/{f['path']}", dest, size)


def ml_param_filter_answer(c: Counted, st: MlflowState) -> str:
    """What MLflow answers to a numeric comparison on a param (a string)."""
    r = c.http.post(MV_API + "/runs/search", json={"experiment_ids": [st.experiment],
                                                   "filter": f"params.lr < '{LR_BELOW}'"})
    try:
        return f"{r.status_code} {r.json().get('message', r.text)[:160]}"
    except ValueError:
        return f"{r.status_code} {r.text[:160]}"


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    system: str
    seconds: list[float]
    requests: set[int]
    load: tuple[float, float] = (0.0, 0.0)  # load average (1 min) before the first call, after the last
    rate: str = ""  # what the p50 column shows besides the time, e.g. "310 versions/s"

    def p(self, q: float) -> float:
        s = sorted(self.seconds)
        return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        return self.p(0.95)

    @property
    def req(self) -> str:
        lo, hi = min(self.requests), max(self.requests)
        return str(lo) if lo == hi else f"{lo}–{hi}"


def measure(label: str, system: str, c: Counted, reps: int, warmup: int,
            op: Callable[[int], object], check: Callable[[object], None] | None = None,
            prepare: Callable[[int], None] | None = None) -> Result:
    """`warmup` untimed calls, then `reps` timed ones (each after an untimed `prepare`);
    requests counted per call."""
    res = Result(label, system, [], set())
    load_before = os.getloadavg()[0]
    for i in range(warmup + reps):
        if prepare:
            prepare(i)
        before = c.requests
        started = time.perf_counter()
        out = op(i)
        seconds = time.perf_counter() - started
        if check:
            check(out)
        if i >= warmup:
            res.seconds.append(seconds)
            res.requests.add(c.requests - before)
    res.load = (load_before, os.getloadavg()[0])
    show(res)
    return res


def show(res: Result) -> None:
    """One line of progress: the figures and the load average around them."""
    rate = f" ({res.rate})" if res.rate else ""
    print(f"  {res.label:<48} {res.system:<9} {res.req:>6} req  p50 {fmt(res.p50)}{rate}  "
          f"p95 {fmt(res.p95)}  load {res.load[0]:.2f} → {res.load[1]:.2f}", flush=True)


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_t(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    opts: Options
    mlflow_version: str
    rows: list[tuple[Result, Result, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)


def equal(a: object, b: object, what: str) -> None:
    if a != b:
        raise RuntimeError(f"{what}: modelyard and MLflow disagree:\n  {a!r}\n  {b!r}")


def normalise_page(page: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Params as MLflow's strings, so both pages compare."""
    return {n: {**d, "params": {k: mlflow_value(v) for k, v in d["params"].items()}}
            for n, d in page.items()}


def execute(opts: Options, root: Path, mlflow_version: str) -> Run:
    run = Run(opts, mlflow_version)
    run.load.append(os.getloadavg()[0])
    versions, chain = catalog(opts)
    rng = random.Random(opts.seed + 1)
    print(f"\nstarting both servers in {root} …", flush=True)
    with modelyard_server(root) as my_proc, mlflow_server(root) as ml_proc:
        my = Counted(my_proc.url, {"Authorization": f"Bearer {ADMIN_SECRET}"})
        ml = Counted(ml_proc.url)
        st = MlflowState()
        run.notes.append(f"Start-up to the first answer and RSS of the process tree then: modelyard "
                         f"{my_proc.startup:.1f} s, {my_proc.rss / MIB:.0f} MiB; MLflow {ml_proc.startup:.1f} s, "
                         f"{ml_proc.rss / MIB:.0f} MiB")
        try:
            measure_seeding(run, my, ml, st, versions, chain)
            run.notes.append(f"MLflow's answer to `params.lr < '{LR_BELOW}'`: {ml_param_filter_answer(ml, st)}")
            measure_metadata(run, my, ml, st, versions, chain, rng)
            measure_blobs(run, my, ml, st, my_proc, ml_proc, root, rng)
        finally:
            my.close()
            ml.close()
    run.load.append(os.getloadavg()[0])
    return run


def seeded(label: str, system: str, c: Counted, count: int, seed: Callable[[], None]) -> Result:
    """Run `seed` once: its time, requests, versions/s and the load around it."""
    load_before, before, started = os.getloadavg()[0], c.requests, time.perf_counter()
    seed()
    seconds = time.perf_counter() - started
    res = Result(label, system, [seconds], {c.requests - before}, (load_before, os.getloadavg()[0]),
                 f"{count / seconds:.0f} versions/s")
    show(res)
    return res


def measure_seeding(run: Run, my: Counted, ml: Counted, st: MlflowState, versions: list[Version],
                    chain: list[Version]) -> None:
    opts, alias, extra = run.opts, aliases(run.opts.versions), ["bench-create", "bench-blob"]
    count = len(versions) + len(chain)
    label = f"seed {count} versions through the API"
    print(f"\nseeding {opts.models} × {opts.versions} versions × {opts.params} params × {len(METRICS)} "
          f"metrics, {len(alias)} aliases a model, + a {CHAIN + 1}-model chain into each, "
          f"{SEED_THREADS} models at a time …", flush=True)
    a = seeded(label, "modelyard", my, count, lambda: my_seed(my, versions, chain, alias, extra))
    b = seeded(label, "MLflow", ml, count, lambda: ml_seed(ml, st, versions, chain, alias, extra))
    run.rows.append((a, b, f"{SEED_THREADS} models at a time, each model's versions in order, then the "
                           f"chain one model at a time (time and requests include {len(extra)} empty "
                           "models for the create and upload rows). modelyard: createModel + "
                           f"createVersions (its {opts.versions} versions) + {len(alias)} setAlias in one "
                           "request a model; MLflow: registered-models/create, runs/create + "
                           "runs/log-batch + runs/update + model-versions/create a version, "
                           f"registered-models/alias × {len(alias)} (plus experiments/create)"))


def measure_metadata(run: Run, my: Counted, ml: Counted, st: MlflowState, versions: list[Version],
                     chain: list[Version], rng: random.Random) -> None:
    opts = run.opts
    reps, warm = opts.requests, opts.warmup
    model = f"model-{opts.models // 2:03d}"
    print(f"\nmeasuring ({warm} untimed + {reps} timed each; load {os.getloadavg()[0]:.2f}) …", flush=True)

    # (1) model page
    alias = aliases(opts.versions)
    want = {str(v.number): {"params": {k: mlflow_value(val) for k, val in v.params},
                            "metrics": dict(v.metrics),
                            "aliases": sorted(a for a, n in alias.items() if n == v.number),
                            "parent": v.parent}
            for v in versions if v.model == model}

    def check_my(page: object) -> None:
        equal(normalise_page(page), want, "model page")  # type: ignore[arg-type]

    def check_ml(page: object) -> None:
        equal(page, want, "model page")

    page = f"model page, {opts.versions} versions"
    a = measure(page, "modelyard", my, reps, warm, lambda i: my_page(my, model, opts.versions), check_my)
    b = measure(f"{page}, one runs/search", "MLflow", ml, reps, warm, lambda i: ml_page(ml, st, model, False),
                check_ml)
    run.rows.append((a, b, f"{len(METRICS)} metrics and {opts.params} params a version, {len(alias)} aliases, "
                           "parents. MLflow: registered-models/get (with the aliases) + "
                           "model-versions/search + one runs/search `attributes.run_id IN (…)`"))
    b2 = measure(f"{page}, runs/get each", "MLflow", ml, reps, warm, lambda i: ml_page(ml, st, model, True),
                 check_ml)
    run.rows.append((a, b2, "the same page, MLflow as `MlflowClient.get_run` per version: "
                            "registered-models/get + model-versions/search + one runs/get per version"))

    # (2) search: the first SEARCH_FIRST by (model name, number)
    matching = sorted((v for v in versions + chain if v.accuracy > ACCURACY_ABOVE and v.lr < LR_BELOW),
                      key=lambda v: (v.model, v.number))
    expected = [{"ref": v.ref, "params": {k: mlflow_value(val) for k, val in v.params},
                 "metrics": dict(v.metrics)} for v in matching[:SEARCH_FIRST]]

    def check_list(found: object) -> None:
        equal(found, expected, "search")

    label = f"search lr < 1e-3 and accuracy > 0.9, first {SEARCH_FIRST}"
    a = measure(label, "modelyard", my, reps, warm, lambda i: my_search(my), check_list)
    b = measure(label, "MLflow", ml, reps, warm, lambda i: ml_search(ml, st), check_list)
    matched = sum(1 for v in versions + chain if v.accuracy > ACCURACY_ABOVE)
    run.rows.append((a, b, f"ordered by (model name, version number), with all params and metrics; "
                           f"{len(matching)} versions match, {len(expected)} returned. modelyard: "
                           "`versions(filter:, orderBy: [MODEL_NAME, NUMBER])`. MLflow refuses `<` on "
                           f"params (strings): runs/search `metrics.accuracy > 0.9` ({matched} runs match) "
                           f"ordered by run name (`<model>-v<4-digit number>`), {SEARCH_FIRST} runs a page "
                           f"with every param (read {st.search_runs}), lr filtered on the client until "
                           f"{SEARCH_FIRST} pass, then model-versions/search `run_id IN (…)` for their "
                           "versions"))

    # (3) ancestry
    tip = chain[-1].ref
    up = [{"ref": v.ref, "params": {k: mlflow_value(val) for k, val in v.params}} for v in reversed(chain[:-1])]

    def check_up(found: object) -> None:
        equal(found, up, "ancestry")

    label = f"ancestry, {CHAIN} deep, with params"
    a = measure(label, "modelyard", my, reps, warm, lambda i: my_ancestors(my, tip), check_up)
    b = measure(label, "MLflow", ml, reps, warm, lambda i: ml_ancestors(ml, st, tip), check_up)
    run.rows.append((a, b, f"the {CHAIN} ancestors of the chain's tip, nearest first, each with its "
                           f"{opts.params} params. modelyard: `ancestors(depth: {CHAIN})`; MLflow has no "
                           "lineage: the parent is a model-version tag, the client walks it one "
                           "model-versions/get a generation, then one runs/search `run_id IN (…)` for "
                           "the params"))

    # (4) create a version
    counters = {"my": 0, "ml": 0}

    def create(kind: str) -> Callable[[int], object]:
        def op(i: int) -> object:
            counters[kind] += 1
            v = new_version(rng, "bench-create", counters[kind], opts.params, "model-000:1")
            ref = my_create(my, v) if kind == "my" else ml_create(ml, st, v)
            equal(ref, v.ref, "create")
            return ref
        return op

    label = f"create a version, {opts.params} params, {len(METRICS)} metrics"
    a = measure(label, "modelyard", my, reps, warm, create("my"))
    b = measure(label, "MLflow", ml, reps, warm, create("ml"))
    run.rows.append((a, b, "a tag and a parent too. modelyard: createVersion; MLflow: runs/create + "
                           "runs/log-batch + runs/update + model-versions/create (READY at once with a "
                           "SQL store, so no model-versions/get poll)"))


def patch_file(src: Path, i: int) -> None:
    """Change the first 8 bytes, so every upload is a new blob (no deduplication across reps)."""
    with src.open("r+b") as f:
        f.write(i.to_bytes(8, "little"))
        f.flush()
        os.fsync(f.fileno())


def measure_blobs(run: Run, my: Counted, ml: Counted, st: MlflowState, my_proc: Proc, ml_proc: Proc,
                  root: Path, rng: random.Random) -> None:
    opts = run.opts
    src, dst = root / "artifact.bin", root / "download.bin"
    print(f"\nwriting {opts.size / MIB:.0f} MiB of random bytes …", flush=True)
    with src.open("wb") as f:
        for off in range(0, opts.size, IO_CHUNK):
            f.write(os.urandom(min(IO_CHUNK, opts.size - off)))
    fsync_file(src)
    label_up = f"upload {opts.size / MIB:.0f} MiB + create version"
    label_down = f"download {opts.size / MIB:.0f} MiB"
    counters = {"my": 0, "ml": 0, "patch": 0}
    refs: dict[str, str] = {}
    hashes: list[float] = []
    rss: dict[str, list[int]] = {"my up": [], "ml up": [], "my down": [], "ml down": []}
    print(f"measuring {opts.blob_reps} uploads and downloads each (1 untimed first; load "
          f"{os.getloadavg()[0]:.2f}) …", flush=True)

    syncs: dict[str, list[float]] = {"my": [], "ml": []}
    no_hash: list[float] = []

    def sync_after(kind: str) -> Callable[[int], None]:
        def prepare(i: int) -> None:
            """Untimed: time os.sync() of what the previous upload left unflushed; a new file."""
            started = time.perf_counter()
            os.sync()
            if i:
                syncs[kind].append(time.perf_counter() - started)
            counters["patch"] += 1
            patch_file(src, counters["patch"])
            os.sync()
        return prepare

    def fresh_download(i: int) -> None:
        dst.unlink(missing_ok=True)
        os.sync()

    def upload(kind: str) -> Callable[[int], object]:
        def op(i: int) -> object:
            counters[kind] += 1
            v = new_version(rng, "bench-blob", counters[kind], opts.params, None)
            proc = my_proc if kind == "my" else ml_proc
            with PeakRss(proc.proc.pid) as peak:
                if kind == "my":
                    t: dict[str, float] = {}
                    started = time.perf_counter()
                    ref = my_upload(my, src, v, t)
                    hashes.append(t["hash"])
                    no_hash.append(time.perf_counter() - started - t["hash"])
                else:
                    ref = ml_upload(ml, st, src, v)
            rss[f"{kind} up"].append(peak.peak - peak.before)
            equal(ref, v.ref, "upload")
            refs[kind] = ref
            return ref
        return op

    def download(kind: str) -> Callable[[int], object]:
        def op(i: int) -> object:
            proc = my_proc if kind == "my" else ml_proc
            with PeakRss(proc.proc.pid) as peak:
                if kind == "my":
                    my_download(my, refs["my"], dst, opts.size)
                else:
                    ml_download(ml, refs["ml"], dst, opts.size)
            rss[f"{kind} down"].append(peak.peak - peak.before)
            return None
        return op

    a = measure(label_up, "modelyard", my, opts.blob_reps, 1, upload("my"), prepare=sync_after("my"))
    sync_after("my")(1)
    b = measure(label_up, "MLflow", ml, opts.blob_reps, 1, upload("ml"), prepare=sync_after("ml"))
    sync_after("ml")(1)
    mib = lambda n: f"{max(n) / MIB:.0f}"  # noqa: E731
    med = lambda xs: fmt_t(statistics.median(xs))  # noqa: E731
    run.rows.append((a, b, f"modelyard: sha256 of the file first (p50 {med(hashes)}, included; without it "
                           f"{med(no_hash)}), PUT /api/blobs, createVersion; MLflow: runs/create + log-batch, "
                           "PUT mlflow-artifacts, runs/update, model-versions/create. modelyard fsyncs the "
                           "blob before answering, MLflow does not: an untimed os.sync() right after took "
                           f"p50 {med(syncs['ml'])} after MLflow, {med(syncs['my'])} after modelyard. Server RSS "
                           f"growth (process tree, peak): modelyard +{mib(rss['my up'])} MiB, "
                           f"MLflow +{mib(rss['ml up'])} MiB"))
    src.unlink()
    a = measure(label_down, "modelyard", my, opts.blob_reps, 1, download("my"), prepare=fresh_download)
    b = measure(label_down, "MLflow", ml, opts.blob_reps, 1, download("ml"), prepare=fresh_download)
    run.rows.append((a, b, "to a file + fsync, no hashing on either side (modelyard's own client also "
                           "verifies sha256). modelyard: GraphQL artifacts + GET blob; MLflow: "
                           "get-download-uri + list artifacts + GET file. Server RSS growth: "
                           f"modelyard +{mib(rss['my down'])} MiB, MLflow +{mib(rss['ml down'])} MiB"))
    dst.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

HEAD = ["operation", "modelyard requests", "modelyard p50 (p95)", "MLflow requests",
        "MLflow p50 (p95)", "MLflow p50 / modelyard p50", "load (1 min) before → after", "notes"]


def figure(r: Result) -> str:
    """p50 (p95); a single timing (seeding) with its rate instead."""
    if len(r.seconds) == 1:
        return f"{fmt_t(r.p50)}, {r.rate}" if r.rate else fmt_t(r.p50)
    return f"{fmt_t(r.p50)} ({fmt_t(r.p95)})"


def table_rows(run: Run) -> list[list[str]]:
    return [[a.label if b.label == a.label else b.label, a.req, figure(a), b.req, figure(b),
             f"{b.p50 / a.p50:.1f}×", f"{a.load[0]:.2f} → {b.load[1]:.2f}", note]
            for a, b, note in run.rows]


def markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in body)])


def environment(mlflow_version: str) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return (f"modelyard {git_state()}; MLflow {mlflow_version}; Python {platform.python_version()}, "
            f"httpx {httpx.__version__}; {machine()}, {mem:.0f} GiB RAM")


def report(run: Run) -> str:
    o = run.opts
    lines = [
        f"Data: {o.models} models × {o.versions} versions × {o.params} params × {len(METRICS)} metrics, "
        f"version n fine-tuned from n-1, {len(aliases(o.versions))} aliases a model, a {CHAIN + 1}-model "
        f"chain; seeded once; {o.warmup} untimed + {o.requests} timed repetitions per metadata operation, "
        f"1 untimed + {o.blob_reps} timed per artifact operation; sequential requests on one keep-alive "
        f"connection each (seeding: {SEED_THREADS} threads on each side); load average (1 min) "
        f"{run.load[0]:.2f} → {run.load[-1]:.2f} over the run on {os.cpu_count()} CPUs.",
        "",
        markdown(HEAD, table_rows(run)),
        "",
        *[f"- {n}" for n in run.notes],
    ]
    return "\n".join(lines)


def write_doc(path: Path, run: Run, body: str) -> None:
    """Replace the generated section of the doc (between the markers), or write a new doc."""
    begin, end = "<!-- vs_mlflow:begin -->", "<!-- vs_mlflow:end -->"
    section = (f"{begin}\n\n```sh\n{command_line()}\n```\n\n{environment(run.mlflow_version)}\n\n"
               f"{body}\n\n{end}")
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text += "\n" + section + "\n"
    path.write_text(text)
    print(f"\nwrote the results into {path}")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    version = ensure_mlflow()
    print(f"$ {command_line()}\n{environment(version)}", flush=True)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="modelyard-vs-mlflow-", dir=opts.parent_dir) as tmp:
            run = execute(opts, Path(tmp), version)
    except KeyboardInterrupt:
        print("\ninterrupted: both servers stopped, the temp dir removed", file=sys.stderr)
        return 130
    body = report(run)
    print(f"\n{body}")
    if opts.write_doc:
        write_doc(opts.write_doc, run, body)
    print(f"\nTotal {time.perf_counter() - started:.0f} s. Command: `{command_line()}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
