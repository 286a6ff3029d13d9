"""The files of a folder to push: found, named by POSIX paths, hashed in fixed-size chunks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelyard.client.errors import UsageError

CHUNK = 1024 * 1024
"""Bytes read at a time when hashing or sending a file (memory stays flat)."""


@dataclass(frozen=True)
class LocalFile:
    """A file to push: its artifact path, where it is on disk and its stat fingerprint."""

    path: str
    source: Path
    size: int
    mtime_ns: int
    inode: int


def skipped(name: str) -> bool:
    """Hidden files and folders (push state, `.git`) and unfinished downloads are not pushed."""
    return name.startswith(".") or name.endswith(".partial")


def scan(folder: Path) -> list[LocalFile]:
    """Every regular file under `folder` (symlinks followed), by artifact path."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder" if folder.exists() else f"folder {folder} does not exist")
    found: list[LocalFile] = []

    def fail(exc: OSError) -> None:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from exc

    for root, dirs, names in os.walk(folder, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not skipped(d))
        base = Path(root)
        for name in sorted(names):
            if skipped(name):
                continue
            source = base / name
            try:
                st = source.stat()
            except OSError as exc:
                raise UsageError(f"cannot read {source}: {exc.strerror}") from exc
            if not source.is_file():
                continue  # sockets, fifos, dangling links
            rel = source.relative_to(folder).parts
            found.append(LocalFile("/".join(rel), source, st.st_size, st.st_mtime_ns, st.st_ino))
    return sorted(found, key=lambda f: f.path)


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """`sha256:<hex>` of the file, read in CHUNK pieces (hashlib releases the GIL: threads help)."""
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    return f"sha256:{hasher.hexdigest()}"
