"""The yard: the web UI at `/`, a shell page and its scripts, served by the registry itself.

Every page is rendered in the browser from one GraphQL document run against `/graphql` with the
caller's own token (kept in the tab's sessionStorage, sent as a Bearer header), so a page shows
exactly what the API lets that caller read. The shell holds no catalog data; scripts build the
page with DOM calls that treat every catalog string as text (no innerHTML anywhere), and the
Content-Security-Policy below allows only this origin's scripts, styles and connections.

    /                                   models and the typed version search
    /models/<name>                      a model: aliases and their history, versions
    /models/<name>/versions/<n>         a version: params, metric charts, artifacts, audit
    /models/<name>/versions/<n>/lineage the lineage picture
    /compare?a=<ref>&b=<ref>            two versions side by side
    /audit                              the audit log
    /ui/…, /ui/vendor/…                 the UI's own scripts and the pinned libraries
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from modelyard import __version__

UI_DIR = Path(__file__).resolve().parent / "ui"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "ui-vendor"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
VENDOR_HINT = ("the UI's libraries are not installed in {dir}; run `python scripts/fetch_assets.py` "
               "(make run and make test do)")

_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelyard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/vendor/uPlot.min.css">
<link rel="stylesheet" href="/ui/app.css?v={version}">
<script src="/ui/vendor/dagre.min.js" defer></script>
<script src="/ui/vendor/uPlot.iife.min.js" defer></script>
<script type="module" src="/ui/js/main.js"></script>
</head>
<body>
<noscript>The yard needs JavaScript; the same data is at <a href="/graphql">/graphql</a>.</noscript>
<div id="app"></div>
</body>
</html>
"""


async def shell(request: Request) -> Response:
    """The one page every UI path answers with; the scripts read the path and render."""
    return HTMLResponse(_SHELL.format(version=__version__),
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


class _Files(StaticFiles):
    """Static files with the UI's security headers, and a readable 404 when they are missing."""

    def __init__(self, directory: Path, hint: str | None = None) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.hint = hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        if self.hint is not None and not (Path(str(self.directory)) / "VERSIONS.json").is_file():
            await Response(self.hint, 404, media_type="text/plain")(scope, receive, send)
            return
        await super().__call__(scope, receive, secured)  # type: ignore[arg-type]


def ui_routes() -> list[BaseRoute]:
    """The UI's routes, to mount beside /graphql and the APIs."""
    return [
        Route("/", shell, methods=["GET", "HEAD"]),
        Route("/models/{rest:path}", shell, methods=["GET", "HEAD"]),
        Route("/compare", shell, methods=["GET", "HEAD"]),
        Route("/audit", shell, methods=["GET", "HEAD"]),
        Mount("/ui/vendor", app=_Files(VENDOR_DIR, VENDOR_HINT.format(dir=VENDOR_DIR))),
        Mount("/ui", app=_Files(UI_DIR)),
    ]
