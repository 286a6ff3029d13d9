"""`/metrics` in Prometheus text format, and the middleware that times every HTTP request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.metrics import Metrics


class MetricsMiddleware:
    """Pure ASGI middleware recording every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an app that returns without answering gets a 500 from the server

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except Exception:
            status = 500
            raise
        finally:
            self.metrics.observe_request(scope["method"], route_label(scope), status, time.perf_counter() - start)


def route_label(scope: Scope) -> str:
    """The matched route's path template, never the raw path (one series per route, not per URL)."""
    route = scope.get("route")  # set by Starlette's router when a route matches
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """The `/metrics` route handler."""

    async def endpoint(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return endpoint
