"""`modelyard-agent serve`: the OIP server over the cache, followed aliases, and the serving marker
(serving.py: what `ls` and `rm` read of a running server).

`serve --follow NAME@ALIAS` runs a `follow.Follower` per alias in the app's lifespan. On a move
the new version is pulled, materialised and loaded (in worker threads) *before* the registry's
mapping switches in one assignment; requests that started earlier finish on the old session,
which is unloaded once they are all done.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard_agent.ask_api import Assistant, ask_routes
from modelyard_agent.cache import Cache, Manifest
from modelyard_agent.config import Settings
from modelyard_agent.errors import AgentError, UsageError
from modelyard_agent.follow import Change, Follower
from modelyard_agent.guard import WILDCARDS, Access, LocalOnly, error_document
from modelyard_agent.oip import oip_routes
from modelyard_agent.openai_api import ApiError, Workers, openai_routes, warm
from modelyard_agent.page import page_routes
from modelyard_agent.registry import CacheRegistry, local_model
from modelyard_agent.runtime import LoadedModel, Runtime
from modelyard_agent.serving import DEFAULT_IDLE_TTL, Marker
from modelyard_agent.tensors import InferenceError


class TrackedRuntime(Runtime):
    """A Runtime that reports its loaded keys each time they change (for the serving marker)."""

    def __init__(self, idle_ttl: float, on_loaded: Callable[[list[str]], None]) -> None:
        super().__init__(idle_ttl=idle_ttl)
        self.on_loaded = on_loaded
        self._reported: list[str] = []

    def _report(self) -> None:
        keys = self.loaded()
        if keys != self._reported:
            self._reported = keys
            self.on_loaded(keys)

    async def session(self, key: str, model_path: Path) -> LoadedModel:
        """The cached session, as in Runtime; reports a load."""
        try:
            return await super().session(key, model_path)
        finally:
            self._report()

    def unload(self, key: str) -> bool:
        """Drop a session, as in Runtime; reports it."""
        done = super().unload(key)
        self._report()
        return done

    def evict_idle(self) -> list[str]:
        """Unload idle sessions, as in Runtime; reports them."""
        idle = super().evict_idle()
        if idle:
            self._report()
        return idle


class Drain:
    """Counts HTTP requests by the generation they started in, so a swap can wait for the
    requests that may still use the old version (the ones that started before it)."""

    def __init__(self) -> None:
        self.generation = 0
        self.running: Counter[int] = Counter()
        self._done: anyio.Event | None = None  # made inside the event loop, when first awaited

    def advance(self) -> int:
        """Start a new generation; returns it."""
        self.generation += 1
        return self.generation

    async def wait_before(self, generation: int) -> None:
        """Return once no request that started before `generation` is running."""
        while any(n for g, n in self.running.items() if g < generation):
            self._done = self._done or anyio.Event()
            await self._done.wait()

    def middleware(self) -> Middleware:
        """The ASGI middleware that does the counting."""
        return Middleware(_Counting, drain=self)

    def leave(self, generation: int) -> None:
        """A request of that generation is done."""
        self.running[generation] -= 1
        if not self.running[generation]:
            del self.running[generation]
        if self._done is not None:
            self._done.set()
            self._done = None


class _Counting:
    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        generation = self.drain.generation
        self.drain.running[generation] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.leave(generation)


def _key(manifest: Manifest) -> str:
    return f"{manifest.name}:{manifest.number}"


class Swapper:
    """Switches followed aliases to their new version: load first, switch, then retire the old."""

    def __init__(self, cache: Cache, models: CacheRegistry, runtime: Runtime, workers: Workers,
                 drain: Drain, say: Callable[[str], None],
                 on_switch: Callable[[dict[str, int]], None]) -> None:
        self.cache, self.models, self.runtime, self.drain = cache, models, runtime, drain
        self.workers = workers
        self.say, self.on_switch = say, on_switch
        self.tg: anyio.abc.TaskGroup | None = None

    async def _warm(self, manifest: Manifest) -> None:
        """Load what requests will use: the generator or embedder for those tasks, else the
        OIP session."""
        try:
            if await warm(self.workers, self.models, manifest):
                return
        except ApiError as exc:
            raise AgentError(exc.message) from None
        model = await anyio.to_thread.run_sync(local_model, self.cache, manifest)
        await self.runtime.session(f"{model.name}:{model.version}", model.path)

    async def install(self, follower: Follower, manifest: Manifest) -> None:
        """Serve the follower's version from the start, loaded if it loads."""
        try:
            await self._warm(manifest)
        except (AgentError, InferenceError) as exc:
            self.say(f"{follower.ref.text}: v{manifest.number} did not load ({exc})")
        self.models.follow(follower.name, follower.alias, manifest)
        self.on_switch({k: m.number for k, m in self.models.followed().items()})

    def callback(self, follower: Follower) -> Callable[[Change], Any]:
        """The follower's on_change: switch to the new version once it is loaded."""

        async def changed(change: Change) -> None:
            try:
                await self._warm(change.manifest)
            except (AgentError, InferenceError) as exc:
                old = self.models.current(follower.name, follower.alias)
                self.say(f"{change.line()}, but it did not load ({exc}); still serving "
                         f"v{old.number if old else '?'}")
                return
            old = self.models.follow(follower.name, follower.alias, change.manifest)
            generation = self.drain.advance()
            self.say(f"{change.line()}, now serving it")
            self.on_switch({k: m.number for k, m in self.models.followed().items()})
            if old is not None and _key(old) != _key(change.manifest) and self.tg is not None:
                self.tg.start_soon(self._retire, old, generation)

        return changed

    async def _retire(self, old: Manifest, generation: int) -> None:
        """Unload the old version once the requests that may use it are done (or after the idle
        TTL, when the reaper would have done it anyway), unless an alias still means it."""
        with anyio.move_on_after(self.runtime.idle_ttl):
            await self.drain.wait_before(generation)
        if all(_key(m) != _key(old) for m in self.models.followed().values()):
            self.runtime.unload(_key(old))
            self.workers.unload(_key(old))


class _Stopped(Exception):
    """SIGTERM, after uvicorn's graceful shutdown: leave normally so the marker is removed."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _say(line: str) -> None:
    print(line, flush=True)


async def _no_route(request: Request, exc: Exception) -> Response:
    """No route for the path (404) or for its method (405), as JSON in the shape of the API the
    path belongs to (`guard.error_document`) instead of Starlette's plain text."""
    path, method = request.url.path, request.method
    headers = dict(getattr(exc, "headers", None) or {})
    if getattr(exc, "status_code", 404) == 405:
        allowed = sorted(m.strip() for m in headers.get("Allow", "").split(",") if m.strip() not in ("", "HEAD"))
        message = f"{method} {path} is not allowed: it takes {', '.join(allowed) or 'another method'}"
        return JSONResponse(error_document(path, message, "method_not_allowed"), 405, headers=headers)
    if path.startswith("/v1"):
        hint = "/v1 has " + ", ".join(
            f"{m} {r.path_format}" for r in request.app.routes if isinstance(r, Route) and r.path.startswith("/v1/")
            for m in sorted(r.methods or ()) if m != "HEAD")
    else:
        hint = "OIP V2 is under /v2 (GET /v2 describes the server), the OpenAI-style API under /v1"
    return JSONResponse(error_document(path, f"no route for {method} {path}; {hint}", "unknown_url"), 404)


def app(cache: Cache, runtime: Runtime, followers: Sequence[Follower] = (), *,
        access: Access | None = None,
        workers: Workers | None = None,
        assistant: Assistant | None = None,
        say: Callable[[str], None] = _say,
        on_switch: Callable[[dict[str, int]], None] = lambda following: None) -> Starlette:
    """The local app over the cache: its routes share one CacheRegistry (which knows the
    followed aliases); the idle-session reaper and the followers run in its lifespan. `LocalOnly`
    sees every request first: only loopback Host names, its own pages and `access` get through."""
    models = CacheRegistry(cache)
    drain = Drain()
    workers = workers or Workers(idle_ttl=runtime.idle_ttl, providers=runtime.providers)
    swapper = Swapper(cache, models, runtime, workers, drain, say, on_switch)
    routes: list[BaseRoute] = [*oip_routes(models, runtime), *openai_routes(models, workers),
                               *ask_routes(models, workers, assistant or Assistant(cache.home)),
                               *page_routes()]

    async def follow(follower: Follower) -> None:
        try:
            await follower.run()
        except AgentError as exc:  # a refused token: serve what we have, follow no more
            say(f"{follower.ref.text}: stopped following ({exc})")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            swapper.tg = tg
            tg.start_soon(runtime.reap)
            tg.start_soon(workers.reap)
            for follower in followers:
                if follower.current is None:
                    say((await anyio.to_thread.run_sync(follower.resolve)).line())
                assert follower.current is not None
                await swapper.install(follower, follower.current)
                follower.on_change = swapper.callback(follower)
                tg.start_soon(follow, follower)
            yield
            tg.cancel_scope.cancel()

    guard = Middleware(LocalOnly, access=access or Access())
    return Starlette(routes=routes, middleware=[guard, drain.middleware()], lifespan=lifespan,
                     exception_handlers={404: _no_route, 405: _no_route})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), or a clear error."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(cache: Cache, host: str, port: int, idle_ttl: float = DEFAULT_IDLE_TTL,
          follow: Sequence[str] = (), settings: Settings | None = None,
          access: Access | None = None, assistant: Assistant | None = None) -> None:
    """Run the server until SIGINT or SIGTERM; prints its URL once the port is bound.

    Each `follow` NAME@ALIAS is resolved (and pulled) before the server starts: an unknown one
    is a UsageError; an unreachable registry is fine when the alias was pulled before.
    """
    if follow and settings is None:
        raise UsageError("--follow needs the registry settings")
    followers = [Follower(settings, text, notify=lambda line: print(line, file=sys.stderr, flush=True))
                 for text in dict.fromkeys(follow) if settings is not None]
    sock = bind(host, port)
    port = int(sock.getsockname()[1])
    with sock, Marker(cache.home, host, port) as mark:
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            for follower in followers:
                _say(follower.resolve().line())
            held: dict[str, list[str]] = {"runtime": [], "workers": []}

            def report(kind: str, keys: list[str]) -> None:
                held[kind] = keys
                mark.update(loaded=sorted(set(held["runtime"]) | set(held["workers"])))

            runtime = TrackedRuntime(idle_ttl, lambda keys: report("runtime", keys))
            workers = Workers(idle_ttl=idle_ttl, providers=runtime.providers,
                              on_loaded=lambda keys: report("workers", keys))
            server = uvicorn.Server(uvicorn.Config(
                app(cache, runtime, followers, access=access, workers=workers, assistant=assistant,
                    on_switch=lambda following: mark.update(following=following)),
                host=host, port=port, log_level="warning",
            ))
            shown = f"[{host}]" if ":" in host else host
            print(f"serving {cache.home} on http://{shown}:{port} (chat page: /, OIP V2: /v2, OpenAI-style: /v1)",
                  flush=True)
            if host.strip("[]") in WILDCARDS and not (access and access.hosts):
                print("listening on every interface, but answering only loopback Host names: "
                      "add --allow-host NAME for the names other machines use", flush=True)
            server.run(sockets=[sock])
        except (_Stopped, KeyboardInterrupt):  # uvicorn re-raises the signal after shutting down
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
