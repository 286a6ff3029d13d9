"""Pull: resolve a ref once, fetch the missing blobs in parallel with Range resume, verify, save.

Each blob streams through one pass (`Sink`): the answer is read into a few reused buffers and
written at once, while a second thread hashes what came before and a third has the kernel write
it to disk every FLUSH_EVERY bytes; hashlib, writes and fdatasync let go of the GIL. A large
blob then moves at about the speed of the slower of the network and sha256, not of their sum,
and the fsync before the rename finds little left to write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from modelyard_agent.cache import CHUNK, Cache, fsync_dir
from modelyard_agent.client import Client
from modelyard_agent.config import Settings
from modelyard_agent.errors import (
    DiskFullError,
    IntegrityError,
    ServerError,
    TransferError,
    UsageError,
)
from modelyard_agent.manifest import Artifact, Manifest
from modelyard_agent.progress import Progress
from modelyard_agent.refs import parse
from modelyard_agent.transport import Answer, ConnectionLost

WORKERS = 4
RETRIES = 3
# Reads of up to 1 MiB make a GiB a thousand Python calls; on a slow link they shrink (to 64 KiB)
# so that progress and cancellation still move every quarter of a second or so.
BUFFER = 1 << 20
MIN_READ = 64 << 10
SLOW_READ = 0.25
# Buffers a large blob's download keeps in flight (8 MiB): with 4, the reader waited for the hasher.
BUFFERS = 8
# Blobs larger than this get the hashing and flushing threads; smaller ones are done inline.
THREADED = 8 << 20
# Early writeback every 32 MiB leaves the fsync before the rename ~10 ms instead of ~250 ms for
# 500 MiB here; more often gained little and costs a journal commit each on slower disks.
FLUSH_EVERY = 32 << 20


@dataclass
class PullResult:
    """What a pull did, in bytes."""

    manifest: Manifest
    bytes_fetched: int = 0
    bytes_resumed: int = 0
    blobs_fetched: int = 0
    blobs_cached: int = 0
    offline: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, fetched: int = 0, resumed: int = 0) -> None:
        with self._lock:
            self.bytes_fetched += fetched
            self.bytes_resumed += resumed

    def summary(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {"ref": self.manifest.ref, "manifest_digest": self.manifest.manifest_digest,
                "bytes_fetched": self.bytes_fetched, "bytes_resumed": self.bytes_resumed,
                "blobs_fetched": self.blobs_fetched, "blobs_cached": self.blobs_cached,
                "offline": self.offline}


def check_space(cache: Cache, missing: list[Artifact], what: str = "the pull") -> None:
    """Refuse before starting when the cache's filesystem cannot hold what is left to write."""
    need = sum(a.size - _partial_size(cache, a) for a in missing)
    free = shutil.disk_usage(cache.blob_dir).free
    if need > free:
        raise DiskFullError(f"not enough disk space in {cache.home}: {what} needs {need} bytes, "
                            f"{free} are free")


def _partial_size(cache: Cache, a: Artifact) -> int:
    p = cache.partial(a.digest)
    return min(p.stat().st_size, a.size) if p.exists() else 0


class Puller:
    """Fetches blobs into the cache, resuming and verifying each."""

    def __init__(self, cache: Cache, client: Client, result: PullResult, progress: Progress) -> None:
        self.cache, self.client, self.result, self.progress = cache, client, result, progress
        self.stop = threading.Event()

    def fetch(self, a: Artifact) -> None:
        """Put one verified blob in the cache, unless another process did meanwhile."""
        with self.cache.locked(a.digest):
            if not self.cache.has(a.digest, a.size):
                self._fetch(a)

    def _fetch(self, a: Artifact) -> None:
        partial = self.cache.inside(self.cache.partial(a.digest))
        try:
            if not self._into(partial, a):
                # The finished bytes did not match: most likely a corrupt .partial. Once more, from zero.
                partial.unlink(missing_ok=True)
                if not self._into(partial, a):
                    partial.unlink(missing_ok=True)
                    raise IntegrityError(f"{a.path}: the server's bytes do not hash to {a.digest}")
            with partial.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, self.cache.blob(a.digest))
            fsync_dir(self.cache.blob_dir)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"disk full while writing {a.path} in {self.cache.home}; "
                                    "free some space and pull again to resume") from exc
            raise UsageError(f"cannot write {partial}: {exc.strerror or exc}") from exc

    def _into(self, partial: os.PathLike[str], a: Artifact) -> bool:
        """Complete `partial` to the blob's size; whether it hashes to the digest."""
        path = os.fspath(partial)
        have = os.path.getsize(path) if os.path.exists(path) else 0
        if have > a.size:
            os.unlink(path)
            have = 0
        hasher = hashlib.sha256()
        if have:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
        self.result.add(resumed=have)
        self.progress.advance(have)
        failures = 0
        while have < a.size:
            if self.stop.is_set():
                raise TransferError("pull cancelled")
            try:
                with self.client.blob(a.digest, have) as answer:
                    if answer.status == 200 and have:
                        # The server ignored the range: start over rather than append twice.
                        self.progress.advance(-have)
                        self.result.add(resumed=-have)
                        hasher, have = hashlib.sha256(), 0
                    have = self._stream(answer, path, hasher, have, a.size)
            except ConnectionLost as exc:
                have = os.path.getsize(path) if os.path.exists(path) else 0  # all that was counted
                failures += 1
                if failures > RETRIES:
                    raise TransferError(f"download of {a.path} failed ({exc}); "
                                        f"run the pull again to resume at byte {have}") from exc
                self.stop.wait(0.2 * 2 ** failures)
        return f"sha256:{hasher.hexdigest()}" == a.digest

    def _stream(self, answer: Answer, path: str, hasher: Any, have: int, size: int) -> int:
        """Append the answer's bytes to the file at `path` (`have` bytes long) up to `size`; the
        new length. When the answer breaks off, the file and the hasher hold every byte counted."""
        with open(path, "r+b" if have else "wb") as f:
            if have:
                f.truncate(have)
                f.seek(have)
            with Sink(f, hasher, threaded=size - have > THREADED) as sink:
                step = BUFFER
                while have < size:
                    if self.stop.is_set():
                        raise TransferError("pull cancelled")
                    buffer = sink.buffer()
                    began = time.monotonic()
                    n = answer.readinto(buffer[: min(step, size - have)])
                    if not n:
                        raise ConnectionLost("the answer ended early")
                    slow = time.monotonic() - began > SLOW_READ
                    step = max(MIN_READ, step // 2) if slow else min(BUFFER, step * 2)
                    sink.put(buffer, n)
                    have += n
                    self.result.add(fetched=n)
                    self.progress.advance(n)
        return have


class Sink:
    """Where a download's bytes go: `put` writes them to the file in the reading thread (so a
    write error is raised there), then with `threaded` a thread of its own hashes them and
    another calls fdatasync every FLUSH_EVERY bytes; without, they are hashed at once. Leaving
    the block waits for both. `buffer()` hands out a buffer to fill, once it is hashed."""

    def __init__(self, file: IO[bytes], hasher: Any, *, threaded: bool) -> None:
        self.file, self.hasher = file, hasher
        self.free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(BUFFERS if threaded else 1):
            self.free.put(memoryview(bytearray(BUFFER)))
        self.hashing: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        self.flushing: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self.unflushed = 0
        self.threads = [threading.Thread(target=self._hash, daemon=True),
                        threading.Thread(target=self._flush, daemon=True)] if threaded else []

    def __enter__(self) -> Sink:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.threads:
            self.hashing.put(None)
            self.flushing.put(False)
            for thread in self.threads:
                thread.join()

    def buffer(self) -> memoryview:
        """A buffer to fill next."""
        return self.free.get()

    def put(self, buffer: memoryview, n: int) -> None:
        """Take the first `n` bytes of a buffer from `buffer()`."""
        self.file.write(buffer[:n])
        if not self.threads:
            self.hasher.update(buffer[:n])
            self.free.put(buffer)
            return
        self.hashing.put((buffer, n))
        self.unflushed += n
        if self.unflushed >= FLUSH_EVERY:
            self.unflushed = 0
            self.file.flush()
            self.flushing.put(True)

    def _hash(self) -> None:
        while (item := self.hashing.get()) is not None:
            buffer, n = item
            try:
                self.hasher.update(buffer[:n])
            finally:
                self.free.put(buffer)

    def _flush(self) -> None:
        while self.flushing.get():
            # Only early writeback: durability is the fsync before the rename, which reports errors.
            with contextlib.suppress(OSError):
                os.fdatasync(self.file.fileno())


def pull(settings: Settings, text: str, progress_stream: Any = None) -> PullResult:
    """Pull a ref into the cache (or find it there, offline)."""
    ref = parse(text)
    cache = Cache(settings.home)
    if settings.offline:
        cached = cache.require(ref)
        if not cache.complete(cached):
            raise UsageError(f"{text}: some blobs are missing from the cache and --offline forbids fetching them")
        return PullResult(cached, blobs_cached=len(cached.artifacts), offline=True)
    with Client(settings.server, settings.token) as client:
        manifest = client.version(ref)
        if manifest is None:
            raise ServerError(f"unknown ref {text!r} on {settings.server}")
        cache.blob_dir.mkdir(parents=True, exist_ok=True)
        unique = list({a.digest: a for a in manifest.artifacts}.values())
        missing = [a for a in unique if not cache.has(a.digest, a.size)]
        result = PullResult(manifest, blobs_cached=len(unique) - len(missing), blobs_fetched=len(missing))
        check_space(cache, missing)
        progress = Progress(sum(a.size for a in missing), manifest.ref, progress_stream)
        puller = Puller(cache, client, result, progress)
        try:
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                futures = [pool.submit(puller.fetch, a) for a in missing]
                try:
                    for fut in futures:
                        fut.result()
                except BaseException:
                    puller.stop.set()  # the others stop at their next chunk; their .partial files stay
                    raise
        finally:
            progress.close()
    old = cache.find(parse(manifest.ref))
    if old is not None and old.manifest_digest == manifest.manifest_digest:
        manifest.pulled_as = sorted(set(old.pulled_as) | {text})
    manifest.pulled_at = datetime.now(UTC).isoformat(timespec="seconds")
    cache.save(manifest)
    if ref.movable:
        # A movable ref names one cached version at a time: the one pulled last.
        for other in cache.manifests():
            if other.number != manifest.number and other.name == manifest.name and text in other.pulled_as:
                other.pulled_as.remove(text)
                cache.save(other)
    return result
