"""The agent's HTTP transport: proxies from the environment, connections the other side closed."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
from urllib.parse import urlsplit

import pytest
from conftest import Agent, Publisher
from modelyard_agent.transport import Connections


class ForwardProxy:
    """A plain-http proxy: takes absolute-form requests, sends each upstream in origin form with
    `Connection: close`, pipes the answer back and closes the client's connection (so a client
    that keeps connections alive must notice and open a new one)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[tuple[str, str, str]] = []  # method, target, Proxy-Authorization
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, body = head.split(b"\r\n\r\n", 1)
            first, *lines = head.decode("latin-1").split("\r\n")
            method, target, version = first.split(" ")
            headers = dict(line.split(": ", 1) for line in lines)
            length = int(headers.get("Content-Length", "0"))
            while len(body) < length:
                body += client.recv(65536)
            self.seen.append((method, target, headers.pop("Proxy-Authorization", "")))
            url = urlsplit(target)
            headers["Connection"] = "close"
            lines = [f"{method} {url.path} {version}", *(f"{k}: {v}" for k, v in headers.items())]
            with socket.create_connection((url.hostname or "", url.port or 80)) as upstream:
                upstream.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)

    def close(self) -> None:
        self.sock.close()


def test_a_pull_goes_through_the_environments_http_proxy(agent: Agent, publisher: Publisher,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    name = publisher.model()
    data = os.urandom(300_000)
    publisher.version(name, {"model.bin": data})
    proxy = ForwardProxy()
    try:
        for variable in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url.replace("http://", "http://me:s%40cret@"))
        done = agent("pull", name)
        assert done.code == 0, done.err
        assert agent.blob(data).read_bytes() == data
        # The proxy closed the connection after the query: the blob came on a new one.
        assert [(m, t.removeprefix(agent.server)) for m, t, _ in proxy.seen] == [
            ("POST", "/graphql"), ("GET", f"/api/blobs/sha256:{agent.blob(data).name}")]
        assert {auth for _, _, auth in proxy.seen} == {"Basic " + base64.b64encode(b"me:s@cret").decode()}
    finally:
        proxy.close()


def test_no_proxy_names_the_hosts_reached_directly(agent: Agent, publisher: Publisher,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    name = publisher.model()
    publisher.version(name, {"model.bin": b"weights"})
    proxy = ForwardProxy()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        assert agent("pull", name).code == 0
        assert proxy.seen == []
    finally:
        proxy.close()


def test_a_kept_connection_the_server_closed_is_opened_again() -> None:
    """A server that answers each connection once, as if keep-alive, then hangs up: the next
    request on that connection is sent again on a new one, not reported as a failure."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def answer_once() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    threading.Thread(target=answer_once, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/"
    connections = Connections(timeout=5)
    try:
        for _ in range(3):
            answer = connections.request("GET", url, {})
            assert (answer.status, answer.read1(100)) == (200, b"ok")
            answer.close()
        assert len(accepted) == 3
    finally:
        connections.close()
        server.close()
