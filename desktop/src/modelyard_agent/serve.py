"""`modelyard-agent serve`: the OIP server over the cache, and the marker that makes `rm` refuse.

While a server runs it keeps `<home>/serving/<pid>.json` (pid, host, port); the file is removed
on exit. A marker whose pid is no longer alive (a server killed with SIGKILL) is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette

from modelyard_agent.cache import Cache
from modelyard_agent.errors import UsageError
from modelyard_agent.oip import oip_routes
from modelyard_agent.registry import CacheRegistry
from modelyard_agent.runtime import Runtime

DEFAULT_PORT = 8080
DEFAULT_IDLE_TTL = 600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def servers(home: Path) -> list[dict[str, Any]]:
    """The markers of local servers still running on this home."""
    folder = home / "serving"
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            info = json.loads(path.read_text())
            if _alive(int(info["pid"])):
                found.append(info)
    return found


def refuse_if_served(home: Path, ref: str) -> None:
    """UsageError while a local server (which serves every pulled version) is running."""
    running = servers(home)
    if running:
        where = ", ".join(f"pid {s['pid']} on {s['host']}:{s['port']}" for s in running)
        raise UsageError(f"{ref} is being served ({where}); stop the server first")


@contextlib.contextmanager
def marker(home: Path, host: str, port: int) -> Iterator[Path]:
    """Write this process's serving marker for the duration of the block."""
    folder = home / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": host, "port": port}))
    os.replace(tmp, path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


class _Stopped(Exception):
    """SIGTERM, after uvicorn's graceful shutdown: leave normally so the marker is removed."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def app(cache: Cache, runtime: Runtime) -> Starlette:
    """The OIP app over the cache, with the idle-session reaper running in its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.reap)
            yield
            tg.cancel_scope.cancel()

    return Starlette(routes=oip_routes(CacheRegistry(cache), runtime), lifespan=lifespan)


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


def serve(cache: Cache, host: str, port: int, idle_ttl: float = DEFAULT_IDLE_TTL) -> None:
    """Run the server until SIGINT or SIGTERM; prints its URL once the port is bound."""
    sock = bind(host, port)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(
        app(cache, Runtime(idle_ttl=idle_ttl)), host=host, port=port, log_level="warning",
    ))
    with sock, marker(cache.home, host, port):
        shown = f"[{host}]" if ":" in host else host
        print(f"serving {cache.home} on http://{shown}:{port} (OIP V2: /v2)", flush=True)
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.run(sockets=[sock])
        except (_Stopped, KeyboardInterrupt):  # uvicorn re-raises the signal after shutting down
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
