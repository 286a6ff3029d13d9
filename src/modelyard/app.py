"""The ASGI application: GraphQL, GraphiQL assets and health, with the database in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from modelyard.config import Settings
from modelyard.db.database import close_database, open_database
from modelyard.http.graphiql import assets_app
from modelyard.http.graphql_app import GraphQLApp


def create_app(settings: Settings | None = None) -> Starlette:
    """The whole server for `settings`; the lifespan migrates and opens the database."""
    settings = settings or Settings.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await open_database(settings.resolved_database_url)
        try:
            yield
        finally:
            await close_database()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    graphql = GraphQLApp(settings)
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Mount("/static/graphiql", app=assets_app()),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
