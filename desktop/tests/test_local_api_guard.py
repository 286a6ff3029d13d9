"""Web pages must not drive the local API: foreign Host names (DNS rebinding), foreign origins and
the bodies a page can send without a preflight are refused by a real `modelyard-agent serve`,
before any model runs; loopback clients, the server's own pages and allowed origins work."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from conftest import Publisher, Server, agent_serving
from hostile import CHROMIUM, CHROMIUM_ARGS
from models import linear_model
from modelyard_agent import serving
from modelyard_agent.errors import UsageError
from modelyard_agent.guard import Access, check_origin, host_name

TINY = Path(__file__).resolve().parents[2] / "scripts" / "models" / "tiny-chat"
PAGE = b"<!doctype html><title>page</title><p>hello</p>"
X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@dataclass
class Guarded:
    """A running `serve` and the models it holds: `victim` and `chat` are only ever attacked."""

    url: str
    port: int
    home: Path
    victim: str
    ctl: str
    chat: str
    app: str  # an origin the user allowed, where a real page is served

    def loaded(self) -> set[str]:
        """Names whose session the running server holds (what `ls` reports as LOADED)."""
        return {key.rpartition(":")[0] for key in serving.loaded(self.home)}

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", timeout=30, **kw)


def _publish(publisher: Publisher, prefix: str, files: dict[str, bytes], task: str) -> str:
    name = publisher.model(prefix)
    publisher.gql("mutation($n: String!, $t: Task!) { updateModel(input: {name: $n, task: $t}) { name } }",
                  n=name, t=task)
    publisher.version(name, files)
    return name


@pytest.fixture(scope="module")
def guarded(server: Server, publisher: Publisher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    tmp = tmp_path_factory.mktemp("guard")
    onnx = linear_model(tmp / "model.onnx").read_bytes()
    chat_files = {p.relative_to(TINY).as_posix(): p.read_bytes() for p in TINY.rglob("*") if p.is_file()}
    victim = _publish(publisher, "victim", {"model.onnx": onnx}, "OTHER")
    ctl = _publish(publisher, "ctl", {"model.onnx": onnx}, "OTHER")
    chat = _publish(publisher, "chat", chat_files, "TEXT_GENERATION")
    home = tmp / "home"
    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    app = f"http://app.example:{page.server_address[1]}"
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": server.url,
           "MODELYARD_AGENT_ALLOWED_ORIGINS": app}
    for name in (victim, ctl, chat):
        subprocess.run([sys.executable, "-m", "modelyard_agent", "pull", name], env=env, check=True,
                       capture_output=True)
    with agent_serving(env, "--allow-host", "mybox.lan") as url:
        yield Guarded(url, int(url.rpartition(":")[2]), home, victim, ctl, chat, app)
    page.shutdown()
    page.server_close()


class _Page(http.server.BaseHTTPRequestHandler):
    """Any path: a small HTML page (the page of a local app, or of an attacker)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


def _no_cors_headers(r: httpx.Response) -> None:
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io:{port}",
                                  "localhost.evil.example:{port}", "localhost:{port}@evil.example",
                                  "", "[::2]:{port}", "10.0.0.1:{port}"])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models"), ("GET", "/v2/models/{victim}"), ("POST", "/v2/models/{victim}/infer"),
    ("POST", "/v1/chat/completions"), ("GET", "/v2/health/ready"),
])
def test_foreign_host_names_are_refused(guarded: Guarded, host: str, method: str, path: str) -> None:
    """DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own name as Host."""
    body = {"model": guarded.chat, "messages": [{"role": "user", "content": "hi"}]} if "chat" in path else X
    r = guarded.call(method, path.format(victim=guarded.victim), headers={"Host": host.format(port=guarded.port)},
                     json=body if method == "POST" else None)
    assert r.status_code == 403, r.text
    assert guarded.victim not in r.text and guarded.chat not in r.text
    error = r.json()["error"]
    if path.startswith("/v1/"):
        assert error["code"] == "host_not_allowed"
    else:
        assert "is not a loopback name" in error
    _no_cors_headers(r)
    assert guarded.victim not in guarded.loaded() and guarded.chat not in guarded.loaded()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}",
                                  "[::1]:{port}", "localhost", "mybox.lan:{port}"])
def test_loopback_and_allowed_host_names_are_answered(guarded: Guarded, host: str) -> None:
    r = guarded.call("GET", "/v1/models", headers={"Host": host.format(port=guarded.port)})
    assert r.status_code == 200, r.text
    assert guarded.chat in {m["id"] for m in r.json()["data"]}


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/html"])
def test_bodies_a_page_can_send_without_a_preflight_run_nothing(guarded: Guarded, content_type: str) -> None:
    """A cross-origin "simple" POST needs no preflight: it must not reach a model."""
    for path, body in ((f"/v2/models/{guarded.victim}/infer", X),
                       ("/v1/chat/completions", {"model": guarded.chat, "messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/embeddings", {"model": guarded.chat, "input": "hi"})):
        r = guarded.call("POST", path, content=json.dumps(body), headers={"Content-Type": content_type})
        assert r.status_code == 415, (path, r.text)
        message = r.json()["error"]["message"] if path.startswith("/v1/") else r.json()["error"]
        assert "application/json" in message
    assert guarded.victim not in guarded.loaded() and guarded.chat not in guarded.loaded()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://evil.example:3000", "null",
                                    "http://localhost:3000", "http://127.0.0.1:1"])
def test_foreign_origins_get_403_and_no_cors_headers(guarded: Guarded, origin: str) -> None:
    for method, path, kw in (("GET", "/v1/models", {}),
                             ("POST", f"/v2/models/{guarded.victim}/infer", {"json": X}),
                             ("POST", f"/v2/models/{guarded.victim}/infer", {"content": json.dumps(X)})):
        r = guarded.call(method, path, headers={"Origin": origin}, **kw)
        assert r.status_code == 403, r.text
        assert guarded.victim not in r.text
        _no_cors_headers(r)
    pre = guarded.call("OPTIONS", f"/v2/models/{guarded.victim}/infer",
                       headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 403
    _no_cors_headers(pre)
    assert guarded.victim not in guarded.loaded()


def test_an_allowed_origin_gets_cors_and_a_preflight(guarded: Guarded) -> None:
    pre = guarded.call("OPTIONS", f"/v2/models/{guarded.ctl}/infer",
                       headers={"Origin": guarded.app, "Access-Control-Request-Method": "POST",
                                "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == guarded.app
    assert "content-type" in pre.headers["access-control-allow-headers"].lower()
    r = guarded.call("POST", f"/v2/models/{guarded.ctl}/infer", json=X, headers={"Origin": guarded.app})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == guarded.app and "Origin" in r.headers["vary"]
    assert "access-control-allow-credentials" not in r.headers
    assert guarded.call("POST", f"/v2/models/{guarded.ctl}/infer", content=json.dumps(X),
                        headers={"Origin": guarded.app, "Content-Type": "text/plain"}).status_code == 415


def test_the_servers_own_pages_may_post_json(guarded: Guarded) -> None:
    """A page the agent serves itself (the local chat page) is same-origin: Origin = http://<Host>."""
    for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}"):
        r = guarded.call("POST", f"/v2/models/{guarded.ctl}/infer", json=X,
                         headers={"Host": host, "Origin": f"http://{host}"})
        assert r.status_code == 200, r.text
        _no_cors_headers(r)
    r = guarded.call("POST", f"/v2/models/{guarded.ctl}/infer", json=X,
                     headers={"Host": f"127.0.0.1:{guarded.port}", "Origin": f"http://localhost:{guarded.port}"})
    assert r.status_code == 403


def test_tritonclient_json_and_binary_still_work(guarded: Guarded) -> None:
    """tritonclient sends no Content-Type (and no Origin): non-browser clients keep working."""
    client = triton.InferenceServerClient(url=guarded.url.removeprefix("http://"))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for binary in (False, True):
        tensor = triton.InferInput("x", [2, 4], "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        result = client.infer(guarded.ctl, [tensor])
        np.testing.assert_allclose(result.as_numpy("z"), x + x)
    assert guarded.ctl in guarded.loaded()  # what the refusal tests read does see a load


def test_a_post_without_content_type_from_a_page_is_refused(guarded: Guarded) -> None:
    """fetch() with an ArrayBuffer body sends no Content-Type, but always an Origin."""
    r = guarded.call("POST", f"/v2/models/{guarded.victim}/infer", content=json.dumps(X),
                     headers={"Origin": guarded.app})
    assert r.status_code == 415
    assert guarded.victim not in guarded.loaded()


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="every web page"):
        Access.build(origins=["*"])
    for bad in ("evil.example", "http://x/path", "ftp://x", "null", "http://a b"):
        with pytest.raises(UsageError, match="origin"):
            check_origin(bad)
    for bad in ("*", "a b", "host:80", "-x.lan"):
        with pytest.raises(UsageError, match="allow-host"):
            Access.build(hosts=[bad])
    access = Access.build(hosts=["MyBox.LAN", "[fe80::1]"], origins=["HTTP://App.Example:3000/"],
                          bound="192.168.1.7")
    assert access.hosts == {"mybox.lan", "fe80::1", "192.168.1.7"}
    assert access.origins == {"http://app.example:3000"}
    assert Access.build(bound="0.0.0.0").hosts == frozenset()
    assert host_name("[::1]:80") == "::1" and host_name("LocalHost:8080") == "localhost"
    assert host_name("[::1]x") is None and host_name("a:b") is None and host_name("a b") is None


@pytest.mark.browser
def test_a_real_browser_page_cannot_drive_the_agent(guarded: Guarded) -> None:
    """Headless Chromium: a page on evil.example (its name resolving to 127.0.0.1, as after DNS
    rebinding) cannot read the agent nor run a model; an allowed origin and the agent's own
    origin can."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's `chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    infer = f"/v2/models/{guarded.victim}/infer"
    app_port = guarded.app.rpartition(":")[2]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1, MAP app.example 127.0.0.1"])
        try:
            page = browser.new_page()
            # DNS rebinding: the page's own name now points at the agent; same-origin reads.
            response = page.goto(f"http://evil.example:{guarded.port}/v1/models")
            assert response is not None and response.status == 403
            read = page.evaluate("fetch('/v1/models').then(r => r.text())")
            assert guarded.victim not in read and "host_not_allowed" in read
            # From the attacker's page: a cross-origin "simple" POST (no preflight) ...
            kind = page.evaluate(
                "([url, body]) => fetch(url, {method: 'POST', mode: 'no-cors', body,"
                " headers: {'Content-Type': 'text/plain'}}).then(r => r.type)",
                [f"{guarded.url}{infer}", json.dumps(X)])
            assert kind == "opaque"  # the request reached the agent; its answer stays hidden
            # ... and a cross-origin read.
            blocked = page.evaluate("url => fetch(url).then(r => 'read', e => 'blocked')",
                                    f"{guarded.url}/v1/models")
            assert blocked == "blocked"
            # The same page served from an origin the user allowed reads and posts JSON, with CORS.
            page.goto(f"http://app.example:{app_port}/")
            models = page.evaluate("url => fetch(url).then(r => r.json())", f"{guarded.url}/v1/models")
            assert guarded.chat in {m["id"] for m in models["data"]}
            status = page.evaluate(
                "([url, body]) => fetch(url, {method: 'POST', body,"
                " headers: {'Content-Type': 'application/json'}}).then(r => r.status)",
                [f"{guarded.url}/v2/models/{guarded.ctl}/infer", json.dumps(X)])
            assert status == 200
            # The agent's own origin (where a local chat page lives) posts JSON same-origin.
            page.goto(f"{guarded.url}/v2")
            status = page.evaluate(
                "([url, body]) => fetch(url, {method: 'POST', body,"
                " headers: {'Content-Type': 'application/json'}}).then(r => r.status)",
                [f"/v2/models/{guarded.ctl}/infer", json.dumps(X)])
            assert status == 200
        finally:
            browser.close()
    assert guarded.victim not in guarded.loaded()
