"""Live-event benchmark: latency from sending a mutation to a subscriber receiving its event.

Starts real `modelyard serve` processes (uvicorn, free loopback ports): one on a fresh SQLite
data dir, and two replicas on one fresh PostgreSQL database (created and dropped here). Every
server polls the audit log only once a minute, so an event arrives through the process's own
wake-up (same process) or PostgreSQL LISTEN/NOTIFY (the other replica), never through the poll.

In the same run, for each database, sequentially over keep-alive HTTP (httpx) and a raw
graphql-transport-ws WebSocket (the `websockets` library, no client-side GraphQL parsing):

    no-op          `{ __typename }` round trip: HTTP + GraphQL, no SQL
    mutation       `logMetrics` round trip with no subscriber connected
    event          `logMetrics` sent → its METRICS_LOGGED event received by a subscriber on the
                   same server (SQLite; PostgreSQL replica A) or on the other replica (B);
                   with, for the same mutations, the HTTP response time and, per mutation,
                   event arrival minus response arrival (negative: the event came first)

Each mutation waits for its event before the next is sent, so nothing queues. Prints p50/p95/max
(ms) as a plain table and as markdown.

    python scripts/bench/events.py [--events 200] [--warmup 20] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from machine import command_line, machine

PG_ADMIN_URL = os.environ.get("MODELYARD_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_SECRET = "myd_" + "e" * 43  # seeded as each server's admin token
MODEL = "bench-events"
NOOP_DOC = "{ __typename }"
MUTATION_DOC = """
mutation($step: Long!) {
  logMetrics(input: {ref: "bench-events:1", metrics: [{key: "loss", value: 0.5, step: $step}]}) { number }
}"""
SUBSCRIPTION_DOC = """
subscription { events(model: "bench-events", kinds: [METRICS_LOGGED]) { id changes } }"""
EVENT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Options:
    events: int
    warmup: int
    dbs: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One line of the result table: latencies in milliseconds."""

    db: str
    label: str
    latencies: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[94]

    @property
    def max(self) -> float:
        return max(self.latencies)


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A `modelyard serve` process on loopback."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(name: str, root: Path, settings: dict[str, str]) -> Server:
    """Start one server with `MODELYARD_*` settings (its own data dir under `root`)."""
    data = root / name
    data.mkdir(parents=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update({"MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port),
                "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, "MODELYARD_LOG_LEVEL": "warning",
                "MODELYARD_EVENT_POLL_SECONDS": "60", **settings})
    log_path = data / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, port, proc, log_path)


def wait_ready(servers: Sequence[Server], timeout: float = 60) -> None:
    """Block until every server answers /healthz; fail with its log if one dies or is slow."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            if server.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not start:\n{server.log_path.read_text()}")
            time.sleep(0.1)


@contextlib.contextmanager
def servers(names: Sequence[str], settings: dict[str, str]) -> Iterator[list[Server]]:
    """Servers started at the same moment, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-events-") as root:
        started = [spawn(name, Path(root), settings) for name in names]
        try:
            wait_ready(started)
            yield started
        finally:
            for server in started:
                server.proc.terminate()
            for server in started:
                try:
                    server.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
                    server.proc.wait()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped on exit."""
    name = f"modelyard_bench_events_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------


async def post(http: httpx.AsyncClient, doc: str, variables: dict[str, Any] | None = None) -> None:
    """One GraphQL POST that must succeed."""
    response = await http.post("/graphql", json={"query": doc, "variables": variables or {}})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"request failed: {response.status_code} {body}")


class Subscriber:
    """A raw graphql-transport-ws subscription; each event is queued with its arrival time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.arrivals: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self._ws: websockets.ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._ws = await websockets.connect(
            self.server.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        )
        await self._ws.send(json.dumps({"type": "connection_init",
                                        "payload": {"Authorization": f"Bearer {ADMIN_SECRET}"}}))
        ack = json.loads(await self._ws.recv())
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        await self._ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION_DOC}}))
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            arrived = time.perf_counter()
            message = json.loads(raw)
            if message["type"] != "next" or message["payload"].get("errors"):
                raise RuntimeError(f"subscription failed: {message}")
            await self.arrivals.put((arrived, message["payload"]["data"]["events"]))

    async def next_step(self) -> tuple[float, int]:
        """Arrival time and metric step of the next event."""
        arrived, event = await asyncio.wait_for(self.arrivals.get(), EVENT_TIMEOUT)
        return arrived, int(event["changes"]["metrics"]["after"][0]["step"])

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await self._reader
        if self._ws is not None:
            await self._ws.close()


@contextlib.asynccontextmanager
async def subscriber(server: Server) -> AsyncIterator[Subscriber]:
    sub = Subscriber(server)
    await sub.open()
    try:
        yield sub
    finally:
        await sub.close()


@contextlib.asynccontextmanager
async def http_client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
        yield http


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


class Steps:
    """Increasing metric steps, so every event names the mutation that made it."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


async def seed(http: httpx.AsyncClient) -> None:
    """The model and version whose metrics the benchmark logs."""
    await post(http, 'mutation { createModel(input: {name: "bench-events"}) { name } }')
    await post(http, 'mutation { createVersion(input: {model: "bench-events"}) { number } }')


async def round_trips(http: httpx.AsyncClient, doc: str, steps: Steps | None, count: int, warmup: int) -> list[float]:
    """Milliseconds per sequential request of `doc` (with a fresh step when `steps` is given)."""
    latencies = []
    for i in range(warmup + count):
        variables = {"step": steps.next()} if steps else None
        started = time.perf_counter()
        await post(http, doc, variables)
        if i >= warmup:
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def until_live(http: httpx.AsyncClient, sub: Subscriber, steps: Steps) -> None:
    """Send mutations until the subscription delivers one (it starts from "now"), then drain."""
    for _ in range(100):
        await post(http, MUTATION_DOC, {"step": steps.next()})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sub.arrivals.get(), 0.5)
            break
    else:
        raise RuntimeError("the subscription never delivered an event")
    await asyncio.sleep(0.3)
    while not sub.arrivals.empty():
        sub.arrivals.get_nowait()


@dataclass(frozen=True)
class EventTimes:
    """Per mutation, in ms: sent → event received, sent → HTTP response, and their difference."""

    to_event: list[float]
    to_response: list[float]

    @property
    def after_response(self) -> list[float]:
        return [e - r for e, r in zip(self.to_event, self.to_response, strict=True)]

    def rows(self, db: str, label: str) -> list[Row]:
        return [
            Row(db, label, self.to_event),
            Row(db, "  its HTTP response, same mutations", self.to_response),
            Row(db, "  event minus response, per mutation", self.after_response),
        ]


async def event_latencies(
    http: httpx.AsyncClient, sub: Subscriber, steps: Steps, count: int, warmup: int
) -> EventTimes:
    """Time `count` mutations one at a time, each until its event has arrived."""
    await until_live(http, sub, steps)
    to_event: list[float] = []
    to_response: list[float] = []
    for i in range(warmup + count):
        step = steps.next()
        started = time.perf_counter()
        await post(http, MUTATION_DOC, {"step": step})
        responded = time.perf_counter()
        arrived, got = await sub.next_step()
        if got != step:
            raise RuntimeError(f"expected the event of step {step}, got {got}")
        if i >= warmup:
            to_event.append((arrived - started) * 1000)
            to_response.append((responded - started) * 1000)
    return EventTimes(to_event, to_response)


async def bench_sqlite(opts: Options) -> list[Row]:
    """One server on SQLite: baselines, then a subscriber on the same process."""
    with servers(["sqlite"], {}) as (server,):
        async with http_client(server) as http:
            await seed(http)
            steps = Steps()
            noop = await round_trips(http, NOOP_DOC, None, opts.events, opts.warmup)
            alone = await round_trips(http, MUTATION_DOC, steps, opts.events, opts.warmup)
            async with subscriber(server) as sub:
                times = await event_latencies(http, sub, steps, opts.events, opts.warmup)
    return [
        Row("SQLite", "no-op `{ __typename }` round trip", noop),
        Row("SQLite", "logMetrics round trip, no subscriber", alone),
        *times.rows("SQLite", "logMetrics sent → event received, same process"),
    ]


async def bench_postgres(opts: Options, url: str) -> list[Row]:
    """Two replicas on one PostgreSQL database: baselines on A, then subscribers on A and on B."""
    with servers(["replica-a", "replica-b"], {"MODELYARD_DATABASE_URL": url}) as (a, b):
        async with http_client(a) as http:
            await seed(http)
            steps = Steps()
            noop = await round_trips(http, NOOP_DOC, None, opts.events, opts.warmup)
            alone = await round_trips(http, MUTATION_DOC, steps, opts.events, opts.warmup)
            async with subscriber(a) as sub:
                same = await event_latencies(http, sub, steps, opts.events, opts.warmup)
            async with subscriber(b) as sub:
                cross = await event_latencies(http, sub, steps, opts.events, opts.warmup)
    return [
        Row("PostgreSQL", "no-op `{ __typename }` round trip (A)", noop),
        Row("PostgreSQL", "logMetrics round trip on A, no subscriber", alone),
        *same.rows("PostgreSQL", "logMetrics sent to A → event received on A"),
        *cross.rows("PostgreSQL", "logMetrics sent to A → event received on B (NOTIFY)"),
    ]


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def plain_table(rows: Sequence[Row]) -> str:
    width = max(len(r.label) for r in rows)
    lines = [f"{'database':<11} {'operation':<{width}} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"]
    for r in rows:
        lines.append(f"{r.db:<11} {r.label:<{width}} {len(r.latencies):>5} "
                     f"{r.p50:>8.2f} {r.p95:>8.2f} {r.max:>8.2f}")
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| database | operation | p50 ms | p95 ms |", "|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.db} | {r.label.strip()} | {r.p50:.2f} | {r.p95:.2f} |")
    return "\n".join(lines)


def environment() -> str:
    """Machine and software, so the figures can be compared."""
    return (f"Python {platform.python_version()}, {machine()}; servers are separate processes on "
            f"loopback, client requests are sequential")


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="timed events per scenario (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first (default 20)")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite,postgres (default both)")
    args = parser.parse_args(argv)
    dbs = tuple(d.strip() for d in args.db.split(",") if d.strip())
    unknown = set(dbs) - {"sqlite", "postgres"}
    if unknown or args.events < 2:
        parser.error(f"unknown database(s) {sorted(unknown)}" if unknown else "--events must be at least 2")
    return Options(events=args.events, warmup=args.warmup, dbs=dbs)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    print(f"$ {command_line()}\n{environment()}\n", flush=True)
    started = time.monotonic()
    rows: list[Row] = []
    if "sqlite" in opts.dbs:
        rows += asyncio.run(bench_sqlite(opts))
    if "postgres" in opts.dbs:
        with postgres_database() as url:
            rows += asyncio.run(bench_postgres(opts, url))
    print(plain_table(rows))
    print(f"\n{markdown_table(rows)}")
    print(f"\n{opts.events} timed events per line after {opts.warmup} untimed; "
          f"took {time.monotonic() - started:.0f} s. Command: `{command_line()}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
