"""Getting a folder's bytes to the server: hash every file, ask which blobs exist, send the rest.

Small blobs go in one `PUT /api/blobs/<digest>`; large ones through a resumable upload in parts
(`POST /api/uploads`, `PATCH` at `Upload-Offset`, `PUT ?digest=`). After a network error or a 5xx
the client asks the server how much arrived (`HEAD`) and goes on from there; the upload's location
is saved in the push state, so a push that was killed resumes it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelyard.client.connection import RETRY_STATUSES, Connection, describe
from modelyard.client.errors import InvalidError, TransferError, UsageError, from_response
from modelyard.client.files import CHUNK, LocalFile, sha256_file
from modelyard.client.progress import Progress
from modelyard.client.state import PushState
from modelyard.client.workers import Cancelled, run_all

MiB = 1024 * 1024
LARGE = 64 * MiB
"""Blobs this big or bigger go through a resumable upload."""
PART = 16 * MiB
"""Bytes per PATCH of a resumable upload."""
OFFSET = "Upload-Offset"


@dataclass
class Sent:
    """What reached the server (unique blobs; a file pushed twice under two names counts once)."""

    bytes_sent: int = 0
    bytes_skipped: int = 0
    bytes_resumed: int = 0
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_sent(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def add_resumed(self, n: int) -> None:
        with self._lock:
            self.bytes_resumed += n


@dataclass(frozen=True)
class Folder:
    """A folder whose blobs are all on the server: its artifacts and what it took."""

    artifacts: list[tuple[str, str]]
    sent: Sent


class _Track:
    """One blob's share of the progress bar; rewinds when a retry loses bytes."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.at = 0

    def add(self, n: int) -> None:
        self.at += n
        self.progress.advance(n)

    def to(self, n: int) -> None:
        self.progress.advance(n - self.at)
        self.at = n


def check_paths(files: list[LocalFile]) -> None:
    """Refuse, before any byte moves, paths the server would refuse."""
    # The server's own rule, imported late: its module pulls in the ORM (~0.2 s).
    from modelyard.catalog.artifacts import check_path

    for f in files:
        check_path(f.path)


def blob_exists(conn: Connection, digest: str) -> bool:
    """Whether the server holds the blob (HEAD)."""
    what = f"checking blob {digest}"
    response = conn.call(lambda: conn.http.head(f"/api/blobs/{digest}"), what)
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    raise from_response(response, what)


class Uploader:
    """Sends blobs that the server lacks, counting bytes into `sent` and the progress bar."""

    def __init__(self, conn: Connection, state: PushState, sent: Sent, progress: Progress,
                 stop: threading.Event, *, large: int = LARGE, part: int = PART) -> None:
        self.conn = conn
        self.state = state
        self.sent = sent
        self.progress = progress
        self.stop = stop
        self.large = large
        self.part = part

    def upload(self, file: LocalFile, digest: str) -> None:
        """Store `file` under `digest`, in one request or resumably."""
        try:
            if file.size >= self.large:
                self._resumable(file, digest)
            else:
                self._single(file, digest)
        except InvalidError as exc:
            if "digest mismatch" in exc.message:
                exc.message = f"{exc.message} ({file.path} changed while it was pushed: push again)"
                exc.args = (exc.message,)
            raise

    def _body(self, file: LocalFile, start: int, end: int, track: _Track) -> Iterator[bytes]:
        with file.source.open("rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                if self.stop.is_set():
                    raise Cancelled()
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise UsageError(f"{file.path} shrank while it was pushed: push again")
                left -= len(chunk)
                self.sent.add_sent(len(chunk))
                track.add(len(chunk))
                yield chunk

    def _single(self, file: LocalFile, digest: str) -> None:
        track = _Track(self.progress)
        headers = {"Content-Length": str(file.size), "Content-Type": "application/octet-stream"}

        def send() -> httpx.Response:
            track.to(0)
            return self.conn.http.put(f"/api/blobs/{digest}", content=self._body(file, 0, file.size, track),
                                      headers=headers)

        what = f"upload of {file.path}"
        response = self.conn.call(send, what)
        if response.status_code != 201:
            raise from_response(response, what)

    def _start(self, digest: str, what: str) -> str:
        response = self.conn.call(lambda: self.conn.http.post("/api/uploads"), what)
        if response.status_code != 201:
            raise from_response(response, what)
        location = str(response.json()["location"])
        self.state.set_upload(self.conn.url, digest, location)
        return location

    def _held(self, location: str, what: str) -> int | None:
        """Bytes the upload holds; None when the server no longer knows it."""
        response = self.conn.call(lambda: self.conn.http.head(location), what)
        if response.status_code == 404:
            return None
        if response.status_code != 204 or not response.headers.get(OFFSET, "").isdigit():
            raise from_response(response, what)
        return int(response.headers[OFFSET])

    def _resumable(self, file: LocalFile, digest: str) -> None:
        what = f"upload of {file.path}"
        track = _Track(self.progress)
        location = self.state.upload(self.conn.url, digest)
        held = self._held(location, what) if location else None
        if location is None or held is None or held > file.size:
            location, held = self._start(digest, what), 0
        offset = resumed = held
        self.sent.add_resumed(resumed)
        track.to(offset)
        failures = busy = 0

        def restart() -> tuple[str, int]:
            """A new upload from byte 0: the server lost the old one, or it stays locked."""
            nonlocal resumed
            self.sent.add_resumed(-resumed)
            resumed = 0
            return self._start(digest, what), 0

        def failed(reason: str) -> None:
            nonlocal failures
            failures += 1
            if failures > self.conn.retries:
                raise TransferError(f"{what}: {reason}, {failures} times; push again to resume at byte {offset}")
            self.conn.pause(failures)

        # After a break, an earlier PATCH may still hold the upload on the server, and a PATCH
        # refused as busy has its whole body sent for nothing: probe with an empty one first.
        probe = resumed > 0
        while offset < file.size:
            end = offset if probe else min(offset + self.part, file.size)
            headers = {OFFSET: str(offset), "Content-Length": str(end - offset),
                       "Content-Type": "application/offset+octet-stream"}
            try:
                response = self.conn.http.patch(location, content=self._body(file, offset, end, track), headers=headers)
            except httpx.TransportError as exc:
                failed(describe(exc))
                response = None
            if response is not None and response.status_code == 204:
                offset = int(response.headers.get(OFFSET, end))
                failures = busy = 0
                probe = False
            elif response is not None and response.status_code == 404:
                location, offset = restart()  # the server dropped it
                probe = False
            elif response is not None and response.status_code == 416:
                # Not where the server is: it says where (or HEAD does). The same offset again
                # means an earlier PATCH that broke off is still being written: wait for it. One
                # whose client vanished without a word may hold the upload for good: start anew.
                raw = response.headers.get(OFFSET, "")
                held = int(raw) if raw.isdigit() else self._held(location, what)
                busy = busy + 1 if held == offset else 0
                probe = busy > 0
                if held is None or busy > self.conn.retries:
                    (location, offset), busy, probe = restart(), 0, False
                else:
                    if busy:
                        self.conn.pause(busy)
                    offset = held
            elif response is None or response.status_code in RETRY_STATUSES:
                if response is not None:
                    failed(f"HTTP {response.status_code}")
                held = self._held(location, what)
                location, offset = (location, held) if held is not None else restart()
                probe = held is not None
            else:
                raise from_response(response, what)
            track.to(offset)
        self._finish(file, digest, location, what)

    def _finish(self, file: LocalFile, digest: str, location: str, what: str) -> None:
        # The server hashes every staged byte before answering: allow ~50 MB/s, never less than usual.
        base = self.conn.http.timeout
        timeout = httpx.Timeout(base.connect, read=max(base.read or 0, file.size / 50e6), write=base.write,
                                pool=base.pool)
        response = self.conn.call(
            lambda: self.conn.http.put(location, params={"digest": digest}, timeout=timeout), what
        )
        if response.status_code == 404 and blob_exists(self.conn, digest):
            response.close()  # an earlier finish got through but its answer was lost
        elif response.status_code != 201:
            if response.status_code == 400:
                self.state.set_upload(self.conn.url, digest, None)  # discarded by the server
            raise from_response(response, what)
        self.state.set_upload(self.conn.url, digest, None)


def upload_folder(conn: Connection, folder: Path, files: list[LocalFile], *, parallel: int,
                  progress: bool, large: int = LARGE, part: int = PART) -> Folder:
    """Hash `files` (found in `folder` by `scan`) and upload the blobs the server lacks."""
    state = PushState(folder)
    state.keep({f.path for f in files})
    stop = threading.Event()
    digests = hash_files(files, state, parallel, progress, stop)
    state.save()
    unique: dict[str, LocalFile] = {}
    for f in files:
        unique.setdefault(digests[f.path], f)
    sent = Sent()
    present = run_all(lambda digest: blob_exists(conn, digest), list(unique), parallel, stop)
    missing = [(d, f) for (d, f), there in zip(unique.items(), present, strict=True) if not there]
    sent.blobs_skipped = len(unique) - len(missing)
    sent.bytes_skipped = sum(f.size for (d, f), there in zip(unique.items(), present, strict=True) if there)
    total = sum(f.size for _, f in missing)
    with Progress("uploading", total, enabled=progress and total > 0) as bar:
        uploader = Uploader(conn, state, sent, bar, stop, large=large, part=part)
        run_all(lambda item: uploader.upload(item[1], item[0]), missing, parallel, stop)
    sent.blobs_uploaded = len(missing)
    return Folder([(f.path, digests[f.path]) for f in files], sent)


def hash_files(files: list[LocalFile], state: PushState, parallel: int, progress: bool,
               stop: threading.Event) -> dict[str, str]:
    """Digests by artifact path: remembered ones reused, the rest hashed on `parallel` threads."""
    digests = {f.path: d for f in files if (d := state.digest(f)) is not None}
    todo = [f for f in files if f.path not in digests]
    with Progress("hashing", sum(f.size for f in todo), enabled=progress and bool(todo)) as bar:

        def one(file: LocalFile) -> str:
            if stop.is_set():
                raise Cancelled()
            started = time.time_ns()
            digest = sha256_file(file.source, bar.advance)
            state.remember(file, digest, started)
            return digest

        for file, digest in zip(todo, run_all(one, todo, parallel, stop), strict=True):
            digests[file.path] = digest
    return digests
