"""JSON error answers for the HTTP API beside GraphQL: `{"error": message, "code": CODE}`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.responses import JSONResponse

from modelyard.errors import ModelyardError, RateLimitedError


def error_response(exc: ModelyardError, status: int | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error's message and code, with its HTTP status unless `status` overrides it."""
    return JSONResponse(
        {"error": exc.message, "code": exc.code}, status_code=status or exc.http_status,
        headers={**error_headers(exc), **(headers or {})},
    )


def error_headers(exc: ModelyardError) -> dict[str, str]:
    """The headers an answer for `exc` carries: `Retry-After` for a rate limit."""
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else {}


async def with_timeout(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """Pass chunks on; TimeoutError when the next one takes longer than `seconds` to arrive.

    uvicorn has no body-read timeout: a client that goes silent mid-body would otherwise hold
    its upload (and a worker) until the connection dies.
    """
    iterator = chunks.__aiter__()
    while True:
        with anyio.fail_after(seconds):
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
        yield chunk


def timed_out(seconds: float) -> JSONResponse:
    """408 for a body that stopped arriving."""
    return JSONResponse(
        {"error": f"no bytes arrived for {seconds:g} s; resume from the server's Upload-Offset",
         "code": "TIMEOUT"}, status_code=408,
    )
