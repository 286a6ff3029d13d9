"""The chat page at `/` of `modelyard-agent serve`, in real headless Chromium.

Most tests drive a real `serve` (its own process) over a pulled tiny-chat and all-MiniLM-L6-v2,
started with a docs folder for "Ask my files". The Stop test runs the same app in this process
with its generator held delta by delta, so it can see the server stop generating once the page
lets go; the rendering test gets hostile text from a small Starlette app that serves the same
page (no model writes `<script>` on cue). Every request that would leave loopback is blocked and
recorded; a page fails its test on any console error, failed request or request elsewhere (the
rule of tests/test_ui.py for the registry's pages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from assist_docs import write_docs
from conftest import Publisher, Server, agent_serving
from hostile import Running
from modelyard_agent import serve
from modelyard_agent.cache import Cache, Manifest
from modelyard_agent.generate import Sampling, load_generator
from modelyard_agent.openai_api import CHAT_TASK, Workers
from modelyard_agent.page import CSP, page_routes
from modelyard_agent.runtime import Runtime
from playwright.sync_api import Browser, Page, expect, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TINY = Path(__file__).resolve().parents[2] / "scripts" / "models" / "tiny-chat"
HELLO = "Hello! I am a tiny model served by modelyard."
XSS = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"
pytestmark = pytest.mark.browser


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

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        return self.page

    def clean(self, *expected: str) -> None:
        """No problems but those that start with one of `expected`."""
        assert [p for p in self.problems if not p.startswith(expected or ("\0",))] == [], self.problems



@dataclass
class Pulled:
    """An agent home with tiny-chat (pulled as `chat@production`), SmolLM2 and an embedder."""

    home: Path
    env: dict[str, str]
    chat: str
    smol: str
    embed: str

    def manifest(self, name: str) -> Manifest:
        return next(m for m in Cache(self.home).manifests() if m.name == name)


@pytest.fixture(scope="module")
def pulled(server: Server, publisher: Publisher, minilm: Path, smollm2: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Pulled:
    home = tmp_path_factory.mktemp("chat-page") / "home"
    chat = publisher.folder("chat", TINY, "TEXT_GENERATION").model
    publisher.alias(chat, "production", "1")
    smol = publisher.folder("smol", smollm2 / "int4", "TEXT_GENERATION").model
    embed = publisher.folder("embed", minilm / "fp32", "FEATURE_EXTRACTION").model
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": server.url}
    for ref in (f"{chat}@production", smol, embed):
        subprocess.run([sys.executable, "-m", "modelyard_agent", "pull", ref], env=env, check=True,
                       capture_output=True)
    return Pulled(home, env, chat, smol, embed)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assist notes, and one whose name and text are markup."""
    root = write_docs(tmp_path_factory.mktemp("docs"))
    (root / "hostile").mkdir()
    (root / "hostile" / "<img src=x onerror=alert(1)>.md").write_text(
        f"# Watering tomatoes {XSS}\n\nWater tomato plants {XSS} deeply, twice a week, at the base.\n")
    return root


@pytest.fixture(scope="module")
def local(pulled: Pulled, docs: Path) -> Iterator[str]:
    """`modelyard-agent serve --docs DIR --embedder REF` over the pulled home; its URL."""
    with agent_serving(pulled.env, "--docs", str(docs), "--embedder", pulled.embed) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's `chromium` (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def watch(browser: Browser) -> Iterator[Any]:
    """Opens watched pages in fresh contexts (`watch(base, width=1280)`), closed after the test."""
    contexts = []

    def make(base: str, width: int = 1280) -> Watched:
        contexts.append(browser.new_context(viewport={"width": width, "height": 800}))
        return Watched(contexts[-1].new_page(), base)

    yield make
    for context in contexts:
        context.close()


def send(page: Page, text: str) -> None:
    page.get_by_label("message").fill(text)
    page.get_by_role("button", name="Send").click()


def last_reply(page: Page, state: str = "done") -> Any:
    """The newest reply of the mode shown, once it is in `state`."""
    newest = ".log:not([hidden]) article.turn:last-of-type"
    page.wait_for_selector(f"{newest}[data-state={state}]", timeout=30_000)
    return page.locator(newest)


def settings(page: Page, temperature: str = "", max_tokens: str = "") -> None:
    page.locator("details.settings summary").click()
    page.locator("input[name=temperature]").fill(temperature)
    page.locator("input[name=max_tokens]").fill(max_tokens)


def api_chat(url: str, model: str, messages: list[dict[str, str]], **sampling: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": model, "messages": messages, **sampling},
                   timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- the page over a real `serve` ---------------------------------------------------------------


@pytest.mark.parametrize("width", [1280, 390])
def test_the_page_opens_and_answers_with_no_error_and_no_request_elsewhere(
        watch: Any, local: str, pulled: Pulled, width: int) -> None:
    w = watch(local, width)
    page = w.open()
    assert page.title() == "modelyard-agent"
    assert page.locator("#build .ref").inner_text() == f"{pulled.chat}:1"
    settings(page, temperature="0")
    send(page, "hello")
    assert last_reply(page).locator(".text").inner_text() == HELLO
    # A phone: nothing is cut off or scrolls sideways, and every control is on screen.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    for name in ("Send", "Stop", "New chat", "Ask my files"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, name
    w.clean()


def test_the_model_list_names_the_exact_build_of_each_chat_model(watch: Any, local: str, pulled: Pulled) -> None:
    w = watch(local)
    page = w.open()
    listed = httpx.get(f"{local}/v1/models").json()["data"]
    chat_ids = [m["id"] for m in listed if m["modelyard"]["task"] == CHAT_TASK]
    assert sorted(chat_ids) == sorted([pulled.chat, f"{pulled.chat}:1", f"{pulled.chat}@production",
                                       pulled.smol, f"{pulled.smol}:1"])
    for entry in listed:  # each id names the build it means now, for any OpenAI-style client too
        m = pulled.manifest(entry["id"].partition("@")[0].partition(":")[0])
        assert entry["modelyard"] == {"ref": m.ref, "name": m.name, "version": m.number,
                                      "manifest_digest": m.manifest_digest, "task": m.task}
    options = page.eval_on_selector_all("#model option", "els => els.map(e => e.value)")
    assert options == chat_ids  # the embedder is not offered
    for model_id in chat_ids:
        manifest = pulled.manifest(model_id.partition("@")[0].partition(":")[0])
        page.locator("#model").select_option(model_id)
        build = page.locator("#build")
        assert build.locator(".ref").inner_text() == manifest.ref
        assert build.locator(".version").inner_text() == f"v{manifest.number}"
        assert build.locator(".digest").inner_text() == manifest.manifest_digest
    # The choice is remembered for the next visit.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#model").input_value() == chat_ids[-1]
    w.clean()


GROWTH = """() => {
  window.__seen = [];
  const log = document.getElementById('chat-log');
  new MutationObserver(() => {
    const text = log.querySelector('article.assistant:last-of-type .text');
    if (text && text.textContent !== window.__seen.at(-1)) window.__seen.push(text.textContent);
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


def test_a_reply_streams_in_and_equals_the_apis_and_the_whole_conversation_goes_each_turn(
        watch: Any, local: str, pulled: Pulled) -> None:
    w = watch(local)
    page = w.open()
    settings(page, temperature="0")
    page.evaluate(GROWTH)
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    send(page, "hello")
    reply = last_reply(page)
    want = api_chat(local, pulled.chat, [{"role": "user", "content": "hello"}], temperature=0)
    assert reply.locator(".text").inner_text() == want["choices"][0]["message"]["content"] == HELLO
    seen = page.evaluate("window.__seen")
    assert len(seen) > 3 and all(HELLO.startswith(s) for s in seen) and seen[-1] == HELLO  # it grew, piece by piece
    meta = reply.locator(".meta").inner_text()
    assert f"answered by {pulled.chat}:1 {pulled.manifest(pulled.chat).manifest_digest[:19]}" in meta
    assert f"{want['usage']['completion_tokens']} tokens" in meta

    send(page, "who are you?")
    second = last_reply(page)
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": HELLO},
               {"role": "user", "content": "who are you?"}]
    want = api_chat(local, pulled.chat, history, temperature=0)
    assert second.locator(".text").inner_text() == want["choices"][0]["message"]["content"]
    assert [b["messages"] for b in bodies] == [history[:1], history]
    assert all(b["stream"] is True and b["temperature"] == 0 and b["model"] == pulled.chat for b in bodies)
    w.clean()


def test_new_chat_starts_over(watch: Any, local: str, pulled: Pulled) -> None:
    w = watch(local)
    page = w.open()
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    send(page, "hello")
    last_reply(page)
    page.get_by_role("button", name="New chat").click()
    assert page.locator("#chat-log article").count() == 0
    page.get_by_label("message").fill("hi")
    page.get_by_label("message").press("Enter")  # Enter sends (Shift+Enter is a new line)
    last_reply(page)
    assert page.locator("#chat-log article").count() == 2
    assert bodies[-1]["messages"] == [{"role": "user", "content": "hi"}]
    w.clean()


def test_ask_my_files_shows_the_sources_and_answers_like_the_api(watch: Any, local: str, pulled: Pulled) -> None:
    w = watch(local)
    page = w.open("/#ask")
    assert page.get_by_role("button", name="Ask my files").get_attribute("aria-pressed") == "true"
    page.locator("#model").select_option(pulled.smol)
    settings(page, temperature="0")
    question = "How often should I water tomato plants?"
    send(page, question)
    answer = last_reply(page)
    want = httpx.post(f"{local}/v1/ask", json={"model": pulled.smol, "question": question, "top": 4,
                                              "temperature": 0}, timeout=120).json()
    assert answer.locator(".text").inner_text() == want["answer"]
    items = answer.locator("li.source")
    assert items.count() == len(want["sources"]) > 0
    answer.locator("details.sources summary").click()  # the sources start folded under the answer
    for item, source in zip(items.all(), want["sources"], strict=True):
        assert item.locator(".file").inner_text() == f"{source['file']}:{source['line']}"
        assert item.locator(".passage").inner_text().strip() == source["text"].strip()
    # The hostile note is found, and shows as the characters it holds.
    assert any("<img src=x onerror=alert(1)>.md" in f for f in items.locator(".file").all_inner_texts())
    assert page.evaluate("window.__xss") is None and page.locator("#app img, #app script").count() == 0
    cited = [str(n) for n in want["cited"]]
    assert cited and answer.locator("li.source.cited").evaluate_all("els => els.map(e => e.dataset.n)") == sorted(
        cited, key=int)
    assert f"answered by {want['model']} {want['system_fingerprint'][:19]}" in answer.locator(".meta").inner_text()
    # A citation (the model's [n], or the server's attribution) brings its passage into view.
    answer.locator("details.sources summary").click()  # folded again: the citation unfolds it
    answer.locator(f"button.cite[data-n='{cited[0]}']").first.click()
    shown = answer.locator(f"li.source[data-n='{cited[0]}']")
    expect(shown).to_be_in_viewport()
    assert "shown" in (shown.get_attribute("class") or "")
    assert page.evaluate("document.activeElement.dataset.n") == cited[0]
    w.clean()


def test_the_page_is_served_with_a_strict_policy(local: str) -> None:
    for path, kind in (("/", "text/html"), ("/page/main.js", "text/javascript"), ("/page/app.css", "text/css")):
        r = httpx.get(local + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP and "unsafe" not in CSP
    page = httpx.get(local + "/").text
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere: it works offline


def test_the_guard_still_holds_for_the_page(local: str, pulled: Pulled) -> None:
    port = urlsplit(local).port
    # A DNS-rebinding page cannot even load it; a foreign page cannot post to it.
    assert httpx.get(local + "/", headers={"Host": f"evil.example:{port}"}).status_code == 403
    assert httpx.get(local + "/page/main.js", headers={"Host": f"evil.example:{port}"}).status_code == 403
    chat = {"model": pulled.chat, "messages": [{"role": "user", "content": "hello"}], "stream": True}
    for origin in ("http://evil.example", f"http://localhost:{port + 1}"):
        r = httpx.post(f"{local}/v1/chat/completions", json=chat, headers={"Origin": origin})
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in r.headers
        r = httpx.post(f"{local}/v1/ask", json={"model": pulled.chat, "question": "tomatoes?"},
                       headers={"Origin": origin})
        assert r.status_code == 403
    # The page's own requests: same origin, under either loopback name.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        r = httpx.post(f"{local}/v1/chat/completions", json={**chat, "stream": False},
                       headers={"Host": host, "Origin": f"http://{host}"}, timeout=60)
        assert r.status_code == 200, r.text


# --- Stop, with the generator held delta by delta in this process ---------------------------------


class Gate:
    """Lets replies out one delta per permit; keeps each reply it held."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.replies: list[Held] = []

    def release(self, n: int) -> None:
        self.permits.release(n)

    def open(self) -> None:
        self.permits.release(1_000_000)


class Held:
    """A real Completion whose every delta waits for a permit; counts them and notes `cancel`."""

    def __init__(self, completion: Any, gate: Gate) -> None:
        self.completion, self.gate = completion, gate
        self.deltas = 0
        self.cancelled = threading.Event()

    def __iter__(self) -> Held:
        return self

    def __next__(self) -> str:
        self.gate.permits.acquire(timeout=60)
        delta = next(self.completion)
        self.deltas += 1
        return str(delta)

    def cancel(self) -> None:
        self.cancelled.set()
        self.completion.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.completion, name)


class HeldGenerator:
    """The loaded generator, its completions held by the gate."""

    def __init__(self, generator: Any, gate: Gate) -> None:
        self.generator, self.gate = generator, gate

    def complete(self, messages: list[dict[str, str]], sampling: Sampling) -> Held:
        held = Held(self.generator.complete(messages, sampling), self.gate)
        self.gate.replies.append(held)
        return held

    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)


class GatedWorkers(Workers):
    """Workers whose chat models' replies go through the gate (passed in, as serve.app allows)."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    async def model(self, versions: Any, manifest: Manifest) -> Any:
        loaded = await super().model(versions, manifest)
        return HeldGenerator(loaded, self.gate) if manifest.task == CHAT_TASK else loaded


class Disconnects:
    """ASGI wrapper noting that a chat client went away (the server read `http.disconnect`)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noted() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and scope.get("path") == "/v1/chat/completions":
                self.seen.set()
            return message

        await self.app(scope, noted if scope["type"] == "http" else receive, send)


@dataclass
class Gated:
    url: str
    gate: Gate
    disconnects: Disconnects


@pytest.fixture(scope="module")
def gated(pulled: Pulled) -> Iterator[Gated]:
    """The agent's app in this process over the pulled home (no --docs), its replies gated."""
    gate = Gate()
    app = Disconnects(serve.app(Cache(pulled.home), Runtime(idle_ttl=600), workers=GatedWorkers(gate)))
    running = Running(app)
    yield Gated(running.url, gate, app)
    gate.open()
    running.stop()


def test_stop_ends_the_reply_and_the_server_stops_generating(watch: Any, gated: Gated, pulled: Pulled) -> None:
    w = watch(gated.url)
    page = w.open()
    settings(page, temperature="0", max_tokens="1000")
    sing = [{"role": "user", "content": "sing"}]
    reference = load_generator(TINY).complete(sing, Sampling(temperature=0, max_tokens=1000))
    first = "".join(islice(reference, 5))
    assert "".join(reference) and reference.finish_reason == "length"  # unheld, it sings on to max_tokens
    before = len(gated.gate.replies)
    send(page, "sing")
    gated.gate.release(5)
    page.wait_for_function("t => document.querySelector('article.assistant:last-of-type .text').textContent === t",
                           arg=first)
    held = gated.gate.replies[before]
    gated.disconnects.seen.clear()
    page.get_by_role("button", name="Stop").click()
    reply = last_reply(page, "stopped")
    assert reply.locator(".text").inner_text() == first and "stopped" in reply.locator(".meta").inner_text()
    assert gated.disconnects.seen.wait(30), "the server never heard the client go"
    gated.gate.open()  # from now on, a server still generating would run on to 1000 tokens
    assert held.cancelled.wait(30), "the server did not cancel the reply"
    assert held.deltas == 6  # the 5 shown, and the one in flight when the page let go
    assert held.completion.finish_reason is None and held.completion.completion_tokens < 10
    # The next turn works, and carries what was said before Stop.
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    send(page, "hello")
    said = [*sing, {"role": "assistant", "content": first}, {"role": "user", "content": "hello"}]
    want = api_chat(gated.url, pulled.chat, said, temperature=0, max_tokens=1000)["choices"][0]["message"]["content"]
    assert last_reply(page).locator(".text").inner_text() == want
    assert bodies[-1]["messages"] == said
    w.clean("failed: " + gated.url + "/v1/chat/completions net::ERR_ABORTED")


def test_ask_without_docs_says_how_to_turn_it_on(watch: Any, gated: Gated) -> None:
    w = watch(gated.url)
    page = w.open()
    page.get_by_role("button", name="Ask my files").click()
    send(page, "How often should I water tomatoes?")
    answer = last_reply(page, "error")
    assert "modelyard-agent serve --docs DIR" in answer.locator(".help").inner_text()
    assert page.get_by_label("message").input_value() == "How often should I water tomatoes?"  # kept, to retry
    w.clean(f"HTTP 400: {gated.url}/v1/ask", "console error: Failed to load resource: the server responded with a status of 400")


FOREIGN = """async (agent) => {
  const json = await fetch(agent + '/v1/chat/completions', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({model: 'x', messages: [{role: 'user', content: 'hello'}]})}).then(r => r.status, e => e.name);
  const simple = await fetch(agent + '/v1/chat/completions', {method: 'POST', mode: 'no-cors',
    body: JSON.stringify({model: 'x', messages: [{role: 'user', content: 'hello'}]})}).then(r => r.type, e => e.name);
  return [json, simple];
}"""


def test_a_page_from_another_origin_cannot_drive_the_agent(browser: Browser, gated: Gated, pulled: Pulled) -> None:
    """The foreign page has no CSP of its own: only the agent's guard stands in the way."""
    foreign = Running(Starlette(routes=[Route("/", lambda r: HTMLResponse("<!doctype html><title>elsewhere</title>"))]))
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(foreign.url + "/")
        before = len(gated.gate.replies)
        body = FOREIGN.replace("'x'", json.dumps(pulled.chat))
        assert page.evaluate(body, gated.url) == ["TypeError", "opaque"]  # refused; the simple POST got 415
        assert len(gated.gate.replies) == before  # no model ran for it
    finally:
        context.close()
        foreign.stop()


# --- hostile text, from a small app that serves the same page ------------------------------------


def _sse(events: list[Any]) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for event in events:
            yield f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()

    return StreamingResponse(lines(), media_type="text/event-stream")


def _chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "model": XSS,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def hostile_app() -> Starlette:
    """A server that answers the page's three requests with markup everywhere it can."""

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": XSS, "object": "model", "modelyard": {
            "ref": XSS, "name": XSS, "version": XSS, "manifest_digest": XSS, "task": CHAT_TASK}}]})

    async def chat(request: Request) -> Response:
        halves = [XSS[:9], XSS[9:30], XSS[30:]]  # markup split across deltas, as tokens split it
        return _sse([_chunk({"role": "assistant", "content": ""}), *(_chunk({"content": h}) for h in halves),
                     _chunk({}, "stop"), "[DONE]"])

    async def ask(request: Request) -> Response:
        source = {"n": 1, "file": f"{XSS}.md", "line": 3, "score": 0.5, "text": XSS}
        return _sse([{"type": "sources", "sources": [source]}, {"type": "delta", "content": f"{XSS} [1"},
                     {"type": "delta", "content": f"] {XSS} [2]"},
                     {"type": "done", "cited": [1], "finish_reason": "stop", "grounded": True}, "[DONE]"])

    return Starlette(routes=[*page_routes(), Route("/v1/models", models),
                             Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/ask", ask, methods=["POST"])])


def test_markup_in_replies_names_and_files_shows_as_text(watch: Any) -> None:
    running = Running(hostile_app())
    try:
        w = watch(running.url)
        page = w.open()
        assert page.locator("#model option").first.inner_text() == XSS
        assert XSS in page.locator("#build").inner_text()
        send(page, "hello")
        reply = last_reply(page)
        assert reply.locator(".text").inner_text() == XSS
        assert f"answered by {XSS}" in reply.locator(".meta").inner_text()
        page.get_by_role("button", name="Ask my files").click()
        send(page, "anything")
        answer = last_reply(page)
        assert answer.locator(".text").inner_text() == f"{XSS} [1] {XSS} [2]"
        assert answer.locator("button.cite").count() == 1  # [2] names no source: it stays text
        answer.locator("button.cite").click()
        assert answer.locator("li.source .file").inner_text() == f"{XSS}.md:3"
        assert answer.locator("li.source .passage").inner_text() == XSS
        expect(answer.locator("li.source")).to_be_in_viewport()
        page.wait_for_timeout(200)  # give an injected handler its chance to run
        assert page.evaluate("window.__xss") is None
        assert page.locator("#app img, #app script").count() == 0
        w.clean()
    finally:
        running.stop()
