"""The ASGI application: GraphQL, GraphiQL assets and health, with the database in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from modelyard.catalog import tokens
from modelyard.catalog.events import EventBus
from modelyard.config import Settings
from modelyard.db.database import close_database, open_database
from modelyard.http.blobs import BlobRoutes
from modelyard.http.client_limits import ClientLimits
from modelyard.http.graphiql import assets_app
from modelyard.http.graphql_app import GraphQLApp
from modelyard.http.health import healthz
from modelyard.http.metrics import MetricsMiddleware, metrics_endpoint
from modelyard.http.oip import OipRoutes
from modelyard.http.ui import ui_routes
from modelyard.http.uploads import UploadRoutes
from modelyard.metrics import Metrics
from modelyard.storage import BlobStore, open_store


def create_app(settings: Settings | None = None, *, store: BlobStore | None = None) -> Starlette:
    """The whole server for `settings`; the lifespan migrates and opens the database and store."""
    settings = settings or Settings.load()
    store = store or open_store(settings.resolved_storage_url, **settings.s3_options())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await open_database(settings.resolved_database_url)
        try:
            if settings.admin_token:
                await tokens.seed_admin_token(settings.admin_token)
            await events.start()
            try:
                async with store:
                    yield
            finally:
                await events.stop()
        finally:
            await close_database()

    metrics = Metrics()
    url = settings.resolved_database_url
    events = EventBus(
        settings.event_poll_seconds, settings.max_subscriptions,
        listen_dsn=url if url.startswith(("postgres://", "postgresql://")) else None,
    )
    limits = ClientLimits(settings)  # shared by every route, so failures anywhere count together
    graphql = GraphQLApp(settings, metrics, events, store, limits)
    blobs = BlobRoutes(store, settings, limits)
    uploads = UploadRoutes(store, settings, limits)
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Mount("/static/graphiql", app=assets_app()),
            Route("/api/blobs/{digest}", blobs.head_or_get, methods=["GET", "HEAD"]),
            Route("/api/blobs/{digest}", blobs.put, methods=["PUT"]),
            Route("/api/uploads", uploads.start, methods=["POST"]),
            Route("/api/uploads/{upload_id}", uploads.status, methods=["HEAD"]),
            Route("/api/uploads/{upload_id}", uploads.append, methods=["PATCH"]),
            Route("/api/uploads/{upload_id}", uploads.finish, methods=["PUT"]),
            Route("/api/uploads/{upload_id}", uploads.abort, methods=["DELETE"]),
            *OipRoutes(settings, limits).routes(),
            Route("/healthz", healthz),
            *ui_routes(),
            Route("/metrics", metrics_endpoint(metrics)),
        ],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
