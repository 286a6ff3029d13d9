#!/usr/bin/env python3
"""How fast the yard's pages are: server time of each page's one GraphQL document, and the
lineage picture's layout in Chromium.

    .venv/bin/python scripts/bench/ui.py [--runs 30]

A real `modelyard serve` (SQLite, a temporary data dir) gets, through the API:
  - a model of 100 versions x 30 params x 10 metrics (each metric with 5 logged points),
  - a lineage tree of 200 versions (each with two children).
Then:
  - the model page and the version page documents (read from the UI's own JS, so the same
    document the browser sends) are POSTed `--runs` times over one connection, with the same
    variables as the pages use (the model page as first opened: 25 rows with every param and
    metric; and with 100 rows and six chosen columns, which reads only those); beside them, `{ __typename }` on the same connection: what any
    request costs here (HTTP, parsing, auth), so the difference is the page's own work;
  - headless Chromium opens the lineage page of the tree's root (DOWN, depth 10: all 200 nodes)
    `--layouts` times: time from navigation to the page being drawn, and dagre's layout alone
    (the page's `lineage-layout` performance measure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from machine import free_port, process

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "src" / "modelyard" / "http" / "ui" / "js" / "pages"
ADMIN = "myd_" + "b" * 43
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def page_query(name: str) -> str:
    """The GraphQL document a page module sends (its `QUERY` constant)."""
    text = (UI / f"{name}.js").read_text()
    match = re.search(r"export const QUERY = `(.*?)`;", text, re.S)
    assert match, name
    return match.group(1)


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)

    def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = self.http.post("/graphql", json={"query": query, "variables": variables or {}}).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]


def seed(api: Api) -> None:
    api('mutation { createModel(input: {name: "bench/wide"}) { name } }')
    create = ("mutation($i: CreateVersionInput!) { createVersion(input: $i) { ref } }")
    log = "mutation($r: String!, $m: [MetricInput!]!) { logMetrics(input: {ref: $r, metrics: $m}) { ref } }"
    for n in range(1, 101):
        params = [{"key": f"p{i:02d}", "value": (n * 31 + i) / 1000 if i % 3 else f"choice-{(n + i) % 7}"} for i in range(30)]
        api(create, {"i": {"model": "bench/wide", "params": params}})
        points = [{"key": f"m{k}", "value": (n + k + s) / 100, "step": s} for k in range(10) for s in range(5)]
        api(log, {"r": f"bench/wide:{n}", "m": points})
    api('mutation { createModel(input: {name: "bench/tree"}) { name } }')
    api(create, {"i": {"model": "bench/tree"}})
    for n in range(2, 201):  # version n's parent is n // 2: a binary tree of depth 7
        api(create, {"i": {"model": "bench/tree", "lineage": [{"parent": f"bench/tree:{n // 2}", "relation": "DERIVED_FROM"}]}})


def timed(http: httpx.Client, query: str, variables: dict[str, Any], runs: int) -> list[float]:
    out = []
    body = json.dumps({"query": query, "variables": variables})
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    for _ in range(runs + 3):
        start = time.perf_counter()
        r = http.post("/graphql", content=body, headers=headers)
        out.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200 and not r.json().get("errors"), r.text[:300]
    return out[3:]  # the first runs warm caches and connections


def ms(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20)
    return f"{statistics.median(values):7.1f} / {q[18]:7.1f}"


def layouts(url: str, runs: int) -> tuple[list[float], list[float], int]:
    from playwright.sync_api import sync_playwright

    drawn, laid, nodes = [], [], 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _ in range(runs):
            start = time.perf_counter()
            page.goto(f"{url}/models/bench/tree/versions/1/lineage?direction=DOWN&depth=10")
            page.wait_for_selector("body[data-ready=true]")
            drawn.append((time.perf_counter() - start) * 1000)
            laid.append(page.evaluate("performance.getEntriesByName('lineage-layout').at(-1).duration"))
            nodes = page.locator("svg.lineage g.node").count()
        browser.close()
    return drawn, laid, nodes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--layouts", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        port = free_port()
        env = {"MODELYARD_DATA_DIR": tmp, "MODELYARD_PORT": str(port), "MODELYARD_ADMIN_TOKEN": ADMIN,
               "MODELYARD_LOG_LEVEL": "warning"}
        url = f"http://127.0.0.1:{port}"
        with process([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", "modelyard serve"):
            api = Api(url)
            started = time.perf_counter()
            seed(api)
            print(f"seeded 100 versions x 30 params x 10 metrics (5 points each) and a 200-version tree "
                  f"in {time.perf_counter() - started:.1f} s")
            with httpx.Client(base_url=url, timeout=60) as http:
                floor = timed(http, "{ __typename }", {}, args.runs)
                page = {"name": "bench/wide", "after": None, "archived": False}
                model = timed(http, page_query("model"), {**page, "first": 25, "params": None, "metrics": None},
                              args.runs)
                chosen = {**page, "first": 100, "params": ["p00", "p01", "p02"], "metrics": ["m0", "m1", "m2"]}
                model_100 = timed(http, page_query("model"), chosen, args.runs)
                every = timed(http, page_query("model"), {**chosen, "params": None, "metrics": None}, args.runs)
                version = timed(http, page_query("version"), {"ref": "bench/wide:100", "name": "bench/wide"}, args.runs)
            drawn, laid, nodes = layouts(url, args.layouts)
    print(f"\nload average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; {args.runs} requests each, one connection\n")
    print("| request | p50 / p95 ms | minus `{ __typename }` (p50) |")
    print("|---|---|---|")
    base = statistics.median(floor)
    print(f"| `{{ __typename }}` (any request's cost) | {ms(floor)} | — |")
    for name, values in (("model page as first opened: 25 of 100 versions, every param and metric", model),
                         ("model page, 100 rows per page, 3 params + 3 metrics as columns", model_100),
                         ("(all 100 versions x 30 params x 10 metrics in one page: no page asks this)", every),
                         ("version page, 30 params, 10 metrics x 5 points", version)):
        print(f"| {name} | {ms(values)} | +{statistics.median(values) - base:.1f} ms |")
    print(f"\nlineage picture of {nodes} nodes in Chromium, {args.layouts} loads: navigation to drawn "
          f"{statistics.median(drawn):.0f} ms p50 (max {max(drawn):.0f}); dagre layout alone "
          f"{statistics.median(laid):.0f} ms p50 (max {max(laid):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
