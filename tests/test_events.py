"""Live events: real clients over real WebSockets (graphql-transport-ws) against real servers.

Every server here is `modelyard serve` in its own process under uvicorn on a free loopback port,
started with the settings a test needs (a long `MODELYARD_EVENT_POLL_SECONDS` wherever delivery
must come from a wake-up rather than the poll). Subscribers use gql's `WebsocketsTransport`
speaking graphql-transport-ws, with the token in the `connection_init` payload; mutations go
over HTTP. Where a test needs an exact set of events it subscribes with `since` (taken from the
audit log first), so nothing depends on when the server starts streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from tests.conftest import ADMIN_SECRET, GraphQLClient, free_port, fresh_database

QUIET = 0.6  # how long "nothing more arrives" is watched for
TIMEOUT = 10.0  # generous: a missing event fails, a slow machine does not

EVENTS = """
subscription Events($model: String, $kinds: [EventKind!], $since: Long) {
  events(model: $model, kinds: $kinds, since: $since) {
    id kind at actor model objectType objectRef changes
  }
}"""

LATEST = "{ auditLog(first: 1) { nodes { id } } }"
AUDIT_IDS = """
query($f: AuditFilter) { auditLog(first: 100, filter: $f) { nodes { id kind objectRef } } }"""
CREATE_MODEL = "mutation($n: String!) { createModel(input: {name: $n}) { name } }"
UPDATE_MODEL = "mutation($n: String!, $d: String!) { updateModel(input: {name: $n, description: $d}) { name } }"
CREATE_VERSION = "mutation($m: String!) { createVersion(input: {model: $m}) { ref } }"
LOG_METRICS = """
mutation($r: String!, $v: Float!) { logMetrics(input: {ref: $r, metrics: [{key: "acc", value: $v}]}) { ref } }"""
SET_ALIAS = "mutation($m: String!, $a: String!, $v: String!) { setAlias(input: {model: $m, alias: $a, version: $v}) { name } }"
DELETE_ALIAS = "mutation($m: String!, $a: String!) { deleteAlias(input: {model: $m, alias: $a}) { name } }"
ARCHIVE = "mutation($r: String!) { archiveVersion(ref: $r) { status } }"
RESTORE = "mutation($r: String!) { restoreVersion(ref: $r) { status } }"
CREATE_TOKEN = """
mutation($n: String!, $s: TokenScope!) { createToken(input: {name: $n, scope: $s}) { secret } }"""
REVOKE_TOKEN = "mutation($n: String!) { revokeToken(name: $n) { name } }"


# ---------------------------------------------------------------------------------------------
# Servers: real `modelyard serve` processes
# ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """One `modelyard serve` process on loopback."""

    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _spawn(root: Path, name: str, settings: dict[str, str]) -> Server:
    port = free_port()
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update({"MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port),
                "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, **settings})
    log_path = data / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Server(port, data, proc, log_path)


def _wait_ready(servers: list[Server], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting:
        server = waiting[0]
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {server.port} did not start:\n{server.log()}")
        time.sleep(0.1)


@contextlib.contextmanager
def serving(root: Path, count: int = 1, **settings: str) -> Iterator[list[Server]]:
    """`count` servers started at the same moment with `MODELYARD_*` settings; stopped after."""
    servers = [_spawn(root, f"replica-{i}-{uuid.uuid4().hex[:6]}", settings) for i in range(count)]
    try:
        _wait_ready(servers)
        yield servers
    finally:
        for server in servers:
            server.proc.terminate()
        for server in servers:
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


@contextlib.asynccontextmanager
async def http(server: Server, token: str | None = ADMIN_SECRET) -> AsyncIterator[GraphQLClient]:
    """A GraphQL-over-HTTP client of `server` presenting `token`."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield GraphQLClient(client, token)


ANONYMOUS_CAP = 4


@pytest.fixture(scope="module")
def quiet_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SQLite, public reads, a one-minute poll: events must come from the process's own wake-up."""
    with serving(
        tmp_path_factory.mktemp("events"), MODELYARD_EVENT_POLL_SECONDS="60",
        MODELYARD_MAX_SUBSCRIPTIONS=str(ANONYMOUS_CAP),
    ) as (server,):
        yield server


@pytest.fixture(scope="module")
def polling_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SQLite with a fast poll, for writes made by other processes on the same data dir."""
    with serving(tmp_path_factory.mktemp("polling"), MODELYARD_EVENT_POLL_SECONDS="0.2") as (server,):
        yield server


CAP = 2


@pytest.fixture(scope="module")
def private_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Private reads and a small subscription cap per token."""
    with serving(
        tmp_path_factory.mktemp("private"), MODELYARD_PUBLIC_READ="false",
        MODELYARD_MAX_SUBSCRIPTIONS=str(CAP), MODELYARD_EVENT_POLL_SECONDS="60",
    ) as (server,):
        yield server


@pytest.fixture(scope="module")
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database of its own (no schema yet), dropped afterwards."""
    with fresh_database("modelyard_events") as url:
        yield url


@pytest.fixture(scope="module")
def pg_replicas(fresh_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two replicas started together on one fresh PostgreSQL database; the poll is a minute long,
    so an event reaching the other replica within seconds came through LISTEN/NOTIFY."""
    with serving(
        tmp_path_factory.mktemp("replicas"), count=2,
        MODELYARD_DATABASE_URL=fresh_pg_url, MODELYARD_EVENT_POLL_SECONDS="60",
    ) as servers:
        yield servers


# ---------------------------------------------------------------------------------------------
# Subscribers: gql over graphql-transport-ws
# ---------------------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """One WebSocket connection running one `events` subscription; what arrives is queued."""

    server: Server
    token: str | None = ADMIN_SECRET
    variables: dict[str, Any] = field(default_factory=dict)
    queue: asyncio.Queue[dict[str, Any] | BaseException | None] = field(default_factory=asyncio.Queue)
    received: list[dict[str, Any]] = field(default_factory=list)
    _client: Client | None = None
    _task: asyncio.Task[None] | None = None
    _ahead: list[dict[str, Any] | BaseException | None] = field(default_factory=list)

    async def open(self) -> Subscriber:
        init = {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}
        transport = WebsocketsTransport(
            url=self.server.ws_url, init_payload=init,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        self._client = Client(transport=transport)
        session = await self._client.connect_async()
        request = GraphQLRequest(EVENTS, variable_values=self.variables)
        self._task = asyncio.create_task(self._pump(session, request))
        return self

    async def _pump(self, session: Any, request: GraphQLRequest) -> None:
        try:
            async for result in session.subscribe(request):
                await self.queue.put(result["events"])
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the test, which decides
            await self.queue.put(exc)
        else:
            await self.queue.put(None)

    async def _get(self, within: float) -> dict[str, Any] | BaseException | None:
        if self._ahead:
            return self._ahead.pop(0)
        return await asyncio.wait_for(self.queue.get(), within)

    async def peek(self, within: float = TIMEOUT) -> dict[str, Any] | BaseException | None:
        """What comes next (an event, an error, None at the end), left to be read again."""
        item = await self._get(within)
        self._ahead.insert(0, item)
        return item

    async def next(self, within: float = TIMEOUT) -> dict[str, Any]:
        """The next event; fails on an error, the end of the stream or a timeout."""
        try:
            item = await self._get(within)
        except TimeoutError:
            raise AssertionError(f"no event within {within}s; had {self.received}") from None
        if isinstance(item, BaseException):
            raise AssertionError(f"subscription failed: {item!r}") from item
        assert item is not None, "the subscription ended"
        self.received.append(item)
        return item

    async def take(self, count: int, within: float = TIMEOUT) -> list[dict[str, Any]]:
        return [await self.next(within) for _ in range(count)]

    async def quiet(self, seconds: float = QUIET) -> None:
        """Nothing more arrives for `seconds`."""
        with contextlib.suppress(TimeoutError):
            item = await self._get(seconds)
            raise AssertionError(f"unexpected after {self.received}: {item!r}")

    async def error(self, within: float = TIMEOUT) -> dict[str, Any]:
        """The first GraphQL error of a refused subscription (no event may come first)."""
        try:
            item = await self._get(within)
        except TimeoutError:
            raise AssertionError(f"the subscription was not refused within {within}s") from None
        assert isinstance(item, TransportQueryError), f"expected a GraphQL error, got {item!r}"
        assert item.errors, f"the refusal carries no errors: {item!r}"
        return dict(item.errors[0])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close_async()


@contextlib.asynccontextmanager
async def subscribed(
    server: Server, token: str | None = ADMIN_SECRET, **variables: Any
) -> AsyncIterator[Subscriber]:
    """An open `events(...)` subscription, closed on exit."""
    sub = Subscriber(server, token, variables)
    await sub.open()
    try:
        yield sub
    finally:
        await sub.close()


async def latest_id(server: Server) -> int:
    """The newest audit event id (as the admin sees the log)."""
    async with http(server) as client:
        nodes = (await client.ok(LATEST))["auditLog"]["nodes"]
    return int(nodes[0]["id"]) if nodes else 0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["objectRef"]) for e in events]


def assert_increasing(events: list[dict[str, Any]]) -> None:
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids)), f"ids not strictly increasing: {ids}"


# ---------------------------------------------------------------------------------------------
# 1. Delivery, order, content, filters
# ---------------------------------------------------------------------------------------------


async def test_subscriber_receives_each_change_in_order_with_actor_and_changes(quiet_sqlite: Server) -> None:
    server = quiet_sqlite
    m, other = unique("ev-order"), unique("ev-other")
    since = await latest_id(server)
    async with (
        http(server) as admin,
        subscribed(server, model=m, since=since) as every,
        subscribed(server, model=m, kinds=["ALIAS_SET", "ALIAS_DELETED"], since=since) as aliases,
        subscribed(server, model=other, since=since) as others,
    ):
        writer_name = unique("ev-writer")
        writer_secret = (await admin.ok(CREATE_TOKEN, {"n": writer_name, "s": "WRITE"}))["createToken"]["secret"]
        writer = admin.as_token(writer_secret)
        await admin.ok(CREATE_MODEL, {"n": m})
        await admin.ok(CREATE_MODEL, {"n": other})
        await writer.ok(UPDATE_MODEL, {"n": m, "d": "a model card"})
        await writer.ok(CREATE_VERSION, {"m": m})
        await writer.ok(CREATE_VERSION, {"m": other})
        await writer.ok(LOG_METRICS, {"r": f"{m}:1", "v": 0.75})
        await writer.ok(SET_ALIAS, {"m": m, "a": "production", "v": "1"})
        await admin.ok(CREATE_VERSION, {"m": m})
        await writer.ok(SET_ALIAS, {"m": m, "a": "production", "v": "2"})
        await writer.ok(DELETE_ALIAS, {"m": m, "a": "production"})
        await writer.ok(ARCHIVE, {"r": f"{m}:1"})
        await writer.ok(RESTORE, {"r": f"{m}:1"})

        got = await every.take(10)
        assert summary(got) == [
            ("MODEL_CREATED", m),
            ("MODEL_UPDATED", m),
            ("VERSION_CREATED", f"{m}:1"),
            ("METRICS_LOGGED", f"{m}:1"),
            ("ALIAS_SET", f"{m}@production"),
            ("VERSION_CREATED", f"{m}:2"),
            ("ALIAS_SET", f"{m}@production"),
            ("ALIAS_DELETED", f"{m}@production"),
            ("VERSION_STATUS_CHANGED", f"{m}:1"),
            ("VERSION_STATUS_CHANGED", f"{m}:1"),
        ]
        assert_increasing(got)
        assert all(e["model"] == m for e in got)
        assert [e["actor"] for e in got] == ["admin-env"] + [writer_name] * 4 + ["admin-env"] + [writer_name] * 4
        by_kind = [(e["kind"], e["objectType"], e["changes"]) for e in got]
        assert by_kind[1] == ("MODEL_UPDATED", "Model", {"description": {"before": "", "after": "a model card"}})
        assert by_kind[3][:2] == ("METRICS_LOGGED", "ModelVersion")
        assert [(p["key"], p["value"]) for p in by_kind[3][2]["metrics"]["after"]] == [("acc", 0.75)]
        assert by_kind[4] == ("ALIAS_SET", "Alias", {"version": {"before": None, "after": 1}})
        assert by_kind[6] == ("ALIAS_SET", "Alias", {"version": {"before": 1, "after": 2}})
        assert by_kind[7] == ("ALIAS_DELETED", "Alias", {"version": {"before": 2, "after": None}})
        assert by_kind[8] == ("VERSION_STATUS_CHANGED", "ModelVersion",
                              {"status": {"before": "READY", "after": "ARCHIVED"}})
        assert by_kind[9][2] == {"status": {"before": "ARCHIVED", "after": "READY"}}
        assert by_kind[2][2]["status"] == {"before": None, "after": "READY"}

        assert summary(await aliases.take(3)) == [("ALIAS_SET", f"{m}@production")] * 2 + [
            ("ALIAS_DELETED", f"{m}@production")
        ]
        assert [e["id"] for e in aliases.received] == [got[i]["id"] for i in (4, 6, 7)]
        assert summary(await others.take(2)) == [("MODEL_CREATED", other), ("VERSION_CREATED", f"{other}:1")]
        for sub in (every, aliases, others):
            await sub.quiet()  # no token event, no other model's event, nothing twice


async def test_without_since_events_start_from_now(quiet_sqlite: Server) -> None:
    """No history is replayed; the first event is one made after subscribing."""
    server = quiet_sqlite
    m = unique("ev-now")
    async with http(server) as admin:
        await admin.ok(CREATE_MODEL, {"n": m})
        await admin.ok(CREATE_VERSION, {"m": m})
        before = await latest_id(server)
        async with subscribed(server, model=m) as sub:
            # The stream starts when the server first runs it: send until something arrives.
            first = None
            for attempt in range(50):
                await admin.ok(LOG_METRICS, {"r": f"{m}:1", "v": float(attempt)})
                with contextlib.suppress(AssertionError):
                    first = await sub.next(within=0.3)
                    break
            assert first is not None, "no event reached a subscriber without since"
            assert first["kind"] == "METRICS_LOGGED" and int(first["id"]) > before
            await admin.ok(SET_ALIAS, {"m": m, "a": "live", "v": "1"})
            while (event := await sub.next())["kind"] == "METRICS_LOGGED":
                pass  # any sent while waiting for the first come next, in order, once
            assert summary([event]) == [("ALIAS_SET", f"{m}@live")]
            assert_increasing(sub.received)
            await sub.quiet()


async def test_since_zero_replays_the_whole_history_of_a_model(quiet_sqlite: Server) -> None:
    server = quiet_sqlite
    m = unique("ev-history")
    async with http(server) as admin:
        await admin.ok(CREATE_MODEL, {"n": m})
        await admin.ok(CREATE_VERSION, {"m": m})
        await admin.ok(SET_ALIAS, {"m": m, "a": "prod", "v": "1"})
        async with subscribed(server, model=m, since=0) as sub:
            assert summary(await sub.take(3)) == [
                ("MODEL_CREATED", m), ("VERSION_CREATED", f"{m}:1"), ("ALIAS_SET", f"{m}@prod"),
            ]
            await sub.quiet()


# ---------------------------------------------------------------------------------------------
# 2. Reconnecting with `since`
# ---------------------------------------------------------------------------------------------


async def test_reconnect_with_since_receives_exactly_the_missed_events(quiet_sqlite: Server) -> None:
    server = quiet_sqlite
    m, other = unique("ev-resume"), unique("ev-noise")
    start = await latest_id(server)
    async with http(server) as admin:
        async with subscribed(server, model=m, since=start) as first:
            await admin.ok(CREATE_MODEL, {"n": m})
            await admin.ok(CREATE_VERSION, {"m": m})
            await admin.ok(LOG_METRICS, {"r": f"{m}:1", "v": 0.1})
            seen = await first.take(3)
        last = int(seen[-1]["id"])

        # Disconnected: more changes, interleaved with another model's.
        await admin.ok(CREATE_MODEL, {"n": other})
        await admin.ok(SET_ALIAS, {"m": m, "a": "staging", "v": "1"})
        await admin.ok(LOG_METRICS, {"r": f"{m}:1", "v": 0.2})
        await admin.ok(CREATE_VERSION, {"m": other})
        await admin.ok(CREATE_VERSION, {"m": m})
        await admin.ok(SET_ALIAS, {"m": m, "a": "staging", "v": "2"})

        async with subscribed(server, model=m, since=last) as second:
            missed = await second.take(4)
            assert summary(missed) == [
                ("ALIAS_SET", f"{m}@staging"), ("METRICS_LOGGED", f"{m}:1"),
                ("VERSION_CREATED", f"{m}:2"), ("ALIAS_SET", f"{m}@staging"),
            ]
            await admin.ok(DELETE_ALIAS, {"m": m, "a": "staging"})  # and live again afterwards
            live = await second.next()
            assert summary([live]) == [("ALIAS_DELETED", f"{m}@staging")]
            await second.quiet()

        both = seen + missed + [live]
        assert_increasing(both)  # no duplicates across the reconnect
        log = (await admin.ok(AUDIT_IDS, {"f": {"model": m, "afterId": start}}))["auditLog"]["nodes"]
        assert sorted(int(e["id"]) for e in log) == [int(e["id"]) for e in both]  # nothing missing


async def test_reconnect_with_since_and_kinds(quiet_sqlite: Server) -> None:
    server = quiet_sqlite
    m = unique("ev-resume-kinds")
    async with http(server) as admin:
        await admin.ok(CREATE_MODEL, {"n": m})
        await admin.ok(CREATE_VERSION, {"m": m})
        mark = await latest_id(server)
        await admin.ok(LOG_METRICS, {"r": f"{m}:1", "v": 1.0})
        await admin.ok(SET_ALIAS, {"m": m, "a": "a", "v": "1"})
        await admin.ok(LOG_METRICS, {"r": f"{m}:1", "v": 2.0})
        async with subscribed(server, model=m, kinds=["METRICS_LOGGED"], since=mark) as sub:
            got = await sub.take(2)
            assert [e["changes"]["metrics"]["after"][0]["value"] for e in got] == [1.0, 2.0]
            await sub.quiet()


# ---------------------------------------------------------------------------------------------
# 3. Access: tokens, private reads, token events, the per-token cap
# ---------------------------------------------------------------------------------------------


async def test_private_reads_refuse_a_subscription_without_a_token(private_sqlite: Server) -> None:
    async with subscribed(private_sqlite, token=None) as sub:
        error = await sub.error()
    assert error.get("extensions", {}).get("code") == "UNAUTHENTICATED", error


@pytest.mark.parametrize("secret", ["nope", "myd_" + "z" * 43], ids=["malformed", "unknown"])
async def test_bad_token_is_refused(private_sqlite: Server, quiet_sqlite: Server, secret: str) -> None:
    # A bad token is refused even where reads are public.
    for server in (private_sqlite, quiet_sqlite):
        async with subscribed(server, token=secret) as sub:
            error = await sub.error()
        assert error.get("extensions", {}).get("code") == "UNAUTHENTICATED", (server.port, error)


async def test_revoked_token_is_refused(private_sqlite: Server) -> None:
    name = unique("ev-revoked")
    async with http(private_sqlite) as admin:
        secret = (await admin.ok(CREATE_TOKEN, {"n": name, "s": "READ"}))["createToken"]["secret"]
        since = await latest_id(private_sqlite)
        m = unique("ev-revoked-m")
        await admin.ok(CREATE_MODEL, {"n": m})
        async with subscribed(private_sqlite, token=secret, since=since) as sub:
            assert summary(await sub.take(1)) == [("MODEL_CREATED", m)]  # works while valid
        await admin.ok(REVOKE_TOKEN, {"n": name})
        async with subscribed(private_sqlite, token=secret) as sub:
            error = await sub.error()
    assert error.get("extensions", {}).get("code") == "UNAUTHENTICATED", error


async def test_an_open_subscription_ends_when_its_token_is_revoked(private_sqlite: Server) -> None:
    name = unique("ev-live-revoked")
    async with http(private_sqlite) as admin:
        secret = (await admin.ok(CREATE_TOKEN, {"n": name, "s": "READ"}))["createToken"]["secret"]
        since = await latest_id(private_sqlite)
        first, second = unique("ev-lr-a"), unique("ev-lr-b")
        async with subscribed(private_sqlite, token=secret, since=since) as sub:
            await admin.ok(CREATE_MODEL, {"n": first})
            assert summary(await sub.take(1)) == [("MODEL_CREATED", first)]
            await admin.ok(REVOKE_TOKEN, {"n": name})
            await admin.ok(CREATE_MODEL, {"n": second})
            error = await sub.error()
    assert error.get("extensions", {}).get("code") == "UNAUTHENTICATED", error
    assert name in error["message"]


async def test_token_events_reach_admin_subscribers_only(private_sqlite: Server, quiet_sqlite: Server) -> None:
    for server in (private_sqlite, quiet_sqlite):
        async with http(server) as admin:
            reader_name, writer_name, new_name = unique("ev-reader"), unique("ev-writer"), unique("ev-new")
            reader = (await admin.ok(CREATE_TOKEN, {"n": reader_name, "s": "READ"}))["createToken"]["secret"]
            writer = (await admin.ok(CREATE_TOKEN, {"n": writer_name, "s": "WRITE"}))["createToken"]["secret"]
            since = await latest_id(server)
            async with contextlib.AsyncExitStack() as stack:
                admin_sub = await stack.enter_async_context(subscribed(server, since=since))
                watchers = [await stack.enter_async_context(subscribed(server, token=t, since=since))
                            for t in (reader, writer)]
                if server is quiet_sqlite:  # public reads: anonymous subscribers too
                    watchers.append(await stack.enter_async_context(subscribed(server, token=None, since=since)))
                m = unique("ev-visible")
                await admin.ok(CREATE_TOKEN, {"n": new_name, "s": "READ"})
                await admin.ok(CREATE_MODEL, {"n": m})
                await admin.ok(REVOKE_TOKEN, {"n": new_name})
                await admin.ok(CREATE_VERSION, {"m": m})

                got = await admin_sub.take(4)
                assert summary(got) == [
                    ("TOKEN_CREATED", new_name), ("MODEL_CREATED", m),
                    ("TOKEN_REVOKED", new_name), ("VERSION_CREATED", f"{m}:1"),
                ]
                assert got[0]["objectType"] == "Token" and got[0]["model"] is None
                assert got[0]["changes"]["scope"] == {"before": None, "after": "read"}
                for watcher in watchers:
                    assert summary(await watcher.take(2)) == [("MODEL_CREATED", m), ("VERSION_CREATED", f"{m}:1")]
                for sub in (admin_sub, *watchers):
                    await sub.quiet()


async def test_per_token_cap_refuses_the_extra_subscription_with_limit(private_sqlite: Server) -> None:
    server = private_sqlite
    async with http(server) as admin:
        name = unique("ev-capped")
        secret = (await admin.ok(CREATE_TOKEN, {"n": name, "s": "WRITE"}))["createToken"]["secret"]
        m = unique("ev-cap")
        await admin.ok(CREATE_MODEL, {"n": m})
        since = await latest_id(server)
        held = [await Subscriber(server, secret, {"model": m, "since": since}).open() for _ in range(CAP)]
        try:
            await admin.ok(CREATE_VERSION, {"m": m})
            for sub in held:  # each is running (holding its slot) before the next is tried
                assert summary(await sub.take(1)) == [("VERSION_CREATED", f"{m}:1")]

            async with subscribed(server, token=secret, model=m, since=since) as extra:
                error = await extra.error()
            assert error.get("extensions", {}).get("code") == "LIMIT", error
            assert str(CAP) in error["message"]

            # Another token is not affected by this one's cap.
            async with subscribed(server, model=m, since=since) as other_token:
                await other_token.take(1)

            # The held ones keep working.
            await admin.ok(SET_ALIAS, {"m": m, "a": "prod", "v": "1"})
            for sub in held:
                assert summary(await sub.take(1)) == [("ALIAS_SET", f"{m}@prod")]

            # One closes: a new one is accepted.
            await held.pop().close()
            replacement = await accepted_within(server, secret, {"model": m, "since": since})
            held.append(replacement)
            assert summary(await replacement.take(2)) == [("VERSION_CREATED", f"{m}:1"), ("ALIAS_SET", f"{m}@prod")]
            await admin.ok(DELETE_ALIAS, {"m": m, "a": "prod"})
            for sub in held:
                assert summary(await sub.take(1)) == [("ALIAS_DELETED", f"{m}@prod")]
        finally:
            for sub in held:
                await sub.close()


async def test_anonymous_subscriptions_are_capped_per_client(quiet_sqlite: Server) -> None:
    """With public reads anyone may subscribe, but one address holds at most the cap."""
    server = quiet_sqlite
    m = unique("ev-anon-cap")
    since = await latest_id(server)
    async with http(server) as admin:
        await admin.ok(CREATE_MODEL, {"n": m})
        variables = {"model": m, "since": since}
        held = [await accepted_within(server, None, variables) for _ in range(ANONYMOUS_CAP)]
        try:
            async with subscribed(server, token=None, **variables) as extra:
                error = await extra.error()
            assert error.get("extensions", {}).get("code") == "LIMIT", error
            await admin.ok(CREATE_VERSION, {"m": m})
            for sub in held:
                assert summary(await sub.take(2)) == [("MODEL_CREATED", m), ("VERSION_CREATED", f"{m}:1")]
        finally:
            for sub in held:
                await sub.close()


async def test_a_dropped_connection_gives_its_slot_back(private_sqlite: Server) -> None:
    """A client that vanishes without `complete` or a close handshake must not keep its slot."""
    server = private_sqlite
    async with http(server) as admin:
        secret = (await admin.ok(CREATE_TOKEN, {"n": unique("ev-drop"), "s": "READ"}))["createToken"]["secret"]
        since = await latest_id(server)
        m = unique("ev-drop-m")
        await admin.ok(CREATE_MODEL, {"n": m})
        for _ in range(CAP + 1):  # more drops than slots
            ws = await raw_subscription(server, secret, {"model": m, "since": since})
            ws.transport.abort()  # no complete, no close frame: the connection just goes
            await ws.wait_closed()
        ws = await raw_subscription(server, secret, {"model": m, "since": since})
        await ws.close()


async def raw_subscription(
    server: Server, secret: str, variables: dict[str, Any], seconds: float = 5
) -> websockets.ClientConnection:
    """A graphql-transport-ws connection whose subscription has delivered its first event,
    retried while refused with LIMIT for up to `seconds` (the server frees a slot once it notices
    a connection is gone)."""
    deadline = time.monotonic() + seconds
    while True:
        ws = await websockets.connect(server.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")])
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {secret}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": EVENTS, "variables": variables}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        if not errors:
            assert message["type"] == "next", message
            return ws
        await ws.close()
        refused = errors[0].get("extensions", {}).get("code") == "LIMIT"
        if not refused or time.monotonic() > deadline:
            raise AssertionError(f"subscription refused: {message}")
        await asyncio.sleep(0.1)


async def test_namespaced_token_sees_only_its_namespace_when_reads_are_private(private_sqlite: Server) -> None:
    server = private_sqlite
    inside, outside = f"{unique('evns')}/m", f"{unique('evother')}/m"
    namespace = inside.split("/")[0]
    async with http(server) as admin:
        created = await admin.ok(
            "mutation($n: String!, $ns: String) { createToken(input: {name: $n, scope: READ, namespace: $ns}) { secret } }",
            {"n": unique("ev-ns"), "ns": namespace},
        )
        secret = created["createToken"]["secret"]
        since = await latest_id(server)
        async with subscribed(server, token=secret, since=since) as sub:
            await admin.ok(CREATE_MODEL, {"n": outside})
            await admin.ok(CREATE_MODEL, {"n": inside})
            await admin.ok(CREATE_VERSION, {"m": outside})
            await admin.ok(CREATE_VERSION, {"m": inside})
            assert summary(await sub.take(2)) == [("MODEL_CREATED", inside), ("VERSION_CREATED", f"{inside}:1")]
            await sub.quiet()
        async with subscribed(server, token=secret, model=outside, since=since) as refused:
            error = await refused.error()
        assert error.get("extensions", {}).get("code") == "FORBIDDEN", error


async def accepted_within(server: Server, token: str | None, variables: dict[str, Any], seconds: float = 5) -> Subscriber:
    """A subscription that is accepted once the server has noticed a closed one (a short grace:
    the server frees a slot when it sees the close). Its first event must come at once: pass a
    `since` that has events after it."""
    deadline = time.monotonic() + seconds
    while True:
        sub = await Subscriber(server, token, dict(variables)).open()
        item = await sub.peek()
        if not isinstance(item, BaseException):
            return sub
        await sub.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"still refused after {seconds}s: {item!r}")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# 4. Two replicas on PostgreSQL: LISTEN/NOTIFY
# ---------------------------------------------------------------------------------------------


async def test_replicas_started_together_both_serve(pg_replicas: list[Server]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for server in pg_replicas:
            assert (await client.get(f"{server.url}/healthz")).json()["status"] == "ok"
            assert "Traceback" not in server.log(), server.log()


async def test_an_event_made_on_one_replica_reaches_a_subscriber_of_the_other(pg_replicas: list[Server]) -> None:
    a, b = pg_replicas
    m = unique("ev-replicas")
    since = await latest_id(a)
    async with (
        http(a) as on_a,
        http(b) as on_b,
        subscribed(b, model=m, since=since) as sub_b,
        subscribed(a, model=m, since=since) as sub_a,
    ):
        await on_a.ok(CREATE_MODEL, {"n": m})
        await on_a.ok(CREATE_VERSION, {"m": m})
        assert summary(await sub_b.take(2)) == [("MODEL_CREATED", m), ("VERSION_CREATED", f"{m}:1")]
        await sub_a.take(2)

        # Both streams are now idle, waiting on a one-minute poll: only NOTIFY can wake them.
        for i, (writer, name) in enumerate([(on_a, "a"), (on_b, "b"), (on_a, "a"), (on_a, "a"), (on_b, "b")]):
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await writer.ok(LOG_METRICS, {"r": f"{m}:1", "v": float(i)})
            for sub in (sub_b, sub_a):
                event = await sub.next()
                assert event["kind"] == "METRICS_LOGGED", (name, event)
                assert event["changes"]["metrics"]["after"][0]["value"] == float(i)
            assert time.monotonic() - started < TIMEOUT
        assert [e["id"] for e in sub_a.received] == [e["id"] for e in sub_b.received]
        assert_increasing(sub_b.received)
        await sub_a.quiet()
        await sub_b.quiet()


async def test_replicas_share_the_log_for_reconnects(pg_replicas: list[Server]) -> None:
    """Subscribe on A, drop, mutate on both, resume on B with since: exactly the missed events."""
    a, b = pg_replicas
    m = unique("ev-replica-resume")
    since = await latest_id(a)
    async with http(a) as on_a, http(b) as on_b:
        async with subscribed(a, model=m, since=since) as sub:
            await on_b.ok(CREATE_MODEL, {"n": m})
            seen = await sub.take(1)
        await on_a.ok(CREATE_VERSION, {"m": m})
        await on_b.ok(SET_ALIAS, {"m": m, "a": "prod", "v": "1"})
        async with subscribed(b, model=m, since=int(seen[-1]["id"])) as resumed:
            assert summary(await resumed.take(2)) == [("VERSION_CREATED", f"{m}:1"), ("ALIAS_SET", f"{m}@prod")]
            await resumed.quiet()


# ---------------------------------------------------------------------------------------------
# 5. SQLite: another process's writes arrive through the poll
# ---------------------------------------------------------------------------------------------


async def test_a_token_created_by_the_cli_reaches_an_admin_subscriber(polling_sqlite: Server) -> None:
    """The CLI writes to the same SQLite file from another process: no wake-up reaches the
    server, so only the poll (0.2 s here) can deliver its TOKEN_CREATED."""
    server = polling_sqlite
    name, reader_name = unique("ev-cli"), unique("ev-cli-reader")
    async with http(server) as admin:
        reader = (await admin.ok(CREATE_TOKEN, {"n": reader_name, "s": "READ"}))["createToken"]["secret"]
    since = await latest_id(server) - 1  # the reader's TOKEN_CREATED comes first: proof of a live stream
    async with subscribed(server, since=since) as admin_sub, subscribed(server, token=reader, since=since) as reader_sub:
        assert summary(await admin_sub.take(1)) == [("TOKEN_CREATED", reader_name)]
        await asyncio.sleep(0.5)  # both streams idle, waiting for the next poll
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "modelyard.cli", "token", "create", "--name", name, "--scope", "read",
            "--data-dir", str(server.data_dir),
            env={k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert out.decode().startswith("myd_")
        event = await admin_sub.next()
        assert (event["kind"], event["objectRef"], event["objectType"]) == ("TOKEN_CREATED", name, "Token")
        assert event["actor"].startswith("cli:")
        assert event["changes"]["scope"] == {"before": None, "after": "read"}
        await admin_sub.quiet()
        await reader_sub.quiet()  # token events: admins only
