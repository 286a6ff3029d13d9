"""`modelyard-agent follow NAME@ALIAS`: keep a pulled alias current as it moves on the registry.

A `Follower` resolves NAME@ALIAS once (pulling it unless cached), then listens to the registry's
`events(model, kinds: [ALIAS_SET, ALIAS_DELETED], since)` subscription on `/graphql` over
graphql-transport-ws (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), sending
the token in the `connection_init` payload as the registry expects. When the alias moves it pulls
the new version, then calls back. A lost connection is retried with capped, jittered exponential
backoff and the subscription resumes with `since` = the last event id handled, so a move made
while disconnected arrives on reconnect.

The last event id is kept in memory only, not on disk: every start takes the audit log's newest
id *before* resolving the alias, so a move between the two is replayed, never missed; a follower
started while the registry is unreachable does the same on its first connection.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import signal
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread
import websockets
import websockets.exceptions

from modelyard_agent.cache import Cache, Manifest
from modelyard_agent.client import Client
from modelyard_agent.config import Settings
from modelyard_agent.errors import AgentError, ServerError, TransferError, UsageError
from modelyard_agent.progress import human
from modelyard_agent.pull import PullResult, pull
from modelyard_agent.refs import Ref, parse

PROTOCOL = "graphql-transport-ws"
ACK_TIMEOUT = 10.0
BACKOFF_INITIAL = 0.5
# A retry is one TCP connection, cheap for the registry; the cap keeps a desktop at most a few
# seconds behind once the registry is back.
BACKOFF_CAP = 5.0
# Close codes of graphql-transport-ws that mean "not with these credentials".
REFUSED_CLOSES = {4401: "unauthorized", 4403: "forbidden"}
REFUSED_CODES = {"UNAUTHENTICATED", "FORBIDDEN"}

EVENTS = """
subscription AgentFollow($model: String!, $since: Long) {
  events(model: $model, kinds: [ALIAS_SET, ALIAS_DELETED], since: $since) {
    id kind objectRef changes
  }
}"""
LATEST = "query AgentLatestEvent { auditLog(first: 1) { nodes { id } } }"


def ws_url(server: str) -> str:
    """The registry's GraphQL WebSocket URL (`http://h:p` -> `ws://h:p/graphql`)."""
    if server.startswith("https://"):
        return "wss://" + server.removeprefix("https://") + "/graphql"
    return "ws://" + server.removeprefix("http://") + "/graphql"


def _graphql_error(errors: Any) -> AgentError:
    """A GraphQL error list as the agent's error: refused credentials are final, a full
    subscription quota is worth retrying."""
    first = errors[0] if isinstance(errors, list) and errors else {}
    message = str(first.get("message") or "subscription failed") if isinstance(first, dict) else str(first)
    code = (first.get("extensions") or {}).get("code") if isinstance(first, dict) else None
    if code in REFUSED_CODES:
        return ServerError(f"the registry refused the token: {message}")
    if code == "LIMIT":
        return TransferError(f"the registry is at its subscription limit: {message}")
    return ServerError(f"the registry refused the subscription: {message}")


class GraphQLSocket:
    """One graphql-transport-ws connection: `connection_init` with the token, then operations.

    Transport failures become TransferError; refused credentials become ServerError.
    """

    def __init__(self, server: str, token: str | None, timeout: float = ACK_TIMEOUT) -> None:
        self.url = ws_url(server)
        self.token = token
        self.timeout = timeout
        self._ws: Any = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> GraphQLSocket:
        try:
            self._ws = await websockets.connect(
                self.url, subprotocols=[PROTOCOL], open_timeout=self.timeout  # type: ignore[list-item]
            )
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise TransferError(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            payload = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            await self._send({"type": "connection_init", "payload": payload})
            with anyio.fail_after(self.timeout):
                while (message := await self._recv())["type"] != "connection_ack":
                    await self._answer_ping(message)
        except TimeoutError as exc:
            await self._ws.close()
            raise TransferError(f"{self.url} did not acknowledge the connection") from exc
        except BaseException:
            await self._ws.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self._ws.close()

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self._ws.send(json.dumps(message))
        except websockets.exceptions.ConnectionClosed as exc:
            raise self._closed(exc) from exc

    async def _recv(self) -> dict[str, Any]:
        try:
            text = await self._ws.recv()
        except websockets.exceptions.ConnectionClosed as exc:
            raise self._closed(exc) from exc
        try:
            message = json.loads(text)
        except ValueError as exc:
            raise TransferError(f"{self.url} sent a message that is not JSON") from exc
        if not isinstance(message, dict) or "type" not in message:
            raise TransferError(f"{self.url} sent a message without a type")
        return message

    def _closed(self, exc: websockets.exceptions.ConnectionClosed) -> AgentError:
        code = exc.rcvd.code if exc.rcvd is not None else None
        reason = exc.rcvd.reason if exc.rcvd is not None else ""
        if code in REFUSED_CLOSES:
            return ServerError(f"the registry refused the token ({reason or REFUSED_CLOSES[code]})")
        return TransferError(f"lost the connection to {self.url} ({reason or code or 'no close frame'})")

    async def _answer_ping(self, message: dict[str, Any]) -> None:
        if message["type"] == "ping":
            await self._send({"type": "pong"})

    async def subscribe(self, query: str, variables: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The `data` of each `next` message of one operation until `complete`."""
        op = str(next(self._ids))
        await self._send({"id": op, "type": "subscribe",
                          "payload": {"query": query, "variables": variables}})
        while True:
            message = await self._recv()
            await self._answer_ping(message)
            if message.get("id") != op:
                continue
            payload = message.get("payload")
            if message["type"] == "error":
                raise _graphql_error(payload)
            if message["type"] == "complete":
                return
            if message["type"] == "next" and isinstance(payload, dict):
                if payload.get("errors"):
                    raise _graphql_error(payload["errors"])
                yield payload.get("data") or {}


class Backoff:
    """Exponential delays, capped, with "equal jitter": each is between half and all of its step."""

    def __init__(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_CAP,
                 rng: Callable[[], float] = random.random) -> None:
        self.initial, self.cap, self.rng = initial, cap, rng
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        step = min(self.cap, self.initial * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return step / 2 + self.rng() * step / 2

    def reset(self) -> None:
        """Start again from the initial delay (after a connection succeeded)."""
        self.attempt = 0


@dataclass(frozen=True)
class Change:
    """The alias now names another version, which is in the cache."""

    ref: str
    manifest: Manifest
    previous: Manifest | None
    how: str

    def line(self) -> str:
        """What `follow` prints: `name@alias → vN (pulled …)`."""
        return f"{self.ref} → v{self.manifest.number} ({self.how})"


def _how(result: PullResult) -> str:
    if not result.blobs_fetched:
        return "pulled; every blob was already cached"
    return (f"pulled {human(result.bytes_fetched + result.bytes_resumed)}, "
            f"{result.blobs_cached} blob(s) already cached")


OnChange = Callable[[Change], Awaitable[None]]


class Follower:
    """Follows one NAME@ALIAS: `resolve()` once, then `await run()` until cancelled."""

    def __init__(self, settings: Settings, text: str, on_change: OnChange | None = None,
                 notify: Callable[[str], None] | None = None, backoff: Backoff | None = None) -> None:
        ref = parse(text)
        if ref.alias is None:
            raise UsageError(f"cannot follow {text!r}: give NAME@ALIAS (a number or digest never moves)")
        self.settings = settings
        self.ref: Ref = ref
        self.on_change = on_change
        self.notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
        self.backoff = backoff or Backoff()
        self.current: Manifest | None = None
        self.last_id: int | None = None

    @property
    def name(self) -> str:
        """The model's name."""
        return self.ref.name

    @property
    def alias(self) -> str:
        """The alias followed."""
        return str(self.ref.alias)

    def resolve(self) -> Change:
        """Resolve the alias now, pulling it unless cached; from the cache while the registry is
        unreachable (TransferError if it was never pulled). Blocking: call it off the event loop."""
        if self.settings.offline:
            raise UsageError(f"following {self.ref.text} needs the registry; drop --offline")
        try:
            return self._sync(None)
        except TransferError as exc:
            cache = Cache(self.settings.home)
            cached = cache.find(self.ref)
            if cached is None or not cache.complete(cached):
                raise TransferError(f"{exc}; {self.ref.text} was never pulled, so there is nothing to "
                                    "use until the registry answers") from exc
            self.current = cached
            return Change(self.ref.text, cached, None,
                          f"from the cache: {self.settings.server} is unreachable, retrying")

    def _sync(self, previous: Manifest | None) -> Change:
        """Take the newest event id, then pull the alias: a move after that id is replayed later."""
        latest = self._latest_id()
        with Client(self.settings.server, self.settings.token) as client:
            if client.version(self.ref) is None:
                self.last_id = latest  # a follower already running waits for the alias from here
                if client.version(parse(self.name)) is None:
                    raise UsageError(f"cannot follow {self.ref.text}: no model {self.name!r} on "
                                     f"{self.settings.server}")
                raise UsageError(f"cannot follow {self.ref.text}: model {self.name!r} has no alias "
                                 f"{self.alias!r} on {self.settings.server}")
        result = pull(self.settings, self.ref.text)
        self.last_id = latest
        self.current = result.manifest
        return Change(self.ref.text, result.manifest, previous, _how(result))

    def _latest_id(self) -> int:
        with Client(self.settings.server, self.settings.token) as client:
            body = client.graphql(LATEST)
        if body.get("errors"):
            first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
            raise ServerError(f"{self.ref.text}: {str(first.get('message', 'server error'))[:500]}")
        data = body.get("data")
        log = data.get("auditLog") if isinstance(data, dict) else None
        nodes = log.get("nodes") if isinstance(log, dict) else None
        if not isinstance(nodes, list) or (nodes and not _event_id(nodes[0])):
            raise ServerError(f"{self.settings.server} answered the audit log with something else")
        return int(nodes[0]["id"]) if nodes else 0

    async def run(self) -> None:
        """Follow until cancelled, reconnecting as needed; ServerError (a refused token) ends it."""
        lost = False
        while True:
            try:
                async with GraphQLSocket(self.settings.server, self.settings.token) as socket:
                    self.backoff.reset()
                    if lost:
                        self.notify(f"{self.ref.text}: connected to {self.settings.server} again")
                        lost = False
                    if self.last_id is None:  # unreachable at start: catch up as a start would
                        await self._catch_up()
                    variables = {"model": self.name, "since": self.last_id}
                    async with contextlib.aclosing(socket.subscribe(EVENTS, variables)) as events:
                        async for data in events:
                            await self._event(data.get("events") if isinstance(data, dict) else None)
                raise TransferError("the registry ended the subscription")
            except TransferError as exc:
                delay = self.backoff.next()
                if not lost:
                    self.notify(f"{self.ref.text}: {exc}; retrying (serving v{self._number()})")
                    lost = True
                await anyio.sleep(delay)

    async def _catch_up(self) -> None:
        try:
            change = await anyio.to_thread.run_sync(self._sync, self.current)
        except UsageError as exc:  # the alias is gone: wait for it to be set again
            self.notify(f"{exc}; keeping v{self._number()}")
            return
        await self._changed(change)

    def _number(self) -> str:
        return str(self.current.number) if self.current else "?"

    async def _event(self, event: Any) -> None:
        if not _event_id(event):
            raise ServerError(f"{self.settings.server} sent an event without an integer id")
        if event.get("objectRef") == self.ref.text:
            if event.get("kind") == "ALIAS_DELETED":
                self.notify(f"{self.ref.text} was deleted on the registry; keeping v{self._number()}")
            elif event.get("kind") == "ALIAS_SET":
                after = ((event.get("changes") or {}).get("version") or {}).get("after")
                if self.current is None or after != self.current.number:
                    await self._pull()
        self.last_id = int(event["id"])

    async def _pull(self) -> None:
        previous = self.current
        try:
            result = await anyio.to_thread.run_sync(pull, self.settings, self.ref.text)
        except TransferError:
            raise  # reconnect; the event is replayed
        except AgentError as exc:
            self.notify(f"{self.ref.text}: cannot pull the new version ({exc}); keeping v{self._number()}")
            return
        if previous is not None and result.manifest.number == previous.number:
            return
        self.current = result.manifest
        await self._changed(Change(self.ref.text, result.manifest, previous, _how(result)))

    async def _changed(self, change: Change) -> None:
        if change.previous is not None and change.previous.number == change.manifest.number:
            return
        if self.on_change is not None:
            await self.on_change(change)


def _event_id(event: Any) -> bool:
    """Whether `event` is an object with an integer `id` (what `since` resumes from)."""
    return isinstance(event, dict) and isinstance(event.get("id"), int) and not isinstance(event["id"], bool)


def first_error(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (anyio's task groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def until_signal(*jobs: Callable[[], Awaitable[None]]) -> None:
    """Run the jobs until one ends or SIGINT/SIGTERM arrives."""
    try:
        async with anyio.create_task_group() as tg:
            async def job(fn: Callable[[], Awaitable[None]]) -> None:
                await fn()
                tg.cancel_scope.cancel()

            for fn in jobs:
                tg.start_soon(job, fn)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    break
    except BaseExceptionGroup as group:
        raise first_error(group) from None


def follow_command(args: argparse.Namespace, settings: Settings) -> int:
    """`follow NAME@ALIAS`: print one line per move until Ctrl+C or SIGTERM."""

    async def show(change: Change) -> None:
        print(change.line(), flush=True)

    follower = Follower(settings, args.ref, on_change=show)
    print(follower.resolve().line(), flush=True)
    anyio.run(until_signal, follower.run)
    print(f"stopped following {args.ref}", file=sys.stderr)
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `follow`."""
    s = sub.add_parser("follow", parents=[common],
                       help="pull each new version an alias moves to, until Ctrl+C")
    s.add_argument("ref", metavar="NAME@ALIAS")
    s.set_defaults(handler=follow_command)
