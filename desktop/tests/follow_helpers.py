"""Helpers of test_follow: models that tell versions apart, a TCP gate, a non-stop OIP client."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

X = [1.0, 2.0, 3.0, 4.0]
TIMEOUT = 60.0  # a safety net: waits end as soon as what they wait for happens


def scaled_model(path: Path, factor: float) -> bytes:
    """x FP32 [batch, 4] -> y = x * factor: the answer tells which version ran."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        f"scale{factor}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.array(factor, dtype=np.float32), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path.read_bytes()


def wait_until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll `check` until it holds; fail with `what` after the safety-net timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Gate:
    """A TCP relay to the registry that can be cut (every connection dropped, new ones closed
    at once, as a dead network would) and opened again, on the same port."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.open = True
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self.lock:
                self.sockets.discard(src)
            src.close()  # each socket is the source of exactly one pump

    def cut(self) -> None:
        """Drop every connection and refuse new ones until `restore`."""
        self.open = False
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """Let connections through again."""
        self.open = True

    def close(self) -> None:
        self.cut()
        self.sock.close()


@dataclass
class Answer:
    """One infer answer: the version that ran and what it gave."""

    version: str
    y: list[float]


@dataclass
class Hammer:
    """A client thread sending OIP infer requests (no version) one after another, no pause."""

    url: str
    model: str
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X}]}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.post(f"/v2/models/{self.model}/infer", json=body)
                    doc = r.json()
                    if r.status_code != 200:
                        self.failures.append(f"HTTP {r.status_code}: {doc}")
                        continue
                    self.answers.append(Answer(doc["model_version"], doc["outputs"][0]["data"]))
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.failures.append(repr(exc))

    def latest(self) -> str | None:
        return self.answers[-1].version if self.answers else None

    def count(self) -> int:
        return len(self.answers)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)


class Served:
    """`modelyard-agent serve --follow …` as a subprocess; its stdout goes to a file."""

    def __init__(self, home: Path, server: str, port: int, *argv: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = home.parent / f"serve-{port}.log"
        env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": server}
        env.pop("MODELYARD_TOKEN", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard_agent", "serve", "--port", str(port), *argv],
                env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"serve exited:\n{self.output()}"
            try:
                return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, "serve to be ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(TIMEOUT)
