"""GraphiQL served entirely from locally bundled assets (see scripts/fetch_assets.py)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS_DIR: Path = Path(__file__).resolve().parent / "static" / "graphiql"
MANIFEST: str = "VERSIONS.json"
MISSING_HINT: str = (
    "GraphiQL assets are not installed in {dir}; run `python scripts/fetch_assets.py` "
    "(the Makefile's install step does)."
)

DEFAULT_QUERY: str = """\
# Welcome to the modelyard GraphQL API.
# Run with Ctrl-Enter or the play button; Ctrl-Space completes.
{
  __schema {
    queryType {
      name
    }
  }
}
"""

_PAGE: str = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>modelyard · GraphiQL</title>
    <link rel="icon" href="data:,">
    <style>
      body {{ margin: 0; height: 100vh; overflow: hidden; }}
      #graphiql {{ height: 100vh; display: flex; }}
      #graphiql > .graphiql-container {{ flex: 1; }}
    </style>
    <link rel="stylesheet" href="{assets}/graphiql.min.css">
    <link rel="stylesheet" href="{assets}/plugin-explorer.css">
    <script src="{assets}/react.production.min.js"></script>
    <script src="{assets}/react-dom.production.min.js"></script>
    <script src="{assets}/graphiql.min.js"></script>
    <script src="{assets}/plugin-explorer.umd.js"></script>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script>
      (() => {{
        const root = document.getElementById("graphiql");
        if (typeof GraphiQL === "undefined" || typeof GraphiQLPluginExplorer === "undefined") {{
          root.textContent = {missing};
          return;
        }}
        const url = new URL({endpoint}, window.location.href);
        const subscriptionUrl = new URL({subscriptions}, window.location.href);
        if (subscriptionUrl.protocol === "http:" || subscriptionUrl.protocol === "https:") {{
          subscriptionUrl.protocol = subscriptionUrl.protocol === "https:" ? "wss:" : "ws:";
        }}
        // The yard's "query" links carry a page's document in the fragment (never sent).
        const fromLink = new URLSearchParams(window.location.hash.slice(1));
        const fetcher = GraphiQL.createFetcher({{
          url: url.href,
          subscriptionUrl: subscriptionUrl.href,
        }});
        ReactDOM.createRoot(root).render(
          React.createElement(GraphiQL, {{
            fetcher,
            defaultQuery: {query},
            query: fromLink.get("query") || undefined,
            variables: fromLink.get("variables") || undefined,
            plugins: [GraphiQLPluginExplorer.explorerPlugin()],
            defaultEditorToolsVisibility: true,
            isHeadersEditorEnabled: true,
            // Headers often carry tokens: keep them out of localStorage.
            shouldPersistHeaders: false,
            inputValueDeprecation: true,
          }}),
        );
      }})();
    </script>
  </body>
</html>
"""


def _js(value: str) -> str:
    """A JS string literal that is also safe inside an inline <script>."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def graphiql_html(
    endpoint: str = "/graphql",
    assets_url: str = "/static/graphiql",
    subscriptions_endpoint: str | None = None,
) -> str:
    """Render the GraphiQL page for `endpoint`, loading only assets under `assets_url`."""
    return _PAGE.format(
        assets=escape(assets_url.rstrip("/"), quote=True),
        endpoint=_js(endpoint),
        subscriptions=_js(subscriptions_endpoint or endpoint),
        query=_js(DEFAULT_QUERY),
        missing=_js(MISSING_HINT.format(dir=ASSETS_DIR)),
    )


class _GraphiQLAssets(StaticFiles):
    """StaticFiles that answers a readable 404 instead of a 500 when the assets were never fetched."""

    async def check_config(self) -> None:
        """Skip Starlette's directory check, which raises on every request when it is missing."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Serve the file, or explain how to install the assets when they are absent."""
        if not (ASSETS_DIR / MANIFEST).is_file():
            raise HTTPException(status_code=404, detail=MISSING_HINT.format(dir=ASSETS_DIR))
        return await super().get_response(path, scope)


def assets_app() -> StaticFiles:
    """The ASGI app serving the bundled GraphiQL assets; mount it at the page's `assets_url`."""
    return _GraphiQLAssets(directory=ASSETS_DIR, check_dir=False)
