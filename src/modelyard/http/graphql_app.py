"""The `/graphql` endpoint: Strawberry's ASGI app with our context and an offline GraphiQL."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from modelyard.config import Settings
from modelyard.graphql.context import Context
from modelyard.graphql.errors import with_codes
from modelyard.graphql.schema import build_schema
from modelyard.http.graphiql import graphiql_html
from modelyard.metrics import Metrics


class GraphQLApp(GraphQL[Context, None]):
    """GraphQL over HTTP, with GraphiQL served from local assets."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        super().__init__(build_schema(settings, metrics), graphql_ide="graphiql")
        self.settings = settings

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket | None) -> Context:
        return Context(settings=self.settings, request=request)

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # An extension that crashes skips ErrorCodes' rewrite; this is the last stop before the wire.
        result.errors = with_codes(result.errors)
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html())

    async def get_root_value(self, request: Any) -> None:
        return None
