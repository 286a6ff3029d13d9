"""Artifacts: the files of a version, each a path inside the version naming a stored blob.

A version is created only when every blob it names is already stored (uploads come first, then
`createVersion`), so versions are READY from the start and never point at missing bytes.
"""

from __future__ import annotations

import mimetypes
import posixpath
from dataclasses import dataclass

from modelyard.catalog.blobs import usable_digests
from modelyard.catalog.refs import check_digest
from modelyard.db.tables import BlobRow
from modelyard.errors import InvalidError, LimitError, NotFoundError

MAX_ARTIFACTS = 10_000
MAX_PATH = 512
_MEDIA_TYPES = {
    ".onnx": "application/onnx",
    ".onnx_data": "application/octet-stream",
    ".safetensors": "application/octet-stream",
    ".md": "text/markdown",
    ".json": "application/json",
}


@dataclass(frozen=True)
class ArtifactSpec:
    """A file as the client names it: its path in the version and its blob's digest."""

    path: str
    digest: str


@dataclass(frozen=True)
class Artifact:
    """A checked artifact: path, digest, size and media type."""

    path: str
    digest: str
    size: int
    media_type: str

    def manifest_entry(self) -> dict[str, object]:
        return {"path": self.path, "digest": self.digest, "size": self.size, "mediaType": self.media_type}


def check_path(path: str) -> str:
    """A relative POSIX path inside the version: no `..`, no absolute path, no backslash."""
    problem = None
    if not path or len(path) > MAX_PATH:
        problem = f"must be 1-{MAX_PATH} characters"
    elif "\\" in path:
        problem = "must use '/' (no backslashes)"
    elif path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        problem = "must be relative"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        problem = "must not contain empty, '.' or '..' segments"
    elif any(ord(c) < 32 or c == "\x7f" for c in path):
        problem = "must not contain control characters"
    elif posixpath.normpath(path) != path:
        problem = "must be normalised"
    if problem:
        raise InvalidError(f"artifact path {path!r} {problem}")
    return path


def media_type(path: str) -> str:
    """A media type from the file name; octet-stream when unknown."""
    ext = posixpath.splitext(path)[1].lower()
    return _MEDIA_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


async def resolve_artifacts(specs: list[ArtifactSpec], namespace: str | None = None) -> list[Artifact]:
    """Check paths and digests, refuse duplicates, and look every blob up (one query). With
    `namespace` (a writer confined to it by private reads), a blob it may not use is missing."""
    if len(specs) > MAX_ARTIFACTS:
        raise LimitError(f"a version may hold at most {MAX_ARTIFACTS} artifacts")
    seen: set[str] = set()
    for spec in specs:
        check_path(spec.path)
        check_digest(spec.digest)
        if spec.path in seen:
            raise InvalidError(f"artifact path {spec.path!r} is given twice")
        seen.add(spec.path)
    digests = {s.digest for s in specs}
    blobs = {b.digest: b for b in await BlobRow.filter(digest__in=list(digests))} if digests else {}
    if namespace is not None:
        usable = await usable_digests(set(blobs), namespace)
        blobs = {d: b for d, b in blobs.items() if d in usable}
    missing = [s for s in specs if s.digest not in blobs]
    if missing:
        names = ", ".join(f"{s.path} ({s.digest[:19]}…)" for s in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFoundError(f"upload these blobs before creating the version: {names}{more}")
    return [Artifact(s.path, s.digest, blobs[s.digest].size, media_type(s.path)) for s in specs]
