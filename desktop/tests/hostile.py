"""Helpers for the hostile-input tests: a registry that lies, archives built to harm, snapshots.

`FakeRegistry` is a small Starlette app under real uvicorn on a free loopback port. It answers the
agent's GraphQL queries (`AgentVersion`, `AgentLatestEvent`) and `GET /api/blobs/<digest>` with
whatever a test puts in it, counts what it sent, and records the headers it received.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Answer = Callable[[Request], Response]
CHROMIUM = Path("/usr/bin/chromium")
# As tests/test_graphiql.py: no sandbox as root, and no background calls to Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def version_doc(name: str, files: dict[str, bytes], *, number: Any = 1, task: str = "OTHER",
                digest: str | None = None, ref: str | None = None) -> dict[str, Any]:
    """What a registry answers for a version (the agent's AgentVersion selection)."""
    return {
        "ref": ref if ref is not None else f"{name}:{number}",
        "number": number,
        "manifestDigest": digest or sha(json.dumps(sorted(files)).encode()),
        "artifacts": [{"path": p, "digest": sha(d), "size": len(d), "mediaType": "application/octet-stream"}
                      for p, d in files.items()],
        "signature": None,
        "model": {"name": name, "task": task},
    }


@dataclass
class FakeRegistry:
    """A registry whose answers are set by the test."""

    version: dict[str, Any] | Answer | None = None
    blobs: dict[str, bytes | Answer] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0
    url: str = ""

    def app(self) -> Starlette:
        async def graphql(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            body = await request.json()
            if "AgentLatestEvent" in body["query"]:
                return JSONResponse({"data": {"auditLog": {"nodes": [{"id": 7}]}}})
            if callable(self.version):
                return self.version(request)
            return JSONResponse({"data": {"version": self.version}})

        async def blob(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            found = self.blobs.get(request.path_params["digest"])
            if found is None:
                return JSONResponse({"error": "no such blob"}, 404)
            if callable(found):
                return found(request)
            start = int(request.headers.get("range", "bytes=0-")[6:].rstrip("-") or 0)
            self.sent += len(found) - start
            return Response(found[start:], 206 if start else 200)

        return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]),
                                 Route("/api/blobs/{digest}", blob, methods=["GET"])])

    def endless(self, status: int = 200, first: bytes = b"", chunk: int = 1 << 16,
                limit: int = 1 << 30) -> Answer:
        """An answer that streams `first` then zeros until `limit` bytes (a stand-in for forever)
        or until the client goes away, adding what it sent to `self.sent`."""

        def answer(request: Request) -> Response:
            async def body() -> AsyncIterator[bytes]:
                yield first
                self.sent += len(first)
                block, sent = b"0" * chunk, len(first)
                while sent < limit:
                    yield block
                    sent += len(block)
                    self.sent += len(block)
                    if sent % (16 * chunk) == 0 and await request.is_disconnected():
                        return

            return StreamingResponse(body(), status, media_type="application/json")

        return answer


class Running:
    """An ASGI app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def refused(done: Any, *words: str) -> None:
    """The agent's one-line error: exit 2, one line on stderr, naming what was wrong."""
    assert done.code == 2, (done.out, done.err)
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelyard-agent: "), done.err
    for word in words:
        assert word in lines[0], lines[0]


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` but those under `skip`, with its size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            if here / name == skip:
                continue
            st = (here / name).lstat()
            found[str((here / name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


# What may exist under an agent home: anything else is a write in the wrong place.
_LAYOUT = re.compile(
    r"^(?:"
    r"blobs(?:/sha256(?:/[0-9a-f]{64}(?:\.partial)?)?)?"
    r"|locks(?:/[0-9a-f]{64})?"
    r"|manifests(?:/\.changed|/[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)?(?:/[1-9][0-9]*\.json)?"
    r"|/[a-z0-9][a-z0-9._-]*/[1-9][0-9]*\.json)?"
    r"|quarantine(?:/[0-9a-f]{64})?"
    r"|serving(?:/[0-9]+\.json)?"
    r"|versions(?:/[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)?(?:/[1-9][0-9]*(?:/[^/]+)*)?)?"
    r"|config\.json"
    r")$"
)


def stray(home: Path) -> list[str]:
    """Paths under an agent home that no part of the cache would write."""
    if not home.exists():
        return []
    rel = [p.relative_to(home).as_posix() for p in home.rglob("*")]
    return sorted(p for p in rel if not _LAYOUT.match(p))


def bytes_under(home: Path) -> int:
    """Bytes actually allocated on disk under a folder (a sparse file counts what it holds)."""
    return sum(p.lstat().st_blocks * 512 for p in home.rglob("*")) if home.exists() else 0


def archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A tar with exactly these members, in this order."""
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def manifest_json(name: Any, files: dict[str, bytes], number: Any = 1, **extra: Any) -> bytes:
    """The `manifest.json` an export writes, for a version with these files."""
    doc = {"name": name, "number": number, "ref": f"{name}:{number}",
           "manifest_digest": sha(b"m" + json.dumps(sorted(files)).encode()),
           "artifacts": [{"path": p, "digest": sha(d), "size": len(d),
                          "media_type": "application/octet-stream"} for p, d in files.items()],
           "task": "other", "signature": None, "pulled_as": [f"{name}:{number}"], "pulled_at": "",
           **extra}
    return json.dumps(doc).encode()
