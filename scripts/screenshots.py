#!/usr/bin/env python3
"""Screenshots of every page of the yard, in headless Chromium, against a running registry.

    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8000 --out docs/screenshots

Each page is opened as a browser would, with every request that leaves the registry's host
blocked; a page that logs a console error or a failed request is reported and the script exits 1.
The demo catalog (`make run`) is what the pages and the README's pictures expect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGES = {
    "home": "/",
    "search": "/?c=metric.accuracy%3E0.9&c=param.algorithm%3DLogisticRegression",
    "model": "/models/demo/iris-classifier",
    "version": "/models/demo/digits-mlp/versions/2",
    "lineage": "/models/demo/digits-student/versions/1/lineage?direction=BOTH&depth=3",
    "compare": "/compare?a=demo/iris-classifier:2&b=demo/iris-classifier:3",
    "audit": "/audit",
    "not-found": "/models/demo/iris-clasifier",
}
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    p.add_argument("--phone", action="store_true", help="also take phone-width shots")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    host = urlsplit(args.url).hostname
    args.out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for device, (width, height) in WIDTHS.items():
            if device == "phone" and not args.phone:
                continue
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == host
                       else route.abort())
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            for name, path in PAGES.items():
                page.goto(args.url + path)
                page.wait_for_selector("body[data-ready=true]")
                page.wait_for_timeout(300)  # charts draw on the next frame
                shot = args.out / (f"{name}.png" if device == "desktop" else f"{name}-{device}.png")
                page.screenshot(path=str(shot), full_page=True)
                print(f"{shot}  {page.title()}")
            page.close()
        browser.close()
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
