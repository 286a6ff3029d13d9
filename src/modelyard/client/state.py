"""What a push remembers between runs: file digests and the locations of unfinished uploads.

Kept in `<folder>/.modelyard-push.json` (a hidden file, so never pushed itself), or, when the
folder is read-only, in `$XDG_CACHE_HOME/modelyard/push/`. A push killed mid-way and run again
finds its upload there and resumes it from the offset the server holds. Losing the file costs
only time: digests are recomputed and uploads start over.

A remembered digest is trusted only while the file's size, mtime and inode are unchanged, and
only if the file was last modified well before it was hashed: timestamps are coarse (a few ms on
Linux, 2 s on FAT), so a file rewritten just after hashing could keep its mtime (git's "racy
clean" problem, https://git-scm.com/docs/racy-git).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from modelyard.client.files import LocalFile

FILE_NAME = ".modelyard-push.json"
FORMAT = 1
RACY_NS = 2_000_000_000


def cache_dir() -> Path:
    """The per-user cache folder for state of folders that cannot hold it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelyard" / "push"


class PushState:
    """Digests by artifact path and upload locations by (server, digest); thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME
        self.fallback = cache_dir() / (hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32] + ".json")
        self._lock = threading.Lock()
        self.files: dict[str, dict[str, int | str]] = {}
        self.uploads: dict[str, str] = {}
        for candidate in (self.path, self.fallback):
            data = _read(candidate)
            if data is not None:
                self.files = data.get("files", {})
                self.uploads = data.get("uploads", {})
                break

    def digest(self, file: LocalFile) -> str | None:
        """The remembered digest of `file`, if it is unchanged since it was hashed."""
        entry = self.files.get(file.path)
        if not entry:
            return None
        same = (entry.get("size"), entry.get("mtime_ns"), entry.get("inode")) == (file.size, file.mtime_ns, file.inode)
        settled = isinstance(entry.get("hashed_ns"), int) and file.mtime_ns + RACY_NS < int(entry["hashed_ns"])
        digest = entry.get("digest")
        return digest if same and settled and isinstance(digest, str) else None

    def remember(self, file: LocalFile, digest: str, hashed_ns: int) -> None:
        """Record the digest of `file`, hashed from `hashed_ns` on (wall clock)."""
        with self._lock:
            self.files[file.path] = {"size": file.size, "mtime_ns": file.mtime_ns, "inode": file.inode,
                                     "digest": digest, "hashed_ns": hashed_ns}

    def keep(self, paths: set[str]) -> None:
        """Forget files that are gone."""
        with self._lock:
            self.files = {p: e for p, e in self.files.items() if p in paths}

    def upload(self, server: str, digest: str) -> str | None:
        """The location of an unfinished upload of `digest` to `server`."""
        return self.uploads.get(f"{server} {digest}")

    def set_upload(self, server: str, digest: str, location: str | None) -> None:
        """Remember (or, with None, forget) an upload location, and save at once."""
        with self._lock:
            key = f"{server} {digest}"
            if location is None:
                self.uploads.pop(key, None)
            else:
                self.uploads[key] = location
        self.save()

    def save(self) -> None:
        """Write the state atomically; best effort (it only saves time)."""
        with self._lock:
            text = json.dumps({"format": FORMAT, "files": self.files, "uploads": self.uploads}, indent=1)
            for target in (self.path, self.fallback):
                if _write(target, text):
                    if target == self.path:
                        with contextlib.suppress(OSError):
                            self.fallback.unlink(missing_ok=True)
                    return


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def _write(path: Path, text: str) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".modelyard-push.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        return False
    return True
