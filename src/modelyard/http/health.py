"""`/healthz`: ready only when the database answers."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from tortoise import connections

log = logging.getLogger("modelyard.health")
TIMEOUT = 2.0  # seconds; a probe that hangs is as bad as one that fails


async def healthz(request: Request) -> JSONResponse:
    """200 when the catalog database answers, 503 otherwise."""
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), TIMEOUT)
    except TimeoutError:
        return _unavailable("timeout")
    except Exception as exc:
        log.warning("health check: database did not answer: %r", exc)
        # The class name only: driver messages can carry host names and paths.
        return _unavailable(type(exc).__name__)
    return JSONResponse({"status": "ok", "database": "ok"}, headers={"Cache-Control": "no-store"})


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse(
        {"status": "unavailable", "database": reason}, status_code=503, headers={"Cache-Control": "no-store"}
    )
