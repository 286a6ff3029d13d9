"""The chat page of `modelyard-agent serve`: a shell at `/` and its own scripts and styles.

The page is a view of the local API and holds no data of its own: it lists chat models with
`GET /v1/models`, streams replies from `POST /v1/chat/completions` and answers from the files the
server was started with from `POST /v1/ask`. Its files ship inside the package (no CDN, no web
fonts), so it works offline; every model, file and reply string is put into the page as DOM
text, never markup, and the Content-Security-Policy below lets only this origin's scripts,
styles and connections in, so a reply that writes `<script>` shows those characters.

    /            the page
    /page/…      its ES modules and stylesheet (desktop/src/modelyard_agent/page/)
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

PAGE_DIR = Path(__file__).resolve().parent / "page"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated each time (cheap, with the ETag): an upgraded agent never runs yesterday's page.
    "Cache-Control": "no-cache",
}


async def shell(request: Request) -> Response:
    """The page's HTML; its scripts fetch everything else."""
    return FileResponse(PAGE_DIR / "index.html", headers=HEADERS, media_type="text/html; charset=utf-8")


class _Assets(StaticFiles):
    """The page's files, with the same security headers as the page."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                kept = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() != "cache-control"]
                message = {**message, "headers": kept + extra}
            await send(message)

        await super().__call__(scope, receive, secured)


def page_routes() -> list[BaseRoute]:
    """The page's routes, to mount beside /v1 and /v2."""
    return [
        Route("/", shell, methods=["GET", "HEAD"]),
        Mount("/page", app=_Assets(directory=PAGE_DIR)),
    ]
