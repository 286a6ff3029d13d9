"""GraphiQL renders and runs a query in real headless Chromium, with no request leaving the host."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Response, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
QUERY = "{ __schema { queryType { name } } }"
EDITOR = ".graphiql-query-editor .CodeMirror"


@pytest.mark.browser
def test_graphiql_runs_a_query_offline(live_server: str) -> None:
    """Open /graphql as a browser would, run a query typed into the editor and read the result."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's `chromium` (apt-get install chromium)"
        )
    host = urlsplit(live_server).hostname
    requests: list[str] = []
    failed: list[str] = []
    bad_status: list[str] = []
    page_errors: list[str] = []

    def on_failed(request: Request) -> None:
        failed.append(f"{request.url}: {request.failure}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            bad_status.append(f"{response.status} {response.url}")

    def assert_clean(page: Page) -> None:
        foreign = [
            u for u in requests if urlsplit(u).scheme != "data" and urlsplit(u).hostname != host
        ]
        assert not foreign, f"requests left {host}: {foreign}"
        assert not bad_status, f"{bad_status}; page says: {page.inner_text('body')[:300]!r}"
        assert not failed, f"requests failed: {failed}"
        assert not page_errors, f"JavaScript errors: {page_errors}"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda ws: requests.append(ws.url))
            page.on("requestfailed", on_failed)
            page.on("response", on_response)
            page.on("pageerror", lambda error: page_errors.append(str(error)))

            page.goto(f"{live_server}/graphql", wait_until="load")
            # Checked before waiting for the editor, so a broken page fails fast and says why.
            assert_clean(page)
            expect(page.locator(EDITOR)).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.locator(".graphiql-container")).to_be_visible()

            page.evaluate(f"q => document.querySelector({EDITOR!r}).CodeMirror.setValue(q)", QUERY)
            page.locator(".graphiql-execute-button").click()
            result = page.locator(".graphiql-response")
            expect(result).to_contain_text('"queryType"', timeout=TIMEOUT_MS)
            expect(result).to_contain_text('"Query"')
            assert_clean(page)
        finally:
            browser.close()

    assert any(urlsplit(u).path.endswith("/graphiql.min.js") for u in requests), requests
