"""JSON error answers for the HTTP API beside GraphQL: `{"error": message, "code": CODE}`."""

from __future__ import annotations

from starlette.responses import JSONResponse

from modelyard.errors import ModelyardError


def error_response(exc: ModelyardError, status: int | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error's message and code, with its HTTP status unless `status` overrides it."""
    return JSONResponse(
        {"error": exc.message, "code": exc.code}, status_code=status or exc.http_status, headers=headers
    )
