"""Per-client limits of one server process: failed authentications and uploads started.

A client is its address as uvicorn reports it. Behind a reverse proxy, uvicorn takes it from
`X-Forwarded-For` only for proxies listed in `FORWARDED_ALLOW_IPS` (default 127.0.0.1); without
that, every client shares the proxy's address and its budget.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from modelyard.catalog.policy import Caller, caller_for
from modelyard.config import Settings
from modelyard.ratelimit import RateLimiter


def client_address(connection: HTTPConnection) -> str:
    """The address a request's limits are counted against."""
    return connection.client.host if connection.client else "unknown"


class ClientLimits:
    """The rate limiters every route of one app shares."""

    def __init__(self, settings: Settings) -> None:
        self.failed_auth = RateLimiter(settings.auth_failures_per_minute)
        self.uploads = RateLimiter(settings.uploads_per_minute)

    async def caller(self, connection: HTTPConnection, authorization: str | None = None) -> Caller:
        """The caller of a request (from `authorization`, else its header), failures counted."""
        if authorization is None:
            authorization = connection.headers.get("authorization")
        return await caller_for(authorization, client=client_address(connection), failures=self.failed_auth)

    def start_upload(self, connection: HTTPConnection) -> None:
        """Count one upload started by the client; RateLimitedError when it started too many."""
        self.uploads.take(client_address(connection), "uploads started")
