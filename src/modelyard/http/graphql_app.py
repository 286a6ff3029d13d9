"""The `/graphql` endpoint: Strawberry's ASGI app with our context, auth and an offline GraphiQL.

What reaches Strawberry is a well-formed request of bounded size: bodies are counted as they
stream in and decoded here (graphql_wire), so no body answers 500; refusals come back as GraphQL
responses with coded errors, in the media type the client asked for.
"""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from modelyard.catalog.events import EventBus
from modelyard.config import Settings
from modelyard.errors import InvalidError, ModelyardError, RateLimitedError
from modelyard.graphql.context import Context
from modelyard.graphql.errors import with_codes
from modelyard.graphql.schema import build_schema
from modelyard.http import graphql_wire as wire
from modelyard.http.client_limits import ClientLimits, client_address
from modelyard.http.graphiql import graphiql_html
from modelyard.metrics import Metrics
from modelyard.storage import BlobStore


class GraphQLApp(GraphQL[Context, None]):
    """GraphQL over HTTP and WebSockets (graphql-transport-ws), GraphiQL from local assets."""

    def __init__(self, settings: Settings, metrics: Metrics, events: EventBus, store: BlobStore,
                 limits: ClientLimits) -> None:
        super().__init__(
            build_schema(settings, metrics),
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.settings = settings
        self.events = events
        self.store = store
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        limit = self.settings.max_graphql_body
        request = Request(scope, receive=wire.limited(receive, limit))
        media = wire.response_media(request.headers.get("accept"))
        response: Response
        try:
            wire.check_length(request.headers.get("content-length"), limit)
            response = await self.run(request)
        except ModelyardError as exc:
            response = wire.error_answer(exc, media)
        except HTTPException as exc:  # Strawberry's own refusals: wrong method, GET mutation, …
            response = wire.error_answer(InvalidError(exc.reason), media, exc.status_code)
        await response(scope, receive, send)

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        if request.method == "GET":
            return wire.request_data(self.parse_query_params(request.query_params))
        content_type, _ = parse_content_type(request.content_type or "")
        if content_type != wire.JSON:
            raise InvalidError(f"POST /graphql takes Content-Type: {wire.JSON} (got {content_type or 'none'})")
        return wire.request_data(self.parse_json(await request.get_body()))

    def parse_json(self, data: str | bytes) -> Any:
        return wire.decode(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket | None) -> Context:
        caller = await self.limits.caller(request)
        if isinstance(caller.auth_error, RateLimitedError) and isinstance(request, Request):
            raise caller.auth_error  # 429 before anything runs (a subscription reports it as its error)
        return Context(
            settings=self.settings, events=self.events, store=self.store, request=request,
            caller=caller, host=client_address(request),
        )

    async def on_ws_connect(self, context: Context) -> None:
        """Take credentials from the connection_init payload: `{"Authorization": "Bearer …"}`."""
        params = context.connection_params or {}
        value = params.get("Authorization") or params.get("authorization")
        if value is None and params.get("token"):
            value = f"Bearer {params['token']}"
        if value is not None and isinstance(context.request, HTTPConnection):
            context.caller = await self.limits.caller(context.request, str(value))
        return None

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = wire.response_media(request.headers.get("accept"))
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # An extension that crashes skips ErrorCodes' rewrite; this is the last stop before the wire.
        result.errors = with_codes(result.errors)
        body = await super().process_result(request, result)
        if wire.failed_before_execution(result.data, result.errors):
            body.pop("data", None)  # nothing ran: a request error has no `data` (GraphQL spec 7.1)
        return body

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
                        sub_response: Response) -> Response:
        media = sub_response.media_type or wire.JSON
        response = Response(self.encode_json(response_data), media_type=media,
                            status_code=sub_response.status_code or wire.status_for(response_data, media))
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        return response

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html())

    async def get_root_value(self, request: Any) -> None:
        return None
