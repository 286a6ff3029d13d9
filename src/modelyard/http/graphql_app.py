"""The `/graphql` endpoint: Strawberry's ASGI app with our context, auth and an offline GraphiQL."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from modelyard.catalog.events import EventBus
from modelyard.catalog.policy import caller_for
from modelyard.config import Settings
from modelyard.graphql.context import Context
from modelyard.graphql.errors import with_codes
from modelyard.graphql.schema import build_schema
from modelyard.http.graphiql import graphiql_html
from modelyard.metrics import Metrics
from modelyard.storage import BlobStore


class GraphQLApp(GraphQL[Context, None]):
    """GraphQL over HTTP and WebSockets (graphql-transport-ws), GraphiQL from local assets."""

    def __init__(self, settings: Settings, metrics: Metrics, events: EventBus, store: BlobStore) -> None:
        super().__init__(
            build_schema(settings, metrics),
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.settings = settings
        self.events = events
        self.store = store

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket | None) -> Context:
        return Context(
            settings=self.settings, events=self.events, store=self.store, request=request,
            caller=await caller_for(request.headers.get("authorization")),
            host=request.client.host if request.client else "unknown",
        )

    async def on_ws_connect(self, context: Context) -> None:
        """Take credentials from the connection_init payload: `{"Authorization": "Bearer …"}`."""
        params = context.connection_params or {}
        value = params.get("Authorization") or params.get("authorization")
        if value is None and params.get("token"):
            value = f"Bearer {params['token']}"
        if value is not None:
            context.caller = await caller_for(str(value))
        return None

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # An extension that crashes skips ErrorCodes' rewrite; this is the last stop before the wire.
        result.errors = with_codes(result.errors)
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html())

    async def get_root_value(self, request: Any) -> None:
        return None
