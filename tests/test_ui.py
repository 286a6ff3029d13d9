"""The yard, the web UI, in real headless Chromium over a real server with the demo catalog.

Every request that would leave the server's host is blocked and recorded; a page fails its test
on any console error, failed request or request elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ADMIN_SECRET, free_port, running

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGES = {
    "home": "/",
    "search": "/?c=metric.accuracy%3E0.9&c=param.algorithm%3DLogisticRegression",
    "model": "/models/demo/iris-classifier",
    "version": "/models/demo/digits-mlp/versions/2",
    "lineage": "/models/demo/digits-student/versions/1/lineage",
    "compare": "/compare?a=demo/iris-classifier:2&b=demo/iris-classifier:3",
    "audit": "/audit",
    "missing-model": "/models/demo/iris-clasifier",
    "missing-version": "/models/demo/iris-classifier/versions/99",
    "missing-page": "/models/a/b/c/d",
}
pytestmark = pytest.mark.browser


def gql(url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = ADMIN_SECRET) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers, timeout=30).json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


class Watched:
    """A page whose console errors, failed requests and requests to other hosts are recorded."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.problems: list[str] = []
        host = urlsplit(base).hostname

        def route(r: Any) -> None:
            if urlsplit(r.request.url).hostname == host or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.problems.append(f"left the host: {r.request.url}")
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def open(self, path: str) -> Page:
        self.page.goto(self.base + path)
        self.ready()
        return self.page

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-ready=true]", timeout=20_000)

    def clean(self) -> None:
        assert self.problems == [], self.problems


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's `chromium` (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def watched(browser: Browser, demo_server: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(context.new_page(), demo_server)
    context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_opens_with_no_error_and_no_request_elsewhere(browser: Browser, demo_server: str, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        w = Watched(context.new_page(), demo_server)
        for name, path in PAGES.items():
            page = w.open(path)
            assert page.locator("main h1").first.inner_text().strip(), name
            if width < 500:  # a phone: the page never scrolls sideways (wide tables scroll in their box)
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, (name, overflow)
        allowed = [p for p in w.problems if not (p.startswith("HTTP 404") or "Failed to load resource" in p)]
        assert allowed == [], allowed
    finally:
        context.close()


def test_pages_carry_a_content_security_policy(demo_server: str) -> None:
    for path in ("/", "/models/demo/iris-classifier", "/ui/js/main.js", "/ui/vendor/dagre.min.js"):
        r = httpx.get(demo_server + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"


def test_navigation_home_model_version_lineage_compare_by_clicking(watched: Watched) -> None:
    page = watched.open("/")
    page.get_by_role("link", name="demo/digits-student", exact=True).click()
    watched.ready()
    assert page.url.endswith("/models/demo/digits-student")
    page.locator("table.versions").get_by_role("link", name="v1", exact=True).click()
    watched.ready()
    assert page.url.endswith("/models/demo/digits-student/versions/1")
    page.get_by_role("link", name="Lineage picture").click()
    watched.ready()
    assert page.locator("svg.lineage g.node.current").get_attribute("data-ref") == "demo/digits-student:1"
    page.locator("svg.lineage g.node[data-ref='demo/digits-mlp:2']").click()
    watched.ready()
    assert page.url.endswith("/models/demo/digits-mlp/versions/2")
    page.get_by_role("link", name="Compare with…").click()
    watched.ready()
    page.get_by_label("version b").fill("demo/digits-mlp:1")
    page.get_by_role("button", name="Compare", exact=True).click()
    watched.ready()
    assert "a=demo%2Fdigits-mlp%3A2" in page.url and page.locator("tr[data-key='epochs']").count() == 1
    page.go_back()  # the compare page as it opened, with only a
    watched.ready()
    assert page.url.endswith("b=")
    page.go_back()
    watched.ready()
    assert page.url.endswith("/models/demo/digits-mlp/versions/2")
    watched.clean()


LINEAGE = """query($r: String!, $d: Int!) { lineage(ref: $r, direction: BOTH, depth: $d) {
  nodes { ... on ModelVersion { ref } ... on DatasetVersion { ref } }
  edges { relation child { ref } parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } } } }"""


def picture(page: Page) -> tuple[set[str], set[tuple[str, str, str]]]:
    nodes = set(page.eval_on_selector_all("svg.lineage g.node", "els => els.map(e => e.dataset.ref)"))
    edges = {tuple(e) for e in page.eval_on_selector_all(
        "svg.lineage g.edge", "els => els.map(e => [e.dataset.parent, e.dataset.child, e.dataset.relation])")}
    return nodes, edges


def api_graph(url: str, ref: str, depth: int) -> tuple[set[str], set[tuple[str, str, str]]]:
    data = gql(url, LINEAGE, {"r": ref, "d": depth})["lineage"]
    return ({n["ref"] for n in data["nodes"]},
            {(e["parent"]["ref"], e["child"]["ref"], e["relation"]) for e in data["edges"]})


OVERLAPS = """() => {
  const boxes = [...document.querySelectorAll('svg.lineage g.node rect, svg.lineage g.edge rect')].map(r => r.getBBox());
  let n = 0;
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.x < b.x + b.width - 0.5 && b.x < a.x + a.width - 0.5 && a.y < b.y + b.height - 0.5 && b.y < a.y + a.height - 0.5) n++;
  }
  return n;
}"""


def test_the_lineage_picture_holds_exactly_what_the_api_returns(watched: Watched, demo_server: str) -> None:
    page = watched.open("/models/demo/digits-student/versions/1/lineage?direction=BOTH&depth=3")
    assert picture(page) == api_graph(demo_server, "demo/digits-student:1", 3)
    assert page.locator("g.node.dataset").count() == 2 and page.locator("g.node.version").count() == 3
    assert page.evaluate(OVERLAPS) == 0
    with page.expect_download() as download:
        page.get_by_role("link", name="Download SVG").click()
    assert download.value.suggested_filename.endswith(".svg")
    svg = ElementTree.fromstring(Path(download.value.path()).read_bytes())
    ns = {"svg": "http://www.w3.org/2000/svg"}
    drawn = {g.get("data-ref") for g in svg.iterfind(".//svg:g", ns) if "node" in (g.get("class") or "").split()}
    assert drawn == picture(page)[0]  # the same nodes, styled on their own (no page stylesheet in a file)
    style = "".join(t.text or "" for t in svg.iterfind(".//svg:style", ns))
    assert ".node rect" in style and ".edge path" in style and "stroke-dasharray" in style
    watched.clean()


def test_a_fan_in_and_a_chain_of_50_are_drawn_without_overlaps(watched: Watched, demo_server: str) -> None:
    create = "mutation($m: String!) { createModel(input: {name: $m}) { name } }"
    version = "mutation($m: String!, $l: [LineageInput!]!) { createVersion(input: {model: $m, lineage: $l}) { ref } }"
    for m in ("uifan/teacher-a", "uifan/teacher-b", "uifan/student", "uichain/step"):
        gql(demo_server, create, {"m": m})
    for d in ("uifan/books", "uifan/news", "uifan/code"):
        gql(demo_server, 'mutation($n: String!) { registerDataset(input: {name: $n, version: "v1"}) { ref } }', {"n": d})
    gql(demo_server, version, {"m": "uifan/teacher-a", "l": []})
    gql(demo_server, version, {"m": "uifan/teacher-b", "l": []})
    lineage = [{"parent": "uifan/teacher-a:1", "relation": "DISTILLED_FROM"}, {"parent": "uifan/teacher-b:1", "relation": "DISTILLED_FROM"},
               *({"parent": f"uifan/{d}@v1", "relation": "TRAINED_ON"} for d in ("books", "news", "code"))]
    gql(demo_server, version, {"m": "uifan/student", "l": lineage})
    gql(demo_server, version, {"m": "uichain/step", "l": []})
    for n in range(2, 52):
        gql(demo_server, version, {"m": "uichain/step", "l": [{"parent": f"uichain/step:{n - 1}", "relation": "DERIVED_FROM"}]})
    page = watched.open("/models/uifan/student/versions/1/lineage?direction=UP&depth=3")
    nodes, edges = picture(page)
    assert len(nodes) == 6 and len(edges) == 5
    assert page.evaluate(OVERLAPS) == 0
    page = watched.open("/models/uichain/step/versions/51/lineage?direction=UP&depth=50")
    nodes, edges = picture(page)
    assert (nodes, edges) == api_graph(demo_server, "uichain/step:51", 50) and len(nodes) == 51
    assert page.evaluate(OVERLAPS) == 0
    watched.clean()


COMPARE = """query($a: String!, $b: String!) { compare(a: $a, b: $b) {
  params { key change } metrics { key change } artifacts { path change } } }"""


def test_the_compare_page_and_the_compare_field_agree(watched: Watched, demo_server: str) -> None:
    a, b = "demo/iris-classifier:2", "demo/iris-classifier@staging"
    page = watched.open(f"/compare?a={a}&b={b}")
    api = gql(demo_server, COMPARE, {"a": a, "b": b})["compare"]
    for kind, key in (("params", "key"), ("metrics", "key"), ("artifacts", "path")):
        shown = page.eval_on_selector_all(f"section:has(h2:text-matches('^{kind}', 'i')) tr[data-change]",
                                          f"els => els.map(e => [e.dataset.{key}, e.dataset.change])")
        assert shown == [[x[key], x["change"]] for x in api[kind]], kind
    assert any(x["change"] != "SAME" for x in api["params"])
    watched.clean()


def use_token(page: Page, secret: str) -> None:
    page.get_by_label("bearer token").fill(secret)
    page.get_by_role("button", name="Use token").click()


def test_the_versions_table_shows_the_columns_picked_with_the_apis_values(watched: Watched, demo_server: str) -> None:
    page = watched.open("/models/demo/iris-classifier")
    page.locator("details.columns summary").click()
    for box in page.locator("details.columns input[type=checkbox]").all():
        box.set_checked(box.get_attribute("name") in ("p.C", "m.f1_macro"))
    page.get_by_role("button", name="Show these columns").click()
    watched.ready()
    assert "cols=p.C%2Cm.f1_macro" in page.url
    table = page.locator("table.versions")
    assert [t.strip() for t in table.locator("thead th").all_inner_texts()] == [
        "version", "status", "aliases", "C", "f1_macro", "created", "by"]
    api = gql(demo_server, """{ model(name: "demo/iris-classifier") { versions(first: 25) { nodes {
        number params(keys: ["C"]) { value } metrics(keys: ["f1_macro"]) { value } } } } }""")
    rows = [[c.strip() for c in r.locator("td").all_inner_texts()] for r in table.locator("tbody tr").all()]
    assert [r[0] for r in rows] == [f"v{n['number']}" for n in api["model"]["versions"]["nodes"]]
    for row, node in zip(rows, api["model"]["versions"]["nodes"], strict=True):
        assert (float(row[3].replace(",", "")) if row[3] else None) == (node["params"][0]["value"] if node["params"] else None)
        assert float(row[4]) == pytest.approx(node["metrics"][0]["value"], rel=1e-5)
    watched.clean()


def test_an_alias_moved_in_the_ui_shows_in_the_api_and_the_audit_log(watched: Watched, demo_server: str) -> None:
    page = watched.open("/models/demo/wine-classifier/versions/1")
    use_token(page, ADMIN_SECRET)
    watched.ready()
    page.get_by_text("Change this version").click()
    page.locator("input[name=alias]").fill("canary")
    page.get_by_role("button", name="Promote").click()
    watched.ready()
    assert page.locator("h1 .alias", has_text="@canary").count() == 1, page.locator("main").inner_text()
    data = gql(demo_server, '{ version(ref: "demo/wine-classifier@canary") { ref } '
               'auditLog(first: 5, filter: {model: "demo/wine-classifier", kinds: [ALIAS_SET]}) { nodes { objectRef actor } } }')
    assert data["version"]["ref"] == "demo/wine-classifier:1"
    assert {"objectRef": "demo/wine-classifier@canary", "actor": "admin-env"} in data["auditLog"]["nodes"]
    page = watched.open("/audit?model=demo/wine-classifier&kind=ALIAS_SET")
    assert page.locator("table.audit td", has_text="demo/wine-classifier@canary").count() == 1
    # The token stays in this tab: a new tab (context) is anonymous, and no cookie was set.
    assert page.context.cookies() == []
    watched.clean()


def test_a_refused_write_shows_the_apis_error(watched: Watched) -> None:
    page = watched.open("/models/demo/wine-classifier/versions/1")
    page.get_by_text("Change this version").click()
    page.locator("input[name=alias]").fill("anon")
    page.get_by_role("button", name="Promote").click()
    alert = page.locator("details.writes [role=alert]")
    alert.wait_for()
    assert "UNAUTHENTICATED" in alert.inner_text()
    watched.clean()


XSS = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"


def test_catalog_strings_render_as_text(watched: Watched, demo_server: str) -> None:
    gql(demo_server, 'mutation($d: String!, $t: String!) { createModel(input: {name: "uixss/m", description: $d, '
        'tags: [{key: "link", value: $t}]}) { name } }', {"d": f"# {XSS}\n\n{XSS} `{XSS}`", "t": "javascript:alert(1)"})
    gql(demo_server, 'mutation($u: String!) { registerDataset(input: {name: "uixss/data", version: "v1", uri: $u}) { ref } }',
        {"u": "javascript:alert(document.domain)"})
    gql(demo_server, 'mutation($p: JSON!, $d: String!) { createVersion(input: {model: "uixss/m", description: $d, '
        'params: [{key: "html", value: $p}], tags: [{key: "x", value: $d}], '
        'lineage: [{parent: "uixss/data@v1", relation: TRAINED_ON}]}) { ref } }', {"p": XSS, "d": XSS})
    for path in ("/models/uixss/m", "/models/uixss/m/versions/1", "/models/uixss/m/versions/1/lineage", "/?q=uixss",
                 "/audit?model=uixss/m"):
        page = watched.open(path)
        page.wait_for_timeout(200)
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("main img, main script").count() == 0, path
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        assert not [h for h in hrefs if h.lower().startswith(("javascript:", "data:"))], (path, hrefs)
        if "lineage" not in path and "q=" not in path:  # the pages that show these strings
            assert XSS in page.locator("main").inner_text(), path
    watched.clean()


def test_the_query_link_opens_graphiql_with_the_pages_document(watched: Watched) -> None:
    page = watched.open("/models/demo/iris-classifier")
    href = page.locator("a.query-link").get_attribute("href")
    assert href and href.startswith("/graphql#")
    page.goto(watched.base + href)
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    editor.wait_for(timeout=20_000)
    assert "query ModelPage" in page.evaluate("document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()")
    assert "demo/iris-classifier" in page.evaluate(
        "document.querySelector('.graphiql-editor-tool .CodeMirror, .graphiql-editor-tools .CodeMirror')?.CodeMirror?.getValue() || ''")


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with private reads: `team/model` and `other/secret`, and a `team` reader token."""
    data = tmp_path_factory.mktemp("ui-private")
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}, "MODELYARD_DATA_DIR": str(data),
           "MODELYARD_PORT": str(port), "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, "MODELYARD_PUBLIC_READ": "false"}
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", data / "server.log"):
        for name in ("team/model", "other/secret"):
            gql(url, "mutation($m: String!) { createModel(input: {name: $m}) { name } }", {"m": name})
            gql(url, "mutation($m: String!) { createVersion(input: {model: $m}) { ref } }", {"m": name})
        yield url


def test_a_private_namespace_stays_hidden_in_the_browser(browser: Browser, private_server: str) -> None:
    context = browser.new_context()
    try:
        w = Watched(context.new_page(), private_server)
        page = w.open("/")
        text = page.locator("main").inner_text()
        assert "UNAUTHENTICATED" in text and "team/model" not in text and "other/secret" not in text
        secret = gql(private_server, 'mutation { createToken(input: {name: "team-reader", scope: READ, '
                     'namespace: "team"}) { secret } }')["createToken"]["secret"]
        use_token(page, secret)
        w.ready()
        text = page.locator("main").inner_text()
        assert "team/model" in text and "other/secret" not in text
        page = w.open("/models/other/secret")
        assert "FORBIDDEN" in page.locator("main").inner_text()
        page = w.open("/models/team/model/versions/1")
        assert "team/model:1" in page.locator("main h1").inner_text()
        # The token was never put in a URL or a cookie.
        assert context.cookies() == [] and secret not in json.dumps(page.evaluate("[location.href, document.referrer]"))
    finally:
        with contextlib.suppress(Exception):
            context.close()
