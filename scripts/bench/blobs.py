"""Blob benchmark: a 1 GiB file through the HTTP blob API, against copying it on the same disk.

Everything lives in one fresh temp dir on one disk: the source file (random bytes, written in
1 MiB chunks, never held in memory), the copies, and the server's data dir. The server is the real
`python -m modelyard.cli serve` in a separate process (local blob store, SQLite) on a free
loopback port, so its memory can be watched: a thread reads VmRSS from /proc/<pid>/status every
2 ms during each operation, and VmHWM (reset with /proc/<pid>/clear_refs before it) catches any
peak between two samples. The client is httpx in this process.

Baselines, in the same run, on the same file:
    sha256 pass            read and hash the file (the server hashes while bytes stream)
    copyfile + fsync       shutil.copyfile (in-kernel copy) then fsync of the file and its
                           folder, as durable as a stored blob; run first and last, and the
                           faster run is the ratio's denominator
    cp + fsync             coreutils cp, then the same fsync
    read+sha256+write      a Python loop in 1 MiB chunks + fsync: what the server must do, minus HTTP

Server operations:
    PUT streamed           `PUT /api/blobs/sha256:<hex>`, the body streamed from the file
    GET streamed           download to a file, verifying sha256 as a client would, then fsync;
                           and again dropping the bytes, to separate the client's share
    PUT of existing blob   the same PUT again: the server hashes the body and stores nothing
    resumable upload       (after removing the stored blob) `POST /api/uploads`, `PATCH`
                           chunks of --patch-chunk at `Upload-Offset`, `PUT ?digest=`
    push                   a folder of N files, then again after changing half of them: bytes
                           on the wire counted by a loopback relay in front of the server; with
                           `modelyard.client.Registry` when it is importable, else plain HTTP
                           (hash, HEAD each blob, PUT the missing ones, createVersion)

    python scripts/bench/blobs.py --quick          # 128 MiB
    python scripts/bench/blobs.py [--size 1GiB] [--patch-chunk 16MiB]
                                  [--push-files 8 --push-file-size 32MiB] [--dir /some/disk]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import hashlib
import importlib
import inspect
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn
from machine import command_line, git_state, machine

MiB = 1024**2
GiB = 1024**3
ADMIN_SECRET = "myd_" + "c" * 43  # seeded as the server's admin token
IO_CHUNK = MiB  # client reads and writes, like the server's CHUNK_SIZE
DEFAULT_SIZE, QUICK_SIZE = GiB, 128 * MiB
PATCH_CHUNK = 16 * MiB
PUSH_FILES, PUSH_FILE_SIZE, QUICK_PUSH_FILE_SIZE = 8, 32 * MiB, 8 * MiB
PUSH_PARALLEL = 4  # concurrent blob uploads in the plain-HTTP push
PUSH_MODEL = "bench-push"
SAMPLE_SECONDS = 0.002
STARTUP_SECONDS = 60
HTTP_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
PR_SET_PDEATHSIG = 1
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MiB, "g": GiB}

CREATE_MODEL = "mutation($input: CreateModelInput!) { createModel(input: $input) { name } }"
CREATE_VERSION = """
mutation($input: CreateVersionInput!) {
  createVersion(input: $input) { number status totalSize }
}
"""

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Sizes and places."""

    size: int
    patch_chunk: int
    push_files: int
    push_file_size: int
    parent_dir: Path | None


def parse_size(text: str) -> int:
    """Bytes from `1073741824`, `128MiB`, `1G` or `512m` (binary units)."""
    m = _SIZE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 128MiB, 4096)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def parse_options(argv: Sequence[str]) -> Options:
    """Options from the command line; `--quick` changes the defaults, explicit flags win."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB file, 8 MiB push files")
    parser.add_argument("--size", type=parse_size, help="file size (default 1GiB; quick 128MiB)")
    parser.add_argument("--patch-chunk", type=parse_size, default=PATCH_CHUNK,
                        help="bytes per PATCH of the resumable upload (default 16MiB)")
    parser.add_argument("--push-files", type=int, default=PUSH_FILES,
                        help="files in the pushed folder (default 8)")
    parser.add_argument("--push-file-size", type=parse_size,
                        help="bytes per pushed file (default 32MiB; quick 8MiB)")
    parser.add_argument("--dir", type=Path, help="parent of the temp dir (default: the system temp dir)")
    args = parser.parse_args(argv)
    if args.push_files < 2:
        parser.error("--push-files must be at least 2 (half of them change)")
    quick = bool(args.quick)
    return Options(
        size=args.size or (QUICK_SIZE if quick else DEFAULT_SIZE),
        patch_chunk=args.patch_chunk,
        push_files=args.push_files,
        push_file_size=args.push_file_size or (QUICK_PUSH_FILE_SIZE if quick else PUSH_FILE_SIZE),
        parent_dir=args.dir,
    )


# ---------------------------------------------------------------------------------------------
# The server process and its memory
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running `modelyard serve` process."""

    pid: int
    port: int
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the benchmark dies, even from SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _server_env(data_dir: Path, port: int) -> dict[str, str]:
    """This environment without any MODELYARD_* variable, plus the bench's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.update(MODELYARD_DATA_DIR=str(data_dir), MODELYARD_PORT=str(port),
               MODELYARD_ADMIN_TOKEN=ADMIN_SECRET, MODELYARD_LOG_LEVEL="warning")
    return env


def _log_tail(log: Path, lines: int = 30) -> str:
    """The end of the server's log, for error messages."""
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll /healthz until the server answers; RuntimeError if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{_log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not answer within {STARTUP_SECONDS} s:\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s; always reaps the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


@contextlib.contextmanager
def server_process(root: Path) -> Iterator[Server]:
    """`python -m modelyard.cli serve` on a free port with a fresh data dir under `root`."""
    data_dir, log = root / "server-data", root / "server.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli", "serve"], env=_server_env(data_dir, port),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches only us; we stop the server ourselves
            preexec_fn=_die_with_parent,
        )
    try:
        server = Server(proc.pid, port, data_dir, log)
        _wait_ready(proc, server.url, log)
        yield server
        if proc.poll() is not None:
            raise RuntimeError(f"the server died during the benchmark:\n{_log_tail(log)}")
    finally:
        _stop(proc)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of a process; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    """A process's resident memory before an operation and at its peak during it."""

    before: int
    peak: int
    samples: int
    hwm_used: bool  # the kernel's peak mark was reset first, so it bounds the peak too

    @property
    def delta(self) -> int:
        return self.peak - self.before


class RssSampler:
    """Reads a process's VmRSS every few ms in a thread while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.peak = 0
        self.samples = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.hwm_reset = reset_peak(self.pid)
        self.before = self.peak = proc_status(self.pid)["VmRSS"]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        status = proc_status(self.pid)
        self.peak = max(self.peak, status["VmRSS"])
        if self.hwm_reset:
            self.peak = max(self.peak, status["VmHWM"])

    def _run(self) -> None:
        """Sample until told to stop (or the process is gone)."""
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                rss = proc_status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.peak = max(self.peak, rss)
            self.samples += 1

    def memory(self) -> Memory:
        return Memory(self.before, self.peak, self.samples, self.hwm_reset)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One timed operation over `nbytes`, with the server's memory and CPU when it took part."""

    label: str
    seconds: float
    nbytes: int
    memory: Memory | None = None
    server_cpu: float | None = None
    baseline: bool = False

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.seconds


def timed(label: str, nbytes: int, action: Callable[[], object], server: Server | None = None) -> Timing:
    """Run `action` after an untimed `os.sync()`; its wall time, and the server's RSS and CPU."""
    os.sync()  # start every operation with no dirty pages from the previous one
    if server is None:
        started = time.perf_counter()
        action()
        result = Timing(label, time.perf_counter() - started, nbytes, baseline=True)
    else:
        cpu = cpu_seconds(server.pid)
        with RssSampler(server.pid) as sampler:
            started = time.perf_counter()
            action()
            seconds = time.perf_counter() - started
        result = Timing(label, seconds, nbytes, sampler.memory(), cpu_seconds(server.pid) - cpu)
    print(f"  {describe(result)}", flush=True)
    return result


def describe(t: Timing) -> str:
    """One line for the progress log."""
    line = f"{t.label}: {t.seconds:.2f} s, {t.mib_s:.0f} MiB/s"
    if t.memory is not None:
        m = t.memory
        line += (f"; server RSS {m.before / MiB:.0f} → peak {m.peak / MiB:.0f} MiB "
                 f"(+{m.delta / MiB:.1f}), {m.samples} samples, CPU {t.server_cpu:.2f} s")
    return line


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def fsync_file(path: Path) -> None:
    """Flush a file and its folder entry to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_random(path: Path, size: int) -> str:
    """Write `size` random bytes in 1 MiB chunks, fsync, and return their digest."""
    hasher = hashlib.sha256()
    with path.open("wb") as f:
        remaining = size
        while remaining > 0:
            chunk = os.urandom(min(IO_CHUNK, remaining))
            hasher.update(chunk)
            f.write(chunk)
            remaining -= len(chunk)
    fsync_file(path)
    return f"sha256:{hasher.hexdigest()}"


def file_digest(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(IO_CHUNK):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def copyfile_fsync(src: Path, dst: Path) -> None:
    """shutil.copyfile (sendfile / copy_file_range in the kernel), then fsync."""
    shutil.copyfile(src, dst)
    fsync_file(dst)


def cp_fsync(src: Path, dst: Path) -> None:
    """coreutils `cp`, then fsync."""
    subprocess.run(["cp", str(src), str(dst)], check=True)
    fsync_file(dst)


def hash_copy_fsync(src: Path, dst: Path) -> str:
    """Read, hash and write in 1 MiB chunks, then fsync: the server's work without HTTP."""
    hasher = hashlib.sha256()
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(IO_CHUNK):
            hasher.update(chunk)
            fout.write(chunk)
    fsync_file(dst)
    return f"sha256:{hasher.hexdigest()}"


def file_chunks(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """`length` bytes of a file from `start` (to the end when None), in 1 MiB chunks."""
    with path.open("rb") as f:
        f.seek(start)
        remaining = length if length is not None else os.fstat(f.fileno()).st_size - start
        while remaining > 0:
            chunk = f.read(min(IO_CHUNK, remaining))
            if not chunk:
                raise RuntimeError(f"{path} ended {remaining} bytes early")
            remaining -= len(chunk)
            yield chunk


def remove(path: Path) -> None:
    """Delete a file if it is there."""
    path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# HTTP operations
# ---------------------------------------------------------------------------------------------


def client_for(url: str) -> httpx.Client:
    """An httpx client that writes with the admin token."""
    return httpx.Client(base_url=url, timeout=HTTP_TIMEOUT,
                        headers={"Authorization": f"Bearer {ADMIN_SECRET}"})


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    """The response, or RuntimeError with its body when the status is not `status`."""
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path} answered "
                           f"{response.status_code}, not {status}: {response.text[:500]}")
    return response


def put_blob(client: httpx.Client, path: Path, digest: str, size: int) -> None:
    """`PUT /api/blobs/<digest>` with the body streamed from `path` (Content-Length set)."""
    response = client.put(f"/api/blobs/{digest}", content=file_chunks(path),
                          headers={"Content-Length": str(size),
                                   "Content-Type": "application/octet-stream"})
    stored = _expect(response, 201).json()
    if stored != {"digest": digest, "size": size}:
        raise RuntimeError(f"the server stored {stored}, not {digest} of {size} bytes")


def resumable_upload(client: httpx.Client, path: Path, digest: str, size: int, chunk: int) -> int:
    """`POST /api/uploads`, PATCH `chunk` bytes at a time, `PUT ?digest=`; the PATCH count."""
    location = _expect(client.post("/api/uploads"), 201).headers["Location"]
    patches = 0
    for offset in range(0, size, chunk):
        length = min(chunk, size - offset)
        response = client.patch(location, content=file_chunks(path, offset, length),
                                headers={"Upload-Offset": str(offset), "Content-Length": str(length),
                                         "Content-Type": "application/offset+octet-stream"})
        held = int(_expect(response, 204).headers["Upload-Offset"])
        if held != offset + length:
            raise RuntimeError(f"after a PATCH at {offset} the server holds {held} bytes")
        patches += 1
    stored = _expect(client.put(location, params={"digest": digest}), 201).json()
    if stored != {"digest": digest, "size": size}:
        raise RuntimeError(f"the upload finished as {stored}, not {digest} of {size} bytes")
    return patches


def download(client: httpx.Client, digest: str, dest: Path, size: int) -> None:
    """Streamed GET into a file, hashing as it arrives; fsync; RuntimeError on a wrong digest."""
    hasher = hashlib.sha256()
    received = 0
    with client.stream("GET", f"/api/blobs/{digest}") as response, dest.open("wb") as f:
        _expect(response, 200)
        for chunk in response.iter_raw():
            hasher.update(chunk)
            f.write(chunk)
            received += len(chunk)
    fsync_file(dest)
    got = f"sha256:{hasher.hexdigest()}"
    if got != digest or received != size:
        raise RuntimeError(f"downloaded {received} bytes hashing to {got}, not {digest}")


def download_discard(client: httpx.Client, digest: str, size: int) -> None:
    """Streamed GET whose bytes are counted and dropped: the server and HTTP without client work."""
    received = 0
    with client.stream("GET", f"/api/blobs/{digest}") as response:
        _expect(response, 200)
        for chunk in response.iter_raw():
            received += len(chunk)
    if received != size:
        raise RuntimeError(f"downloaded {received} bytes, not {size}")


def stored_blob(server: Server, digest: str) -> Path:
    """Where the server's local store keeps a blob (found by name under its data dir)."""
    hexpart = digest.removeprefix("sha256:")
    found = [p for p in server.data_dir.rglob(hexpart) if p.is_file()]
    if len(found) != 1:
        raise RuntimeError(f"expected one stored file for {digest}, found {found}")
    return found[0]


def leftovers(server: Server) -> list[str]:
    """Files the store left in its tmp/ and uploads/ folders (there should be none)."""
    out = []
    for folder in ("tmp", "uploads"):
        for root in server.data_dir.rglob(folder):
            if root.is_dir():
                out += [str(p.relative_to(server.data_dir)) for p in root.iterdir()]
    return out


def graphql(client: httpx.Client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """POST a GraphQL document; its data, RuntimeError on errors."""
    body = _expect(client.post("/graphql", json={"query": query, "variables": variables}), 200).json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return dict(body["data"])


# ---------------------------------------------------------------------------------------------
# A relay that counts bytes on the wire
# ---------------------------------------------------------------------------------------------


class CountingRelay:
    """A loopback TCP relay in front of the server that counts the bytes each way."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.sent = 0  # client → server
        self.received = 0  # server → client
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> CountingRelay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
        for sock in [*sockets, self._listener]:
            sock.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="relay", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        """Accept clients until closed; relay each to a new connection to the server."""
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        """Copy bytes from `src` to `dst` until EOF, counting them."""
        buffer = bytearray(IO_CHUNK)
        view = memoryview(buffer)
        try:
            while (n := src.recv_into(buffer)) > 0:
                dst.sendall(view[:n])
                with self._lock:
                    if outbound:
                        self.sent += n
                    else:
                        self.received += n
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


# ---------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    """One push of the folder."""

    label: str
    files: int
    folder_bytes: int
    missing: int  # blobs the server lacked before the push
    missing_bytes: int
    wire_sent: int
    wire_received: int
    timing: Timing
    via: str


def make_folder(folder: Path, files: int, size: int) -> list[Path]:
    """A folder of `files` random files of `size` bytes."""
    folder.mkdir()
    paths = [folder / f"shard-{i:02d}.bin" for i in range(files)]
    for path in paths:
        write_random(path, size)
    return paths


def folder_files(folder: Path) -> list[Path]:
    """The folder's files a push sends (hidden ones, like a client's state file, are not)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def digests_of(paths: list[Path]) -> dict[Path, str]:
    """The sha256 of each file."""
    return {p: file_digest(p) for p in paths}


def missing_blobs(client: httpx.Client, digests: dict[Path, str]) -> dict[Path, str]:
    """The files whose blob the server does not hold (HEAD each)."""
    out = {}
    for path, digest in digests.items():
        status = client.head(f"/api/blobs/{digest}").status_code
        if status == 404:
            out[path] = digest
        elif status != 200:
            raise RuntimeError(f"HEAD /api/blobs/{digest} answered {status}")
    return out


def push_plain(url: str, folder: Path, model: str) -> str:
    """Push with plain HTTP: hash, HEAD each blob, PUT missing ones in parallel, createVersion."""
    paths = folder_files(folder)
    with client_for(url) as client:
        digests = digests_of(paths)
        todo = missing_blobs(client, digests)
        with concurrent.futures.ThreadPoolExecutor(PUSH_PARALLEL) as pool:
            futures = [pool.submit(put_blob, client, p, d, p.stat().st_size) for p, d in todo.items()]
            for future in futures:
                future.result()
        artifacts = [{"path": p.name, "digest": d} for p, d in digests.items()]
        data = graphql(client, CREATE_VERSION, {"input": {"model": model, "artifacts": artifacts}})
    version = data["createVersion"]
    return f"plain HTTP (version {version['number']} {version['status']})"


def registry_class() -> type | None:
    """`modelyard.client.Registry` if another engineer's client is importable yet."""
    try:
        module = importlib.import_module("modelyard.client")
    except ImportError:
        return None
    found = getattr(module, "Registry", None)
    return found if isinstance(found, type) else None


def push_registry(registry: type, url: str, folder: Path, model: str) -> str:
    """`Registry(url, token).push(folder, model=…, progress=False)`; what it says it sent."""
    client = registry(url, ADMIN_SECRET)
    try:
        params = inspect.signature(client.push).parameters
        kwargs: dict[str, Any] = {"model": model} if "model" in params else {}
        for name, value in (("progress", False), ("quiet", True), ("show_progress", False)):
            if name in params:
                kwargs[name] = value
        result = client.push(folder, **kwargs) if "model" in kwargs else client.push(folder, model)
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()
    said = [f"{key} {getattr(result, key):,}" for key in
            ("number", "bytes_sent", "bytes_skipped", "blobs_uploaded", "blobs_skipped")
            if isinstance(getattr(result, key, None), int)]
    return f"modelyard.client.Registry.push ({', '.join(said) or str(result)[:120]})"


def push(server: Server, folder: Path, label: str, registry: type | None) -> PushResult:
    """One push of `folder` through a counting relay, with the server's RSS and CPU."""
    paths = folder_files(folder)
    with client_for(server.url) as client:
        missing = missing_blobs(client, digests_of(paths))
    via = ""
    with CountingRelay(server.port) as relay:

        def action() -> None:
            nonlocal via
            failed = ""
            if registry is not None:
                try:
                    via = push_registry(registry, relay.url, folder, PUSH_MODEL)
                    return
                except Exception as exc:  # a client still being written: say so, measure anyway
                    failed = f" after Registry.push failed ({type(exc).__name__}: {str(exc)[:200]})"
                    print(f"  {failed.strip()}; pushing with plain HTTP instead", flush=True)
            via = push_plain(relay.url, folder, PUSH_MODEL) + failed

        timing = timed(label, sum(p.stat().st_size for p in missing), action, server)
    return PushResult(label, len(paths), sum(p.stat().st_size for p in paths), len(missing),
                      sum(p.stat().st_size for p in missing), relay.sent, relay.received,
                      timing, via)


def change_half(paths: list[Path]) -> None:
    """Rewrite every other file with new random bytes."""
    for path in paths[::2]:
        write_random(path, path.stat().st_size)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything measured."""

    opts: Options
    fs: str
    baselines: list[Timing] = field(default_factory=list)
    served: list[Timing] = field(default_factory=list)
    pushes: list[PushResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end

    @property
    def copy_seconds(self) -> float:
        """The faster copyfile + fsync run: the ratio's denominator."""
        return min(t.seconds for t in self.baselines if t.label.startswith("copyfile"))


def run_baselines(run: Run, src: Path, digest: str, scratch: Path) -> None:
    """sha256, copyfile + fsync, cp + fsync and read+hash+write of the source file."""
    size = run.opts.size
    dst = scratch / "copy.bin"
    run.baselines.append(timed("sha256 pass (read + hash)", size, lambda: check(file_digest(src), digest)))
    run.baselines.append(timed("copyfile + fsync (1st)", size, lambda: copyfile_fsync(src, dst)))
    remove(dst)
    run.baselines.append(timed("cp + fsync", size, lambda: cp_fsync(src, dst)))
    remove(dst)
    run.baselines.append(timed("read + sha256 + write + fsync", size,
                               lambda: check(hash_copy_fsync(src, dst), digest)))
    remove(dst)


def check(got: str, want: str) -> None:
    """RuntimeError unless two digests agree."""
    if got != want:
        raise RuntimeError(f"digest {got} is not {want}")


def run_server_ops(run: Run, server: Server, src: Path, digest: str, scratch: Path) -> None:
    """PUT, GET, PUT of an existing blob, and a resumable upload of the source file."""
    size, dst = run.opts.size, scratch / "download.bin"
    with client_for(server.url) as client:
        _expect(client.get("/healthz"), 200)  # open the connection before timing
        run.served.append(timed("PUT streamed", size, lambda: put_blob(client, src, digest, size), server))
        blob = stored_blob(server, digest)
        run.served.append(timed("GET streamed → file + sha256 + fsync", size,
                                lambda: download(client, digest, dst, size), server))
        remove(dst)
        run.served.append(timed("GET streamed → discard (no hash, no file)", size,
                                lambda: download_discard(client, digest, size), server))
        run.served.append(timed("PUT of an existing blob (hashed, not stored)", size,
                                lambda: put_blob(client, src, digest, size), server))
        blob.unlink()  # so that the resumable upload stores the blob again
        chunk = run.opts.patch_chunk
        patches = -(-size // chunk)
        run.served.append(timed(f"resumable: {patches} PATCH × {chunk // MiB} MiB + finish", size,
                                lambda: resumable_upload(client, src, digest, size, chunk), server))
        check(file_digest(stored_blob(server, digest)), digest)
    left = leftovers(server)
    run.notes.append(f"store tmp/ and uploads/ after the uploads: {', '.join(left) or 'empty'}")


@contextlib.contextmanager
def environ(name: str, value: str) -> Iterator[None]:
    """Set an environment variable of this process for the `with` block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def run_pushes(run: Run, server: Server, scratch: Path) -> None:
    """Push a fresh folder, change half of its files, push again."""
    with environ("XDG_CACHE_HOME", str(scratch / "cache")):  # a client's push state stays in the temp dir
        _push_twice(run, server, scratch)


def _push_twice(run: Run, server: Server, scratch: Path) -> None:
    """The two pushes of `run_pushes`."""
    opts = run.opts
    paths = make_folder(scratch / "push", opts.push_files, opts.push_file_size)
    registry = registry_class()
    run.notes.append("push client: " + ("modelyard.client.Registry found" if registry
                                        else "modelyard.client.Registry not importable; plain HTTP"))
    with client_for(server.url) as client:
        graphql(client, CREATE_MODEL, {"input": {"name": PUSH_MODEL}})
    run.pushes.append(push(server, paths[0].parent, "push 1: all blobs new", registry))
    change_half(paths)
    run.pushes.append(push(server, paths[0].parent, "push 2: half the blobs exist", registry))


def fs_type(path: Path) -> str:
    """The device and filesystem type `path` lives on (longest mount point in /proc/mounts)."""
    best, found = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, found = mount, f"{kind} on {device}"
    return found


def execute(opts: Options, root: Path) -> Run:
    """Generate the file, measure baselines, start the server, measure it, copy again."""
    run = Run(opts, fs_type(root))
    load_before = os.getloadavg()[0]
    src, scratch = root / "source.bin", root / "scratch"
    scratch.mkdir()
    print(f"\nwriting {opts.size / MiB:.0f} MiB of random bytes to {src} ({run.fs}) …", flush=True)
    started = time.perf_counter()
    digest = write_random(src, opts.size)
    print(f"  written in {time.perf_counter() - started:.1f} s: {digest}", flush=True)
    print("\nbaselines (no server):", flush=True)
    run_baselines(run, src, digest, scratch)
    print("\nserver: python -m modelyard.cli serve (separate process) …", flush=True)
    with server_process(root) as server:
        status = proc_status(server.pid)
        print(f"  pid {server.pid} on port {server.port}, RSS {status['VmRSS'] / MiB:.0f} MiB "
              f"after start-up", flush=True)
        run_server_ops(run, server, src, digest, scratch)
        print(f"\npush of {opts.push_files} × {opts.push_file_size / MiB:.0f} MiB:", flush=True)
        run_pushes(run, server, scratch)
    print("\nbaseline again:", flush=True)
    dst = scratch / "copy.bin"
    run.baselines.append(timed("copyfile + fsync (2nd)", opts.size, lambda: copyfile_fsync(src, dst)))
    remove(dst)
    run.load = (load_before, os.getloadavg()[0])
    return run


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / MiB:.1f}"


def rows(run: Run) -> list[list[str]]:
    """Cells of the main table: baselines, then server operations."""
    out = []
    for t in [*run.baselines, *run.served]:
        ratio = t.seconds / run.copy_seconds
        cells = [t.label, f"{t.seconds:.2f}", f"{t.mib_s:.0f}", f"{ratio:.2f}×"]
        if t.memory is None:
            cells += ["-", "-", "-", "-"]
        else:
            m = t.memory
            cells += [_mib(m.before), _mib(m.peak), f"+{_mib(m.delta)}", f"{t.server_cpu:.2f}"]
        out.append(cells)
    return out


HEAD = ["operation", "s", "MiB/s", "× copy", "server RSS before MiB", "peak MiB", "Δ MiB",
        "server CPU s"]
PUSH_HEAD = ["push", "files", "blobs missing", "blob MiB needed", "MiB sent on the wire",
             "wire − blobs KiB", "% of folder", "s", "server RSS peak MiB", "Δ MiB"]


def push_rows(run: Run) -> list[list[str]]:
    """Cells of the push table."""
    out = []
    for p in run.pushes:
        m = p.timing.memory
        assert m is not None
        out.append([p.label, str(p.files), str(p.missing), _mib(p.missing_bytes), _mib(p.wire_sent),
                    f"{(p.wire_sent - p.missing_bytes) / 1024:.1f}", f"{100 * p.wire_sent / p.folder_bytes:.1f}%", f"{p.timing.seconds:.2f}",
                    _mib(m.peak), f"+{_mib(m.delta)}"])
    return out


def plain_table(head: list[str], body: list[list[str]]) -> str:
    """Fixed-width columns, the first left-aligned."""
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(head), "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(line, body)])


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    """A GitHub markdown table, numbers right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in body)])


def verdicts(run: Run) -> list[str]:
    """What the figures say about memory and where the time goes."""
    out = []
    size = run.opts.size
    flat = max(64 * MiB, size // 8)
    for t in run.served + [p.timing for p in run.pushes]:
        m = t.memory
        assert m is not None
        if m.delta > flat:
            out.append(f"SUSPICIOUS: server RSS grew by {_mib(m.delta)} MiB during '{t.label}' "
                       f"({100 * m.delta / max(t.nbytes, 1):.0f}% of the bytes moved): something "
                       "buffers large parts of the body")
    if not out:
        worst = max((t.memory.delta for t in run.served if t.memory), default=0)
        out.append(f"memory: the server's RSS grew by at most {_mib(worst)} MiB while moving "
                   f"{size / MiB:.0f} MiB (flat: bounded by chunks, not by the file)")
    sha = next(t for t in run.baselines if t.label.startswith("sha256"))
    put = next(t for t in run.served if t.label == "PUT streamed")
    out.append(f"time: hashing alone takes {sha.seconds:.2f} s ({100 * sha.seconds / put.seconds:.0f}% "
               f"of the PUT); the copy baseline {run.copy_seconds:.2f} s")
    if not all(t.memory and t.memory.hwm_used for t in run.served):
        out.append("note: VmHWM could not be reset, so peaks are from the 2 ms samples only")
    return out


def environment() -> str:
    """Machine and software, so the figures can be compared."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    return (f"modelyard {git_state()}; Python {platform.python_version()}, uvicorn "
            f"{uvicorn.__version__}, httpx {httpx.__version__}; {machine()}, {memory:.0f} GiB RAM")


def report(run: Run) -> str:
    """Both tables, the verdicts and the method, as printed at the end."""
    opts = run.opts
    title = (f"{opts.size / MiB:.0f} MiB file on {run.fs}; server = `python -m modelyard.cli serve` "
             "(separate process, local blob store, SQLite), client = httpx in the benchmark "
             "process, both on loopback; source file warm in the page cache; `os.sync()` before "
             "each operation; ratio = seconds / the faster copyfile + fsync run "
             f"({run.copy_seconds:.2f} s); RSS sampled every {SAMPLE_SECONDS * 1000:.0f} ms + VmHWM; "
             "server CPU = user + system of all its threads, in 10 ms ticks; load average "
             f"{run.load[0]:.2f} → {run.load[1]:.2f} on {os.cpu_count()} CPUs")
    main_rows, push_body = rows(run), push_rows(run)
    parts = [title, "", plain_table(HEAD, main_rows), "", plain_table(PUSH_HEAD, push_body), ""]
    parts += [f"push via: {p.via}" for p in run.pushes]
    parts += run.notes + verdicts(run)
    parts += ["", markdown_table(HEAD, main_rows), "", markdown_table(PUSH_HEAD, push_body)]
    return "\n".join(parts)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl+C, so temp dirs and the server are cleaned up."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything and print the tables; clean up on success, failure and Ctrl+C."""
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    print(f"$ {command_line()}\n{environment()}", flush=True)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="modelyard-bench-blobs-", dir=opts.parent_dir) as tmp:
            run = execute(opts, Path(tmp))
    except KeyboardInterrupt:
        print("\ninterrupted: the server is stopped and the temp dir removed", file=sys.stderr)
        return 130
    print(f"\n{report(run)}")
    print(f"\nTotal {time.perf_counter() - started:.0f} s. Command: `{command_line()}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
