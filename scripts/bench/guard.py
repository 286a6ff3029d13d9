"""What the agent's LocalOnly guard costs per request: the same ASGI no-op app, bare and guarded.

Both sides handle the same request (a loopback Host, a JSON POST) and send the same empty 200;
the difference is the guard's Host, Origin and Content-Type checks. Best of 5 runs of 100,000.

    .venv/bin/python scripts/bench/guard.py
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from modelyard_agent.guard import Access, LocalOnly

N = 100_000
SCOPE = {"type": "http", "method": "POST", "path": "/v2/models/m/infer",
         "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
                     (b"user-agent", b"python-httpx"), (b"accept", b"*/*"), (b"content-length", b"100")]}


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def send(message: dict[str, Any]) -> None:
    pass


async def best(handler: Any) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(N):
            await handler(SCOPE, receive, send)
        runs.append((time.perf_counter() - start) / N * 1e6)
    return min(runs)


async def main() -> None:
    bare = await best(app)
    guarded = await best(LocalOnly(app, Access()))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"bare ASGI app    {bare:6.2f} µs/request")
    print(f"with LocalOnly   {guarded:6.2f} µs/request  (+{guarded - bare:.2f} µs)")


if __name__ == "__main__":
    asyncio.run(main())
