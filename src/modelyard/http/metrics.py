"""`/metrics` in Prometheus text format, and the middleware that times every HTTP request.

(Being written: see the ops helper.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.metrics import Metrics


class MetricsMiddleware:
    """Pure ASGI middleware recording every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """The `/metrics` route handler."""

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("")

    return endpoint
