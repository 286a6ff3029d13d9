"""The local cache: `blobs/sha256/<hex>` shared by all versions, one manifest per pulled version.

    <home>/blobs/sha256/<hex>            verified bytes, never rewritten
    <home>/blobs/sha256/<hex>.partial    an unfinished download, resumed by the next pull
    <home>/manifests/<name>/<number>.json
    <home>/manifests/.changed             replaced on every manifest write or removal (see `stamp`)
    <home>/quarantine/<hex>              blobs `verify` found corrupt
    <home>/locks/<hex>                   held while a process downloads that blob
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from modelyard_agent.errors import InvalidInputError, UsageError
from modelyard_agent.manifest import Manifest
from modelyard_agent.refs import Ref, check_digest

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """`sha256:<hex>` of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Cache:
    """Files under the agent home; every write is atomic."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.blob_dir = home / "blobs" / "sha256"
        self.manifest_dir = home / "manifests"
        self.quarantine_dir = home / "quarantine"

    def inside(self, path: Path) -> Path:
        """`path` if, symlinks and `..` resolved, it lies under the home: checked before every
        write whose path holds a name that came from a registry or an archive."""
        if not path.resolve().is_relative_to(self.home.resolve()):
            raise InvalidInputError(f"{path} is outside the cache {self.home}; refusing to write it")
        return path

    def blob(self, digest: str) -> Path:
        """Where a verified blob lives."""
        return self.blob_dir / check_digest(digest).removeprefix("sha256:")

    def partial(self, digest: str) -> Path:
        """Where an unfinished download of the blob lives."""
        return self.blob(digest).with_suffix(".partial")

    @contextlib.contextmanager
    def locked(self, digest: str) -> Iterator[None]:
        """Hold the blob's download lock: two pulls in two terminals never write one `.partial`."""
        lock = self.inside(self.home / "locks" / check_digest(digest).removeprefix("sha256:"))
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released by the kernel even on SIGKILL
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def has(self, digest: str, size: int) -> bool:
        """Whether the blob is cached with its full size (contents are checked by `verify`)."""
        path = self.blob(digest)
        return path.is_file() and path.stat().st_size == size

    def manifest_path(self, name: str, number: int) -> Path:
        """The manifest file of `name:number`."""
        return self.manifest_dir.joinpath(*name.split("/")) / f"{number}.json"

    def manifests(self) -> Iterator[Manifest]:
        """Every pulled version, by name then number."""
        if not self.manifest_dir.is_dir():
            return
        found = [Manifest.from_json(p.read_text(), str(p)) for p in self.manifest_dir.rglob("*.json")]
        yield from sorted(found, key=lambda m: (m.name, m.number))

    def save(self, manifest: Manifest) -> None:
        """Write a manifest atomically; written last, so it only ever names cached blobs."""
        path = self.inside(self.manifest_path(manifest.name, manifest.number))
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: two pulls of one version may save at the same moment.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("w") as f:
            f.write(manifest.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
        self._changed()

    def _changed(self) -> None:
        """Replace the stamp file: readers holding a snapshot of the manifests see it is stale."""
        self.manifest_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_dir / f".changed.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(os.urandom(8))
        os.replace(tmp, self.manifest_dir / ".changed")

    def stamp(self) -> tuple[int, int] | None:
        """Identity of the stamp file (inode, mtime): it changes whenever a manifest is written or
        removed, so a reader can keep the manifests it read while the stamp stays the same.
        Caches written before the stamp existed get one now."""
        path = self.manifest_dir / ".changed"
        try:
            st = path.stat()
        except FileNotFoundError:
            if not self.manifest_dir.is_dir():
                return None
            self._changed()
            st = path.stat()
        return st.st_ino, st.st_mtime_ns

    def find(self, ref: Ref) -> Manifest | None:
        """The cached version a ref names, as far as the cache can tell without the server."""
        candidates = [m for m in self.manifests() if m.name == ref.name]
        if ref.number is not None:
            hits = [m for m in candidates if m.number == ref.number]
        elif ref.digest is not None:
            hits = [m for m in candidates if m.manifest_digest == ref.digest]
        else:
            hits = [m for m in candidates if ref.text in m.pulled_as]
        return max(hits, key=lambda m: m.pulled_at) if hits else None

    def require(self, ref: Ref) -> Manifest:
        """The cached version a ref names, or a clear error."""
        found = self.find(ref)
        if found is None:
            raise UsageError(f"{ref.text} is not in the cache ({self.home}); pull it first")
        return found

    def remove(self, manifest: Manifest) -> None:
        """Forget a pulled version; its blobs stay until `gc`."""
        self.manifest_path(manifest.name, manifest.number).unlink(missing_ok=True)
        self._changed()

    def complete(self, manifest: Manifest) -> bool:
        """Whether every blob of the version is cached."""
        return all(self.has(a.digest, a.size) for a in manifest.artifacts)
