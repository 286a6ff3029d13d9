"""Fetching a version's artifacts: Range resume from `<file>.partial`, sha256 checked as bytes
stream, atomic rename into place.

A blob answered with a redirect (S3 presigned URLs) is fetched from there WITHOUT the token: the
URL carries its own signature, and the token must never leave for another host (S3 also refuses
a request that is authenticated twice).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelyard.client.connection import RETRY_STATUSES, Connection, describe
from modelyard.client.errors import IntegrityError, TransferError, UsageError, from_response
from modelyard.client.files import CHUNK
from modelyard.client.progress import Progress
from modelyard.client.workers import Cancelled

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


@dataclass
class Fetched:
    """Bytes fetched from the server and bytes reused from `.partial` files or identical files."""

    bytes_fetched: int = 0
    bytes_reused: int = 0
    refetched: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, fetched: int = 0, reused: int = 0) -> None:
        with self._lock:
            self.bytes_fetched += fetched
            self.bytes_reused += reused


def target_path(dest: Path, path: str) -> Path:
    """Where artifact `path` goes under `dest`; refuses paths that would leave it."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise UsageError(f"refusing artifact path {path!r}: it would leave {dest}")
    return dest.joinpath(*parts)


def hash_prefix(path: Path, limit: int) -> tuple[Any, int]:
    """A sha256 object fed the first bytes of `path` (at most `limit`), and how many it read."""
    hasher = hashlib.sha256()
    read = 0
    with path.open("rb") as f:
        while read < limit and (chunk := f.read(min(CHUNK, limit - read))):
            hasher.update(chunk)
            read += len(chunk)
    return hasher, read


class Downloader:
    """Fetches blobs into files, resuming and verifying."""

    def __init__(self, conn: Connection, fetched: Fetched, progress: Progress, stop: threading.Event) -> None:
        self.conn = conn
        self.fetched = fetched
        self.progress = progress
        self.stop = stop

    def fetch(self, artifact: dict[str, Any], dest: Path) -> Path:
        """Put the artifact at its path under `dest`; the file's path."""
        path, digest, size = str(artifact["path"]), str(artifact["digest"]), int(artifact["size"])
        target = target_path(dest, path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and target.stat().st_size == size:
                hasher, _ = hash_prefix(target, size)
                if f"sha256:{hasher.hexdigest()}" == digest:
                    self.fetched.add(reused=size)
                    self.progress.advance(size)
                    return target
            partial = target.with_name(target.name + ".partial")
            if self._into(partial, digest, size, path):
                return self._publish(partial, target)
            # The finished bytes did not match: a corrupt .partial most likely. Once more, from zero.
            self.fetched.refetched.append(path)
            self.progress.advance(-size)
            partial.unlink(missing_ok=True)
            if self._into(partial, digest, size, path):
                return self._publish(partial, target)
            partial.unlink(missing_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise IntegrityError(f"INTEGRITY: {path}: the server's bytes do not hash to {digest}")

    def _publish(self, partial: Path, target: Path) -> Path:
        with partial.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        return target

    def _into(self, partial: Path, digest: str, size: int, path: str) -> bool:
        """Complete `partial` to `size` bytes and say whether they hash to `digest`."""
        have = partial.stat().st_size if partial.exists() else 0
        if have > size:
            partial.unlink()
            have = 0
        hasher, have = hash_prefix(partial, have) if have else (hashlib.sha256(), 0)
        reused = have
        self.fetched.add(reused=have)
        self.progress.advance(have)
        counted = have  # this file's share of the progress bar
        failures = 0
        while have < size:
            try:
                with self._open(digest, have, path) as response:
                    if response.status_code == 200 and have:
                        self.fetched.add(reused=-have)  # the range was ignored: from the start
                        hasher, have = hashlib.sha256(), 0
                    with partial.open("r+b" if have else "wb") as f:
                        f.truncate(have)
                        f.seek(have)
                        for chunk in response.iter_bytes(CHUNK):
                            if self.stop.is_set():
                                raise Cancelled()
                            chunk = chunk[: size - have]
                            f.write(chunk)
                            hasher.update(chunk)
                            have += len(chunk)
                            self.fetched.add(fetched=len(chunk))
                            self.progress.advance(have - counted)
                            counted = have
                            if have >= size:
                                break
                if have < size:
                    raise httpx.RemoteProtocolError("the answer ended early")
            except (httpx.TransportError, _Retry) as exc:
                failures += 1
                if failures > self.conn.retries:
                    raise TransferError(f"download of {path}: {describe(exc) if isinstance(exc, httpx.TransportError) else exc}; "
                                        f"run it again to resume at byte {have}") from exc
                self.conn.pause(failures)
                have = partial.stat().st_size if partial.exists() else 0
                hasher, have = hash_prefix(partial, have) if have else (hashlib.sha256(), 0)
                self.progress.advance(have - counted)
                counted = have
        if f"sha256:{hasher.hexdigest()}" == digest:
            return True
        self.fetched.add(reused=-reused)
        return False

    @contextlib.contextmanager
    def _open(self, digest: str, start: int, path: str) -> Iterator[httpx.Response]:
        """The streaming answer for the blob from byte `start`, following redirects without the token."""
        what = f"download of {path}"
        headers = {"Range": f"bytes={start}-"} if start else {}
        request = self.conn.http.build_request("GET", f"/api/blobs/{digest}", headers=headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = self.conn.http.send(request, stream=True)
            if response.status_code not in REDIRECTS:
                break
            location = response.headers.get("location", "")
            response.close()
            request = self.conn.http.build_request("GET", request.url.join(location), headers=headers)
            request.headers.pop("Authorization", None)  # presigned: the URL is the credential
        else:
            raise TransferError(f"{what}: more than {MAX_REDIRECTS} redirects")
        try:
            if response.status_code in RETRY_STATUSES:
                raise _Retry(f"HTTP {response.status_code}")
            if response.status_code not in (200, 206):
                response.read()
                raise from_response(response, what)
            if response.status_code == 206 and not response.headers.get("content-range", "").startswith(f"bytes {start}-"):
                raise IntegrityError(f"INTEGRITY: {what}: asked for bytes {start}-, got {response.headers.get('content-range')}")
            yield response
        finally:
            response.close()


class _Retry(Exception):
    """A 5xx answer: try again."""
