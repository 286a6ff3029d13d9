"""`modelyard.client.Registry` and `modelyard push|download` against a real server process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from modelyard.client import IntegrityError, Registry, TransferError, UsageError
from modelyard.client.state import FILE_NAME
from modelyard.errors import ForbiddenError, InvalidError, NotFoundError, UnauthenticatedError
from tests.conftest import ADMIN_SECRET, S3_KEYS, _drop_bucket, free_port

MiB = 1024 * 1024
BIG = 64 * MiB + 5  # resumable: four 16 MiB parts and 5 bytes


# --- helpers (fixtures live in conftest.py) ---------------------------------------------------


def gql(url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = ADMIN_SECRET) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers).json()
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def new_model(url: str) -> str:
    name = f"m-{uuid.uuid4().hex[:10]}"
    gql(url, "mutation($n: String!) { createModel(input: {name: $n}) { name } }", {"n": name})
    return name


def write(path: Path, size: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def requests_seen(url: str) -> dict[tuple[str, str, str], float]:
    """The server's own count of answered requests, by (method, route, status), from /metrics."""
    counts: dict[tuple[str, str, str], float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("modelyard_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            counts[(labels["method"], labels["route"], labels["status"])] = float(line.rsplit(" ", 1)[1])
    return counts


def delta(before: dict[tuple[str, str, str], float], after: dict[tuple[str, str, str], float], method: str,
          route: str, status: str) -> int:
    key = (method, route, status)
    return int(after.get(key, 0) - before.get(key, 0))


PUT_BLOB = ("PUT", "/api/blobs/{digest}", "201")
PATCH_OK = ("PATCH", "/api/uploads/{upload_id}", "204")
START = ("POST", "/api/uploads", "201")

VERSION = """
query($r: String!) {
  version(ref: $r) {
    ref description status
    artifacts { path digest size }
    params { key type value }
    metrics { key value }
    tags { key value }
    aliases { name }
    parents { relation parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
  }
}"""


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelyard.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


class Proxy:
    """A TCP relay in front of a server: slows what clients send to `rate` bytes/s, or cuts the
    connection once after `cut_after` bytes went through — a real network failure mid-request."""

    def __init__(self, target: str, *, rate: float | None = None, cut_after: int | None = None) -> None:
        parts = urlsplit(target)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate
        self.cut_after = cut_after
        self.forwarded = 0
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.lock = threading.Lock()
        self.threads[0].start()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone would not
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(timeout=10)
        for s in self.sockets:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
                pumps = [threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
                         threading.Thread(target=self._pump, args=(server, client, False), daemon=True)]
                self.threads += pumps
            for p in pumps:
                p.start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(256 * 1024):
                if upstream and self.rate:
                    time.sleep(len(data) / self.rate)
                if upstream and self.cut_after is not None and not self.cut.is_set():
                    if self.forwarded + len(data) >= self.cut_after:
                        dst.sendall(data[: self.cut_after - self.forwarded])
                        self.cut.set()
                        for s in (src, dst):  # reset, as a dropped line or a dead router would
                            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            s.shutdown(socket.SHUT_RDWR)  # also wakes the other direction's recv
                            s.close()
                        return
                    self.forwarded += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Recording(httpx.HTTPTransport):
    """The real transport, noting where each request went and whether it carried the token."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return super().handle_request(request)


@contextlib.contextmanager
def serve(env: dict[str, str], data: Path) -> Iterator[str]:
    """Another `modelyard serve` process (the session's live server is SQLite + local blobs)."""
    port = free_port()
    log_path = data / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli", "serve"], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "MODELYARD_DATA_DIR": str(data), "MODELYARD_PORT": str(port),
                 "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, **env},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# --- push ------------------------------------------------------------------------------------


def test_push_creates_a_version_with_its_files_params_metrics_lineage_and_alias(live_server: str, tmp_path: Path) -> None:
    base = new_model(live_server)
    gql(live_server, 'mutation($m: String!) { createVersion(input: {model: $m}) { ref } }', {"m": base})
    gql(live_server, 'mutation { registerDataset(input: {name: "chats", version: "2026-10"}) { ref } }')
    name = new_model(live_server)
    folder = tmp_path / "model"
    files = {"weights/big.bin": write(folder / "weights" / "big.bin", BIG),
             "weights/small.bin": write(folder / "weights" / "small.bin", 3 * MiB + 1),
             "config.json": b'{"layers": 2}', "empty.txt": b""}
    for path in ("config.json", "empty.txt"):
        (folder / path).write_bytes(files[path])
    write(folder / ".git" / "HEAD", 10)  # hidden: not pushed
    write(folder / "notes.txt.partial", 10)  # an unfinished download: not pushed
    before = requests_seen(live_server)

    with Registry(live_server, ADMIN_SECRET) as registry:
        result = registry.push(
            folder, name,
            params={"lr": 0.0003, "epochs": 3, "optimizer": "adamw", "fp16": True, "sched": {"warmup": 100}},
            metrics={"accuracy": 0.93, "loss": [{"value": 0.9, "step": 1}, {"value": 0.41, "step": 1200}]},
            tags={"team": "support"}, parents=[(f"{base}:1", "fine-tuned-from")], datasets=["chats@2026-10"],
            alias="staging", description="# A model\n", progress=False,
        )
        got = registry.get(result.ref)
        found = registry.search({"model": name, "params": [{"key": "lr", "lt": 0.001}],
                                 "metrics": [{"key": "accuracy", "gt": 0.9}]})
        pinned = registry.get(f"{name}@{result.manifest_digest}")

    after = requests_seen(live_server)
    total = sum(len(b) for b in files.values())
    assert (result.ref, result.number, result.files, result.alias) == (f"{name}:1", 1, 4, "staging")
    assert result.bytes_sent == result.total_bytes == total and result.bytes_skipped == result.bytes_resumed == 0
    assert (result.blobs_uploaded, result.blobs_skipped) == (4, 0)
    # the server saw one resumable upload in five parts and three single PUTs
    assert delta(before, after, *START) == 1 and delta(before, after, *PATCH_OK) == 5
    assert delta(before, after, *PUT_BLOB) == 3

    version = gql(live_server, VERSION, {"r": f"{name}@staging"})["version"]
    assert version["ref"] == result.ref and version["status"] == "READY" and version["description"] == "# A model\n"
    assert {a["path"]: (a["digest"], a["size"]) for a in version["artifacts"]} == {
        p: (sha(b), len(b)) for p, b in files.items()}
    assert {p["key"]: (p["type"], p["value"]) for p in version["params"]} == {
        "lr": ("FLOAT", 0.0003), "epochs": ("INT", 3), "optimizer": ("STRING", "adamw"), "fp16": ("BOOL", True),
        "sched": ("JSON", {"warmup": 100})}
    assert {m["key"]: m["value"] for m in version["metrics"]} == {"accuracy": 0.93, "loss": 0.41}
    assert version["tags"] == [{"key": "team", "value": "support"}]
    assert sorted((e["relation"], e["parent"]["ref"]) for e in version["parents"]) == [
        ("FINE_TUNED_FROM", f"{base}:1"), ("TRAINED_ON", "chats@2026-10")]
    assert got["ref"] == pinned["ref"] == result.ref and got["manifestDigest"] == result.manifest_digest
    assert got["aliases"] == [{"name": "staging"}] and got["totalSize"] == total
    assert [v["ref"] for v in found] == [result.ref]


def test_a_second_push_sends_only_the_files_that_changed(live_server: str, tmp_path: Path) -> None:
    name = new_model(live_server)
    folder = tmp_path / "model"
    for i in range(6):
        write(folder / f"shard-{i}.bin", 2 * MiB + i)
    with Registry(live_server, ADMIN_SECRET) as registry:
        first = registry.push(folder, name, progress=False)
        changed = [write(folder / f"shard-{i}.bin", 2 * MiB + i) for i in range(3)]  # same sizes, new bytes
        before = requests_seen(live_server)
        second = registry.push(folder, name, progress=False)
    after = requests_seen(live_server)
    assert first.bytes_sent == first.total_bytes == second.total_bytes
    assert second.bytes_sent == sum(len(b) for b in changed) == 3 * 2 * MiB + 3
    assert second.bytes_skipped == second.total_bytes - second.bytes_sent
    assert (second.blobs_uploaded, second.blobs_skipped) == (3, 3)
    assert delta(before, after, *PUT_BLOB) == 3  # the server stored three blobs, no more
    assert second.ref == f"{name}:2" and second.manifest_digest != first.manifest_digest


def test_a_broken_connection_mid_upload_resumes_from_the_servers_offset(live_server: str, tmp_path: Path) -> None:
    """The relay drops the connection in the middle of the second part; the push goes on from what
    the server kept (HEAD), without starting the part, let alone the file, over."""
    name = new_model(live_server)
    data = write(tmp_path / "model" / "big.bin", BIG)
    recording = Recording()
    with Proxy(live_server, cut_after=24 * MiB) as proxy, \
            Registry(proxy.url, ADMIN_SECRET, backoff=0.05, transport=recording) as registry:
        result = registry.push(tmp_path / "model", name, progress=False)
    assert proxy.cut.is_set()
    calls = [(r.method, r.url.path, int(r.headers.get("upload-offset", -1))) for r in recording.seen]
    patches = [offset for method, _, offset in calls if method == "PATCH"]
    # parts at 0 and 16 MiB; the second broke off near 24 MiB; the client asked (HEAD) and went on
    # from the byte the server held, not from a part boundary
    assert patches[:2] == [0, 16 * MiB] and 16 * MiB < patches[2] <= 24 * MiB
    third = [i for i, call in enumerate(calls) if call[0] == "PATCH"][2]
    assert calls[third - 1][0] == "HEAD" and calls[third - 1][1].startswith("/api/uploads/")
    assert BIG <= result.bytes_sent < BIG + 16 * MiB
    version = gql(live_server, VERSION, {"r": result.ref})["version"]
    assert version["artifacts"] == [{"path": "big.bin", "digest": sha(data), "size": BIG}]


def test_a_push_killed_mid_upload_resumes_where_the_server_stopped(live_server: str, tmp_path: Path) -> None:
    """`modelyard push` through a slow link, SIGKILLed after its first part; the next push sends only the rest."""
    name = new_model(live_server)
    folder = tmp_path / "model"
    data = write(folder / "big.bin", BIG)
    with Proxy(live_server, rate=24 * MiB) as proxy:
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "push", str(folder), "--model", name,
                                 "--server", proxy.url, "--token", ADMIN_SECRET, "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        held, location = 0, None
        deadline = time.monotonic() + 60
        while held < 16 * MiB:
            assert proc.poll() is None and time.monotonic() < deadline, "the push ended before it was killed"
            state = json.loads((folder / FILE_NAME).read_text()) if (folder / FILE_NAME).exists() else {}
            location = next(iter(state.get("uploads", {}).values()), None)
            if location:
                answer = httpx.head(f"{live_server}{location}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
                held = int(answer.headers.get("upload-offset", 0))
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert location is not None
        held = settled_offset(live_server, location)
        assert 16 * MiB <= held < BIG
        proxy.rate = None
        with Registry(proxy.url, ADMIN_SECRET) as registry:
            result = registry.push(folder, name, progress=False)
    assert result.bytes_resumed == held and result.bytes_sent == BIG - held
    assert json.loads((folder / FILE_NAME).read_text())["uploads"] == {}
    with Registry(live_server) as registry:
        got = registry.download(result.ref, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data and got.bytes_fetched == BIG


def settled_offset(url: str, location: str) -> int:
    """The upload's size once a PATCH cut off by the kill has finished writing."""
    last = -1
    while True:
        answer = httpx.head(f"{url}{location}", headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
        held = int(answer.headers["upload-offset"])
        if held == last:
            return held
        last = held
        time.sleep(0.3)


def test_an_upload_that_fails_every_time_reports_a_transfer_error_and_keeps_its_place(
    live_server: str, tmp_path: Path
) -> None:
    name = new_model(live_server)
    folder = tmp_path / "model"
    write(folder / "big.bin", BIG)
    with Proxy(live_server, cut_after=20 * MiB) as proxy, Registry(proxy.url, ADMIN_SECRET, retries=0) as registry:
        with pytest.raises(TransferError, match="push again to resume"):
            registry.push(folder, name, progress=False)
        state = json.loads((folder / FILE_NAME).read_text())
        assert len(state["uploads"]) == 1  # remembered for the next push
        with Registry(proxy.url, ADMIN_SECRET) as again:
            result = again.push(folder, name, progress=False)
    assert result.bytes_resumed >= 16 * MiB and result.bytes_sent == BIG - result.bytes_resumed


def test_an_upload_locked_by_a_silent_client_is_started_anew(live_server: str, tmp_path: Path) -> None:
    """A PATCH whose client went quiet without closing (a sleeping laptop) keeps the upload busy on
    the server; the next push stops waiting for it and starts a fresh upload."""
    name = new_model(live_server)
    folder = tmp_path / "model"
    data = write(folder / "big.bin", BIG)
    auth = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    location = httpx.post(f"{live_server}/api/uploads", headers=auth).json()["location"]
    parts = urlsplit(live_server)
    with socket.create_connection((parts.hostname, parts.port)) as quiet:
        quiet.sendall((f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_SECRET}\r\n"
                       f"Upload-Offset: 0\r\nContent-Length: {16 * MiB}\r\n\r\n").encode() + data[: 4 * MiB])
        held = settled_offset(live_server, location)
        (folder / FILE_NAME).write_text(json.dumps(
            {"format": 1, "files": {}, "uploads": {f"{live_server} {sha(data)}": location}}))
        with Registry(live_server, ADMIN_SECRET, backoff=0.05, retries=2) as registry:
            result = registry.push(folder, name, progress=False)
    assert 0 < held <= 4 * MiB  # what arrived is staged, and the upload stays locked
    assert result.bytes_resumed == 0 and result.bytes_sent == BIG  # started over, and said so
    version = gql(live_server, VERSION, {"r": result.ref})["version"]
    assert version["artifacts"] == [{"path": "big.bin", "digest": sha(data), "size": BIG}]


# --- download --------------------------------------------------------------------------------


def pushed(url: str, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    name = new_model(url)
    files = {"big.bin": write(tmp_path / "src" / "big.bin", 20 * MiB + 3),
             "sub/small.bin": write(tmp_path / "src" / "sub" / "small.bin", 1000)}
    with Registry(url, ADMIN_SECRET) as registry:
        return registry.push(tmp_path / "src", name, progress=False).ref, files


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_download_writes_identical_files_and_reuses_what_is_already_there(live_server: str, tmp_path: Path) -> None:
    ref, files = pushed(live_server, tmp_path)
    with Registry(live_server) as registry:  # reads need no token
        got = registry.download(ref, tmp_path / "out", progress=False)
        again = registry.download(ref, tmp_path / "out", progress=False)
    assert tree(tmp_path / "out") == files
    assert got.bytes_fetched == sum(len(b) for b in files.values()) and got.bytes_reused == 0
    assert again.bytes_fetched == 0 and again.bytes_reused == got.bytes_fetched


def test_download_resumes_from_a_partial_file(live_server: str, tmp_path: Path) -> None:
    ref, files = pushed(live_server, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "big.bin.partial").write_bytes(files["big.bin"][: 7 * MiB])
    with Registry(live_server) as registry:
        got = registry.download(ref, out, progress=False)
    assert tree(out) == files  # no .partial left behind
    assert got.bytes_reused == 7 * MiB and got.bytes_fetched == len(files["big.bin"]) - 7 * MiB + 1000
    assert got.refetched == []


def test_a_corrupt_partial_file_is_detected_and_fetched_again(live_server: str, tmp_path: Path) -> None:
    ref, files = pushed(live_server, tmp_path)
    out = tmp_path / "out"
    write(out / "big.bin.partial", 7 * MiB)  # the right length, the wrong bytes
    with Registry(live_server) as registry:
        got = registry.download(ref, out, progress=False)
    assert tree(out) == files and got.refetched == ["big.bin"]


def test_a_corrupt_blob_on_the_server_is_refused(live_server: str, tmp_path: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    ref, files = pushed(live_server, tmp_path)
    hexdigest = sha(files["big.bin"]).split(":")[1]
    (stored,) = {p.resolve() for p in tmp_path_factory.getbasetemp().glob(f"live*/blobs/blobs/sha256/{hexdigest}")}
    damaged = bytearray(files["big.bin"])
    damaged[12345] ^= 0xFF
    stored.write_bytes(damaged)  # bit rot under the server
    try:
        with Registry(live_server) as registry, pytest.raises(IntegrityError, match="do not hash to"):
            registry.download(ref, tmp_path / "out", progress=False)
    finally:
        stored.write_bytes(files["big.bin"])
    assert not (tmp_path / "out" / "big.bin").exists() and not (tmp_path / "out" / "big.bin.partial").exists()


def test_s3_downloads_follow_the_redirect_without_the_token(
    tmp_path: Path, s3_endpoint: str, s3_admin: Any
) -> None:
    bucket = f"modelyard-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=bucket)
    env = {"MODELYARD_STORAGE_URL": f"s3://{bucket}/registry", "MODELYARD_S3_ENDPOINT_URL": s3_endpoint,
           "MODELYARD_S3_REGION": S3_KEYS["region"], "MODELYARD_S3_ACCESS_KEY": S3_KEYS["access_key"],
           "MODELYARD_S3_SECRET_KEY": S3_KEYS["secret_key"]}
    try:
        with serve(env, tmp_path) as url:
            ref, files = pushed(url, tmp_path)
            out = tmp_path / "out"
            out.mkdir()
            (out / "big.bin.partial").write_bytes(files["big.bin"][:MiB])
            recording = Recording()
            with Registry(url, ADMIN_SECRET, transport=recording) as registry:
                got = registry.download(ref, out, progress=False)
    finally:
        _drop_bucket(s3_admin, bucket)
    assert tree(out) == files and got.bytes_reused == MiB
    s3_port = urlsplit(s3_endpoint).port
    to_s3 = [r for r in recording.seen if r.url.port == s3_port]
    to_registry = [r for r in recording.seen if r.url.port != s3_port]
    assert len(to_s3) == 2 and not any("authorization" in r.headers for r in to_s3)  # presigned: the URL is the credential
    assert to_registry and all("authorization" in r.headers for r in to_registry)
    assert [r.headers["range"] for r in to_s3 if "range" in r.headers] == [f"bytes={MiB}-"]  # resumed on S3


# --- bad input -------------------------------------------------------------------------------


def test_bad_input_fails_with_clear_errors_before_bytes_move(live_server: str, tmp_path: Path) -> None:
    name = new_model(live_server)
    folder = tmp_path / "model"
    write(folder / "w.bin", 1000)
    (tmp_path / "empty").mkdir()
    before = requests_seen(live_server)
    with Registry(live_server, ADMIN_SECRET) as registry:
        with pytest.raises(NotFoundError, match="model 'no-such-model' does not exist"):
            registry.push(folder, "no-such-model", progress=False)
        with pytest.raises(UsageError, match="does not exist"):
            registry.push(tmp_path / "missing", name, progress=False)
        with pytest.raises(UsageError, match="holds no files"):
            registry.push(tmp_path / "empty", name, progress=False)
        with pytest.raises(UsageError, match="unknown relation 'cousin_of'"):
            registry.push(folder, name, parents=[(f"{name}:1", "cousin_of")], progress=False)
        with pytest.raises(UsageError, match="NAME@VERSION"):
            registry.push(folder, name, datasets=["chats"], progress=False)
        with pytest.raises(NotFoundError, match="no version"):
            registry.get(f"{name}:7")
        write(folder / "bad\\name.bin", 10)
        with pytest.raises(InvalidError, match=r"must use '/' \(no backslashes\)"):
            registry.push(folder, name, progress=False)
    assert delta(before, requests_seen(live_server), *PUT_BLOB) == 0
    assert gql(live_server, VERSION, {"r": name})["version"] is None


def test_tokens_that_may_not_write_are_refused(live_server: str, tmp_path: Path) -> None:
    name = new_model(live_server)
    write(tmp_path / "model" / "w.bin", 1000)
    reader = gql(live_server, 'mutation($n: String!) { createToken(input: {name: $n, scope: READ}) { secret } }',
                 {"n": f"r-{uuid.uuid4().hex[:8]}"})["createToken"]["secret"]
    with Registry(live_server, "myd_" + "b" * 43) as registry, pytest.raises(UnauthenticatedError, match="UNAUTHENTICATED: unknown token"):
        registry.push(tmp_path / "model", name, progress=False)
    with Registry(live_server, reader) as registry, pytest.raises(ForbiddenError, match="FORBIDDEN"):
        registry.push(tmp_path / "model", name, progress=False)
    with Registry(live_server) as registry, pytest.raises(UnauthenticatedError):
        registry.push(tmp_path / "model", name, progress=False)


# --- CLI -------------------------------------------------------------------------------------


def test_cli_push_and_download(live_server: str, tmp_path: Path) -> None:
    base = new_model(live_server)
    gql(live_server, 'mutation($m: String!) { createVersion(input: {model: $m}) { ref } }', {"m": base})
    name = new_model(live_server)
    files = {"model.bin": write(tmp_path / "model" / "model.bin", 2 * MiB), "README.md": b"# Card\n"}
    (tmp_path / "model" / "README.md").write_bytes(files["README.md"])
    (tmp_path / "params.yaml").write_text("lr: 0.001\nepochs: 4\n")
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.91}')
    env = {"MODELYARD_SERVER": live_server, "MODELYARD_TOKEN": ADMIN_SECRET}
    done = cli("push", str(tmp_path / "model"), "--model", name, "--params", str(tmp_path / "params.yaml"),
               "--metrics", str(tmp_path / "metrics.json"), "--parent", f"{base}:1", "--relation", "distilled_from",
               "--tag", "team=nlp", "--alias", "prod", "--description-file", str(tmp_path / "model" / "README.md"),
               env=env)
    assert done.returncode == 0, done.stderr
    ref, digest = done.stdout.split()
    assert ref == f"{name}:1" and digest.startswith("sha256:")
    version = gql(live_server, VERSION, {"r": f"{name}@prod"})["version"]
    assert version["ref"] == ref and version["description"] == "# Card\n"
    assert {p["key"]: p["value"] for p in version["params"]} == {"lr": 0.001, "epochs": 4}
    assert version["metrics"] == [{"key": "accuracy", "value": 0.91}] and version["tags"] == [{"key": "team", "value": "nlp"}]
    assert version["parents"] == [{"relation": "DISTILLED_FROM", "parent": {"ref": f"{base}:1"}}]

    fetched = cli("download", f"{name}@prod", str(tmp_path / "out"), "--server", live_server)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.split() == [ref, digest] and tree(tmp_path / "out") == files


@pytest.mark.parametrize(("args", "message"), [
    (["push", "{dir}", "--model", "no-such-model"], "error: NOT_FOUND: model 'no-such-model' does not exist"),
    (["push", "{dir}/missing", "--model", "{model}"], "error: folder {dir}/missing does not exist"),
    (["push", "{dir}", "--model", "{model}", "--parent", "x:1"], "error: give one --relation for each --parent"),
    (["push", "{dir}", "--model", "{model}", "--params", "{dir}/w.bin"], "error: {dir}/w.bin is not UTF-8 text"),
    (["push", "{dir}", "--model", "{model}", "--metrics", "{dir}/bad.json"], "error: {dir}/bad.json is not valid JSON"),
    (["push", "{dir}", "--model", "{model}", "--token", "myd_" + "b" * 43], "error: UNAUTHENTICATED: unknown token"),
    (["download", "{model}:9", "{dir}/out"], "error: NOT_FOUND: no version '{model}:9'"),
    (["push", "{dir}", "--model", "{model}", "--server", "http://127.0.0.1:9"], "error: cannot reach http://127.0.0.1:9: "),
])
def test_cli_errors_exit_2_with_one_line(live_server: str, tmp_path: Path, args: list[str], message: str) -> None:
    name = new_model(live_server)
    write(tmp_path / "w.bin", 100)
    (tmp_path / "bad.json").write_text('{"accuracy": ')
    fill = {"dir": str(tmp_path), "model": name}
    env = {"MODELYARD_SERVER": live_server, "MODELYARD_TOKEN": ADMIN_SECRET}
    done = cli(*(a.format(**fill) for a in args), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message.format(**fill)) and done.stderr.count("\n") == 1, done.stderr
