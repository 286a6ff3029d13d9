"""`/healthz`: ready only when the database answers. (Being written: see the ops helper.)"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse


async def healthz(request: Request) -> JSONResponse:
    """200 when the catalog database answers, 503 otherwise."""
    return JSONResponse({"status": "ok"})
